//! Outcomes in and value out: `POST /hooks/github` (signed GitHub deliveries),
//! `POST /api/v1/outcomes` (self-reported outcomes), `GET/POST /api/v1/github/logins`
//! (login ↔ user) and `GET /api/v1/leaderboard`; the activity and credits the value reports
//! are computed from.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use goodhart_core::outcomes::{Credit, Fact, Milli, OutcomeInput, ValueRules, credits};
use goodhart_core::report::Dimension;
use goodhart_core::value::{Activity, BoardQuery, By, Metric, Row, board};
use goodhart_core::{Micros, github};
use goodhart_store::SummaryQuery;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::auth::Access;
use crate::error::ApiError;
use crate::ingest::{check_timestamp, deserialize_item, is_ndjson, parse_items, read_body};
use crate::reports::usd_number;
use crate::scope::TeamView;
use crate::state::AppState;

/// How outcomes are received and valued (the `[outcomes]` configuration section).
#[derive(Debug, Clone)]
pub struct OutcomeSettings {
    /// The GitHub webhook secret; without one, every delivery is refused.
    pub github_secret: Option<String>,
    /// Environment names whose successful deployments count as production.
    pub production_environments: Vec<String>,
    pub rules: ValueRules,
    pub min_team_members: usize,
}

impl Default for OutcomeSettings {
    fn default() -> OutcomeSettings {
        OutcomeSettings {
            github_secret: None,
            production_environments: vec!["production".into(), "prod".into()],
            rules: ValueRules::default(),
            min_team_members: 5,
        }
    }
}

/// The `X-Hub-Signature-256` value GitHub sends for `body` signed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` in constant time.
pub fn verify_signature(secret: &str, body: &[u8], header: Option<&str>) -> Result<(), ApiError> {
    let header = header.ok_or_else(|| ApiError::BadSignature("X-Hub-Signature-256 is missing".into()))?;
    let hex = header
        .strip_prefix("sha256=")
        .ok_or_else(|| ApiError::BadSignature("X-Hub-Signature-256 must start with `sha256=`".into()))?;
    let signature =
        hex::decode(hex).map_err(|_| ApiError::BadSignature("X-Hub-Signature-256 is not hexadecimal".into()))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, body, &signature)
        .map_err(|_| ApiError::BadSignature("X-Hub-Signature-256 does not match the body and secret".into()))
}

#[derive(Debug, Serialize)]
pub struct DeliveryResponse {
    pub delivery: String,
    pub event: String,
    /// Facts stored from this delivery.
    pub stored: u64,
    /// Facts already known (from another delivery of the same thing).
    pub duplicates: u64,
    /// This delivery id was processed before: nothing was done.
    pub replay: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

pub async fn post_github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DeliveryResponse>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let secret = state.outcomes.github_secret.as_deref().ok_or_else(|| {
        ApiError::BadSignature(
            "no GitHub webhook secret is configured (GOODHART_GITHUB_WEBHOOK_SECRET or outcomes.github_webhook_secret)"
                .into(),
        )
    })?;
    let raw = read_body(body, &headers, state.max_body_bytes).await?;
    verify_signature(secret, &raw, header("x-hub-signature-256"))?;
    let event = header("x-github-event")
        .ok_or_else(|| ApiError::BadRequest("X-GitHub-Event is missing".into()))?
        .to_owned();
    let delivery = header("x-github-delivery")
        .filter(|d| !d.is_empty() && d.len() <= 100)
        .ok_or_else(|| ApiError::BadRequest("X-GitHub-Delivery is missing or longer than 100 characters".into()))?
        .to_owned();
    let payload: Value =
        serde_json::from_slice(&raw).map_err(|e| ApiError::BadRequest(format!("the payload is not JSON: {e}")))?;
    let reading = github::read(&event, &payload, &state.outcomes.production_environments)
        .map_err(|message| ApiError::BadRequest(format!("{event} payload: {message}")))?;
    let (mut facts, ignored) = match reading {
        github::Reading::Facts(facts) => (facts, None),
        github::Reading::Ignored(why) => (Vec::new(), Some(why)),
    };
    for (_, fact) in &mut facts {
        let credited = match fact {
            Fact::PullRequest(pr) => &mut pr.credited,
            Fact::Deployment(d) => &mut d.credited,
            _ => continue,
        };
        if let Some(user) = state.store.github_user(&credited.user).await? {
            credited.user = user;
        }
    }
    let stored = state.store.insert_delivery(&delivery, &event, facts).await?;
    Ok(Json(DeliveryResponse {
        replay: stored.is_none(),
        stored: stored.map_or(0, |s| s.inserted),
        duplicates: stored.map_or(0, |s| s.duplicates),
        delivery,
        event,
        ignored,
    }))
}

fn outcome_fact(line: usize, input: OutcomeInput, now: Micros) -> Result<(String, Fact), ApiError> {
    let (id, fact) = input.validate().map_err(|e| ApiError::InvalidEvent {
        line,
        field: Some(e.field.to_owned()),
        message: format!("line {line}: field `{}`: {}", e.field, e.reason),
    })?;
    check_timestamp(line, fact.at(), now)?;
    Ok((id, fact))
}

