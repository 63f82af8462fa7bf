//! Importing the providers' organisation reports — what Anthropic and OpenAI say they served
//! and billed — into the store, to reconcile with what Goodhart metered.
//!
//! An import walks each report (usage, then cost) in daily buckets from where the last one
//! stopped, page by page along the provider's `next_page` cursor. Each page is stored in one
//! transaction as soon as it is read, replacing the buckets it covers, so an import cut short
//! loses nothing and a re-run adds nothing. The last [`REVISIT`] before where it stopped is read
//! again: providers revise their recent buckets. A 429 is waited out for its `retry-after` (at
//! most [`MAX_WAIT`], [`ATTEMPTS`] times a page); any other error, or a page that does not
//! read, stops the import with the reason, the field named. The HTTP part (`get`) serves the
//! coding agents' analytics imports too (`agent_import`).

use std::time::Duration;

use axum::http;
use bytes::Bytes;
use goodhart_core::Micros;
use goodhart_core::provider_reports::{
    ReportError, ReportKind, ReportPage, anthropic_cost_page, anthropic_usage_page, openai_cost_page, openai_usage_page,
};
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_gateway::upstream::UpstreamClient;
use goodhart_store::{Store, StoreError};
use http_body_util::{BodyExt, Full, Limited};

/// Buckets read again before where the last import stopped (providers revise recent days).
pub const REVISIT: i64 = 2 * MICROS_PER_DAY;
/// How far back a first import reaches when no start is given.
pub const FIRST_IMPORT: i64 = 30 * MICROS_PER_DAY;
/// Tries per page when the provider answers 429.
pub const ATTEMPTS: usize = 5;
/// The longest `retry-after` waited out.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Pages read per report in one import, at most (a year of daily buckets is 12 pages).
pub(crate) const MAX_PAGES: usize = 400;
/// The largest page read.
pub(crate) const MAX_PAGE_BYTES: usize = 16 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A provider's organisation reports and the admin key that reads them.
#[derive(Clone, PartialEq, Eq)]
pub struct ReportSource {
    pub api: ReportApi,
    /// The name the provider's usage is recorded under (e.g. `anthropic`).
    pub provider: String,
    /// Scheme and host, e.g. `https://api.anthropic.com`.
    pub base_url: String,
    /// Never logged or returned.
    pub admin_key: String,
}

impl std::fmt::Debug for ReportSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportSource")
            .field("api", &self.api)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Whose reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportApi {
    /// Anthropic's Admin API: `/v1/organizations/usage_report/messages` and `/cost_report`.
    AnthropicAdmin,
    /// OpenAI's organisation API: `/v1/organization/usage/completions` and `/costs`.
    OpenAiAdmin,
}

impl ReportApi {
    pub const ALL: [ReportApi; 2] = [ReportApi::AnthropicAdmin, ReportApi::OpenAiAdmin];

    /// The environment variable holding the admin key (never a flag or a file).
    pub fn key_var(self) -> &'static str {
        match self {
            ReportApi::AnthropicAdmin => "ANTHROPIC_ADMIN_KEY",
            ReportApi::OpenAiAdmin => "OPENAI_ADMIN_KEY",
        }
    }

    /// The name the provider's usage is recorded under by default.
    pub fn provider(self) -> &'static str {
        match self {
            ReportApi::AnthropicAdmin => "anthropic",
            ReportApi::OpenAiAdmin => "openai",
        }
    }

    /// The provider's own API.
    pub fn base_url(self) -> &'static str {
        match self {
            ReportApi::AnthropicAdmin => "https://api.anthropic.com",
            ReportApi::OpenAiAdmin => "https://api.openai.com",
        }
    }
}

