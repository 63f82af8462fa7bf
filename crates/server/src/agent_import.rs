//! Importing coding agents' analytics — Claude Code's usage report (Anthropic's Admin API) and
//! GitHub Copilot's users-1-day usage metrics reports — as activity signals per person and day.
//! They are shown on people's pages beside verified outcomes, labelled as activity, and never
//! feed the value board, ROI or outcome credit.
//!
//! Both APIs serve one day a request, so an import walks the days from where the last one
//! stopped (less [`REVISIT`]: vendors revise recent days, and today is partial) up to `to`.
//! A day is read whole — every page of it (Claude Code), or its link response and every file
//! it links to (Copilot) — and then stored in one transaction, replacing that day: an import
//! cut short loses no finished day, a re-run adds nothing, and a page or line that does not
//! read stores nothing of its day and names the field. Rate limits are waited out as
//! `provider_import::get` does; a Copilot day without a report (404: not generated yet, or
//! none kept) is skipped and listed, and imported again next time.

use std::collections::{BTreeMap, BTreeSet};

use goodhart_core::Micros;
use goodhart_core::agent_analytics::{
    ActivityLine, Actor, ActorKind, Person, Tool, candidate_names, claude_code_page, copilot_report_links,
    copilot_users_file, person,
};
use goodhart_core::provider_reports::ReportError;
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_gateway::upstream::UpstreamClient;
use goodhart_store::{Store, StoreError};

use crate::provider_import::{
    FIRST_IMPORT, ImportError, MAX_PAGE_BYTES, MAX_PAGES, REVISIT, anthropic_admin_headers, encode, get,
};

/// Days read in one import, at most (a year and a bit).
const MAX_DAYS: i64 = 400;
/// The largest Copilot report file read (one line a user).
const MAX_FILE_BYTES: usize = 256 << 20;
/// GitHub's REST API.
pub const GITHUB_API: &str = "https://api.github.com";
/// The GitHub REST API version asked for.
const GITHUB_API_VERSION: &str = "2026-03-10";

/// An analytics API and the credential that reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct AnalyticsSource {
    /// Copilot: the GitHub organisation. Claude Code: a name for the Anthropic organisation
    /// (empty for the only one).
    pub org: String,
    /// Scheme and host, e.g. `https://api.anthropic.com`, `https://api.github.com`.
    pub base_url: String,
    /// An Anthropic admin key, or a GitHub token. Never logged or returned.
    pub key: String,
}

impl std::fmt::Debug for AnalyticsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsSource")
            .field("org", &self.org)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ActivityImport {
    /// The first day read (`YYYY-MM-DD`), if any was.
    pub from: Option<String>,
    /// Days stored (empty ones too).
    pub days: u64,
    /// Copilot days without a report, skipped (`YYYY-MM-DD`).
    pub missing_days: Vec<String>,
    /// Requests answered (pages, link responses, files).
    pub requests: u64,
    pub lines: u64,
    /// Rate-limited answers waited out.
    pub rate_limited: u64,
    /// Actors of the imported days matched to no Goodhart user (kept and shown under their
    /// own name; see [`people`]), e.g. `dev9@example.com (email)`.
    pub unmatched: Vec<String>,
}

/// Imports Claude Code's usage report (Anthropic's Admin API, `x-api-key` an admin key) day by
/// day up to `to`: from `from`, or else from where the last import stopped (less [`REVISIT`]),
/// or else from [`FIRST_IMPORT`] before `now`.
pub async fn import_claude_code(
    store: &dyn Store,
    client: &UpstreamClient,
    source: &AnalyticsSource,
    from: Option<Micros>,
    to: Micros,
    now: Micros,
) -> Result<ActivityImport, ImportError> {
    let reader = DayReader::ClaudeCode {
        base: source.base_url.trim_end_matches('/'),
        headers: anthropic_admin_headers(&source.key),
    };
    walk(store, client, source, &reader, (from, to, now)).await
}

