//! Waste findings: detection passes, the findings document with admins' decisions, and the
//! alerts new findings raise.
//!
//! A pass judges whole UTC days (findings are kept per subject, detector and day): it reads
//! the window's calls plus the day before (so a run that crossed midnight is judged whole, and
//! belongs to the day it started), the outcomes of the four weeks before the window's end
//! (who ships), runs [`goodhart_core::waste::detect`] and records the result. Passes run at
//! start over the backfill period, then every few minutes over yesterday and today, and on
//! demand (`POST /api/v1/findings/detect`, `goodhart findings detect`) over any window. New
//! findings at or above the alert confidence raise a `waste` alert while they are fresh.
//!
//! Before recording, a pass reviews its findings against admins' decisions of the feedback
//! memory before the window and in it ([`goodhart_core::waste::review`]): a new finding whose
//! pattern an admin dismissed on an earlier day is recorded dismissed automatically, with a
//! note naming that decision — kept and visible, but no alert and no waste — and one that
//! repeats a confirmed pattern gets a higher confidence. Only new findings are dismissed: one
//! already stored open stays open when an admin dismisses another day's finding of the same
//! pattern (the admin has it in front of them and decides it as they see fit).

use std::collections::HashMap;
use std::time::Instant;

use goodhart_core::Micros;
use goodhart_core::budgets::Alert;
use goodhart_core::outcomes::{ValueRules, credits};
use goodhart_core::report::Dimension;
use goodhart_core::time::{MICROS_PER_DAY, parse_date};
use goodhart_core::waste::{
    CallSample, Decision, FeedbackRules, Finding, FindingStatus, Ledger, Pass, Spend, Verdict, WasteRules, detect,
    review,
};
use goodhart_store::Store;
use goodhart_store::SummaryQuery;
use goodhart_store::findings::{Decider, StoredFinding};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::access::Access;
use super::audit::{Event, Origin};
use super::json::usd_number;
use super::query::Window;
use super::scope::View;
use super::{App, AppError};
use crate::settings::WasteSettings;

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
    /// New findings left open (they may raise alerts).
    pub new: u64,
    /// New findings recorded dismissed because an admin dismissed the same pattern earlier.
    pub auto_dismissed: u64,
    pub updated: u64,
    pub withdrawn: u64,
    pub elapsed_ms: u64,
    #[serde(skip)]
    pub new_findings: Vec<Finding>,
}

/// What each person spent, per team, over the weeks a pass judges them on, and how many days
/// of usage those weeks hold (from the usage rollups, not the calls).
async fn ledger_spend(store: &dyn Store, pass: Pass) -> Result<(Vec<Spend>, i64), AppError> {
    let summary = |group_by: Vec<Dimension>| SummaryQuery {
        from: pass.value_from,
        to: pass.to,
        group_by,
    };
    let spend = store
        .usage_summary(&summary(vec![Dimension::User, Dimension::Team]))
        .await?
        .into_iter()
        .filter_map(|row| {
            let mut key = row.key.into_iter();
            let (user, team) = (key.next()??, key.next()?);
            Some(Spend {
                user,
                team,
                calls: row.totals.requests,
                cost: row.totals.cost,
            })
        })
        .collect();
    let first_day = store
        .usage_summary(&summary(vec![Dimension::Day]))
        .await?
        .into_iter()
        .filter_map(|row| parse_date(row.key.into_iter().next()??.as_str()).ok())
        .min()
        .unwrap_or(pass.to);
    Ok((spend, (pass.to.0 - first_day.0) / MICROS_PER_DAY))
}

/// Runs a detection pass over the whole UTC days covering `[from, to)`, reviews its findings
/// against admins' decisions and records it.
pub async fn run_pass(
    store: &dyn Store,
    value_rules: &ValueRules,
    rules: &WasteRules,
    feedback: &FeedbackRules,
    from: Micros,
    to: Micros,
    now: Micros,
) -> Result<PassReport, AppError> {
    let started = Instant::now();
    let pass = Pass::over(from, to);
    let Pass { from, to, .. } = pass;
    let calls = store.waste_calls(pass.read_from, to).await?;
    let (spend, days) = ledger_spend(store, pass).await?;
    let facts = store.facts_before(to).await?;
    let decided = store
        .decided_findings(Micros(from.0.saturating_sub(feedback.memory)), to)
        .await?;
    let (rules, value_rules, feedback) = (rules.clone(), value_rules.clone(), feedback.clone());
    // Seconds of CPU over a large organisation: at background priority, beside the gateway.
    let (calls_read, findings, dismiss) = crate::background::run("goodhart-detection", move || {
        let value = pass.value(&credits(&facts, &value_rules));
        let findings = detect(&calls, &Ledger { spend, value, days }, &rules);
        let (findings, dismiss) = apply_decisions(findings, &decided, &feedback);
        (calls.len() as u64, findings, dismiss)
    })
    .await?;
    let in_window = findings.iter().filter(|f| pass.keeps(f)).count() as u64;
    let outcome = store.record_findings(from, to, findings, dismiss, now).await?;
    Ok(PassReport {
        from: from.rfc3339(),
        to: to.rfc3339(),
        calls: calls_read,
        findings: in_window,
        new: outcome.new.len() as u64,
        auto_dismissed: outcome.auto_dismissed,
        updated: outcome.updated,
        withdrawn: outcome.withdrawn,
        elapsed_ms: started.elapsed().as_millis() as u64,
        new_findings: outcome.new,
    })
}

