//! PostgreSQL: the calls waste detection judges and the findings of its passes.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use futures_util::pin_mut;
use goodhart_core::Micros;
use goodhart_core::waste::{Call, Finding, FindingStatus};

use crate::error::StoreError;
use crate::findings::{self, Decider, FindingStore, PassOutcome, StoredFinding};

use super::PostgresStore;

fn read_finding(r: &tokio_postgres::Row) -> Result<StoredFinding, StoreError> {
    findings::Row {
        id: r.get(0),
        subject_kind: r.get(1),
        subject: r.get(2),
        user: r.get(3),
        detector: r.get(4),
        signals: r.get(5),
        evidence: r.get(6),
        numbers: std::array::from_fn(|i| r.get(7 + i)),
        status: r.get(15),
        decided_at: r.get(16),
        note: r.get(17),
        decided_by: r.get(18),
        samples: r.get(19),
    }
    .into_finding()
}

#[async_trait]
impl FindingStore for PostgresStore {
    async fn waste_calls(&self, from: Micros, to: Micros) -> Result<Vec<Call>, StoreError> {
        use futures_util::TryStreamExt;
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&findings::calls_sql()).await?;
        // Streamed: a month of a large organisation is millions of rows.
        let rows = client.query_raw(&statement, [&from.0, &to.0]).await?;
        pin_mut!(rows);
        let mut calls = Vec::new();
        while let Some(r) = rows.try_next().await? {
            calls.push(Call::from(findings::CallRow {
                at: r.get(0),
                user: r.get(1),
                team: r.get(2),
                agent: r.get(3),
                session: r.get(4),
                model: r.get(5),
                cost: r.get(6),
                input_tokens: r.get(7),
                cache_read_tokens: r.get(8),
                output_tokens: r.get(9),
                truncated: r.get(10),
                prompt_simhash: r.get(11),
                completion_simhash: r.get(12),
                completion_compress_permille: r.get(13),
            }));
        }
        Ok(calls)
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
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Passes over overlapping windows (two instances) take turns.
        tx.execute("LOCK TABLE waste_findings IN SHARE ROW EXCLUSIVE MODE", &[])
            .await?;
        let existing: Vec<(String, String)> = tx
            .query(findings::IN_WINDOW, &[&from.0, &to.0])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let reconciled = findings::reconcile(&existing, &found, dismiss);
        let upsert = tx.prepare_cached(findings::UPSERT).await?;
        for f in &found {
            let p = findings::UpsertParams::of(f);
            let [from_ts, to_ts, calls, tokens, wasted, confidence] = p.numbers;
            tx.execute(
                &upsert,
                &[
                    &f.id,
                    &p.subject_kind,
                    &f.subject,
                    &f.user,
                    &p.detector,
                    &p.signals,
                    &f.evidence,
                    &from_ts,
                    &to_ts,
                    &calls,
                    &tokens,
                    &wasted,
                    &confidence,
                    &now.0,
                    &p.samples,
                ],
            )
            .await?;
        }
        for (id, note) in &reconciled.auto_dismissed {
            tx.execute(findings::AUTO_DISMISS, &[&now.0, note, id]).await?;
        }
        for id in &reconciled.withdrawn {
            tx.execute(findings::WITHDRAW, &[id]).await?;
        }
        tx.commit().await?;
        Ok(reconciled.outcome())
    }

    async fn findings(&self, from: Micros, to: Micros) -> Result<Vec<StoredFinding>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(&findings::select_window(), &[&from.0, &to.0])
            .await?
            .iter()
            .map(read_finding)
            .collect()
    }

    async fn finding(&self, id: &str) -> Result<Option<StoredFinding>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query_opt(&findings::select_one(), &[&id])
            .await?
            .as_ref()
            .map(read_finding)
            .transpose()
    }

    async fn decided_findings(&self, from: Micros, to: Micros) -> Result<Vec<StoredFinding>, StoreError> {
        let client = self.pool.get().await?;
        client
            .query(&findings::select_decided(), &[&from.0, &to.0])
            .await?
            .iter()
            .map(read_finding)
            .collect()
    }

    async fn decide_finding(
        &self,
        id: &str,
        status: FindingStatus,
        note: Option<&str>,
        by: Decider,
        at: Micros,
    ) -> Result<Option<StoredFinding>, StoreError> {
        let client = self.pool.get().await?;
        if client
            .execute(findings::DECIDE, &[&status.as_str(), &at.0, &note, &by.as_str(), &id])
            .await?
            == 0
        {
            return Ok(None);
        }
        drop(client);
        self.finding(id).await
    }
}
