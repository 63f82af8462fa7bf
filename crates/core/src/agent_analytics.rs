//! What coding-agent vendors report their tools did for each person and day, read from their
//! analytics APIs: Anthropic's Claude Code usage report
//! (`/v1/organizations/usage_report/claude_code`, one day a request, cursor pages) and GitHub
//! Copilot's users-1-day usage metrics report (a response of download links, then NDJSON files
//! of one user-day a line).
//!
//! These are **activity signals, never value**: sessions, lines accepted, commits made by the
//! agent and tool acceptances measure how much a tool was used, not what shipped ("lines
//! accepted" is the next "tokens consumed"). They are shown beside verified outcomes, labelled
//! as activity, and never feed the value board, ROI or outcome credit. Tokens and the vendor's
//! estimated cost are kept per model as the vendor reported them.
//!
//! A page or a file is read whole or not at all: a field of the wrong type, a missing required
//! field, a negative count or a record for another day than the one asked for is a
//! [`ReportError`] naming the field by its path (`data[1].core_metrics.num_sessions`, or
//! `line 3.user_login` in a report file). Unknown fields are ignored: the vendors add fields
//! often.
//!
//! Identity ([`person`]): a Claude Code user is known by email, a Copilot user by GitHub login;
//! neither is a Goodhart user name, so [`person`] says whose they are by a documented rule, and
//! an actor matched to nobody is kept and listed as unmatched, never dropped.

use serde_json::Value;

use crate::Micros;
use crate::money::{Nanos, parse_scaled_decimal_rounded};
use crate::provider_reports::{
    Fields, ReportError, array, count, currency, decimal_text, fail, json, next_page, object, path, required, text,
    wrong,
};
use crate::time::{MICROS_PER_DAY, parse_date, parse_rfc3339};
use crate::usage::TokenCounts;

crate::named_enum! {
    /// Which coding agent's analytics.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Tool {
        /// Anthropic's Claude Code usage report.
        ClaudeCode = "claude_code",
        /// GitHub Copilot's usage metrics reports.
        Copilot = "copilot",
    }
}

crate::named_enum! {
    /// How a vendor names who did something.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum ActorKind {
        /// A Claude Code user, by email address.
        Email = "email",
        /// A Copilot user, by GitHub login.
        GithubLogin = "github_login",
        /// A Claude Code API key, by its name: a program, never a person.
        ApiKey = "api_key",
    }
}

/// Who did it, as the vendor names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Actor {
    pub kind: ActorKind,
    pub name: String,
}

/// What one actor did with a tool on one day, as the vendor counts it. Each tool fills the
/// counts it has; the others stay 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityCounts {
    /// Claude Code sessions; Copilot CLI sessions.
    pub sessions: u64,
    /// Lines the tool added and removed (Claude Code's `lines_of_code`, Copilot's `loc_added_sum`
    /// and `loc_deleted_sum`).
    pub lines_added: u64,
    pub lines_removed: u64,
    /// Commits and pull requests Claude Code made.
    pub commits: u64,
    pub pull_requests: u64,
    /// Claude Code's edit, write and notebook tool proposals accepted and rejected.
    pub tool_accepted: u64,
    pub tool_rejected: u64,
    /// Copilot: interactions the user started, code generations, and acceptances.
    pub interactions: u64,
    pub generations: u64,
    pub acceptances: u64,
    /// Copilot: lines it suggested adding and deleting.
    pub lines_suggested_added: u64,
    pub lines_suggested_removed: u64,
}

impl ActivityCounts {
    /// The number of counts, and their order in [`ActivityCounts::to_array`].
    pub const LEN: usize = 12;

    pub fn to_array(&self) -> [u64; Self::LEN] {
        [
            self.sessions,
            self.lines_added,
            self.lines_removed,
            self.commits,
            self.pull_requests,
            self.tool_accepted,
            self.tool_rejected,
            self.interactions,
            self.generations,
            self.acceptances,
            self.lines_suggested_added,
            self.lines_suggested_removed,
        ]
    }

