//! A mock of the providers' organisation reports — Anthropic's Admin API usage and cost
//! reports, OpenAI's organisation usage and costs — serving the documented shapes from a list
//! of daily lines, so the importers are tested offline: daily buckets (empty days included),
//! pages of `limit` buckets chained by `next_page`, the admin key checked, and faults on demand
//! (a 429 with `retry-after` before a page, a malformed page).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use goodhart_core::Micros;
use goodhart_core::reconcile::Metered;
use goodhart_core::time::MICROS_PER_DAY;
use serde_json::{Value, json};

/// One day's usage and cost of one model, as a provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyLine {
    /// Days since the first day the mock serves.
    pub day: u32,
    pub model: String,
    pub api_key_id: String,
    pub workspace: Option<String>,
    /// Uncached input.
    pub input: u64,
    pub cache_read: u64,
    pub output: u64,
    /// Billed, in nano-dollars.
    pub cost_nanos: i64,
}

/// The lines a faithful provider reports of what Goodhart metered of `provider` from
/// `first_day` on: one per day and model, all made with the key `api_key_id`, billed what
/// Goodhart metered.
pub fn faithful_lines(metered: &[Metered], provider: &str, first_day: Micros, api_key_id: &str) -> Vec<DailyLine> {
    let mut lines: std::collections::BTreeMap<(u32, &str), DailyLine> = std::collections::BTreeMap::new();
    for m in metered.iter().filter(|m| m.provider == provider && m.day >= first_day) {
        let day = u32::try_from((m.day.0 - first_day.0) / MICROS_PER_DAY).unwrap_or(u32::MAX);
        let line = lines.entry((day, &m.model)).or_insert_with(|| DailyLine {
            day,
            model: m.model.clone(),
            api_key_id: api_key_id.to_owned(),
            workspace: None,
            input: 0,
            cache_read: 0,
            output: 0,
            cost_nanos: 0,
        });
        line.input += m.tokens.input;
        line.cache_read += m.tokens.cache_read;
        line.output += m.tokens.output + m.tokens.reasoning;
        line.cost_nanos += m.cost.0;
    }
    lines.into_values().collect()
}

/// What the mock serves and how it misbehaves.
#[derive(Debug, Default)]
pub struct AdminData {
    /// The first day served (a UTC midnight) and how many days there are.
    pub first_day: Micros,
    pub days: u32,
    pub lines: Vec<DailyLine>,
    /// At most this many buckets a page, whatever the `limit` asked (0: as asked).
    pub max_page: u32,
    /// Answer this many requests with 429 and `retry-after: 1` before serving again.
    pub rate_limited: AtomicUsize,
    /// Serve a malformed page (a token count as a string) at this request number (0-based).
    pub malformed_request: Mutex<Option<usize>>,
    /// Requests served, 429s included.
    pub requests: AtomicUsize,
}

/// The admin key the mock accepts.
pub const ADMIN_KEY: &str = "sk-admin-mock";

/// The mock's routes, for both providers.
pub fn router(data: Arc<AdminData>) -> Router {
    Router::new()
        .route("/v1/organizations/usage_report/messages", get(anthropic_usage))
        .route("/v1/organizations/cost_report", get(anthropic_cost))
        .route("/v1/organization/usage/completions", get(openai_usage))
        .route("/v1/organization/costs", get(openai_cost))
        .with_state(data)
}

type Params = Query<HashMap<String, String>>;

async fn anthropic_usage(State(data): State<Arc<AdminData>>, headers: HeaderMap, Query(q): Params) -> Response {
    serve(&data, &headers, &q, Provider::Anthropic, |line| {
        json!({
            "model": line.model, "api_key_id": line.api_key_id, "workspace_id": line.workspace,
            "service_tier": "standard", "context_window": null, "inference_geo": null,
            "uncached_input_tokens": line.input, "cache_read_input_tokens": line.cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": line.output, "server_tool_use": {"web_search_requests": 0}
        })
    })
}

async fn anthropic_cost(State(data): State<Arc<AdminData>>, headers: HeaderMap, Query(q): Params) -> Response {
    serve(&data, &headers, &q, Provider::Anthropic, |line| {
        // Cents, as a decimal string: nano-dollars / 10⁷.
        let cents = format!("{}.{:07}", line.cost_nanos / 10_000_000, line.cost_nanos % 10_000_000);
        json!({
            "amount": cents, "currency": "USD", "cost_type": "tokens", "workspace_id": line.workspace,
            "description": format!("{} Usage", line.model), "model": line.model, "token_type": null,
            "service_tier": "standard", "context_window": null, "inference_geo": null
        })
    })
}

