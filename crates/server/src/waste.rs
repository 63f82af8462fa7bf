//! Waste findings: detection passes, the findings API with admin decisions, and alerts.
//!
//! A pass judges whole UTC days (findings are kept per subject, detector and day): it reads
//! the window's calls plus the day before (so a run that crossed midnight is judged whole, and
//! belongs to the day it started), the outcomes of the four weeks before the window's end
//! (who ships), runs [`goodhart_core::waste::detect`] and records the result. Passes run at
//! start over the backfill period, then every few minutes over yesterday and today, and on
//! demand (`POST /api/v1/findings/detect`, `goodhart findings detect`) over any window. New
//! findings at or above the alert confidence raise a `waste` alert while they are fresh.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use goodhart_core::Micros;
use goodhart_core::budgets::Alert;
use goodhart_core::outcomes::{Milli, ValueRules, credits};
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::waste::{Finding, FindingStatus, WasteRules, detect};
use goodhart_store::Store;
use goodhart_store::findings::StoredFinding;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Access;
use crate::error::ApiError;
use crate::reports::{usd_number, window};
use crate::scope::TeamView;
use crate::state::AppState;

/// How findings are produced and announced (the `[waste]` configuration section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasteSettings {
    /// Pause between scheduled passes; `None`: no scheduled detection.
    pub detect_every: Option<Duration>,
    /// Days the first pass after start covers.
    pub backfill_days: u32,
    /// Whether new findings raise alerts, and from which confidence (permille).
    pub alerts: bool,
    pub alert_min_confidence: u32,
    pub rules: WasteRules,
}

impl Default for WasteSettings {
    fn default() -> WasteSettings {
        WasteSettings {
            detect_every: Some(Duration::from_secs(300)),
            backfill_days: 30,
            alerts: true,
            alert_min_confidence: 850,
            rules: WasteRules::default(),
        }
    }
}

/// Calls read before a pass's window, so that runs crossing midnight are judged whole.
const LOOKBACK: i64 = MICROS_PER_DAY;
/// Anyone credited with an outcome this long before a window's end counts as shipping.
const VALUE_PERIOD: i64 = 28 * MICROS_PER_DAY;
/// A new finding raises an alert only if its last call is this recent.
const FRESH: i64 = MICROS_PER_DAY;

/// What one detection pass did.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    /// The whole UTC days judged.
    pub from: String,
    pub to: String,
    pub calls: u64,
    pub findings: u64,
    pub new: u64,
    pub updated: u64,
    pub withdrawn: u64,
    pub elapsed_ms: u64,
    #[serde(skip)]
    pub new_findings: Vec<Finding>,
}

/// Runs a detection pass over the whole UTC days covering `[from, to)` and records it.
pub async fn run_pass(
    store: &dyn Store,
    value_rules: &ValueRules,
    rules: &WasteRules,
    from: Micros,
    to: Micros,
    now: Micros,
) -> Result<PassReport, ApiError> {
    let started = Instant::now();
    let (from, to) = (from.floor_to(MICROS_PER_DAY), to.ceil_to(MICROS_PER_DAY));
    let read_from = Micros(from.0 - LOOKBACK);
    let calls = store.waste_calls(read_from, to).await?;
    let value_from = Micros(read_from.0.min(to.0 - VALUE_PERIOD));
    let facts = store.facts_before(to).await?;
    let (rules, value_rules) = (rules.clone(), value_rules.clone());
    let (calls_read, findings) = tokio::task::spawn_blocking(move || {
        let mut value_by_user: HashMap<String, Milli> = HashMap::new();
        for credit in credits(&facts, &value_rules) {
            if credit.at >= value_from && credit.at < to {
                *value_by_user.entry(credit.credited.user).or_default() += credit.value;
            }
        }
        (calls.len() as u64, detect(&calls, &value_by_user, &rules))
    })
    .await
    .map_err(|e| ApiError::Store(goodhart_store::StoreError::Worker(e.to_string())))?;
    let in_window = findings.iter().filter(|f| f.from >= from && f.from < to).count() as u64;
    let outcome = store.record_findings(from, to, findings, now).await?;
    Ok(PassReport {
        from: from.rfc3339(),
        to: to.rfc3339(),
        calls: calls_read,
        findings: in_window,
        new: outcome.new.len() as u64,
        updated: outcome.updated,
        withdrawn: outcome.withdrawn,
        elapsed_ms: started.elapsed().as_millis() as u64,
        new_findings: outcome.new,
    })
}

/// The alerts a pass's new findings raise.
pub fn alerts_for(new: &[Finding], settings: &WasteSettings, now: Micros) -> Vec<Alert> {
    if !settings.alerts {
        return Vec::new();
    }
    new.iter()
        .filter(|f| f.confidence >= settings.alert_min_confidence && f.to.0 >= now.0 - FRESH)
        .map(|f| f.alert(now))
        .collect()
}