    pub fn from_array(n: [u64; Self::LEN]) -> ActivityCounts {
        ActivityCounts {
            sessions: n[0],
            lines_added: n[1],
            lines_removed: n[2],
            commits: n[3],
            pull_requests: n[4],
            tool_accepted: n[5],
            tool_rejected: n[6],
            interactions: n[7],
            generations: n[8],
            acceptances: n[9],
            lines_suggested_added: n[10],
            lines_suggested_removed: n[11],
        }
    }

    pub fn add(&mut self, other: &ActivityCounts) {
        let (mine, theirs) = (self.to_array(), other.to_array());
        *self = ActivityCounts::from_array(std::array::from_fn(|i| mine[i].saturating_add(theirs[i])));
    }
}

/// Tokens a tool used through one model, and what the vendor estimates they cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUsage {
    /// The model; for Copilot, the surface its token sums are reported for (`cli`,
    /// `copilot_app`), since it reports no model.
    pub model: String,
    pub tokens: TokenCounts,
    /// The vendor's estimate (Claude Code reports one; Copilot none). Not a bill.
    pub estimated_cost: Option<Nanos>,
}

/// One actor's use of one tool on one UTC day, on one surface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityLine {
    pub tool: Tool,
    /// The day's midnight (UTC).
    pub day: Micros,
    pub actor: Actor,
    /// Where: Claude Code's terminal, `remote` appended for remote sessions (`vscode`,
    /// `tmux remote`); empty for Copilot, whose report has one line per user and day.
    pub surface: String,
    pub counts: ActivityCounts,
    pub models: Vec<ModelUsage>,
}

/// One page of the Claude Code report, and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityPage {
    pub lines: Vec<ActivityLine>,
    pub next_page: Option<String>,
}

/// Reads a page of Claude Code's usage report for `day` (a UTC midnight): every record must be
/// of that day.
pub fn claude_code_page(body: &[u8], day: Micros) -> Result<ActivityPage, ReportError> {
    let page = json(body, "(page)")?;
    let page = object(&page, "(page)")?;
    let lines = array(page, "", "data")?
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let at = format!("data[{i}]");
            claude_code_record(object(record, &at)?, &at, day)
        })
        .collect::<Result<_, _>>()?;
    Ok(ActivityPage {
        lines,
        next_page: next_page(page)?,
    })
}