async fn openai_usage(State(data): State<Arc<AdminData>>, headers: HeaderMap, Query(q): Params) -> Response {
    serve(&data, &headers, &q, Provider::OpenAi, |line| {
        json!({
            "object": "organization.usage.completions.result",
            "input_tokens": line.input + line.cache_read, "input_cached_tokens": line.cache_read,
            "output_tokens": line.output, "input_audio_tokens": 0, "output_audio_tokens": 0,
            "num_model_requests": 1 + line.output / 500, "project_id": line.workspace, "user_id": null,
            "api_key_id": line.api_key_id, "model": line.model, "batch": null, "service_tier": null
        })
    })
}

async fn openai_cost(State(data): State<Arc<AdminData>>, headers: HeaderMap, Query(q): Params) -> Response {
    serve(&data, &headers, &q, Provider::OpenAi, |line| {
        let dollars = format!(
            "{}.{:09}",
            line.cost_nanos / 1_000_000_000,
            line.cost_nanos % 1_000_000_000
        );
        json!({
            "object": "organization.costs.result",
            "amount": {"value": dollars.parse::<f64>().unwrap_or(0.0), "currency": "usd"},
            "line_item": format!("{}, tokens", line.model), "project_id": line.workspace, "api_key_id": line.api_key_id
        })
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Provider {
    Anthropic,
    OpenAi,
}

/// One page of daily buckets from the query's start, `limit` at a time.
fn serve(
    data: &AdminData,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    provider: Provider,
    result: impl Fn(&DailyLine) -> Value,
) -> Response {
    let request = data.requests.fetch_add(1, Ordering::SeqCst);
    let key = match provider {
        Provider::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        Provider::OpenAi => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
    };
    if key != Some(ADMIN_KEY) {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid admin key");
    }
    if data
        .rate_limited
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "slow down");
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return response;
    }
    let day_of = |at: i64| ((at - data.first_day.0).div_euclid(MICROS_PER_DAY)).clamp(0, i64::from(data.days)) as u32;
    let instant = |name: &str| -> Option<i64> {
        let text = query.get(name)?;
        match provider {
            Provider::Anthropic => goodhart_core::time::parse_rfc3339(text).ok().map(|m| m.0),
            Provider::OpenAi => text.parse::<i64>().ok().map(|s| s * 1_000_000),
        }
    };
    let (start_name, end_name) = match provider {
        Provider::Anthropic => ("starting_at", "ending_at"),
        Provider::OpenAi => ("start_time", "end_time"),
    };
    let Some(start) = instant(start_name) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "the start time is required",
        );
    };
    let end = instant(end_name).map_or(data.days, day_of);
    let first = match query.get("page") {
        Some(page) => match page.strip_prefix("page_").and_then(|d| d.parse::<u32>().ok()) {
            Some(day) => day,
            None => return error(StatusCode::BAD_REQUEST, "invalid_request_error", "unknown page"),
        },
        None => day_of(start),
    };
    let mut limit = query
        .get("limit")
        .and_then(|l| l.parse::<u32>().ok())
        .unwrap_or(7)
        .clamp(1, 180);
    if data.max_page > 0 {
        limit = limit.min(data.max_page);
    }
    let last = end.min(first + limit);
    let micros = |day: u32| data.first_day.0 + i64::from(day) * MICROS_PER_DAY;
    let bound = |day: u32| match provider {
        Provider::Anthropic => json!(Micros(micros(day)).rfc3339()),
        Provider::OpenAi => json!(micros(day) / 1_000_000),
    };
    let mut buckets: Vec<Value> = (first..last)
        .map(|day| {
            let results: Vec<Value> = data.lines.iter().filter(|l| l.day == day).map(&result).collect();
            match provider {
                Provider::Anthropic => json!({"starting_at": bound(day), "ending_at": bound(day + 1), "results": results}),
                Provider::OpenAi => {
                    json!({"object": "bucket", "start_time": bound(day), "end_time": bound(day + 1), "results": results})
                }
            }
        })
        .collect();
    let malformed = *data.malformed_request.lock().unwrap_or_else(|e| e.into_inner());
    if malformed == Some(request)
        && let Some(results) = buckets.last_mut().and_then(|b| b["results"].as_array_mut())
    {
        results.push(json!({"uncached_input_tokens": "many", "input_tokens": "many"}));
    }
    let has_more = last < end;
    let mut page =
        json!({"data": buckets, "has_more": has_more, "next_page": has_more.then(|| format!("page_{last}"))});
    if provider == Provider::OpenAi {
        page["object"] = json!("page");
    }
    axum::Json(page).into_response()
}

/// An answer in Anthropic's error shape.
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// Binds a loopback port and serves the mock in the background for as long as the runtime
/// runs (tests).
pub async fn spawn(data: Arc<AdminData>) -> std::io::Result<std::net::SocketAddr> {
    crate::spawn_router(router(data)).await
}