/// Starts scheduled detection on `tracker`: a backfill pass, then one every
/// `detect_every`, until `cancel`.
pub fn spawn_detection(state: AppState, tracker: &TaskTracker, cancel: CancellationToken) {
    let Some(every) = state.waste.detect_every else {
        return;
    };
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut days_back = i64::from(state.waste.backfill_days.max(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = cancel.cancelled() => break,
            }
            let now = goodhart_store::now_micros();
            let from = Micros(now.0 - days_back * MICROS_PER_DAY);
            match pass_and_alert(&state, from, now, now).await {
                Ok(report) => {
                    days_back = 1;
                    tracing::debug!(
                        calls = report.calls,
                        findings = report.findings,
                        new = report.new,
                        withdrawn = report.withdrawn,
                        elapsed_ms = report.elapsed_ms,
                        "waste detection pass"
                    );
                }
                Err(e) => tracing::warn!("waste detection failed: {e}"),
            }
        }
    });
}

/// A pass with the server's rules, its new findings' alerts raised through the gateway's
/// alerter (stored once, posted to the webhooks).
async fn pass_and_alert(state: &AppState, from: Micros, to: Micros, now: Micros) -> Result<PassReport, ApiError> {
    let store = state.store.as_ref();
    let report = run_pass(store, &state.outcomes.rules, &state.waste.rules, from, to, now).await?;
    for alert in alerts_for(&report.new_findings, &state.waste, now) {
        state.gateway.raise_alert(alert);
    }
    Ok(report)
}

/// A finding as the API and the CLI show it.
#[derive(Debug, Serialize)]
pub struct FindingJson {
    pub id: String,
    pub status: FindingStatus,
    pub subject_kind: &'static str,
    pub subject: String,
    pub user: String,
    pub detector: &'static str,
    pub signals: Vec<&'static str>,
    pub evidence: String,
    pub from: String,
    pub to: String,
    pub calls: u64,
    pub wasted_tokens: u64,
    pub wasted_usd: Box<RawValue>,
    /// From 0 to 1.
    pub confidence: f64,
    pub detected_at: String,
    pub updated_at: String,
    pub decided_at: Option<String>,
    pub note: Option<String>,
    #[serde(skip)]
    pub wasted: goodhart_core::Nanos,
}

