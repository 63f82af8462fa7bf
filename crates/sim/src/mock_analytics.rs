//! A mock of the coding agents' analytics APIs — Anthropic's Claude Code usage report and GitHub
//! Copilot's users-1-day usage metrics report — serving the documented shapes from a list of
//! user-days, so the importers are tested offline:
//! - Claude Code: one day a request (`starting_at=YYYY-MM-DD`), `limit` records a page chained
//!   by `next_page`, the admin key and `anthropic-version` checked, and a partial day (only the
//!   first half of its records, as the API serves only data older than an hour);
//! - Copilot: the report endpoint answers download links (404 for a day without a report), and
//!   the files are NDJSON on the same mock; the token is checked on the API and must *not* be
//!   sent to the download links (they are signed URLs on another host in real life);
//! - faults on demand: 429 with `retry-after` (Anthropic), 403 with `x-ratelimit-remaining: 0`
//!   and `x-ratelimit-reset` (GitHub's primary limit), a malformed page or file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use goodhart_core::Micros;
use goodhart_core::time::{MICROS_PER_DAY, parse_date};
use serde_json::{Value, json};

use crate::mock_admin::error;

/// What one person did with a tool on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDay {
    /// Days since the first day the mock serves.
    pub day: u32,
    /// Claude Code: an email address (a user) or another name (an API key). Copilot: a login.
    pub user: String,
    pub sessions: u64,
    pub lines_added: u64,
    /// Claude Code's tool acceptances; Copilot's code acceptances.
    pub accepted: u64,
    /// Tokens (input; output is a tenth of it).
    pub tokens: u64,
    /// Claude Code's estimated cost, in cents.
    pub cost_cents: u64,
}

/// What the mock serves and how it misbehaves.
#[derive(Debug, Default)]
pub struct AnalyticsData {
    /// The first day served (a UTC midnight) and how many days there are.
    pub first_day: Micros,
    pub days: u32,
    pub claude_code: Vec<UserDay>,
    pub copilot: Vec<UserDay>,
    /// At most this many Claude Code records a page, whatever the `limit` asked (0: as asked).
    pub max_page: usize,
    /// This Claude Code day is served in part: the first half of its records.
    pub partial_day: Mutex<Option<u32>>,
    /// Copilot days without a report (404).
    pub missing_days: Vec<u32>,
    /// Copilot users a file (a day's report is split into files of this many lines; 0: one file).
    pub file_lines: usize,
    /// Answer this many Anthropic requests with 429 and `retry-after: 1`.
    pub rate_limited: AtomicUsize,
    /// Answer this many GitHub requests with 403, `x-ratelimit-remaining: 0` and a reset a
    /// second away.
    pub github_rate_limited: AtomicUsize,
    /// Serve a malformed page or file at this request number (0-based).
    pub malformed_request: Mutex<Option<usize>>,
    /// Requests served, refusals included.
    pub requests: AtomicUsize,
}

/// The Anthropic admin key the mock accepts.
pub const ADMIN_KEY: &str = "sk-ant-admin01-mock";
/// The GitHub token the mock accepts.
pub const GITHUB_TOKEN: &str = "ghp_mock";

/// The mock's routes, for both vendors.
pub fn router(data: Arc<AnalyticsData>) -> Router {
    Router::new()
        .route("/v1/organizations/usage_report/claude_code", get(claude_code))
        .route("/orgs/{org}/copilot/metrics/reports/users-1-day", get(copilot_links))
        .route("/downloads/{org}/{day}/{file}", get(copilot_file))
        .with_state(data)
}

type Params = Query<HashMap<String, String>>;

impl AnalyticsData {
    /// The day number of a `YYYY-MM-DD`, if the mock serves it.
    fn day_of(&self, text: Option<&String>) -> Option<u32> {
        let day = parse_date(text?).ok()?;
        let n = (day.0 - self.first_day.0).div_euclid(MICROS_PER_DAY);
        u32::try_from(n).ok().filter(|n| *n < self.days)
    }

    fn date(&self, day: u32) -> String {
        Micros(self.first_day.0 + i64::from(day) * MICROS_PER_DAY).utc_day()
    }

    /// Whether this request is the malformed one.
    fn malformed(&self, request: usize) -> bool {
        *self.malformed_request.lock().unwrap_or_else(|e| e.into_inner()) == Some(request)
    }
}

