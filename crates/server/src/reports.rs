//! Read endpoints over stored usage: `GET /api/v1/usage/summary` and `GET /api/v1/reports/roi`.
//! The CLI's `report` command builds the same queries and the same JSON documents, so both
//! always agree.

use axum::extract::{Query, State};
use axum::{Extension, Json};
use std::collections::BTreeMap;

use goodhart_core::Micros;
use goodhart_core::outcomes::{OutcomeKind, ValueRules};
use goodhart_core::report::{Dimension, SummaryRow, UsageTotals, parse_group_by};
use goodhart_core::roi::{Roi, RoiRow, roi};
use goodhart_core::time::{MICROS_PER_DAY, parse_bound};
use goodhart_store::SummaryQuery;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::Access;
use crate::error::ApiError;
use crate::scope::{self, TeamView};
use crate::state::AppState;

/// The window a report covers when none is given.
pub const DEFAULT_WINDOW_MICROS: i64 = 30 * MICROS_PER_DAY;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub group_by: Option<String>,
}

/// A read window from `from`/`to` parameters (RFC 3339, dates, or spans back from `now` such
/// as `7d`): `to` defaults to now, `from` to [`DEFAULT_WINDOW_MICROS`] before `to`.
pub fn window(from: Option<&str>, to: Option<&str>, now: Micros) -> Result<(Micros, Micros), ApiError> {
    let bound = |parameter: &'static str, text: Option<&str>| {
        text.map(|t| parse_bound(t, now).map_err(|message| ApiError::InvalidQuery { parameter, message }))
            .transpose()
    };
    let to = bound("to", to)?.unwrap_or(now);
    let from = bound("from", from)?.unwrap_or(Micros(to.0 - DEFAULT_WINDOW_MICROS));
    if from > to {
        return Err(ApiError::InvalidQuery {
            parameter: "from",
            message: "`from` is after `to`".into(),
        });
    }
    Ok((from, to))
}

/// Builds a summary query from report parameters; `now` anchors spans such as `7d`.
pub fn summary_query(params: &SummaryParams, now: Micros) -> Result<SummaryQuery, ApiError> {
    let (from, to) = window(params.from.as_deref(), params.to.as_deref(), now)?;
    let group_by =
        parse_group_by(params.group_by.as_deref().unwrap_or("")).map_err(|message| ApiError::InvalidQuery {
            parameter: "group_by",
            message,
        })?;
    Ok(SummaryQuery { from, to, group_by })
}

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

/// Totals with money as an exact JSON number (never through a float).
#[derive(Debug)]
pub struct TotalsJson(pub UsageTotals);

impl TotalsJson {
    fn serialize_fields<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let (totals, t) = (&self.0, &self.0.tokens);
        map.serialize_entry("requests", &totals.requests)?;
        map.serialize_entry("input_tokens", &t.input)?;
        map.serialize_entry("output_tokens", &t.output)?;
        map.serialize_entry("cache_read_tokens", &t.cache_read)?;
        map.serialize_entry("cache_write_tokens", &t.cache_write_5m)?;
        map.serialize_entry("cache_write_1h_tokens", &t.cache_write_1h)?;
        map.serialize_entry("reasoning_tokens", &t.reasoning)?;
        map.serialize_entry("total_tokens", &t.total())?;
        map.serialize_entry("cost_usd", &usd_number(totals.cost))?;
        map.serialize_entry("unpriced_requests", &totals.unpriced_requests)?;
        map.serialize_entry("estimated_requests", &totals.estimated_requests)
    }
}

impl Serialize for TotalsJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        self.serialize_fields(&mut map)?;
        map.end()
    }
}

/// A money amount as an exact JSON number.
pub fn usd_number(nanos: goodhart_core::Nanos) -> Box<RawValue> {
    RawValue::from_string(nanos.usd_string()).expect("a plain decimal is a JSON number")
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
                    .map(|d| d.name())
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

pub async fn get_summary(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    params: Result<Query<SummaryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SummaryDocument>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let query = summary_query(&params, Micros::from_timestamp(jiff::Timestamp::now()))?;
    let view = scope::view_for(state.store.as_ref(), &access).await?;
    let rows = scope::usage_summary(state.store.as_ref(), &query, view.as_ref()).await?;
    Ok(Json(summary_document(&query, &rows)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoiParams {
    pub from: Option<String>,
    pub to: Option<String>,
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

/// The ROI report for `[from, to)` from the store (the CLI calls this too); with a team view,
/// the report of that team's people alone.
pub async fn roi_report(
    store: &dyn goodhart_store::Store,
    rules: &ValueRules,
    params: &RoiParams,
    now: Micros,
    view: Option<&TeamView>,
) -> Result<RoiDocument, ApiError> {
    let (from, to) = window(params.from.as_deref(), params.to.as_deref(), now)?;
    let (mut activity, mut credits) = crate::outcomes::activity_and_credits(store, rules, from, to).await?;
    let mut waste = crate::waste::counted_waste(store, from, to).await?;
    if let Some(view) = view {
        view.limit_inputs(&mut activity, &mut credits, &mut waste);
    }
    let mut report = roi(from, to, now, &activity, &credits, rules, &waste);
    if let Some(view) = view {
        report
            .teams
            .retain(|row| row.team.as_deref() == Some(view.team.as_str()));
    }
    Ok(RoiDocument {
        hours_saved_per_outcome: OutcomeKind::ALL
            .into_iter()
            .map(|kind| (kind, hours(rules.kind(kind).minutes_saved)))
            .collect(),
        report,
    })
}

pub async fn get_roi(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    params: Result<Query<RoiParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RoiDocument>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let now = goodhart_store::now_micros();
    let view = scope::view_for(state.store.as_ref(), &access).await?;
    let rules = &state.outcomes.rules;
    Ok(Json(
        roi_report(state.store.as_ref(), rules, &params, now, view.as_ref()).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_money_in_json() {
        let totals = TotalsJson(UsageTotals {
            cost: goodhart_core::Nanos(97_387_250),
            ..Default::default()
        });
        let json = serde_json::to_string(&totals).unwrap();
        assert!(json.contains("\"cost_usd\":0.09738725,"), "{json}");
    }

    #[test]
    fn defaults_and_errors() {
        let now = Micros(100 * MICROS_PER_DAY);
        let q = summary_query(&SummaryParams::default(), now).unwrap();
        assert_eq!((q.from, q.to), (Micros(70 * MICROS_PER_DAY), now));
        let bad = summary_query(
            &SummaryParams {
                group_by: Some("user,size".into()),
                ..Default::default()
            },
            now,
        );
        assert!(matches!(
            bad,
            Err(ApiError::InvalidQuery {
                parameter: "group_by",
                ..
            })
        ));
        let reversed = SummaryParams {
            from: Some("1d".into()),
            to: Some("2d".into()),
            ..Default::default()
        };
        assert!(matches!(
            summary_query(&reversed, now),
            Err(ApiError::InvalidQuery { parameter: "from", .. })
        ));
    }
}