/// What an import did, per report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub usage: ReportImport,
    pub cost: ReportImport,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReportImport {
    /// The first day read (RFC 3339), if any was.
    pub from: Option<String>,
    pub pages: u64,
    pub buckets: u64,
    pub lines: u64,
    /// 429s waited out.
    pub rate_limited: u64,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The provider refused (its status and message).
    #[error("{provider} answered {status}: {message}")]
    Refused {
        provider: String,
        status: u16,
        message: String,
    },
    #[error("{provider} kept answering 429 after {ATTEMPTS} tries")]
    RateLimited { provider: String },
    /// A page that does not read; nothing of it was stored.
    #[error("{provider}'s {report} report, page {page}: {error}")]
    Page {
        provider: String,
        report: ReportKind,
        page: u64,
        error: ReportError,
    },
    /// A day of a coding agent's activity that does not read; nothing of that day was stored.
    #[error("{tool} activity of {day}, {part}: {error}")]
    Activity {
        tool: String,
        day: String,
        /// `page 2`, `the report links`, `file 1`.
        part: String,
        error: ReportError,
    },
    #[error("{provider}'s {report} report has more than {MAX_PAGES} pages in one import")]
    TooManyPages { provider: String, report: ReportKind },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Imports `source`'s usage and cost reports up to `to`, from `from` or else from where the
/// last import stopped (less [`REVISIT`]), or else from [`FIRST_IMPORT`] before `now`.
pub async fn import_reports(
    store: &dyn Store,
    client: &UpstreamClient,
    source: &ReportSource,
    from: Option<Micros>,
    to: Micros,
    now: Micros,
) -> Result<Imported, ImportError> {
    let mut imported = Imported::default();
    for (report, done) in [
        (ReportKind::Usage, &mut imported.usage),
        (ReportKind::Cost, &mut imported.cost),
    ] {
        let start = match from {
            Some(from) => from,
            None => match store.report_imported_until(&source.provider, report).await? {
                Some(until) => Micros(until.0 - REVISIT),
                None => Micros(now.0 - FIRST_IMPORT),
            },
        }
        .floor_to(MICROS_PER_DAY);
        if start >= to {
            continue;
        }
        done.from = Some(start.rfc3339());
        let mut cursor: Option<String> = None;
        loop {
            if done.pages as usize >= MAX_PAGES {
                return Err(ImportError::TooManyPages {
                    provider: source.provider.clone(),
                    report,
                });
            }
            let url = report_url(source, report, start, to, cursor.as_deref());
            let (body, waited) = fetch(client, source, &url).await?;
            done.rate_limited += waited;
            let page = read_page(source.api, report, &body).map_err(|error| ImportError::Page {
                provider: source.provider.clone(),
                report,
                page: done.pages + 1,
                error,
            })?;
            let next = page.next_page().map(str::to_owned);
            done.pages += 1;
            done.buckets += page.buckets().len() as u64;
            done.lines += store.record_report_page(&source.provider, page, now).await?;
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(imported)
}

fn read_page(api: ReportApi, report: ReportKind, body: &[u8]) -> Result<ReportPage, ReportError> {
    Ok(match (api, report) {
        (ReportApi::AnthropicAdmin, ReportKind::Usage) => ReportPage::Usage(anthropic_usage_page(body)?),
        (ReportApi::AnthropicAdmin, ReportKind::Cost) => ReportPage::Cost(anthropic_cost_page(body)?),
        (ReportApi::OpenAiAdmin, ReportKind::Usage) => ReportPage::Usage(openai_usage_page(body)?),
        (ReportApi::OpenAiAdmin, ReportKind::Cost) => ReportPage::Cost(openai_cost_page(body)?),
    })
}

/// The request for one page: daily buckets from `start` to `to`, grouped as finely as the
/// report allows for reconciliation (model, key, workspace or project).
fn report_url(source: &ReportSource, report: ReportKind, start: Micros, to: Micros, page: Option<&str>) -> String {
    let base = source.base_url.trim_end_matches('/');
    // `[]` percent-encoded, as Anthropic's array parameters are written `group_by[]`.
    let mut url = match (source.api, report) {
        (ReportApi::AnthropicAdmin, kind) => {
            let (path, groups): (&str, &[&str]) = match kind {
                ReportKind::Usage => (
                    "v1/organizations/usage_report/messages",
                    &["model", "api_key_id", "workspace_id", "service_tier"],
                ),
                ReportKind::Cost => ("v1/organizations/cost_report", &["workspace_id", "description"]),
            };
            let groups: String = groups.iter().map(|g| format!("&group_by%5B%5D={g}")).collect();
            format!(
                "{base}/{path}?starting_at={}&ending_at={}&bucket_width=1d&limit=31{groups}",
                encode(&start.rfc3339()),
                encode(&to.rfc3339())
            )
        }
        (ReportApi::OpenAiAdmin, kind) => {
            let (path, groups, limit): (&str, &[&str], u32) = match kind {
                ReportKind::Usage => (
                    "v1/organization/usage/completions",
                    &["model", "project_id", "api_key_id"],
                    31,
                ),
                ReportKind::Cost => ("v1/organization/costs", &["project_id", "line_item"], 180),
            };
            let groups: String = groups.iter().map(|g| format!("&group_by={g}")).collect();
            format!(
                "{base}/{path}?start_time={}&end_time={}&bucket_width=1d&limit={limit}{groups}",
                start.0.div_euclid(1_000_000),
                to.0.div_euclid(1_000_000)
            )
        }
    };
    if let Some(page) = page {
        url.push_str("&page=");
        url.push_str(&encode(page));
    }
    url
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How Anthropic's Admin API is asked, with admin key `key`.
pub(crate) fn anthropic_admin_headers(key: &str) -> [(&'static str, String); 2] {
    [
        ("x-api-key", key.to_owned()),
        ("anthropic-version", "2023-06-01".to_owned()),
    ]
}

/// GETs one page of `source`'s reports, waiting out rate limits.
async fn fetch(client: &UpstreamClient, source: &ReportSource, url: &str) -> Result<(Bytes, u64), ImportError> {
    let headers = match source.api {
        ReportApi::AnthropicAdmin => anthropic_admin_headers(&source.admin_key).to_vec(),
        ReportApi::OpenAiAdmin => vec![("authorization", format!("Bearer {}", source.admin_key))],
    };
    get(client, &source.provider, url, &headers, MAX_PAGE_BYTES).await
}

/// GETs `url` with `headers` (credentials: never logged or returned), reading at most
/// `max_bytes`; returns the body and how many rate-limited answers were waited out. A rate
/// limit is a 429, or a 403 that says so (GitHub's: `retry-after`, or
/// `x-ratelimit-remaining: 0`); it is waited out for its `retry-after`, else until its
/// `x-ratelimit-reset` (epoch seconds), else with a doubling backoff — at most [`MAX_WAIT`],
/// [`ATTEMPTS`] times. Any other failure is [`ImportError::Refused`] with `provider`'s message.
pub(crate) async fn get(
    client: &UpstreamClient,
    provider: &str,
    url: &str,
    headers: &[(&'static str, String)],
    max_bytes: usize,
) -> Result<(Bytes, u64), ImportError> {
    let unreachable = |reason: String| ImportError::Unreachable {
        url: url.to_owned(),
        reason,
    };
    for attempt in 0..ATTEMPTS {
        let mut request = http::Request::get(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(e.to_string()))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, client.request(request))
            .await
            .map_err(|_| unreachable(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let wait = rate_limit_wait(status.as_u16(), response.headers(), attempt);
        let body = Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| unreachable(format!("reading the page: {e}")))?
            .to_bytes();
        if let Some(wait) = wait {
            tokio::time::sleep(wait.min(MAX_WAIT)).await;
            continue;
        }
        if !status.is_success() {
            return Err(ImportError::Refused {
                provider: provider.to_owned(),
                status: status.as_u16(),
                message: provider_message(&body),
            });
        }
        return Ok((body, attempt as u64));
    }
    Err(ImportError::RateLimited {
        provider: provider.to_owned(),
    })
}

/// How long to wait before asking again, if the answer is a rate limit.
fn rate_limit_wait(status: u16, headers: &http::HeaderMap, attempt: usize) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let retry_after = header("retry-after");
    let exhausted = header("x-ratelimit-remaining") == Some(0);
    if !(status == 429 || (status == 403 && (retry_after.is_some() || exhausted))) {
        return None;
    }
    let until_reset = header("x-ratelimit-reset").filter(|_| exhausted).map(|reset| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        reset.saturating_sub(now).max(1)
    });
    Some(Duration::from_secs(retry_after.or(until_reset).unwrap_or(1 << attempt)))
}

/// The message of a provider's error body (Anthropic and OpenAI nest it under
/// `error.message`, GitHub has it at `message`).
fn provider_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or_else(|| v["message"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}
