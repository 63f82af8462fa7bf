//! The alert feed: `GET /api/v1/alerts` and the shape the API and the CLI show alerts in.

use axum::extract::{Query, State};
use axum::{Extension, Json};
use goodhart_core::Micros;
use serde::Deserialize;

use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/v1/alerts?from=&to=`: alerts raised in the window (default the last 30 days),
/// newest first, with their delivery state.
pub async fn list_alerts(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(params): Query<AlertParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = Micros::from_timestamp(jiff::Timestamp::now());
    let bound = |parameter: &'static str, text: Option<&str>, default: Micros| match text {
        None => Ok(default),
        Some(text) => {
            goodhart_core::time::parse_bound(text, now).map_err(|message| ApiError::InvalidQuery { parameter, message })
        }
    };
    let to = bound("to", params.to.as_deref(), now)?;
    let from = bound(
        "from",
        params.from.as_deref(),
        Micros(to.0 - 30 * goodhart_core::time::MICROS_PER_DAY),
    )?;
    let mut alerts = state.store.alerts(from, to).await?;
    if let Some(view) = crate::scope::view_for(state.store.as_ref(), &access).await? {
        let budgets = state
            .store
            .budgets()
            .await?
            .into_iter()
            .map(|b| (b.id, b.scope))
            .collect();
        // A waste alert is raised within a day of its finding's last call.
        let findings_from = Micros(from.0.saturating_sub(2 * goodhart_core::time::MICROS_PER_DAY));
        let findings = state
            .store
            .findings(findings_from, to)
            .await?
            .into_iter()
            .map(|s| (s.finding.id, s.finding.user))
            .collect();
        view.limit_alerts(&mut alerts, &budgets, &findings);
    }
    let alerts: Vec<serde_json::Value> = alerts.iter().map(alert_json).collect();
    Ok(Json(serde_json::json!({ "alerts": alerts })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// An alert as the API and the CLI show it.
pub fn alert_json(stored: &goodhart_store::StoredAlert) -> serde_json::Value {
    let a = &stored.alert;
    serde_json::json!({
        "id": a.id, "kind": a.kind.as_str(), "budget_id": a.budget(), "scope": a.scope,
        "message": a.message, "created_at": a.created_at.rfc3339(),
        "delivered_at": stored.delivered_at.map(Micros::rfc3339),
        "delivery_attempts": stored.attempts, "last_error": stored.last_error,
    })
}
