//! The audit log: every admin action (keys, tokens, budgets, finding decisions and passes,
//! login mappings, outcomes, repricing), every authentication failure and every refusal,
//! stored append-only with who ([`Actor`]), from where ([`Origin`]), when, what and to what.
//!
//! **Where the write goes.** A use case writes its entry itself, right after its action
//! succeeded, and fails with the store's error if the entry cannot be written: the API answers
//! 500 and the CLI exits non-zero, so nobody is told "done" for an unaudited action. The two
//! writes are not one transaction (that would take every store method a transaction handle);
//! the window is a store that fails between two writes milliseconds apart, and then the error
//! log line carries the whole entry. Writing the entry first would record actions that then
//! fail validation or conflict — worse for an audit log than an entry missing with a logged
//! error. Since the use case writes it, the API and the CLI record an action alike and once.
//!
//! **The failure bound** ([`super::refusals`]). Authentication failures and refusals are
//! written at most 20 per client address and 1,000 in all per clock minute; the rest are
//! counted, and one `audit.suppressed` entry per address (with `count` and the failures and
//! denials it stands for) is written when the minute is over. So a flood of bad tokens adds at
//! most 20 + 1 rows per address per minute, and at most 1,000 entries and 1,001 summaries per
//! minute in all (addresses past the first 1,000 of a minute share one summary).

use std::net::IpAddr;

use goodhart_core::Micros;
use goodhart_store::audit::{AuditEntry, AuditQuery, NewAuditEntry};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::access::Access;
use super::refusals::{MINUTE, Suppressed};
use super::{App, AppError};

/// The longest User-Agent kept (longer ones are cut at a character boundary).
pub const USER_AGENT_CHARS: usize = 256;
/// The most entries one read returns.
pub const MAX_LIMIT: u32 = 1_000;
pub const DEFAULT_LIMIT: u32 = 100;

goodhart_core::named_enum! {
    /// What kind of credential acted.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ActorKind {
        AdminToken = "admin_token",
        ViewerToken = "viewer_token",
        IngestToken = "ingest_token",
        FinopsToken = "finops_token",
        ManagerToken = "manager_token",
        EngineerToken = "engineer_token",
        /// An identity provider's SCIM token.
        ScimToken = "scim_token",
        /// A person signed in through single sign-on.
        User = "user",
        /// The `goodhart` command line, working on the database directly.
        Cli = "cli",
        /// Nobody known: a token that matched nothing.
        Anonymous = "anonymous",
    }
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    /// The token's id, the person's id, the operating-system user of the CLI.
    pub id: Option<String>,
    /// A token's name, a person's name or email.
    pub name: Option<String>,
}

impl Actor {
    /// The one place a request's caller becomes an audit actor.
    pub fn of(access: &Access) -> Actor {
        match access {
            Access::Admin => Actor {
                kind: ActorKind::AdminToken,
                id: None,
                name: None,
            },
            Access::Viewer { id, name, .. } => Actor {
                kind: ActorKind::ViewerToken,
                id: Some(id.clone()),
                name: name.clone(),
            },
            Access::Ingest { id, .. } => Actor {
                kind: ActorKind::IngestToken,
                id: Some(id.clone()),
                name: None,
            },
            Access::Finops { id, name } => Actor {
                kind: ActorKind::FinopsToken,
                id: Some(id.clone()),
                name: name.clone(),
            },
            Access::Manager { id, name, .. } => Actor {
                kind: ActorKind::ManagerToken,
                id: Some(id.clone()),
                name: name.clone(),
            },
            Access::Engineer { id, name, .. } => Actor {
                kind: ActorKind::EngineerToken,
                id: Some(id.clone()),
                name: name.clone(),
            },
            Access::Scim { id, name } => Actor {
                kind: ActorKind::ScimToken,
                id: Some(id.clone()),
                name: name.clone(),
            },
        }
    }

    pub fn anonymous() -> Actor {
        Actor {
            kind: ActorKind::Anonymous,
            id: None,
            name: None,
        }
    }

    /// The command line, as the operating-system user running it (`$USER`, if known).
    pub fn cli(user: Option<&str>) -> Actor {
        Actor {
            kind: ActorKind::Cli,
            id: user.filter(|u| !u.is_empty()).map(|u| bounded(u, 100)),
            name: None,
        }
    }
}

/// Who, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub actor: Actor,
    /// The client's address: the connection's peer (or the trusted proxy's `X-Forwarded-For`).
    pub address: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Origin {
    pub fn new(actor: Actor, address: Option<IpAddr>, user_agent: Option<&str>) -> Origin {
        Origin {
            actor,
            address,
            user_agent: user_agent.map(|ua| bounded(ua, USER_AGENT_CHARS)),
        }
    }

    /// The command line on this machine, run by `user`.
    pub fn cli(user: Option<&str>) -> Origin {
        Origin::new(
            Actor::cli(user),
            None,
            Some(concat!("goodhart-cli/", env!("CARGO_PKG_VERSION"))),
        )
    }
}

