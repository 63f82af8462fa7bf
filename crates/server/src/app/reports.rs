//! Reports over stored usage: the usage summary, the ROI report and the reconciliation of
//! agents' own counters with recorded calls. The API and the CLI print the same documents.

use std::collections::BTreeMap;

use goodhart_core::Micros;
use goodhart_core::outcomes::OutcomeKind;
use goodhart_core::report::{Dimension, SummaryRow, UsageTotals};
use goodhart_core::roi::{Roi, RoiRow, roi};
use goodhart_core::telemetry::Reconciled;
use goodhart_store::SummaryQuery;
use serde::Serialize;

use super::json::{TotalsJson, usd_number};
use super::query::Window;
use super::scope::{self, View};
use super::{App, AppError};

/// The public JSON of a usage summary.
#[derive(Debug, Serialize)]
pub struct SummaryDocument {
    pub from: String,
    pub to: String,
    pub group_by: Vec<Dimension>,
    pub rows: Vec<SummaryRowJson>,
    pub totals: TotalsJson,
}

/// One row: a field per grouped dimension (in the requested order), then the totals.
#[derive(Debug)]
pub struct SummaryRowJson {
    pub key: Vec<(&'static str, Option<String>)>,
    pub totals: TotalsJson,
}

impl Serialize for SummaryRowJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in &self.key {
            map.serialize_entry(name, value)?;
        }
        self.totals.serialize_fields(&mut map)?;
        map.end()
    }
}

pub fn summary_document(query: &SummaryQuery, rows: &[SummaryRow]) -> SummaryDocument {
    let mut overall = UsageTotals::default();
    let rows = rows
        .iter()
        .map(|row| {
            overall.add(&row.totals);
            SummaryRowJson {
                key: query
                    .group_by
                    .iter()
                    .map(|d| d.as_str())
                    .zip(row.key.iter().cloned())
                    .collect(),
                totals: TotalsJson(row.totals),
            }
        })
        .collect();
    SummaryDocument {
        from: query.from.rfc3339(),
        to: query.to.rfc3339(),
        group_by: query.group_by.clone(),
        rows,
        totals: TotalsJson(overall),
    }
}

/// The ROI report's JSON (`GET /api/v1/reports/roi`; `goodhart report roi` prints the same):
/// `from`, `to`, `forecast_usd` (the organisation's spend projected to `to` while the window
/// is open), `hours_saved_per_outcome` (the estimates the hours come from), `org`, and
/// `teams` by spend, largest first (people without a team have `"team": null`).
#[derive(Debug)]
pub struct RoiDocument {
    pub hours_saved_per_outcome: BTreeMap<OutcomeKind, f64>,
    pub report: Roi,
}

impl Serialize for RoiDocument {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let report = &self.report;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("from", &report.from.rfc3339())?;
        map.serialize_entry("to", &report.to.rfc3339())?;
        map.serialize_entry("forecast_usd", &report.forecast.map(usd_number))?;
        map.serialize_entry("hours_saved_per_outcome", &self.hours_saved_per_outcome)?;
        map.serialize_entry(
            "org",
            &RoiRowJson {
                row: &report.org,
                is_team: false,
            },
        )?;
        let teams: Vec<RoiRowJson> = report
            .teams
            .iter()
            .map(|row| RoiRowJson { row, is_team: true })
            .collect();
        map.serialize_entry("teams", &teams)?;
        map.end()
    }
}

/// One row of the ROI report, with money as exact JSON numbers.
#[derive(Debug)]
pub struct RoiRowJson<'a> {
    pub row: &'a RoiRow,
    /// Whether the row is a team's (and so has a `team` field).
    pub is_team: bool,
}

impl Serialize for RoiRowJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let row = &self.row;
        let optional_usd = |amount: Option<goodhart_core::Nanos>| amount.map(usd_number);
        let mut map = serializer.serialize_map(None)?;
        if self.is_team {
            map.serialize_entry("team", &row.team)?;
        }
        map.serialize_entry("people", &row.people)?;
        map.serialize_entry("cost_usd", &usd_number(row.cost))?;
        map.serialize_entry("waste_usd", &usd_number(row.waste))?;
        map.serialize_entry("outcomes", &row.outcomes())?;
        map.serialize_entry("verified_outcomes", &row.verified)?;
        map.serialize_entry("self_reported_outcomes", &row.self_reported)?;
        map.serialize_entry("value", &(row.value as f64 / 1_000.0))?;
        map.serialize_entry("hours_saved", &hours(row.minutes_saved))?;
        map.serialize_entry("cost_per_outcome_usd", &optional_usd(row.cost_per_outcome()))?;
        map.serialize_entry(
            "cost_per_normalised_deployment_usd",
            &optional_usd(row.cost_per_normalised_deployment()),
        )?;
        map.serialize_entry("cost_per_hour_saved_usd", &optional_usd(row.cost_per_hour_saved()))?;
        map.end()
    }
}

/// Minutes as hours, to the nearest tenth.
pub fn hours(minutes: u64) -> f64 {
    ((minutes as f64) / 6.0).round() / 10.0
}

/// Per session whose agent reported counters in the window, what the counters say beside
/// what was recorded (from any source); the sessions with tokens no recorded call accounts for
/// come first.
#[derive(Debug, Serialize)]
pub struct ReconciliationDocument {
    pub from: String,
    pub to: String,
    pub sessions: Vec<Reconciled>,
    pub missing_tokens: i64,
}

impl App {
    /// A usage summary, limited with a team view to the usage attributed to the team.
    pub async fn summary(&self, query: &SummaryQuery, view: Option<&View>) -> Result<SummaryDocument, AppError> {
        let rows = scope::usage_summary(self.store(), query, view).await?;
        Ok(summary_document(query, &rows))
    }

    /// The ROI report for the window; with a team view, the report of that team's people alone.
    pub async fn roi(&self, window: Window, view: Option<&View>) -> Result<RoiDocument, AppError> {
        let Window { from, to } = window;
        let rules = &self.settings().outcomes.rules;
        let (mut activity, mut credits) = self.activity_and_credits(from, to).await?;
        let mut waste = self.counted_waste(from, to).await?;
        if let Some(view) = view {
            view.limit_inputs(&mut activity, &mut credits, &mut waste);
        }
        let mut report = roi(from, to, self.now(), &activity, &credits, rules, &waste);
        if let Some(view) = view {
            report
                .teams
                .retain(|row| row.team.as_deref().is_some_and(|team| view.is_team(team)));
        }
        Ok(RoiDocument {
            hours_saved_per_outcome: OutcomeKind::ALL
                .into_iter()
                .map(|kind| (kind, hours(rules.kind(kind).minutes_saved)))
                .collect(),
            report,
        })
    }

    /// Agents' own counters in the window beside the calls recorded for their sessions.
    pub async fn reconciliation(&self, window: Window) -> Result<ReconciliationDocument, AppError> {
        let Window { from, to } = window;
        let points = self.store().telemetry_points(from, to).await?;
        // A session's calls come a little before its counters are exported: look a day around.
        let day = goodhart_core::time::MICROS_PER_DAY;
        let recorded = self
            .store()
            .recorded_sessions(Micros(from.0 - day), Micros(to.0 + day))
            .await?;
        let sessions = goodhart_core::telemetry::reconcile(&points, &recorded);
        let missing_tokens = sessions.iter().map(|s| s.missing_tokens.max(0)).sum();
        Ok(ReconciliationDocument {
            from: from.rfc3339(),
            to: to.rfc3339(),
            sessions,
            missing_tokens,
        })
    }
}