/// A pass's findings reviewed against admins' decisions in `decided` (automatic ones do not
/// speak for later findings), and the notes of those to dismiss if they are new, by id.
fn apply_decisions(
    findings: Vec<Finding>,
    decided: &[StoredFinding],
    rules: &FeedbackRules,
) -> (Vec<Finding>, HashMap<String, String>) {
    let decisions: Vec<Decision<'_>> = decided
        .iter()
        .filter(|s| s.decided_by != Some(Decider::Automatic))
        .filter_map(|s| {
            Some(Decision {
                finding: &s.finding,
                status: s.status,
                decided_at: s.decided_at?,
                note: s.note.as_deref(),
            })
        })
        .collect();
    let mut dismiss = HashMap::new();
    let findings = review(findings, &decisions, rules)
        .into_iter()
        .map(|reviewed| {
            if let Verdict::Covered { note, .. } = reviewed.verdict {
                dismiss.insert(reviewed.finding.id.clone(), note);
            }
            reviewed.finding
        })
        .collect();
    (findings, dismiss)
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
    /// `admin`, or `automatic` when a pass dismissed it after an admin's earlier dismissal.
    pub decided_by: Option<Decider>,
    pub note: Option<String>,
    pub samples: Vec<SampleJson>,
    #[serde(skip)]
    pub wasted: goodhart_core::Nanos,
}

/// One sampled call of a finding (never its text).
#[derive(Debug, Serialize)]
pub struct SampleJson {
    pub at: String,
    pub model: String,
    pub session: Option<String>,
    pub agent: Option<String>,
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Box<RawValue>,
}

impl From<&CallSample> for SampleJson {
    fn from(s: &CallSample) -> SampleJson {
        SampleJson {
            at: s.at.rfc3339(),
            model: s.model.clone(),
            session: s.session.clone(),
            agent: s.agent.clone(),
            input_tokens: s.input_tokens,
            cache_read_tokens: s.cache_read_tokens,
            output_tokens: s.output_tokens,
            cost_usd: usd_number(s.cost),
        }
    }
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
            decided_by: stored.decided_by,
            note: stored.note.clone(),
            samples: f.samples.iter().map(SampleJson::from).collect(),
            wasted: f.wasted,
        }
    }
}

/// Which stored findings to show: those that started in the window, optionally of one status
/// and one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingsQuery {
    pub window: Window,
    pub status: Option<FindingStatus>,
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