fn bounded(text: &str, chars: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(chars).collect()
}

goodhart_core::named_enum! {
    /// How an attempt ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Outcome {
        Success = "success",
        /// Authenticated, but not allowed (403).
        Denied = "denied",
        /// Not authenticated (401).
        Failure = "failure",
    }
}

/// What happened, to what: a stable dotted action name, its target and a small JSON of the
/// details that matter (never a secret).
#[derive(Debug, Clone)]
pub struct Event {
    pub action: &'static str,
    pub target: Option<(&'static str, String)>,
    pub details: serde_json::Value,
}

impl Event {
    pub fn new(action: &'static str) -> Event {
        Event {
            action,
            target: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    pub fn on(mut self, kind: &'static str, id: impl Into<String>) -> Event {
        self.target = Some((kind, id.into()));
        self
    }

    /// The details: a JSON object, whose null fields are left out.
    pub fn with(mut self, mut details: serde_json::Value) -> Event {
        if let Some(fields) = details.as_object_mut() {
            fields.retain(|_, value| !value.is_null());
        }
        self.details = details;
        self
    }
}

fn entry(at: Micros, origin: &Origin, outcome: Outcome, event: Event) -> NewAuditEntry {
    let (target_kind, target_id) = match event.target {
        Some((kind, id)) => (Some(kind.to_owned()), Some(id)),
        None => (None, None),
    };
    NewAuditEntry {
        at,
        actor_kind: origin.actor.kind.as_str().to_owned(),
        actor_id: origin.actor.id.clone(),
        actor_name: origin.actor.name.clone(),
        action: event.action.to_owned(),
        outcome: outcome.as_str().to_owned(),
        target_kind,
        target_id,
        address: origin.address.map(|a| a.to_string()),
        user_agent: origin.user_agent.clone(),
        details: event.details.to_string(),
        count: 1,
    }
}

/// The entry standing for the refusals of one address past the bound in one minute.
fn suppressed_entry(s: &Suppressed) -> NewAuditEntry {
    NewAuditEntry {
        at: s.to,
        actor_kind: ActorKind::Anonymous.as_str().to_owned(),
        actor_id: None,
        actor_name: None,
        action: "audit.suppressed".to_owned(),
        outcome: Outcome::Failure.as_str().to_owned(),
        target_kind: None,
        target_id: None,
        address: s.address.map(|a| a.to_string()),
        user_agent: None,
        details: serde_json::json!({
            "from": s.from.rfc3339(),
            "to": s.to.rfc3339(),
            "failures": s.failures,
            "denials": s.denials,
        })
        .to_string(),
        count: i64::try_from(s.failures + s.denials).unwrap_or(i64::MAX),
    }
}

/// An entry as the API and the CLI show it.
#[derive(Debug, Serialize)]
pub struct AuditEntryJson {
    pub seq: i64,
    pub at: String,
    pub actor: ActorJson,
    pub action: String,
    pub outcome: String,
    pub target: Option<TargetJson>,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
    pub count: i64,
}

#[derive(Debug, Serialize)]
pub struct ActorJson {
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TargetJson {
    pub kind: String,
    pub id: Option<String>,
}

impl From<AuditEntry> for AuditEntryJson {
    fn from(AuditEntry { seq, entry: e }: AuditEntry) -> AuditEntryJson {
        AuditEntryJson {
            seq,
            at: e.at.rfc3339(),
            actor: ActorJson {
                kind: e.actor_kind,
                id: e.actor_id,
                name: e.actor_name,
            },
            action: e.action,
            outcome: e.outcome,
            target: e.target_kind.map(|kind| TargetJson { kind, id: e.target_id }),
            address: e.address,
            user_agent: e.user_agent,
            details: serde_json::from_str(&e.details).unwrap_or(serde_json::Value::String(e.details)),
            count: e.count,
        }
    }
}

/// A page of the log, newest first; `next_cursor` reads the page after it.
#[derive(Debug, Serialize)]
pub struct AuditDocument {
    pub entries: Vec<AuditEntryJson>,
    pub next_cursor: Option<String>,
}

/// A read of the log as asked for (by the API's query string or the CLI's flags).
#[derive(Debug, Default, Clone)]
pub struct AuditRequest {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

impl AuditRequest {
    fn query(self, now: Micros) -> Result<AuditQuery, AppError> {
        let parameter = |parameter: &'static str, message: String| AppError::InvalidParameter { parameter, message };
        let instant = |name: &'static str, text: Option<String>| {
            text.map(|t| goodhart_core::time::parse_bound(&t, now).map_err(|message| parameter(name, message)))
                .transpose()
        };
        let text = |name: &'static str, value: Option<String>, allowed: &dyn Fn(char) -> bool, what: &str| {
            value
                .map(|v| {
                    if v.is_empty() || v.len() > 200 || !v.chars().all(allowed) {
                        Err(parameter(name, format!("`{name}` must be 1 to 200 bytes of {what}")))
                    } else {
                        Ok(v)
                    }
                })
                .transpose()
        };
        let outcome = self
            .outcome
            .map(|o| {
                Outcome::parse(&o)
                    .map(|o| o.as_str().to_owned())
                    .ok_or_else(|| parameter("outcome", format!("`outcome`: {o:?} is not success, denied or failure")))
            })
            .transpose()?;
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(parameter("limit", format!("`limit` must be between 1 and {MAX_LIMIT}")));
        }
        let before = self
            .cursor
            .map(|c| {
                c.parse::<i64>()
                    .ok()
                    .filter(|seq| *seq > 0)
                    .ok_or_else(|| parameter("cursor", "`cursor` is not a cursor this API returned".to_owned()))
            })
            .transpose()?;
        let name = |c: char| !c.is_control();
        let action = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._".contains(c);
        let (from, to) = (instant("from", self.from)?, instant("to", self.to)?);
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(parameter("from", "`from` is after `to`".to_owned()));
        }
        Ok(AuditQuery {
            actor: text("actor", self.actor, &name, "text without control characters")?,
            action_prefix: text("action", self.action, &action, "[a-z0-9._]")?,
            outcome,
            from,
            to,
            before,
            limit,
        })
    }
}

impl App {
    /// Records a successful action of `origin`'s; an error if the entry could not be written
    /// (the caller fails rather than act unaudited: see the module's documentation).
    pub async fn audit(&self, origin: &Origin, event: Event) -> Result<(), AppError> {
        let entry = entry(self.now(), origin, Outcome::Success, event);
        self.append(&entry).await
    }