fn claude_code_record(record: &Fields, at: &str, day: Micros) -> Result<ActivityLine, ReportError> {
    let date = match required(record, at, "date")? {
        Value::String(s) => parse_rfc3339(s).map_err(|why| fail(at, "date", why))?,
        _ => return Err(wrong(at, "date", "an RFC 3339 timestamp")),
    };
    same_day(date, day, at, "date")?;

    let actor_at = format!("{at}.actor");
    let actor = object(required(record, at, "actor")?, &actor_at)?;
    let named = |field: &str| text(actor, &actor_at, field)?.ok_or_else(|| fail(&actor_at, field, "missing".into()));
    let actor = match text(actor, &actor_at, "type")?.as_deref() {
        Some("user_actor") => Actor {
            kind: ActorKind::Email,
            name: named("email_address")?,
        },
        Some("api_actor") => Actor {
            kind: ActorKind::ApiKey,
            name: named("api_key_name")?,
        },
        Some(other) => {
            return Err(fail(
                &actor_at,
                "type",
                format!("{other:?}: expected user_actor or api_actor"),
            ));
        }
        None => return Err(fail(&actor_at, "type", "missing".into())),
    };

    let remote = match record.get("is_remote") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(remote)) => *remote,
        Some(_) => return Err(wrong(at, "is_remote", "true or false")),
    };
    let terminal = text(record, at, "terminal_type")?.unwrap_or_default();
    let surface = match (terminal.is_empty(), remote) {
        (_, false) => terminal,
        (true, true) => "remote".to_owned(),
        (false, true) => format!("{terminal} remote"),
    };

    let metrics_at = format!("{at}.core_metrics");
    let metrics = object(required(record, at, "core_metrics")?, &metrics_at)?;
    let (lines_added, lines_removed) = match metrics.get("lines_of_code") {
        None | Some(Value::Null) => (0, 0),
        Some(value) => {
            let loc_at = format!("{metrics_at}.lines_of_code");
            let loc = object(value, &loc_at)?;
            (
                count(loc, &loc_at, "added", false)?,
                count(loc, &loc_at, "removed", false)?,
            )
        }
    };
    let (mut tool_accepted, mut tool_rejected) = (0u64, 0u64);
    if let Some(actions) = optional_object(record, at, "tool_actions")? {
        for (tool, action) in actions {
            let tool_at = format!("{at}.tool_actions.{tool}");
            let action = object(action, &tool_at)?;
            tool_accepted = tool_accepted.saturating_add(count(action, &tool_at, "accepted", false)?);
            tool_rejected = tool_rejected.saturating_add(count(action, &tool_at, "rejected", false)?);
        }
    }
    let counts = ActivityCounts {
        sessions: count(metrics, &metrics_at, "num_sessions", true)?,
        lines_added,
        lines_removed,
        commits: count(metrics, &metrics_at, "commits_by_claude_code", false)?,
        pull_requests: count(metrics, &metrics_at, "pull_requests_by_claude_code", false)?,
        tool_accepted,
        tool_rejected,
        ..ActivityCounts::default()
    };

    let models = match record.get("model_breakdown") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) => array(record, at, "model_breakdown")?
            .iter()
            .enumerate()
            .map(|(j, entry)| {
                let at = format!("{at}.model_breakdown[{j}]");
                claude_code_model(object(entry, &at)?, &at)
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(ActivityLine {
        tool: Tool::ClaudeCode,
        day,
        actor,
        surface,
        counts,
        models,
    })
}

fn claude_code_model(entry: &Fields, at: &str) -> Result<ModelUsage, ReportError> {
    let model = text(entry, at, "model")?.ok_or_else(|| fail(at, "model", "missing".into()))?;
    let tokens = match optional_object(entry, at, "tokens")? {
        None => TokenCounts::default(),
        Some(tokens) => {
            let at = format!("{at}.tokens");
            TokenCounts {
                input: count(tokens, &at, "input", false)?,
                output: count(tokens, &at, "output", false)?,
                cache_read: count(tokens, &at, "cache_read", false)?,
                cache_write_5m: count(tokens, &at, "cache_creation", false)?,
                ..TokenCounts::default()
            }
        }
    };
    let estimated_cost = match optional_object(entry, at, "estimated_cost")? {
        None => None,
        Some(cost) => {
            let at = format!("{at}.estimated_cost");
            currency(cost, &at, "currency")?;
            let cents = decimal_text(required(cost, &at, "amount")?)
                .ok_or_else(|| wrong(&at, "amount", "a number of cents"))?;
            // Cents with seven decimals are nano-dollars.
            let nanos = parse_scaled_decimal_rounded(&cents, 7).map_err(|e| fail(&at, "amount", e.to_string()))?;
            if nanos < 0 {
                return Err(fail(&at, "amount", format!("{cents} is negative")));
            }
            Some(Nanos(nanos))
        }
    };
    Ok(ModelUsage {
        model,
        tokens,
        estimated_cost,
    })
}

/// The answer of Copilot's `users-1-day` report endpoint: where to download the day's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLinks {
    pub download_links: Vec<String>,
    /// The day's midnight (UTC).
    pub day: Micros,
}

/// Reads the link response of Copilot's users-1-day report, which must be for `day`.
pub fn copilot_report_links(body: &[u8], day: Micros) -> Result<ReportLinks, ReportError> {
    let links = json(body, "(response)")?;
    let links = object(&links, "(response)")?;
    let download_links = array(links, "", "download_links")?
        .iter()
        .enumerate()
        .map(|(i, link)| match link {
            Value::String(url) if url.starts_with("https://") || url.starts_with("http://") => Ok(url.clone()),
            _ => Err(wrong("", &format!("download_links[{i}]"), "an http(s) URL")),
        })
        .collect::<Result<_, _>>()?;
    let report_day = date(links, "", "report_day")?;
    same_day(report_day, day, "", "report_day")?;
    Ok(ReportLinks {
        download_links,
        day: report_day,
    })
}

