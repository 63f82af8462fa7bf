//! SQLite: coding agents' activity as their vendors report it.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::agent_analytics::{ActivityLine, Tool};
use rusqlite::{OptionalExtension, params, params_from_iter};

use crate::agent_activity::{self as sql, AgentActivityStore, stored_counts, stored_tokens};
use crate::error::StoreError;

use super::SqliteStore;

#[async_trait]
impl AgentActivityStore for SqliteStore {
    async fn record_activity_day(
        &self,
        tool: Tool,
        org: &str,
        day: Micros,
        lines: Vec<ActivityLine>,
        now: Micros,
    ) -> Result<u64, StoreError> {
        let org = org.to_owned();
        self.write(move |w| {
            let tx = w.conn.transaction()?;
            let key = params![tool.as_str(), org, day.0];
            tx.prepare_cached(sql::UPSERT_DAY)?
                .execute(params![tool.as_str(), org, day.0, now.0])?;
            tx.prepare_cached(sql::DELETE_LINES)?.execute(key)?;
            tx.prepare_cached(sql::DELETE_MODELS)?.execute(key)?;
            let mut insert_line = tx.prepare_cached(sql::INSERT_LINE)?;
            let mut insert_model = tx.prepare_cached(sql::INSERT_MODEL)?;
            for (number, line) in lines.iter().enumerate() {
                let number = number as i64;
                let head: [&dyn rusqlite::ToSql; 7] = [
                    &tool.as_str(),
                    &org,
                    &day.0,
                    &number,
                    &line.actor.kind.as_str(),
                    &line.actor.name,
                    &line.surface,
                ];
                let counts = stored_counts(&line.counts);
                let counts = counts.iter().map(|n| n as &dyn rusqlite::ToSql);
                insert_line.execute(params_from_iter(head.into_iter().chain(counts)))?;
                for model in &line.models {
                    let [input, output, cache_read, cache_write] = stored_tokens(&model.tokens);
                    insert_model.execute(params![
                        tool.as_str(),
                        org,
                        day.0,
                        number,
                        model.model,
                        input,
                        output,
                        cache_read,
                        cache_write,
                        model.estimated_cost.map(|c| c.0)
                    ])?;
                }
            }
            drop((insert_line, insert_model));
            tx.commit()?;
            Ok(lines.len() as u64)
        })
        .await
    }

    async fn activity_imported_until(&self, tool: Tool, org: &str) -> Result<Option<Micros>, StoreError> {
        let org = org.to_owned();
        self.read(move |conn| {
            let last: Option<i64> = conn
                .prepare_cached(sql::IMPORTED_UNTIL)?
                .query_row(params![tool.as_str(), org], |r| r.get(0))?;
            Ok(last.map(sql::day_end))
        })
        .await
    }

    async fn agent_activity(&self, from: Micros, to: Micros) -> Result<Vec<(String, ActivityLine)>, StoreError> {
        self.read(move |conn| {
            let lines = conn
                .prepare_cached(sql::SELECT_LINES)?
                .query_map([from.0, to.0], |r| {
                    let mut counts = [0i64; 12];
                    for (i, n) in counts.iter_mut().enumerate() {
                        *n = r.get(7 + i)?;
                    }
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        counts,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let models = conn
                .prepare_cached(sql::SELECT_MODELS)?
                .query_map([from.0, to.0], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                        r.get(9)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            sql::assemble(lines, models)
        })
        .await
    }

    async fn known_users(&self, names: &[String]) -> Result<Vec<String>, StoreError> {
        let names = names.to_vec();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(sql::KNOWN_USER)?;
            let mut known = Vec::new();
            for name in names {
                if let Some(found) = statement.query_row([&name], |r| r.get(0)).optional()? {
                    known.push(found);
                }
            }
            Ok(known)
        })
        .await
    }
}
