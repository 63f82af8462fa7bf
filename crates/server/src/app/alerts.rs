//! The alert feed: alerts raised in a window, newest first, with their delivery state; a team
//! view sees the alerts about its budgets and its people's findings.

use goodhart_core::Micros;
use goodhart_store::StoredAlert;
use serde::Serialize;

use super::query::Window;
use super::scope::View;
use super::{App, AppError};

/// An alert as the API and the CLI show it.
#[derive(Debug, Serialize)]
pub struct AlertJson {
    pub id: String,
    pub kind: &'static str,
    pub budget_id: Option<String>,
    pub scope: String,
    pub message: String,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub delivery_attempts: u32,
    pub last_error: Option<String>,
}

impl From<&StoredAlert> for AlertJson {
    fn from(stored: &StoredAlert) -> AlertJson {
        let a = &stored.alert;
        AlertJson {
            id: a.id.clone(),
            kind: a.kind.as_str(),
            budget_id: a.budget().map(str::to_owned),
            scope: a.scope.clone(),
            message: a.message.clone(),
            created_at: a.created_at.rfc3339(),
            delivered_at: stored.delivered_at.map(Micros::rfc3339),
            delivery_attempts: stored.attempts,
            last_error: stored.last_error.clone(),
        }
    }
}

impl App {
    /// The alerts raised in `window` that `view` sees, newest first.
    pub async fn alerts(&self, window: Window, view: Option<&View>) -> Result<Vec<StoredAlert>, AppError> {
        let Window { from, to } = window;
        let store = self.store();
        let mut alerts = store.alerts(from, to).await?;
        if let Some(view) = view {
            let budgets = store.budgets().await?.into_iter().map(|b| (b.id, b.scope)).collect();
            // A waste alert is raised within a day of its finding's last call.
            let findings_from = Micros(from.0.saturating_sub(2 * goodhart_core::time::MICROS_PER_DAY));
            let findings = store
                .findings(findings_from, to)
                .await?
                .into_iter()
                .map(|s| (s.finding.id, s.finding.user))
                .collect();
            view.limit_alerts(&mut alerts, &budgets, &findings);
        }
        Ok(alerts)
    }
}