fn take(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn claude_code(State(data): State<Arc<AnalyticsData>>, headers: HeaderMap, Query(q): Params) -> Response {
    let request = data.requests.fetch_add(1, Ordering::SeqCst);
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(ADMIN_KEY) {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid admin key");
    }
    if headers.get("anthropic-version").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version is required",
        );
    }
    if take(&data.rate_limited) {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "slow down");
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return response;
    }
    let Some(day) = data.day_of(q.get("starting_at")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "starting_at: a served day",
        );
    };
    let mut records: Vec<&UserDay> = data.claude_code.iter().filter(|u| u.day == day).collect();
    if *data.partial_day.lock().unwrap_or_else(|e| e.into_inner()) == Some(day) {
        records.truncate(records.len() / 2);
    }
    let offset = match q.get("page") {
        None => 0,
        Some(page) => match page.strip_prefix("page_").and_then(|o| o.parse::<usize>().ok()) {
            Some(offset) => offset,
            None => return error(StatusCode::BAD_REQUEST, "invalid_request_error", "unknown page"),
        },
    };
    let mut limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    if data.max_page > 0 {
        limit = limit.min(data.max_page);
    }
    let end = records.len().min(offset + limit);
    let date = format!("{}T00:00:00Z", data.date(day));
    let mut page: Vec<Value> = records
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(|u| {
            let actor = if u.user.contains('@') {
                json!({"type": "user_actor", "email_address": u.user})
            } else {
                json!({"type": "api_actor", "api_key_name": u.user})
            };
            json!({
                "date": date, "actor": actor, "organization_id": "12345678-1234-5678-1234-567812345678",
                "customer_type": "api", "subscription_type": null, "terminal_type": "vscode", "is_remote": false,
                "core_metrics": {"num_sessions": u.sessions, "lines_of_code": {"added": u.lines_added, "removed": u.lines_added / 4},
                                 "commits_by_claude_code": u.sessions / 2, "pull_requests_by_claude_code": u.sessions / 4},
                "tool_actions": {"edit_tool": {"accepted": u.accepted, "rejected": 1}, "write_tool": {"accepted": 0, "rejected": 0}},
                "model_breakdown": [{"model": "claude-sonnet-4-5-20250929",
                    "tokens": {"input": u.tokens, "output": u.tokens / 10, "cache_read": 0, "cache_creation": 0},
                    "estimated_cost": {"currency": "USD", "amount": u.cost_cents}}]
            })
        })
        .collect();
    if data.malformed(request)
        && let Some(last) = page.last_mut()
    {
        last["core_metrics"]["num_sessions"] = json!("many");
    }
    let has_more = end < records.len();
    axum::Json(json!({"data": page, "has_more": has_more, "next_page": has_more.then(|| format!("page_{end}"))}))
        .into_response()
}

/// Checks the GitHub token and answers the rate limit when asked to.
fn github_refusal(data: &AnalyticsData, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token != Some(GITHUB_TOKEN) {
        return Some(github_error(StatusCode::UNAUTHORIZED, "Bad credentials"));
    }
    if headers.get("x-github-api-version").is_none() {
        return Some(github_error(
            StatusCode::BAD_REQUEST,
            "X-GitHub-Api-Version is required",
        ));
    }
    if take(&data.github_rate_limited) {
        let mut response = github_error(StatusCode::FORBIDDEN, "API rate limit exceeded");
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() + 1);
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
        return Some(response);
    }
    None
}

async fn copilot_links(
    State(data): State<Arc<AnalyticsData>>,
    Path(org): Path<String>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let request = data.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(refused) = github_refusal(&data, &headers) {
        return refused;
    }
    let Some(day) = data.day_of(q.get("day")).filter(|d| !data.missing_days.contains(d)) else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let users = data.copilot.iter().filter(|u| u.day == day).count();
    let files = match data.file_lines {
        0 => 1,
        n => users.div_ceil(n).max(1),
    };
    let date = data.date(day);
    let links: Vec<String> = (0..files)
        .map(|f| format!("http://{host}/downloads/{org}/{date}/users-{f}.ndjson?sig=mock"))
        .collect();
    let mut body = json!({"download_links": links, "report_day": date});
    if data.malformed(request) {
        body["report_day"] = json!(20260227);
    }
    axum::Json(body).into_response()
}

async fn copilot_file(
    State(data): State<Arc<AnalyticsData>>,
    Path((_org, date, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let request = data.requests.fetch_add(1, Ordering::SeqCst);
    if headers.contains_key("authorization") {
        return github_error(StatusCode::BAD_REQUEST, "a signed link must not be sent the token");
    }
    let (Some(day), Some("mock")) = (data.day_of(Some(&date)), q.get("sig").map(String::as_str)) else {
        return github_error(StatusCode::FORBIDDEN, "bad signature");
    };
    let Some(index) = file
        .strip_prefix("users-")
        .and_then(|f| f.strip_suffix(".ndjson"))
        .and_then(|f| f.parse::<usize>().ok())
    else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let users: Vec<&UserDay> = data.copilot.iter().filter(|u| u.day == day).collect();
    let chunk = if data.file_lines == 0 {
        users.len().max(1)
    } else {
        data.file_lines
    };
    let mut body = String::new();
    for (i, u) in users.iter().skip(index * chunk).take(chunk).enumerate() {
        let mut line = json!({
            "day": date, "enterprise_id": "1", "user_id": 100 + i, "user_login": u.user,
            "user_initiated_interaction_count": u.sessions * 3, "code_generation_activity_count": u.sessions * 5,
            "code_acceptance_activity_count": u.accepted, "loc_suggested_to_add_sum": u.lines_added * 2,
            "loc_suggested_to_delete_sum": 0, "loc_added_sum": u.lines_added, "loc_deleted_sum": 0,
            "totals_by_feature": [], "totals_by_ide": []
        });
        if u.tokens > 0 {
            line["totals_by_cli"] = json!({"session_count": u.sessions, "request_count": u.sessions * 2, "prompt_count": u.sessions,
                "token_usage": {"prompt_tokens_sum": u.tokens, "output_tokens_sum": u.tokens / 10, "avg_tokens_per_request": 1.5}});
        }
        if i == 1 && data.malformed(request) {
            line["user_login"] = json!(7);
        }
        body.push_str(&line.to_string());
        body.push('\n');
    }
    ([("content-type", "application/x-ndjson")], body).into_response()
}

fn github_error(status: StatusCode, message: &str) -> Response {
    let body =
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_str()});
    (status, axum::Json(body)).into_response()
}

/// Binds a loopback port and serves the mock in the background for as long as the runtime
/// runs (tests).
pub async fn spawn(data: Arc<AnalyticsData>) -> std::io::Result<std::net::SocketAddr> {
    crate::spawn_router(router(data)).await
}
