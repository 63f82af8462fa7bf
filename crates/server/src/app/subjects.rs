//! One person's, team's or agent's page of data: spend and outcomes day by day, the models and
//! the people or agents the spend went through, the subject's row on the value board, and its
//! waste findings. A team view reaches only its team, its people and its agents; anything else
//! is not found.

use std::collections::BTreeMap;

use goodhart_core::Micros;
use goodhart_core::report::{Dimension, SummaryRow, UsageTotals};
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::value::{By, HomeTeams, Metric};
use goodhart_core::waste::SubjectKind;
use goodhart_store::SummaryQuery;
use serde::Serialize;
use serde_json::value::RawValue;

use super::activity::ActivityJson;
use super::board::{RowJson, scoped_board};
use super::findings::{FindingJson, FindingsQuery};
use super::json::{TotalsJson, usd_number};
use super::query::Window;
use super::scope::{self, View};
use super::{App, AppError};

/// The most days a subject page's daily series covers: ten years. Each day is a row of the
/// answer, so the window is bounded (a `from` of year 0 was 740,000 rows and 11 s; of
/// `106751991d`, a 408 after a minute of work and memory).
pub const MAX_DAILY_DAYS: i64 = 3_660;

/// `GET /api/v1/subjects/{by}/{name}`'s document.
#[derive(Debug, Serialize)]
pub struct SubjectDocument {
    pub by: By,
    pub name: String,
    pub from: String,
    pub to: String,
    pub usage: TotalsJson,
    /// Every UTC day of the window, with or without usage.
    pub daily: Vec<DayJson>,
    /// By spend, largest first.
    pub models: Vec<BreakdownJson>,
    /// `agent` for a person, `user` for a team or an agent.
    pub related_by: &'static str,
    pub related: Vec<BreakdownJson>,
    /// The subject's row on the value board (absent when it has none).
    pub board: Option<RowJson>,
    pub board_size: usize,
    pub findings: Vec<FindingJson>,
    /// A person's coding-agent activity as the vendors report it: a signal shown beside the
    /// outcomes, never value (absent for teams and agents).
    pub activity: Option<ActivityJson>,
}

#[derive(Debug, Serialize)]
pub struct DayJson {
    pub day: String,
    pub requests: u64,
    pub total_tokens: u64,
    pub cost_usd: Box<RawValue>,
    pub outcomes: u64,
    pub value: f64,
}

/// Usage through one model, person or agent.
#[derive(Debug, Serialize)]
pub struct BreakdownJson {
    pub name: Option<String>,
    pub requests: u64,
    pub total_tokens: u64,
    pub cost_usd: Box<RawValue>,
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
    app: &App,
    view: Option<&View>,
    (by, name): (By, &str),
    second: Dimension,
    window: Window,
) -> Result<Vec<(Option<String>, UsageTotals)>, AppError> {
    let query = SummaryQuery {
        from: window.from,
        to: window.to,
        group_by: vec![dimension(by), second],
    };
    let rows: Vec<SummaryRow> = scope::usage_summary(app.store(), &query, view).await?;
    Ok(rows
        .into_iter()
        .filter(|row| row.key[0].as_deref() == Some(name))
        .map(|mut row| (row.key.pop().flatten(), row.totals))
        .collect())
}

fn breakdown(mut rows: Vec<(Option<String>, UsageTotals)>) -> Vec<BreakdownJson> {
    rows.sort_by(|a, b| b.1.cost.cmp(&a.1.cost).then_with(|| a.0.cmp(&b.0)));
    rows.into_iter()
        .map(|(name, totals)| BreakdownJson {
            name,
            requests: totals.requests,
            total_tokens: totals.tokens.total(),
            cost_usd: usd_number(totals.cost),
        })
        .collect()
}

impl App {
    /// The page of `by` `name` over `window`, as `view` sees it.
    pub async fn subject(
        &self,
        by: By,
        name: &str,
        window: Window,
        view: Option<&View>,
    ) -> Result<SubjectDocument, AppError> {
        let not_found = || AppError::not_found(format!("{} {name}", by.as_str()));
        if view.is_some_and(|v| !v.sees_subject(by, name)) {
            return Err(not_found());
        }
        let Window { from, to } = window;
        if to.0.saturating_sub(from.0) / MICROS_PER_DAY > MAX_DAILY_DAYS {
            return Err(AppError::InvalidParameter {
                parameter: "from",
                message: format!("a subject's page covers at most {MAX_DAILY_DAYS} days, one row each"),
            });
        }
        let subject = (by, name);
        let related = match by {
            By::User => Dimension::Agent,
            By::Team | By::Agent => Dimension::User,
        };
        let daily_usage = usage_by(self, view, subject, Dimension::Day, window).await?;
        let models = usage_by(self, view, subject, Dimension::Model, window).await?;
        let related_usage = usage_by(self, view, subject, related, window).await?;

        let (mut activity, mut credits) = self.activity_and_credits(from, to).await?;
        let mut waste = self.counted_waste(from, to).await?;
        if let Some(view) = view {
            view.limit_inputs(&mut activity, &mut credits, &mut waste);
        }
        let query = self.board_query(from, to, by, Metric::Value);
        let board = scoped_board(&query, &activity, &credits, &waste, view);
        let board_size = board.len();
        let row = board.into_iter().find(|row| row.subject == name).map(RowJson::from);

        // Outcomes by the day they were earned, attributed as the board attributes them.
        let home_teams = HomeTeams::new(activity.iter());
        let mut earned: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for credit in credits.iter().filter(|c| c.at >= from && c.at < to && c.value > 0) {
            let who = &credit.credited;
            let theirs = match by {
                By::User => who.user == name,
                By::Team => home_teams.team_of(&who.user, who.team.as_ref()).as_deref() == Some(name),
                By::Agent => who.agent.as_deref() == Some(name),
            };
            if theirs {
                let day = earned.entry(credit.at.utc_day()).or_default();
                day.0 += 1;
                day.1 += credit.value;
            }
        }

        let findings = {
            let subject_view = match by {
                By::Team => Some(View::of(self.store(), name, self.now()).await?),
                By::User | By::Agent => None,
            };
            let query = FindingsQuery {
                window,
                status: None,
                user: (by == By::User).then(|| name.to_owned()),
            };
            let mut document = self.findings(&query, subject_view.as_ref().or(view)).await?;
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
        let daily = days(from, to)
            .map(|day| {
                let usage = usage_of.get(&day).copied().unwrap_or_default();
                let (outcomes, value) = earned.get(&day).copied().unwrap_or_default();
                DayJson {
                    requests: usage.requests,
                    total_tokens: usage.tokens.total(),
                    cost_usd: usd_number(usage.cost),
                    outcomes,
                    value: value as f64 / 1_000.0,
                    day,
                }
            })
            .collect();
        let activity = match by {
            By::User => Some(self.person_activity(name, window).await?),
            By::Team | By::Agent => None,
        };
        let mut total = UsageTotals::default();
        for (_, totals) in &daily_usage {
            total.add(totals);
        }
        Ok(SubjectDocument {
            by,
            name: name.to_owned(),
            from: from.rfc3339(),
            to: to.rfc3339(),
            usage: TotalsJson(total),
            daily,
            models: breakdown(models),
            related_by: related.as_str(),
            related: breakdown(related_usage),
            board: row,
            board_size,
            findings,
            activity,
        })
    }
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
