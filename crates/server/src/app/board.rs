//! The value leaderboard: usage by person, team, agent and day, every credit earned, and the
//! findings that count as waste, ranked by [`goodhart_core::value::board`]; the ROI report and
//! the subject pages are computed from the same inputs.

use goodhart_core::Micros;
use goodhart_core::outcomes::{Credit, Milli, ValueRules, credits};
use goodhart_core::report::Dimension;
use goodhart_core::value::{Activity, BoardQuery, By, Metric, Row, board};
use goodhart_store::SummaryQuery;
use serde::Serialize;
use serde_json::value::RawValue;

use super::json::usd_number;
use super::scope::View;
use super::{App, AppError};

/// The leaderboard's JSON (the CLI prints the same document).
#[derive(Debug, Serialize)]
pub struct BoardDocument {
    pub from: String,
    pub to: String,
    pub by: By,
    pub metric: Metric,
    /// What the metric measures; the volume metric says it measures consumption.
    pub label: &'static str,
    pub rows: Vec<RowJson>,
}

#[derive(Debug, Serialize)]
pub struct RowJson {
    pub subject: String,
    pub rank: usize,
    /// Normalised deployments per active person-week.
    pub value: f64,
    pub value_total: f64,
    pub person_weeks: u64,
    /// Normalised deployments per dollar.
    pub efficiency: f64,
    pub cost_usd: Box<RawValue>,
    /// The same, for printing.
    #[serde(skip)]
    pub cost: goodhart_core::Nanos,
    pub tokens: u64,
    pub outcomes: u64,
    pub waste_usd: Box<RawValue>,
    pub flags: Vec<goodhart_core::value::Flag>,
}

fn units(milli: Milli) -> f64 {
    milli as f64 / 1_000.0
}

impl From<Row> for RowJson {
    fn from(row: Row) -> RowJson {
        RowJson {
            subject: row.subject,
            rank: row.rank,
            value: units(row.value),
            value_total: units(row.value_total),
            person_weeks: row.person_weeks,
            efficiency: units(row.efficiency),
            cost_usd: usd_number(row.cost),
            cost: row.cost,
            tokens: row.tokens,
            outcomes: row.outcomes,
            waste_usd: usd_number(row.waste),
            flags: row.flags,
        }
    }
}

/// Usage by person, team, agent and day in `[from, to)`, and every credit earned before `to`:
/// what the leaderboard and the ROI report are computed from.
async fn activity_and_credits(
    store: &dyn goodhart_store::Store,
    rules: &ValueRules,
    from: Micros,
    to: Micros,
) -> Result<(Vec<Activity>, Vec<Credit>), AppError> {
    let facts = store.facts_before(to).await?;
    let credits = credits(&facts, rules);
    let summary = SummaryQuery {
        from,
        to,
        group_by: vec![Dimension::User, Dimension::Team, Dimension::Agent, Dimension::Day],
    };
    let activity = store
        .usage_summary(&summary)
        .await?
        .into_iter()
        .filter_map(|row| {
            let mut key = row.key.into_iter();
            let (user, team, agent, day) = (key.next()??, key.next()?, key.next()?, key.next()??);
            let day = goodhart_core::time::parse_date(&day).ok()?;
            Some(Activity {
                user,
                team,
                agent,
                day,
                cost: row.totals.cost,
                tokens: row.totals.tokens.total(),
            })
        })
        .collect();
    Ok((activity, credits))
}

/// The board, with a team view only the rows of what the team sees, ranked among themselves
/// (members' work for other teams stays in their own rows, not as rows of those teams).
pub fn scoped_board(
    query: &BoardQuery,
    activity: &[Activity],
    credits: &[Credit],
    waste: &[goodhart_core::waste::Finding],
    view: Option<&View>,
) -> Vec<Row> {
    let mut rows = board(query, activity, credits, waste);
    if let Some(view) = view {
        rows.retain(|row| view.sees_subject(query.by, &row.subject));
        for (rank, row) in rows.iter_mut().enumerate() {
            row.rank = rank + 1;
        }
    }
    rows
}

impl App {
    /// The board for `query`; with a team view, the board of that team's people alone.
    pub async fn leaderboard(&self, query: &BoardQuery, view: Option<&View>) -> Result<BoardDocument, AppError> {
        let (mut activity, mut credits) = self.activity_and_credits(query.from, query.to).await?;
        let mut waste = self.counted_waste(query.from, query.to).await?;
        if let Some(view) = view {
            view.limit_inputs(&mut activity, &mut credits, &mut waste);
        }
        let rows = scoped_board(query, &activity, &credits, &waste, view);
        Ok(BoardDocument {
            from: query.from.rfc3339(),
            to: query.to.rfc3339(),
            by: query.by,
            metric: query.metric,
            label: query.metric.label(),
            rows: rows.into_iter().map(RowJson::from).collect(),
        })
    }

    /// A board query over `[from, to)` with the configured team-size floor.
    pub fn board_query(&self, from: Micros, to: Micros, by: By, metric: Metric) -> BoardQuery {
        BoardQuery {
            from,
            to,
            by,
            metric,
            min_team_members: self.settings().outcomes.min_team_members,
        }
    }

    /// Usage by person, team, agent and day in `[from, to)`, and every credit earned before
    /// `to`, under the configured rules.
    pub(crate) async fn activity_and_credits(
        &self,
        from: Micros,
        to: Micros,
    ) -> Result<(Vec<Activity>, Vec<Credit>), AppError> {
        activity_and_credits(self.store(), &self.settings().outcomes.rules, from, to).await
    }
}
