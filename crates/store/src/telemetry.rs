//! Agents' own usage counters (OTLP metric points), kept for reconciliation, and the usage
//! recorded per session to reconcile them with. The SQL is shared by both backends.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::money::Nanos;
use goodhart_core::telemetry::{RecordedSession, TelemetryKind, TelemetryPoint};
use goodhart_core::usage::TokenCounts;

use crate::error::StoreError;

#[async_trait]
pub trait TelemetryStore: Send + Sync {
    /// Stores points whose id is new; returns how many were.
    async fn insert_telemetry_points(&self, points: &[TelemetryPoint]) -> Result<u64, StoreError>;
    /// Points whose time is in `[from, to)`, oldest first.
    async fn telemetry_points(&self, from: Micros, to: Micros) -> Result<Vec<TelemetryPoint>, StoreError>;
    /// Usage events in `[from, to)` per session, from every source.
    async fn recorded_sessions(&self, from: Micros, to: Micros) -> Result<Vec<RecordedSession>, StoreError>;
}

pub(crate) const INSERT: &str = "INSERT INTO telemetry_points (id, ts, user_id, session, agent, model, kind, amount) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING";
pub(crate) const SELECT: &str = "SELECT id, ts, user_id, session, agent, model, kind, amount FROM telemetry_points \
     WHERE ts >= $1 AND ts < $2 ORDER BY ts, id";
pub(crate) const RECORDED: &str = "SELECT session, CAST(COUNT(*) AS BIGINT), CAST(SUM(input_tokens) AS BIGINT), \
     CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cache_read_tokens) AS BIGINT), \
     CAST(SUM(cache_write_5m_tokens) AS BIGINT), CAST(SUM(cache_write_1h_tokens) AS BIGINT), \
     CAST(SUM(reasoning_tokens) AS BIGINT), CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) \
     FROM usage_events WHERE ts >= $1 AND ts < $2 AND session IS NOT NULL GROUP BY session";

/// A point's columns in the order of [`SELECT`].
pub(crate) type PointRow = (String, i64, String, Option<String>, String, Option<String>, String, i64);

pub(crate) fn point(
    (id, ts, user, session, agent, model, kind, amount): PointRow,
) -> Result<TelemetryPoint, StoreError> {
    Ok(TelemetryPoint {
        kind: TelemetryKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
            what: "telemetry point kind",
            value: kind.clone(),
        })?,
        id,
        timestamp: Micros(ts),
        user,
        session,
        agent,
        model,
        amount: amount.max(0) as u64,
    })
}

/// The amount as stored (BIGINT); counters beyond i64 are clamped.
pub(crate) fn stored_amount(point: &TelemetryPoint) -> i64 {
    i64::try_from(point.amount).unwrap_or(i64::MAX)
}

/// A session's columns in the order of [`RECORDED`].
pub(crate) type SessionRow = (String, [i64; 8]);

pub(crate) fn session((session, n): SessionRow) -> RecordedSession {
    let count = |i: usize| n[i].max(0) as u64;
    RecordedSession {
        session,
        calls: count(0),
        tokens: TokenCounts {
            input: count(1),
            output: count(2),
            cache_read: count(3),
            cache_write_5m: count(4),
            cache_write_1h: count(5),
            reasoning: count(6),
        },
        cost: Nanos(n[7]),
    }
}
