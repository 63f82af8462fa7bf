//! SQLite: the calls waste detection judges and the findings of its passes.

use std::collections::HashMap;

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::waste::{Call, Finding, FindingStatus};
use rusqlite::{Connection, params};

use crate::error::StoreError;
use crate::findings::{self, Decider, FindingStore, PassOutcome, StoredFinding};

use super::SqliteStore;

fn read_finding(r: &rusqlite::Row<'_>) -> rusqlite::Result<findings::Row> {
    Ok(findings::Row {
        id: r.get(0)?,
        subject_kind: r.get(1)?,
        subject: r.get(2)?,
        user: r.get(3)?,
        detector: r.get(4)?,
        signals: r.get(5)?,
        evidence: r.get(6)?,
        numbers: [
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
        ],
        status: r.get(15)?,
        decided_at: r.get(16)?,
        note: r.get(17)?,
        decided_by: r.get(18)?,
        samples: r.get(19)?,
    })
}

fn query_findings(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<findings::StoredFinding>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params, read_finding)?;
    rows.map(|row| row?.into_finding()).collect()
}

#[async_trait]
impl FindingStore for SqliteStore {
    async fn waste_calls(&self, from: Micros, to: Micros) -> Result<Vec<Call>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&findings::calls_sql())?;
            let rows = statement.query_map(params![from.0, to.0], |r| {
                Ok(Call::from(findings::CallRow {
                    at: r.get(0)?,
                    user: r.get(1)?,
                    team: r.get(2)?,
                    agent: r.get(3)?,
                    session: r.get(4)?,
                    model: r.get(5)?,
                    cost: r.get(6)?,
                    input_tokens: r.get(7)?,
                    cache_read_tokens: r.get(8)?,
                    output_tokens: r.get(9)?,
                    truncated: r.get(10)?,
                    prompt_simhash: r.get(11)?,
                    completion_simhash: r.get(12)?,
                    completion_compress_permille: r.get(13)?,
                }))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn record_findings(
        &self,
        from: Micros,
        to: Micros,
        mut found: Vec<Finding>,
        dismiss: HashMap<String, String>,
        now: Micros,
    ) -> Result<PassOutcome, StoreError> {
        found.retain(|f| f.from >= from && f.from < to);
        self.write(move |w| {
            let tx = w
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let existing: Vec<(String, String)> = tx
                .prepare_cached(findings::IN_WINDOW)?
                .query_map(params![from.0, to.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let reconciled = findings::reconcile(&existing, &found, dismiss);
            {
                let mut upsert = tx.prepare_cached(findings::UPSERT)?;
                for f in &found {
                    let p = findings::UpsertParams::of(f);
                    let [from_ts, to_ts, calls, tokens, wasted, confidence] = p.numbers;
                    upsert.execute(params![
                        f.id,
                        p.subject_kind,
                        f.subject,
                        f.user,
                        p.detector,
                        p.signals,
                        f.evidence,
                        from_ts,
                        to_ts,
                        calls,
                        tokens,
                        wasted,
                        confidence,
                        now.0,
                        p.samples
                    ])?;
                }
                let mut auto_dismiss = tx.prepare_cached(findings::AUTO_DISMISS)?;
                for (id, note) in &reconciled.auto_dismissed {
                    auto_dismiss.execute(params![now.0, note, id])?;
                }
                let mut withdraw = tx.prepare_cached(findings::WITHDRAW)?;
                for id in &reconciled.withdrawn {
                    withdraw.execute([id])?;
                }
            }
            tx.commit()?;
            Ok(reconciled.outcome())
        })
        .await
    }

    async fn findings(&self, from: Micros, to: Micros) -> Result<Vec<StoredFinding>, StoreError> {
        self.read(move |conn| query_findings(conn, &findings::select_window(), params![from.0, to.0]))
            .await
    }

    async fn finding(&self, id: &str) -> Result<Option<StoredFinding>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| Ok(query_findings(conn, &findings::select_one(), params![id])?.pop()))
            .await
    }

    async fn decided_findings(&self, from: Micros, to: Micros) -> Result<Vec<StoredFinding>, StoreError> {
        self.read(move |conn| query_findings(conn, &findings::select_decided(), params![from.0, to.0]))
            .await
    }

    async fn decide_finding(
        &self,
        id: &str,
        status: FindingStatus,
        note: Option<&str>,
        by: Decider,
        at: Micros,
    ) -> Result<Option<StoredFinding>, StoreError> {
        let (id, note) = (id.to_owned(), note.map(str::to_owned));
        self.write(move |w| {
            if w.conn
                .execute(findings::DECIDE, params![status.as_str(), at.0, note, by.as_str(), id])?
                == 0
            {
                return Ok(None);
            }
            Ok(query_findings(&w.conn, &findings::select_one(), params![id])?.pop())
        })
        .await
    }
}
