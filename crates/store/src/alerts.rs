//! Alerts, deduplicated by id, with their delivery state; the SQL is shared by both backends.

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::budgets::{Alert, AlertKind};

use crate::error::StoreError;

/// An alert and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    pub alert: Alert,
    pub delivered_at: Option<Micros>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Alerts, deduplicated by id, with their delivery state.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Stores a new alert; `false` if one with its id exists (the event was already raised).
    async fn insert_alert(&self, alert: &Alert) -> Result<bool, StoreError>;
    /// Alerts created in `[from, to)`, newest first.
    async fn alerts(&self, from: Micros, to: Micros) -> Result<Vec<StoredAlert>, StoreError>;
    /// Records a delivery attempt: delivered at `delivered`, or failed with `error`.
    async fn alert_attempt(&self, id: &str, delivered: Option<Micros>, error: Option<&str>) -> Result<(), StoreError>;
}

pub(crate) const INSERT: &str = "INSERT INTO alerts (id, kind, budget_id, scope, message, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
pub(crate) const SELECT: &str = "SELECT id, kind, budget_id, scope, message, created_at, delivered_at, attempts, \
    last_error FROM alerts WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at DESC, id";
pub(crate) const ATTEMPT: &str =
    "UPDATE alerts SET attempts = attempts + 1, delivered_at = $1, last_error = $2 WHERE id = $3";

/// An alert row's columns, in [`SELECT`] order.
pub(crate) struct Row {
    pub id: String,
    pub kind: String,
    pub budget_id: String,
    pub scope: String,
    pub message: String,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

impl Row {
    pub fn into_alert(self) -> Result<StoredAlert, StoreError> {
        let kind = AlertKind::parse(&self.kind).ok_or(StoreError::Corrupt {
            what: "alert kind",
            value: self.kind.clone(),
        })?;
        Ok(StoredAlert {
            alert: Alert {
                id: self.id,
                kind,
                budget_id: self.budget_id,
                scope: self.scope,
                message: self.message,
                created_at: Micros(self.created_at),
            },
            delivered_at: self.delivered_at.map(Micros),
            attempts: u32::try_from(self.attempts.max(0)).unwrap_or(u32::MAX),
            last_error: self.last_error,
        })
    }
}