/// Reads one downloaded file of Copilot's users-1-day report for `day`: NDJSON, one user-day a
/// line (blank lines skipped). A line that does not read names itself by number, from 1.
pub fn copilot_users_file(body: &[u8], day: Micros) -> Result<Vec<ActivityLine>, ReportError> {
    let mut lines = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = format!("line {}", i + 1);
        let record = json(line, &at)?;
        lines.push(copilot_user(object(&record, &at)?, &at, day)?);
    }
    Ok(lines)
}

fn copilot_user(record: &Fields, at: &str, day: Micros) -> Result<ActivityLine, ReportError> {
    same_day(date(record, at, "day")?, day, at, "day")?;
    let login = text(record, at, "user_login")?.ok_or_else(|| fail(at, "user_login", "missing".into()))?;
    let mut models = Vec::new();
    let mut sessions = 0;
    // Token sums exist only for the CLI and the Copilot app; IDE completions and chat have none.
    for (field, surface) in [("totals_by_cli", "cli"), ("totals_by_copilot_app", "copilot_app")] {
        let Some(totals) = optional_object(record, at, field)? else {
            continue;
        };
        let totals_at = format!("{at}.{field}");
        sessions += count(totals, &totals_at, "session_count", false)?;
        if let Some(usage) = optional_object(totals, &totals_at, "token_usage")? {
            let usage_at = format!("{totals_at}.token_usage");
            models.push(ModelUsage {
                model: surface.to_owned(),
                tokens: TokenCounts {
                    input: count(usage, &usage_at, "prompt_tokens_sum", false)?,
                    output: count(usage, &usage_at, "output_tokens_sum", false)?,
                    ..TokenCounts::default()
                },
                estimated_cost: None,
            });
        }
    }
    let counts = ActivityCounts {
        sessions,
        lines_added: count(record, at, "loc_added_sum", false)?,
        lines_removed: count(record, at, "loc_deleted_sum", false)?,
        interactions: count(record, at, "user_initiated_interaction_count", true)?,
        generations: count(record, at, "code_generation_activity_count", true)?,
        acceptances: count(record, at, "code_acceptance_activity_count", true)?,
        lines_suggested_added: count(record, at, "loc_suggested_to_add_sum", false)?,
        lines_suggested_removed: count(record, at, "loc_suggested_to_delete_sum", false)?,
        ..ActivityCounts::default()
    };
    Ok(ActivityLine {
        tool: Tool::Copilot,
        day,
        actor: Actor {
            kind: ActorKind::GithubLogin,
            name: login,
        },
        surface: String::new(),
        counts,
        models,
    })
}

fn optional_object<'a>(fields: &'a Fields, at: &str, name: &str) -> Result<Option<&'a Fields>, ReportError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => object(value, &path(at, name)).map(Some),
    }
}

/// A required `YYYY-MM-DD` field, as its midnight.
fn date(fields: &Fields, at: &str, name: &str) -> Result<Micros, ReportError> {
    match required(fields, at, name)? {
        Value::String(s) => parse_date(s).map_err(|why| fail(at, name, why)),
        _ => Err(wrong(at, name, "a date such as 2026-02-27")),
    }
}

fn same_day(found: Micros, day: Micros, at: &str, name: &str) -> Result<(), ReportError> {
    if found.floor_to(MICROS_PER_DAY) == day {
        Ok(())
    } else {
        Err(fail(
            at,
            name,
            format!("{} is not the day asked for ({})", found.utc_day(), day.utc_day()),
        ))
    }
}

/// The Goodhart user an actor's activity belongs to, and whether that user is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub user: String,
    /// A known user: one Goodhart has usage for, or a GitHub login mapping points to. An
    /// unmatched person is still shown on the page of that name, and listed as unmatched.
    pub matched: bool,
}

