//! PostgreSQL: delivered-work facts and GitHub bookkeeping.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;
use goodhart_core::outcomes::Fact;
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

use crate::clock::now_micros;
use crate::error::StoreError;
use crate::outcomes::{self, FactsOutcome, OutcomeStore};

use super::PostgresStore;

async fn insert_facts_in(tx: &Transaction<'_>, facts: &[(String, Fact)]) -> Result<FactsOutcome, StoreError> {
    let statement = tx.prepare(outcomes::INSERT_FACT).await?;
    let mut outcome = FactsOutcome::default();
    let now = now_micros().0;
    for (id, fact) in facts {
        let params: [&(dyn ToSql + Sync); 5] = [id, &fact.kind(), &fact.at().0, &outcomes::payload(fact), &now];
        if tx.execute(&statement, &params).await? == 1 {
            outcome.inserted += 1;
        } else {
            outcome.duplicates += 1;
        }
    }
    Ok(outcome)
}

#[async_trait]
impl OutcomeStore for PostgresStore {
    async fn insert_facts(&self, facts: Vec<(String, Fact)>) -> Result<FactsOutcome, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let outcome = insert_facts_in(&tx, &facts).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn insert_delivery(
        &self,
        delivery: &str,
        event: &str,
        facts: Vec<(String, Fact)>,
    ) -> Result<Option<FactsOutcome>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if tx
            .execute(outcomes::INSERT_DELIVERY, &[&delivery, &event, &now_micros().0])
            .await?
            == 0
        {
            return Ok(None);
        }
        let outcome = insert_facts_in(&tx, &facts).await?;
        tx.commit().await?;
        Ok(Some(outcome))
    }

    async fn facts_before(&self, to: Micros) -> Result<Vec<(String, Fact)>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(outcomes::FACTS_BEFORE, &[&to.0])
            .await?
            .iter()
            .map(|r| outcomes::parse(r.get(0), r.get::<_, &str>(1)))
            .collect()
    }

    async fn github_user(&self, login: &str) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt(outcomes::GITHUB_USER, &[&login])
            .await?
            .map(|r| r.get(0)))
    }

    async fn map_github_login(&self, login: &str, user: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.execute(outcomes::MAP_LOGIN, &[&login, &user]).await?;
        Ok(())
    }

    async fn github_logins(&self) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .query(outcomes::LOGINS, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}