/// Imports GitHub Copilot's users-1-day usage metrics reports of organisation `source.org`
/// (`Authorization: Bearer` a token that may read them) day by day up to `to`, as
/// [`import_claude_code`] does. The token goes to the API only, never to the download links.
pub async fn import_copilot(
    store: &dyn Store,
    client: &UpstreamClient,
    source: &AnalyticsSource,
    from: Option<Micros>,
    to: Micros,
    now: Micros,
) -> Result<ActivityImport, ImportError> {
    let reader = DayReader::Copilot {
        base: source.base_url.trim_end_matches('/'),
        org: encode(&source.org),
        headers: [
            ("authorization", format!("Bearer {}", source.key)),
            ("accept", "application/vnd.github+json".to_owned()),
            ("x-github-api-version", GITHUB_API_VERSION.to_owned()),
            ("user-agent", "goodhart".to_owned()),
        ],
    };
    walk(store, client, source, &reader, (from, to, now)).await
}

/// How one vendor's day is read. (An enum, not an async closure: a future calling an async
/// closure cannot be shown `Send`, and the server awaits these in a spawned task.)
enum DayReader<'a> {
    ClaudeCode {
        base: &'a str,
        headers: [(&'static str, String); 2],
    },
    Copilot {
        base: &'a str,
        org: String,
        headers: [(&'static str, String); 4],
    },
}

impl DayReader<'_> {
    fn tool(&self) -> Tool {
        match self {
            DayReader::ClaudeCode { .. } => Tool::ClaudeCode,
            DayReader::Copilot { .. } => Tool::Copilot,
        }
    }

    /// A day's lines, or `None` for a day without a report.
    async fn read(
        &self,
        client: &UpstreamClient,
        day: Micros,
        done: &mut ActivityImport,
    ) -> Result<Option<Vec<ActivityLine>>, ImportError> {
        match self {
            DayReader::ClaudeCode { base, headers } => {
                let mut lines = Vec::new();
                let mut cursor: Option<String> = None;
                for page in 1..=MAX_PAGES {
                    let mut url = format!(
                        "{base}/v1/organizations/usage_report/claude_code?starting_at={}&limit=1000",
                        day.utc_day()
                    );
                    if let Some(cursor) = &cursor {
                        url.push_str("&page=");
                        url.push_str(&encode(cursor));
                    }
                    let (body, waited) = get(client, "anthropic", &url, headers, MAX_PAGE_BYTES).await?;
                    done.requests += 1;
                    done.rate_limited += waited;
                    let read = claude_code_page(&body, day).map_err(unreadable(
                        Tool::ClaudeCode,
                        day,
                        format!("page {page}"),
                    ))?;
                    lines.extend(read.lines);
                    match read.next_page {
                        Some(next) => cursor = Some(next),
                        None => return Ok(Some(lines)),
                    }
                }
                Err(ImportError::TooManyPages {
                    provider: "anthropic".into(),
                    report: goodhart_core::provider_reports::ReportKind::Usage,
                })
            }
            DayReader::Copilot { base, org, headers } => {
                let url = format!(
                    "{base}/orgs/{org}/copilot/metrics/reports/users-1-day?day={}",
                    day.utc_day()
                );
                let body = match get(client, "github", &url, headers, MAX_PAGE_BYTES).await {
                    Ok((body, waited)) => {
                        done.rate_limited += waited;
                        body
                    }
                    Err(ImportError::Refused { status: 404, .. }) => return Ok(None),
                    Err(error) => return Err(error),
                };
                done.requests += 1;
                let links = copilot_report_links(&body, day).map_err(unreadable(
                    Tool::Copilot,
                    day,
                    "the report links".into(),
                ))?;
                let download = [("user-agent", "goodhart".to_owned())];
                let mut lines = Vec::new();
                for (i, link) in links.download_links.iter().enumerate() {
                    let (file, waited) = get(client, "github", link, &download, MAX_FILE_BYTES).await?;
                    done.requests += 1;
                    done.rate_limited += waited;
                    lines.extend(copilot_users_file(&file, day).map_err(unreadable(
                        Tool::Copilot,
                        day,
                        format!("file {}", i + 1),
                    ))?);
                }
                Ok(Some(lines))
            }
        }
    }
}

fn unreadable(tool: Tool, day: Micros, part: String) -> impl FnOnce(ReportError) -> ImportError {
    move |error| ImportError::Activity {
        tool: tool.as_str().to_owned(),
        day: day.utc_day(),
        part,
        error,
    }
}

/// Reads (with `reader`) and stores each day of the import, then lists the unmatched actors.
async fn walk(
    store: &dyn Store,
    client: &UpstreamClient,
    source: &AnalyticsSource,
    reader: &DayReader<'_>,
    (from, to, now): (Option<Micros>, Micros, Micros),
) -> Result<ActivityImport, ImportError> {
    let tool = reader.tool();
    let mut done = ActivityImport::default();
    let start = match from {
        Some(from) => from,
        None => match store.activity_imported_until(tool, &source.org).await? {
            Some(until) => Micros(until.0 - REVISIT),
            None => Micros(now.0 - FIRST_IMPORT),
        },
    }
    .floor_to(MICROS_PER_DAY);
    if start >= to {
        return Ok(done);
    }
    done.from = Some(start.utc_day());
    let mut actors = BTreeSet::new();
    let mut day = start;
    while day < to {
        if (day.0 - start.0) / MICROS_PER_DAY >= MAX_DAYS {
            return Err(ImportError::Unreachable {
                url: source.base_url.clone(),
                reason: format!("more than {MAX_DAYS} days in one import: give a later --from"),
            });
        }
        match reader.read(client, day, &mut done).await? {
            Some(lines) => {
                actors.extend(lines.iter().map(|l| l.actor.clone()));
                done.lines += store.record_activity_day(tool, &source.org, day, lines, now).await?;
                done.days += 1;
            }
            None => done.missing_days.push(day.utc_day()),
        }
        day = Micros(day.0 + MICROS_PER_DAY);
    }
    let people = people(store, actors.iter()).await?;
    done.unmatched = people
        .iter()
        .filter(|(_, person)| !person.as_ref().is_some_and(|p| p.matched))
        .map(|(actor, _)| {
            let kind = match actor.kind {
                ActorKind::Email => "email",
                ActorKind::GithubLogin => "GitHub login",
                ActorKind::ApiKey => "API key",
            };
            format!("{} ({kind})", actor.name)
        })
        .collect();
    done.unmatched.sort();
    Ok(done)
}

/// Whose each actor's activity is (`goodhart_core::agent_analytics::person`): GitHub logins
/// through the mapping that credits outcomes, users known by their metered usage.
pub async fn people<'a>(
    store: &dyn Store,
    actors: impl Iterator<Item = &'a Actor>,
) -> Result<BTreeMap<Actor, Option<Person>>, StoreError> {
    let actors: BTreeSet<&Actor> = actors.collect();
    let logins: BTreeMap<String, String> = if actors.iter().any(|a| a.kind == ActorKind::GithubLogin) {
        store.github_logins().await?.into_iter().collect()
    } else {
        BTreeMap::new()
    };
    let names: BTreeSet<String> = actors
        .iter()
        .flat_map(|a| candidate_names(a))
        .chain(logins.values().map(String::as_str))
        .map(str::to_owned)
        .collect();
    let names: Vec<String> = names.into_iter().collect();
    let mut known = BTreeSet::new();
    for chunk in names.chunks(500) {
        known.extend(store.known_users(chunk).await?);
    }
    Ok(actors
        .into_iter()
        .map(|actor| {
            let mapped = match actor.kind {
                ActorKind::GithubLogin => logins.get(&actor.name).map(String::as_str),
                _ => None,
            };
            (actor.clone(), person(actor, mapped, |name| known.contains(name)))
        })
        .collect())
}