/// Whose an actor's activity is, given the user its GitHub login is mapped to (the mapping that
/// credits outcomes, `POST /api/v1/github/logins`) and which names are known users:
/// - a GitHub login is its mapped user, else the user of the same name;
/// - an email address is the user named by the whole address if there is one, else the user
///   named by its local part (`dev1@example.com` → `dev1`);
/// - an API key is a program, never a person: `None`.
pub fn person(actor: &Actor, mapped: Option<&str>, is_user: impl Fn(&str) -> bool) -> Option<Person> {
    match actor.kind {
        ActorKind::ApiKey => None,
        ActorKind::GithubLogin => Some(match mapped {
            Some(user) => Person {
                user: user.to_owned(),
                matched: true,
            },
            None => Person {
                matched: is_user(&actor.name),
                user: actor.name.clone(),
            },
        }),
        ActorKind::Email => {
            if is_user(&actor.name) {
                return Some(Person {
                    user: actor.name.clone(),
                    matched: true,
                });
            }
            let local = local_part(&actor.name);
            Some(Person {
                matched: is_user(local),
                user: local.to_owned(),
            })
        }
    }
}

/// The names [`person`] may ask `is_user` about for `actor`.
pub fn candidate_names(actor: &Actor) -> Vec<&str> {
    match actor.kind {
        ActorKind::ApiKey => Vec::new(),
        ActorKind::GithubLogin => vec![&actor.name],
        ActorKind::Email => vec![&actor.name, local_part(&actor.name)],
    }
}