    async fn append(&self, entry: &NewAuditEntry) -> Result<(), AppError> {
        match self.store().append_audit(entry).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(?entry, "the audit log could not be written: {e}");
                Err(e.into())
            }
        }
    }

    /// Records a refused request — `Failure` for a token that matched nothing (401), `Denied`
    /// for one not allowed here (403) — within the failure bound. Never fails the request: it
    /// is refused anyway.
    pub async fn audit_refusal(&self, origin: &Origin, outcome: Outcome, event: Event) {
        let now = self.now();
        let (write, summaries) = {
            let mut bound = self.failure_bound.lock().unwrap_or_else(|p| p.into_inner());
            bound.admit(now, origin.address, outcome == Outcome::Denied)
        };
        for summary in &summaries {
            let _ = self.append(&suppressed_entry(summary)).await;
        }
        if write {
            let _ = self.append(&entry(now, origin, outcome, event)).await;
        }
    }

    /// Writes the summaries of refusals past the bound in a minute that is over.
    pub async fn flush_audit_bound(&self) {
        let summaries = {
            let mut bound = self.failure_bound.lock().unwrap_or_else(|p| p.into_inner());
            bound.roll(self.now())
        };
        for summary in &summaries {
            let _ = self.append(&suppressed_entry(summary)).await;
        }
    }

    /// Writes the refusal summaries every few seconds after their minute ends, until `cancel`.
    pub fn spawn_audit_flush(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        let app = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => app.flush_audit_bound().await,
                    () = cancel.cancelled() => break,
                }
            }
            app.flush_audit_bound_now().await;
        });
    }

    /// At shutdown: the summaries of the minute under way too.
    async fn flush_audit_bound_now(&self) {
        let summaries = {
            let mut bound = self.failure_bound.lock().unwrap_or_else(|p| p.into_inner());
            bound.roll(Micros(self.now().0 + MINUTE))
        };
        for summary in &summaries {
            let _ = self.append(&suppressed_entry(summary)).await;
        }
    }

    /// A page of the log, newest first.
    pub async fn audit_log(&self, request: AuditRequest) -> Result<AuditDocument, AppError> {
        let query = request.query(self.now())?;
        let limit = query.limit as usize;
        let entries = self.store().audit_entries(&query).await?;
        let next_cursor = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.seq.to_string()))
            .flatten();
        Ok(AuditDocument {
            entries: entries.into_iter().map(AuditEntryJson::from).collect(),
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_bounded_and_stripped_of_control_characters() {
        let origin = Origin::new(Actor::anonymous(), None, Some(&format!("a\nb{}", "x".repeat(1000))));
        let ua = origin.user_agent.unwrap();
        assert_eq!(ua.chars().count(), USER_AGENT_CHARS);
        assert!(ua.starts_with("abx"));
    }
}