#[derive(Debug, Serialize)]
pub struct OutcomesResponse {
    pub accepted: u64,
    pub duplicates: u64,
}

pub async fn post_outcomes(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<OutcomesResponse>, ApiError> {
    let raw = read_body(body, &headers, state.max_body_bytes).await?;
    let text = std::str::from_utf8(&raw).map_err(|e| ApiError::BadRequest(format!("body is not UTF-8: {e}")))?;
    let now = goodhart_store::now_micros();
    let facts = parse_items(text, is_ndjson(&headers, text), "outcomes", |line, item| {
        outcome_fact(line, deserialize_item(line, item)?, now)
    })?;
    if facts.is_empty() {
        return Err(ApiError::BadRequest("the body holds no outcomes".into()));
    }
    let stored = state.store.insert_facts(facts).await?;
    Ok(Json(OutcomesResponse {
        accepted: stored.inserted,
        duplicates: stored.duplicates,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    login: String,
    user: String,
}

pub async fn post_login(State(state): State<AppState>, Json(input): Json<LoginInput>) -> Result<Json<Value>, ApiError> {
    for (field, value) in [("login", &input.login), ("user", &input.user)] {
        if value.trim().is_empty() || value.len() > 200 {
            return Err(ApiError::InvalidField {
                field,
                message: format!("`{field}` must be 1 to 200 characters"),
            });
        }
    }
    state.store.map_github_login(&input.login, &input.user).await?;
    Ok(Json(json!({"login": input.login, "user": input.user})))
}

pub async fn list_logins(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let logins: Vec<Value> = state
        .store
        .github_logins()
        .await?
        .into_iter()
        .map(|(login, user)| json!({"login": login, "user": user}))
        .collect();
    Ok(Json(json!({ "logins": logins })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: Option<String>,
    pub metric: Option<String>,
}

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
    pub flags: Vec<&'static str>,
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

/// Reads leaderboard parameters; `now` anchors spans such as `7d`.
pub fn board_query(params: &BoardParams, now: Micros, min_team_members: usize) -> Result<BoardQuery, ApiError> {
    let (from, to) = crate::reports::window(params.from.as_deref(), params.to.as_deref(), now)?;
    let by = By::parse(params.by.as_deref().unwrap_or("user")).ok_or(ApiError::InvalidQuery {
        parameter: "by",
        message: "must be user, team or agent".into(),
    })?;
    let metric = Metric::parse(params.metric.as_deref().unwrap_or("value")).ok_or(ApiError::InvalidQuery {
        parameter: "metric",
        message: "must be value, efficiency or volume".into(),
    })?;
    Ok(BoardQuery {
        from,
        to,
        by,
        metric,
        min_team_members,
    })
}

/// Usage by person, team, agent and day in `[from, to)`, and every credit earned before `to`:
/// what the leaderboard and the ROI report are computed from.
pub async fn activity_and_credits(
    store: &dyn goodhart_store::Store,
    rules: &ValueRules,
    from: Micros,
    to: Micros,
) -> Result<(Vec<Activity>, Vec<Credit>), ApiError> {
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
            let day = goodhart_core::time::parse_rfc3339(&format!("{day}T00:00:00Z")).ok()?;
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
    view: Option<&TeamView>,
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

/// Builds the board for `query` from the store (the CLI calls this too); with a team view, the
/// board of that team's people alone.
pub async fn leaderboard(
    store: &dyn goodhart_store::Store,
    rules: &ValueRules,
    query: &BoardQuery,
    view: Option<&TeamView>,
) -> Result<BoardDocument, ApiError> {
    let (mut activity, mut credits) = activity_and_credits(store, rules, query.from, query.to).await?;
    let mut waste = crate::waste::counted_waste(store, query.from, query.to).await?;
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

pub async fn get_leaderboard(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(params): Query<BoardParams>,
) -> Result<Json<BoardDocument>, ApiError> {
    let query = board_query(&params, goodhart_store::now_micros(), state.outcomes.min_team_members)?;
    let view = crate::scope::view_for(state.store.as_ref(), &access).await?;
    let rules = &state.outcomes.rules;
    Ok(Json(
        leaderboard(state.store.as_ref(), rules, &query, view.as_ref()).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_against_the_raw_body() {
        let body = br#"{"zen":"Design for failure."}"#;
        let good = sign("s3cret", body);
        assert!(verify_signature("s3cret", body, Some(&good)).is_ok());
        assert!(verify_signature("other", body, Some(&good)).is_err());
        assert!(
            verify_signature("s3cret", b"{}", Some(&good)).is_err(),
            "a changed body fails"
        );
        assert!(verify_signature("s3cret", body, None).is_err());
        assert!(verify_signature("s3cret", body, Some("sha1=00")).is_err());
        assert!(verify_signature("s3cret", body, Some("sha256=zz")).is_err());
    }
}
