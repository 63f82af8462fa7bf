//! SQLite: delivered-work facts and GitHub bookkeeping.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::outcomes::Fact;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::clock::now_micros;
use crate::error::StoreError;
use crate::outcomes::{self, FactsOutcome, OutcomeStore};

use super::SqliteStore;

fn insert_facts_in(tx: &Transaction<'_>, facts: &[(String, Fact)]) -> Result<FactsOutcome, StoreError> {
    let mut statement = tx.prepare_cached(outcomes::INSERT_FACT)?;
    let mut outcome = FactsOutcome::default();
    let now = now_micros().0;
    for (id, fact) in facts {
        let inserted = statement.execute(params![id, fact.kind(), fact.at().0, outcomes::payload(fact), now])?;
        if inserted == 1 {
            outcome.inserted += 1;
        } else {
            outcome.duplicates += 1;
        }
    }
    Ok(outcome)
}

#[async_trait]
impl OutcomeStore for SqliteStore {
    async fn insert_facts(&self, facts: Vec<(String, Fact)>) -> Result<FactsOutcome, StoreError> {
        self.write(move |w| {
            let tx = w.conn.transaction()?;
            let outcome = insert_facts_in(&tx, &facts)?;
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn insert_delivery(
        &self,
        delivery: &str,
        event: &str,
        facts: Vec<(String, Fact)>,
    ) -> Result<Option<FactsOutcome>, StoreError> {
        let (delivery, event) = (delivery.to_owned(), event.to_owned());
        self.write(move |w| {
            let tx = w.conn.transaction()?;
            if tx.execute(outcomes::INSERT_DELIVERY, params![delivery, event, now_micros().0])? == 0 {
                return Ok(None);
            }
            let outcome = insert_facts_in(&tx, &facts)?;
            tx.commit()?;
            Ok(Some(outcome))
        })
        .await
    }

    async fn facts_before(&self, to: Micros) -> Result<Vec<(String, Fact)>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(outcomes::FACTS_BEFORE)?;
            let rows = statement.query_map(params![to.0], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|row| {
                let (id, payload) = row?;
                outcomes::parse(id, &payload)
            })
            .collect()
        })
        .await
    }

    async fn github_user(&self, login: &str) -> Result<Option<String>, StoreError> {
        let login = login.to_owned();
        self.read(move |conn| {
            Ok(conn
                .query_row(outcomes::GITHUB_USER, params![login], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn map_github_login(&self, login: &str, user: &str) -> Result<(), StoreError> {
        let (login, user) = (login.to_owned(), user.to_owned());
        self.write(move |w| {
            w.conn.execute(outcomes::MAP_LOGIN, params![login, user])?;
            Ok(())
        })
        .await
    }

    async fn github_logins(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(outcomes::LOGINS)?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