/// The stored findings of `query`, filtered to what `view` sees, with their totals.
async fn findings_document(
    store: &dyn Store,
    query: &FindingsQuery,
    view: Option<&View>,
) -> Result<FindingsDocument, AppError> {
    let Window { from, to } = query.window;
    let findings: Vec<FindingJson> = store
        .findings(from, to)
        .await?
        .iter()
        .filter(|s| query.status.is_none_or(|wanted| s.status == wanted))
        .filter(|s| query.user.as_deref().is_none_or(|user| s.finding.user == user))
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

/// Longest reason an admin can give.
const MAX_NOTE_CHARS: usize = 2_000;

/// A decision on finding `id` by `by`; where the decider is limited to a team (`view`), a
/// finding about anyone else answers as if it did not exist.
async fn decide(
    store: &dyn Store,
    (id, status, note): (&str, FindingStatus, Option<&str>),
    (by, view): (Decider, Option<&View>),
    now: Micros,
) -> Result<FindingJson, AppError> {
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
        return Err(AppError::field(
            "note",
            format!("must be at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    let not_found = || AppError::not_found(format!("finding {id}"));
    if let Some(view) = view {
        let stored = store.finding(id).await?.ok_or_else(not_found)?;
        if !view.sees_user(&stored.finding.user) {
            return Err(not_found());
        }
    }
    let stored = store
        .decide_finding(id, status, note.filter(|n| !n.trim().is_empty()), by, now)
        .await?
        .ok_or_else(not_found)?;
    Ok(FindingJson::from(&stored))
}

impl App {
    /// A detection pass over the whole UTC days covering `window`, recorded; its new
    /// high-confidence findings raise alerts where this process dispatches them, if it does.
    pub async fn detect(&self, origin: &Origin, window: Window) -> Result<PassReport, AppError> {
        let report = self.detection_pass(window).await?;
        let event = Event::new("finding.detect").with(serde_json::json!({
            "from": report.from,
            "to": report.to,
            "findings": report.findings,
            "new": report.new,
            "auto_dismissed": report.auto_dismissed,
            "withdrawn": report.withdrawn,
        }));
        self.audit(origin, event).await?;
        Ok(report)
    }

    /// A pass, as [`App::detect`] but not on anyone's behalf (scheduled detection).
    async fn detection_pass(&self, window: Window) -> Result<PassReport, AppError> {
        let now = self.now();
        let settings = self.settings();
        let report = run_pass(
            self.store(),
            &settings.outcomes.rules,
            &settings.waste.rules,
            &settings.waste.feedback,
            window.from,
            window.to,
            now,
        )
        .await?;
        if let Some(sink) = self.alert_sink() {
            for alert in alerts_for(&report.new_findings, &settings.waste, now) {
                sink.raise(alert);
            }
        }
        Ok(report)
    }

    /// Starts scheduled detection on `tracker`: a backfill pass, then one every
    /// `detect_every`, until `cancel`.
    pub fn spawn_detection(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        let Some(every) = self.settings().waste.detect_every else {
            return;
        };
        let app = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut days_back = i64::from(app.settings().waste.backfill_days.max(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = cancel.cancelled() => break,
                }
                let now = app.now();
                let window = Window {
                    from: Micros(now.0 - days_back * MICROS_PER_DAY),
                    to: now,
                };
                match app.detection_pass(window).await {
                    Ok(report) => {
                        days_back = 1;
                        tracing::debug!(
                            calls = report.calls,
                            findings = report.findings,
                            new = report.new,
                            auto_dismissed = report.auto_dismissed,
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

    /// The stored findings of `query` that `view` sees.
    pub async fn findings(&self, query: &FindingsQuery, view: Option<&View>) -> Result<FindingsDocument, AppError> {
        findings_document(self.store(), query, view).await
    }

    /// Records a person's decision on a finding, with an optional note: the admin's on any
    /// finding, a manager's on those of the team's people.
    pub async fn decide(
        &self,
        origin: &Origin,
        access: &Access,
        id: &str,
        status: FindingStatus,
        note: Option<&str>,
    ) -> Result<FindingJson, AppError> {
        let by = match access {
            Access::Manager { .. } => Decider::Manager,
            _ => Decider::Admin,
        };
        let view = self.view_for(access).await?;
        let finding = decide(self.store(), (id, status, note), (by, view.as_ref()), self.now()).await?;
        let action = match status {
            FindingStatus::Confirmed => "finding.confirm",
            FindingStatus::Dismissed => "finding.dismiss",
            FindingStatus::Open => "finding.reopen",
        };
        let event = Event::new(action)
            .on("finding", finding.id.clone())
            .with(serde_json::json!({
                "subject": finding.subject,
                "detector": finding.detector,
                "wasted_usd": finding.wasted_usd,
                "note": note,
            }));
        self.audit(origin, event).await?;
        Ok(finding)
    }

    /// The findings that count as waste in a window (every one not dismissed), for the
    /// leaderboard, the ROI report and the subject pages.
    pub(crate) async fn counted_waste(&self, from: Micros, to: Micros) -> Result<Vec<Finding>, AppError> {
        Ok(self
            .store()
            .findings(from, to)
            .await?
            .into_iter()
            .filter(|s| s.status.counts_as_waste())
            .map(|s| s.finding)
            .collect())
    }
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
            samples: Vec::new(),
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

    #[test]
    fn only_an_admins_dismissal_dismisses_a_pass_s_findings() {
        let night = |day: i64| Finding {
            id: format!("repeated_prompts:agent:loop@bob:{day}"),
            subject_kind: SubjectKind::Agent,
            subject: "loop".into(),
            user: "bob".into(),
            detector: Detector::RepeatedPrompts,
            signals: vec![Detector::RepeatedPrompts, Detector::OffHours],
            evidence: "400 calls".into(),
            from: Micros((20_759 + day) * MICROS_PER_DAY + 22 * 3_600_000_000),
            to: Micros((20_760 + day) * MICROS_PER_DAY),
            calls: 400,
            wasted_tokens: 9_000,
            wasted: Nanos(1_500_000_000),
            confidence: 950,
            samples: Vec::new(),
        };
        let dismissed = |day: i64, by: Decider| StoredFinding {
            finding: night(day),
            status: FindingStatus::Dismissed,
            detected_at: night(day).to,
            updated_at: night(day).to,
            decided_at: Some(Micros(night(day).to.0 + 3_600_000_000)),
            decided_by: Some(by),
            note: None,
        };
        let rules = FeedbackRules::default();
        let (kept, dismiss) = apply_decisions(vec![night(1), night(2)], &[dismissed(0, Decider::Admin)], &rules);
        assert_eq!(kept, [night(1), night(2)], "recorded, not dropped");
        assert_eq!(dismiss.len(), 2);
        assert!(dismiss[&night(1).id].contains(&night(0).id), "{dismiss:?}");

        // Monday's dismissal was automatic (the admin's, a month before, is past the memory):
        // it speaks for nothing, or dismissals would renew themselves for ever.
        let decided = [dismissed(-31, Decider::Admin), dismissed(0, Decider::Automatic)];
        let (_, dismiss) = apply_decisions(vec![night(1)], &decided, &rules);
        assert!(dismiss.is_empty(), "{dismiss:?}");
    }
}
