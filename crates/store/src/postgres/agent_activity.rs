//! PostgreSQL: coding agents' activity as their vendors report it.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use goodhart_core::Micros;
use goodhart_core::agent_analytics::{ActivityLine, Tool};
use tokio_postgres::types::ToSql;

use crate::agent_activity::{self as sql, AgentActivityStore, stored_counts, stored_tokens};
use crate::error::StoreError;

use super::PostgresStore;

#[async_trait]
impl AgentActivityStore for PostgresStore {
    async fn record_activity_day(
        &self,
        tool: Tool,
        org: &str,
        day: Micros,
        lines: Vec<ActivityLine>,
        now: Micros,
    ) -> Result<u64, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let tool = tool.as_str();
        tx.execute(sql::UPSERT_DAY, &[&tool, &org, &day.0, &now.0]).await?;
        tx.execute(sql::DELETE_LINES, &[&tool, &org, &day.0]).await?;
        tx.execute(sql::DELETE_MODELS, &[&tool, &org, &day.0]).await?;
        let insert_line = tx.prepare_cached(sql::INSERT_LINE).await?;
        let insert_model = tx.prepare_cached(sql::INSERT_MODEL).await?;
        for (number, line) in lines.iter().enumerate() {
            let number = number as i64;
            let kind = line.actor.kind.as_str();
            let counts = stored_counts(&line.counts);
            let mut values: Vec<&(dyn ToSql + Sync)> =
                vec![&tool, &org, &day.0, &number, &kind, &line.actor.name, &line.surface];
            values.extend(counts.iter().map(|n| n as &(dyn ToSql + Sync)));
            tx.execute(&insert_line, &values).await?;
            for model in &line.models {
                let [input, output, cache_read, cache_write] = stored_tokens(&model.tokens);
                let cost = model.estimated_cost.map(|c| c.0);
                tx.execute(
                    &insert_model,
                    &[
                        &tool,
                        &org,
                        &day.0,
                        &number,
                        &model.model,
                        &input,
                        &output,
                        &cache_read,
                        &cache_write,
                        &cost,
                    ],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(lines.len() as u64)
    }

    async fn activity_imported_until(&self, tool: Tool, org: &str) -> Result<Option<Micros>, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_one(sql::IMPORTED_UNTIL, &[&tool.as_str(), &org]).await?;
        Ok(row.get::<_, Option<i64>>(0).map(sql::day_end))
    }

    async fn agent_activity(&self, from: Micros, to: Micros) -> Result<Vec<(String, ActivityLine)>, StoreError> {
        let client = self.pool.get().await?;
        let lines = client
            .query(sql::SELECT_LINES, &[&from.0, &to.0])
            .await?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    std::array::from_fn(|i| r.get(7 + i)),
                )
            })
            .collect();
        let models = client
            .query(sql::SELECT_MODELS, &[&from.0, &to.0])
            .await?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    std::array::from_fn(|i| r.get(5 + i)),
                    r.get(9),
                )
            })
            .collect();
        sql::assemble(lines, models)
    }

    async fn known_users(&self, names: &[String]) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query("SELECT name FROM users WHERE name = ANY($1)", &[&names])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
