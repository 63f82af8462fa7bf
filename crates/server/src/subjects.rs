//! One person's, team's or agent's page of data: `GET /api/v1/subjects/{by}/{name}?from&to` —
//! spend and outcomes day by day, the models and the people or agents the spend went through,
//! the subject's row on the value board, and its waste findings. A team viewer reaches only
//! its team, its people and its agents; anything else is not found.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use goodhart_core::Micros;
use goodhart_core::report::{Dimension, SummaryRow, UsageTotals};
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::value::{BoardQuery, By, HomeTeams, Metric};
use goodhart_core::waste::SubjectKind;
use goodhart_store::SummaryQuery;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Access;
use crate::error::ApiError;
use crate::outcomes::{RowJson, activity_and_credits, scoped_board};
use crate::reports::{TotalsJson, usd_number, window};
use crate::scope::{self, TeamView};
use crate::state::AppState;
use crate::waste::{FindingsParams, counted_waste, findings_document};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectParams {
    pub from: Option<String>,
    pub to: Option<String>,
}

fn dimension(by: By) -> Dimension {
    match by {
        By::User => Dimension::User,
        By::Team => Dimension::Team,
        By::Agent => Dimension::Agent,
    }
}

/// The summary of `name`'s usage grouped by `second`, keyed by that dimension's value.
async fn usage_by(
    state: &AppState,
    view: Option<&TeamView>,
    (by, name): (By, &str),
    second: Dimension,
    (from, to): (Micros, Micros),
) -> Result<Vec<(Option<String>, UsageTotals)>, ApiError> {
    let query = SummaryQuery {
        from,
        to,
        group_by: vec![dimension(by), second],
    };
    let rows: Vec<SummaryRow> = scope::usage_summary(state.store.as_ref(), &query, view).await?;
    Ok(rows
        .into_iter()
        .filter(|row| row.key[0].as_deref() == Some(name))
        .map(|mut row| (row.key.pop().flatten(), row.totals))
        .collect())
}

/// `GET /api/v1/subjects/{by}/{name}`.
pub async fn get_subject(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path((by_text, name)): Path<(String, String)>,
    Query(params): Query<SubjectParams>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::NotFound(format!("{by_text} {name}"));
    let by = By::parse(&by_text).ok_or_else(not_found)?;
    let now = goodhart_store::now_micros();
    let (from, to) = window(params.from.as_deref(), params.to.as_deref(), now)?;
    let store = state.store.as_ref();
    let view = scope::view_for(store, &access).await?;
    if view.as_ref().is_some_and(|v| !v.sees_subject(by, &name)) {
        return Err(not_found());
    }
    let subject = (by, name.as_str());
    let related = match by {
        By::User => Dimension::Agent,
        By::Team | By::Agent => Dimension::User,
    };
    let daily_usage = usage_by(&state, view.as_ref(), subject, Dimension::Day, (from, to)).await?;
    let models = usage_by(&state, view.as_ref(), subject, Dimension::Model, (from, to)).await?;
    let related_usage = usage_by(&state, view.as_ref(), subject, related, (from, to)).await?;

    let rules = &state.outcomes.rules;
    let (mut activity, mut credits) = activity_and_credits(store, rules, from, to).await?;
    let mut waste = counted_waste(store, from, to).await?;
    if let Some(view) = &view {
        view.limit_inputs(&mut activity, &mut credits, &mut waste);
    }
    let query = BoardQuery {
        from,
        to,
        by,
        metric: Metric::Value,
        min_team_members: state.outcomes.min_team_members,
    };
    let board = scoped_board(&query, &activity, &credits, &waste, view.as_ref());
    let board_size = board.len();
    let row = board.into_iter().find(|row| row.subject == name).map(RowJson::from);

    // Outcomes by the day they were earned, attributed as the board attributes them.
    let home_teams = HomeTeams::new(activity.iter());
    let mut earned: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for credit in credits.iter().filter(|c| c.at >= from && c.at < to && c.value > 0) {
        let who = &credit.credited;
        let theirs = match by {
            By::User => who.user == name,
            By::Team => home_teams.team_of(&who.user, who.team.as_ref()).as_deref() == Some(name.as_str()),
            By::Agent => who.agent.as_deref() == Some(name.as_str()),
        };
        if theirs {
            let day = earned.entry(credit.at.utc_day()).or_default();
            day.0 += 1;
            day.1 += credit.value;
        }
    }

    let findings = {
        let subject_view = match by {
            By::Team => Some(TeamView::of(store, &name, now).await?),
            By::User | By::Agent => None,
        };
        let params = FindingsParams {
            from: Some(from.rfc3339()),
            to: Some(to.rfc3339()),
            status: None,
            user: (by == By::User).then(|| name.clone()),
        };
        let mut document = findings_document(store, &params, now, subject_view.as_ref().or(view.as_ref())).await?;
        if by == By::Agent {
            let agent = SubjectKind::Agent.as_str();
            document
                .findings
                .retain(|f| f.subject_kind == agent && f.subject == name);
        }
        document.findings
    };

    let usage_of: BTreeMap<String, UsageTotals> = daily_usage
        .iter()
        .filter_map(|(day, totals)| Some((day.clone()?, *totals)))
        .collect();
    let daily: Vec<Value> = days(from, to)
        .map(|day| {
            let usage = usage_of.get(&day).copied().unwrap_or_default();
            let (outcomes, value) = earned.get(&day).copied().unwrap_or_default();
            json!({
                "day": day,
                "requests": usage.requests,
                "total_tokens": usage.tokens.total(),
                "cost_usd": usd_number(usage.cost),
                "outcomes": outcomes,
                "value": value as f64 / 1_000.0,
            })
        })
        .collect();
    let mut total = UsageTotals::default();
    for (_, totals) in &daily_usage {
        total.add(totals);
    }
    let breakdown = |rows: Vec<(Option<String>, UsageTotals)>| -> Vec<Value> {
        let mut rows = rows;
        rows.sort_by(|a, b| b.1.cost.cmp(&a.1.cost).then_with(|| a.0.cmp(&b.0)));
        rows.into_iter()
            .map(|(name, totals)| {
                json!({
                    "name": name,
                    "requests": totals.requests,
                    "total_tokens": totals.tokens.total(),
                    "cost_usd": usd_number(totals.cost),
                })
            })
            .collect()
    };
    Ok(Json(json!({
        "by": by,
        "name": name,
        "from": from.rfc3339(),
        "to": to.rfc3339(),
        "usage": TotalsJson(total),
        "daily": daily,
        "models": breakdown(models),
        "related_by": related.name(),
        "related": breakdown(related_usage),
        "board": row,
        "board_size": board_size,
        "findings": findings,
    })))
}

/// The UTC days `[from, to)` touches, as `YYYY-MM-DD`.
fn days(from: Micros, to: Micros) -> impl Iterator<Item = String> {
    let first = from.floor_to(MICROS_PER_DAY).0;
    (first..to.0)
        .step_by(MICROS_PER_DAY as usize)
        .map(|day| Micros(day).utc_day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_cover_partial_days_at_both_ends() {
        let at = |text: &str| goodhart_core::time::parse_rfc3339(text).unwrap();
        let listed: Vec<String> = days(at("2026-11-01T18:00:00Z"), at("2026-11-03T06:00:00Z")).collect();
        assert_eq!(listed, ["2026-11-01", "2026-11-02", "2026-11-03"]);
        assert_eq!(days(at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z")).count(), 1);
    }
}