fn local_part(email: &str) -> &str {
    email.split_once('@').map_or(email, |(local, _)| local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/agent_analytics/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn day(text: &str) -> Micros {
        parse_date(text).unwrap()
    }

    #[test]
    fn claude_code_records_are_activity_and_tokens_with_the_estimate_in_nanos() {
        let page = claude_code_page(&fixture("claude_code.json"), day("2026-01-05")).unwrap();
        assert_eq!(page.next_page.as_deref(), Some("page_MjAyNi0wMS0wNVQwMDowMDowMFo="));
        let [dev, bot] = &page.lines[..] else {
            panic!("{:?}", page.lines)
        };
        assert_eq!(
            dev.actor,
            Actor {
                kind: ActorKind::Email,
                name: "dev1@example.com".into()
            }
        );
        assert_eq!(
            (dev.tool, dev.day, dev.surface.as_str()),
            (Tool::ClaudeCode, day("2026-01-05"), "vscode")
        );
        assert_eq!(
            dev.counts,
            ActivityCounts {
                sessions: 4,
                lines_added: 512,
                lines_removed: 140,
                commits: 3,
                pull_requests: 1,
                tool_accepted: 35,
                tool_rejected: 2,
                ..ActivityCounts::default()
            }
        );
        let [model] = &dev.models[..] else {
            panic!("{:?}", dev.models)
        };
        assert_eq!(model.model, "claude-sonnet-4-5-20250929");
        assert_eq!(
            (
                model.tokens.input,
                model.tokens.output,
                model.tokens.cache_read,
                model.tokens.cache_write_5m
            ),
            (50_000, 12_000, 400_000, 20_000)
        );
        assert_eq!(model.estimated_cost, Some(Nanos(5_400_000_000)), "540 cents is $5.40");
        assert_eq!(bot.actor.kind, ActorKind::ApiKey);
        assert_eq!(bot.surface, "tmux remote");
        assert!(bot.models.is_empty());
        assert_eq!(bot.counts.tool_accepted, 0);
    }

    #[test]
    fn copilot_links_and_user_lines_are_read_with_the_cli_tokens() {
        let links = copilot_report_links(&fixture("copilot_links.json"), day("2026-02-27")).unwrap();
        assert_eq!(links.download_links.len(), 2);
        assert_eq!(links.day, day("2026-02-27"));
        let lines = copilot_users_file(&fixture("copilot_users.ndjson"), day("2026-02-27")).unwrap();
        let [alice, bob] = &lines[..] else { panic!("{lines:?}") };
        assert_eq!(alice.actor.name, "alice");
        assert_eq!(alice.actor.kind, ActorKind::GithubLogin);
        assert_eq!(
            alice.counts,
            ActivityCounts {
                sessions: 2,
                lines_added: 120,
                lines_removed: 6,
                interactions: 14,
                generations: 20,
                acceptances: 9,
                lines_suggested_added: 300,
                lines_suggested_removed: 10,
                ..ActivityCounts::default()
            }
        );
        assert_eq!(alice.models.len(), 1);
        assert_eq!(
            (
                alice.models[0].model.as_str(),
                alice.models[0].tokens.input,
                alice.models[0].tokens.output
            ),
            ("cli", 18_000, 4_200)
        );
        assert_eq!(alice.models[0].estimated_cost, None, "Copilot reports no money");
        assert!(bob.models.is_empty());
        assert_eq!(bob.counts.acceptances, 1);
    }

    #[test]
    fn a_bad_field_names_itself() {
        let monday = day("2026-01-05");
        let record = |fields: &str| {
            format!(
                r#"{{"data": [{{"date": "2026-01-05T00:00:00Z", "actor": {{"type": "user_actor", "email_address": "a@x.io"}},
                    "core_metrics": {{"num_sessions": 1}}}}, {{"date": "2026-01-05T00:00:00Z", {fields}}}],
                    "has_more": false, "next_page": null}}"#
            )
        };
        let error = |fields: &str| {
            claude_code_page(record(fields).as_bytes(), monday)
                .unwrap_err()
                .to_string()
        };
        let user = r#""actor": {"type": "user_actor", "email_address": "b@x.io"}"#;
        assert_eq!(
            error(&format!(r#"{user}, "core_metrics": {{"num_sessions": "3"}}"#)),
            "data[1].core_metrics.num_sessions: expected a non-negative integer"
        );
        assert_eq!(error(user), "data[1].core_metrics: missing");
        assert_eq!(
            error(r#""actor": {"type": "user_actor"}, "core_metrics": {"num_sessions": 1}"#),
            "data[1].actor.email_address: missing"
        );
        assert_eq!(
            error(r#""actor": {"type": "robot"}, "core_metrics": {"num_sessions": 1}"#),
            "data[1].actor.type: \"robot\": expected user_actor or api_actor"
        );
        assert_eq!(
            error(&format!(
                r#"{user}, "core_metrics": {{"num_sessions": 1}}, "tool_actions": {{"edit_tool": {{"accepted": -1}}}}"#
            )),
            "data[1].tool_actions.edit_tool.accepted: expected a non-negative integer"
        );
        assert_eq!(
            error(&format!(
                r#"{user}, "core_metrics": {{"num_sessions": 1}}, "model_breakdown": [{{"model": "m", "estimated_cost": {{"currency": "USD", "amount": "540"}}}}]"#
            )),
            "data[1].model_breakdown[0].estimated_cost.amount: expected a number of cents"
        );
        assert_eq!(
            error(&format!(
                r#"{user}, "core_metrics": {{"num_sessions": 1}}, "model_breakdown": [{{"model": "m", "estimated_cost": {{"currency": "USD", "amount": -5}}}}]"#
            )),
            "data[1].model_breakdown[0].estimated_cost.amount: -5 is negative"
        );
        let tuesday = record(&format!(r#"{user}, "core_metrics": {{"num_sessions": 1}}"#)).replacen(
            "2026-01-05",
            "2026-01-06",
            1,
        );
        assert_eq!(
            claude_code_page(tuesday.as_bytes(), monday).unwrap_err().to_string(),
            "data[0].date: 2026-01-06 is not the day asked for (2026-01-05)"
        );

        let feb = day("2026-02-27");
        let file = "{\"day\":\"2026-02-27\",\"user_login\":\"a\",\"user_initiated_interaction_count\":1,\"code_generation_activity_count\":1,\"code_acceptance_activity_count\":1}\n\n{\"day\":\"2026-02-27\",\"user_login\":\"b\",\"user_initiated_interaction_count\":1,\"code_generation_activity_count\":1}\n";
        assert_eq!(
            copilot_users_file(file.as_bytes(), feb).unwrap_err().to_string(),
            "line 3.code_acceptance_activity_count: missing"
        );
        assert!(
            copilot_users_file(b"{\"day\": \"2026-02-27\",", feb)
                .unwrap_err()
                .to_string()
                .starts_with("line 1: not JSON")
        );
        assert_eq!(
            copilot_users_file(b"{\"day\":\"2026-02-28\",\"user_login\":\"a\"}", feb)
                .unwrap_err()
                .to_string(),
            "line 1.day: 2026-02-28 is not the day asked for (2026-02-27)"
        );
        assert_eq!(
            copilot_report_links(br#"{"download_links": [7], "report_day": "2026-02-27"}"#, feb)
                .unwrap_err()
                .to_string(),
            "download_links[0]: expected an http(s) URL"
        );
        assert_eq!(
            copilot_report_links(br#"{"download_links": []}"#, feb)
                .unwrap_err()
                .to_string(),
            "report_day: missing"
        );
    }

    #[test]
    fn actors_are_people_by_login_mapping_whole_address_or_local_part() {
        let users = ["dev1", "carol@example.com", "alice"];
        let is_user = |name: &str| users.contains(&name);
        let email = |name: &str| Actor {
            kind: ActorKind::Email,
            name: name.into(),
        };
        let login = |name: &str| Actor {
            kind: ActorKind::GithubLogin,
            name: name.into(),
        };
        let known = |user: &str| {
            Some(Person {
                user: user.into(),
                matched: true,
            })
        };
        assert_eq!(person(&email("dev1@example.com"), None, is_user), known("dev1"));
        assert_eq!(
            person(&email("carol@example.com"), None, is_user),
            known("carol@example.com")
        );
        assert_eq!(
            person(&email("zed@example.com"), None, is_user),
            Some(Person {
                user: "zed".into(),
                matched: false
            })
        );
        assert_eq!(person(&login("alice"), None, is_user), known("alice"));
        assert_eq!(person(&login("al1ce-gh"), Some("alice"), is_user), known("alice"));
        assert_eq!(
            person(&login("ghost"), None, is_user),
            Some(Person {
                user: "ghost".into(),
                matched: false
            })
        );
        let key = Actor {
            kind: ActorKind::ApiKey,
            name: "ci-bot".into(),
        };
        assert_eq!(person(&key, None, is_user), None);
        assert_eq!(
            candidate_names(&email("dev1@example.com")),
            ["dev1@example.com", "dev1"]
        );
    }

    #[test]
    fn counts_round_trip_through_their_array() {
        let counts = ActivityCounts::from_array(std::array::from_fn(|i| i as u64 + 1));
        assert_eq!(ActivityCounts::from_array(counts.to_array()), counts);
        let mut twice = counts;
        twice.add(&counts);
        assert_eq!(twice.to_array()[11], 24);
    }

    proptest::proptest! {
        /// The fixtures with one byte changed: no panic, and whatever reads is of the day asked
        /// for.
        #[test]
        fn a_mangled_report_reads_or_fails_without_panic(at in 0usize..4096, byte in proptest::prelude::any::<u8>()) {
            let mangle = |mut body: Vec<u8>| {
                let i = at % body.len();
                body[i] = byte;
                body
            };
            let monday = day("2026-01-05");
            if let Ok(page) = claude_code_page(&mangle(fixture("claude_code.json")), monday) {
                proptest::prop_assert!(page.lines.iter().all(|l| l.day == monday));
            }
            let feb = day("2026-02-27");
            if let Ok(lines) = copilot_users_file(&mangle(fixture("copilot_users.ndjson")), feb) {
                proptest::prop_assert!(lines.iter().all(|l| l.day == feb));
            }
            let _ = copilot_report_links(&mangle(fixture("copilot_links.json")), feb);
        }
    }
}