impl From<&StoredFinding> for FindingJson {
    fn from(stored: &StoredFinding) -> FindingJson {
        let f = &stored.finding;
        FindingJson {
            id: f.id.clone(),
            status: stored.status,
            subject_kind: f.subject_kind.as_str(),
            subject: f.subject.clone(),
            user: f.user.clone(),
            detector: f.detector.as_str(),
            signals: f.signals.iter().map(|d| d.as_str()).collect(),
            evidence: f.evidence.clone(),
            from: f.from.rfc3339(),
            to: f.to.rfc3339(),
            calls: f.calls,
            wasted_tokens: f.wasted_tokens,
            wasted_usd: usd_number(f.wasted),
            confidence: f64::from(f.confidence) / 1_000.0,
            detected_at: stored.detected_at.rfc3339(),
            updated_at: stored.updated_at.rfc3339(),
            decided_at: stored.decided_at.map(Micros::rfc3339),
            note: stored.note.clone(),
            wasted: f.wasted,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsParams {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `open`, `confirmed` or `dismissed`.
    pub status: Option<String>,
    /// Only this person's findings.
    pub user: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FindingsDocument {
    pub from: String,
    pub to: String,
    pub findings: Vec<FindingJson>,
    pub totals: Totals,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub findings: u64,
    pub open: u64,
    pub confirmed: u64,
    pub dismissed: u64,
    /// What the findings that count as waste (all but dismissed ones) wasted.
    pub wasted_usd: Box<RawValue>,
    pub wasted_tokens: u64,
}

/// The stored findings that started in the window, filtered (the CLI calls this too).
pub async fn findings_document(
    store: &dyn Store,
    params: &FindingsParams,
    now: Micros,
    view: Option<&TeamView>,
) -> Result<FindingsDocument, ApiError> {
    let (from, to) = window(params.from.as_deref(), params.to.as_deref(), now)?;
    let status = params
        .status
        .as_deref()
        .map(|text| {
            FindingStatus::parse(text).ok_or_else(|| ApiError::InvalidQuery {
                parameter: "status",
                message: format!("{text:?} is not a status: open, confirmed or dismissed"),
            })
        })
        .transpose()?;
    let findings: Vec<FindingJson> = store
        .findings(from, to)
        .await?
        .iter()
        .filter(|s| status.is_none_or(|wanted| s.status == wanted))
        .filter(|s| params.user.as_deref().is_none_or(|user| s.finding.user == user))
        .filter(|s| view.is_none_or(|view| view.sees_user(&s.finding.user)))
        .map(FindingJson::from)
        .collect();
    let mut totals = Totals::default();
    let mut wasted = goodhart_core::Nanos::ZERO;
    for f in &findings {
        totals.findings += 1;
        match f.status {
            FindingStatus::Open => totals.open += 1,
            FindingStatus::Confirmed => totals.confirmed += 1,
            FindingStatus::Dismissed => totals.dismissed += 1,
        }
        if f.status.counts_as_waste() {
            wasted = wasted.saturating_add(f.wasted);
            totals.wasted_tokens += f.wasted_tokens;
        }
    }
    totals.wasted_usd = usd_number(wasted);
    Ok(FindingsDocument {
        from: from.rfc3339(),
        to: to.rfc3339(),
        findings,
        totals,
    })
}

/// The findings that count as waste in a window (every one not dismissed), for the
/// leaderboard and the ROI report.
pub async fn counted_waste(store: &dyn Store, from: Micros, to: Micros) -> Result<Vec<Finding>, ApiError> {
    Ok(store
        .findings(from, to)
        .await?
        .into_iter()
        .filter(|s| s.status.counts_as_waste())
        .map(|s| s.finding)
        .collect())
}

/// `GET /api/v1/findings?from=&to=&status=&user=`.
pub async fn get_findings(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(params): Query<FindingsParams>,
) -> Result<Json<FindingsDocument>, ApiError> {
    let view = crate::scope::view_for(state.store.as_ref(), &access).await?;
    let now = goodhart_store::now_micros();
    let document = findings_document(state.store.as_ref(), &params, now, view.as_ref()).await?;
    Ok(Json(document))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectParams {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// `POST /api/v1/findings/detect?from=&to=`: a pass over the window now (default the last 30
/// days); new high-confidence findings raise alerts as a scheduled pass's would.
pub async fn post_detect(
    State(state): State<AppState>,
    Query(params): Query<DetectParams>,
) -> Result<Json<PassReport>, ApiError> {
    let now = goodhart_store::now_micros();
    let (from, to) = window(params.from.as_deref(), params.to.as_deref(), now)?;
    Ok(Json(pass_and_alert(&state, from, to, now).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    note: Option<String>,
}

/// Longest reason an admin can give.
const MAX_NOTE_CHARS: usize = 2_000;

/// Records a decision on a finding (the CLI calls this too).
pub async fn decide(
    store: &dyn Store,
    id: &str,
    status: FindingStatus,
    note: Option<&str>,
    now: Micros,
) -> Result<FindingJson, ApiError> {
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
        return Err(ApiError::InvalidField {
            field: "note",
            message: format!("must be at most {MAX_NOTE_CHARS} characters"),
        });
    }
    let stored = store
        .decide_finding(id, status, note.filter(|n| !n.trim().is_empty()), now)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("finding {id}")))?;
    Ok(FindingJson::from(&stored))
}

async fn decide_from_request(
    state: &AppState,
    id: &str,
    status: FindingStatus,
    body: &Bytes,
) -> Result<Json<FindingJson>, ApiError> {
    let decision: Decision = if body.iter().all(u8::is_ascii_whitespace) {
        Decision::default()
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("request body: {e}")))?
    };
    let finding = decide(
        state.store.as_ref(),
        id,
        status,
        decision.note.as_deref(),
        goodhart_store::now_micros(),
    )
    .await?;
    Ok(Json(finding))
}

/// `POST /api/v1/findings/{id}/confirm` with an optional `{"note": "…"}`.
pub async fn post_confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<FindingJson>, ApiError> {
    decide_from_request(&state, &id, FindingStatus::Confirmed, &body).await
}

/// `POST /api/v1/findings/{id}/dismiss` with an optional `{"note": "…"}`: the finding stops
/// counting as waste.
pub async fn post_dismiss(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<FindingJson>, ApiError> {
    decide_from_request(&state, &id, FindingStatus::Dismissed, &body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::Nanos;
    use goodhart_core::waste::{Detector, SubjectKind};

    #[test]
    fn only_new_fresh_confident_findings_alert() {
        let now = Micros(100 * MICROS_PER_DAY);
        let finding = |confidence: u32, days_ago: i64| Finding {
            id: format!("repeated_prompts:agent:loop@bob:{days_ago}"),
            subject_kind: SubjectKind::Agent,
            subject: "loop".into(),
            user: "bob".into(),
            detector: Detector::RepeatedPrompts,
            signals: vec![Detector::RepeatedPrompts, Detector::OffHours],
            evidence: "400 calls".into(),
            from: Micros(now.0 - days_ago * MICROS_PER_DAY - 1),
            to: Micros(now.0 - days_ago * MICROS_PER_DAY),
            calls: 400,
            wasted_tokens: 9_000,
            wasted: Nanos(1_500_000_000),
            confidence,
        };
        let settings = WasteSettings::default();
        let raised = alerts_for(&[finding(950, 0), finding(700, 0), finding(950, 3)], &settings, now);
        assert_eq!(raised.len(), 1, "weak and old findings stay quiet");
        assert_eq!(raised[0].id, format!("waste:{}", finding(950, 0).id));
        assert_eq!(raised[0].budget(), None);
        assert_eq!(raised[0].scope, "agent loop (bob)");
        assert!(raised[0].message.contains("wasted $1.50"), "{}", raised[0].message);
        let off = WasteSettings {
            alerts: false,
            ..settings
        };
        assert!(alerts_for(&[finding(950, 0)], &off, now).is_empty());
    }
}
