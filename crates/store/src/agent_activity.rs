//! Coding agents' activity as their vendors report it (Claude Code's usage report, Copilot's
//! usage metrics): per tool, organisation, day, actor and surface, with tokens and the
//! vendor's estimated cost per model. Activity signals, never value: nothing here feeds the
//! board, ROI or outcome credit.
//!
//! A day is stored in one transaction and replaces what was stored for that day: vendors
//! revise recent days, so importing a day again must neither add to it nor keep lines it no
//! longer has. The SQL is shared by both backends.

use std::collections::HashMap;

use async_trait::async_trait;
use goodhart_core::Micros;
use goodhart_core::agent_analytics::{ActivityCounts, ActivityLine, Actor, ActorKind, ModelUsage, Tool};
use goodhart_core::money::Nanos;
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::usage::TokenCounts;

use crate::error::StoreError;
use crate::provider_reports::stored;

#[async_trait]
pub trait AgentActivityStore: Send + Sync {
    /// Stores all of `tool`'s activity in `org` on `day` (a UTC midnight; `lines` are of that
    /// day), replacing what was stored for it, and records the day as imported at `now` (an
    /// empty day too). Returns the lines stored.
    async fn record_activity_day(
        &self,
        tool: Tool,
        org: &str,
        day: Micros,
        lines: Vec<ActivityLine>,
        now: Micros,
    ) -> Result<u64, StoreError>;
    /// The end of the latest day of `tool`'s activity in `org` imported so far.
    async fn activity_imported_until(&self, tool: Tool, org: &str) -> Result<Option<Micros>, StoreError>;
    /// Every activity line of a day in `[from, to)`, with its organisation.
    async fn agent_activity(&self, from: Micros, to: Micros) -> Result<Vec<(String, ActivityLine)>, StoreError>;
    /// Those of `names` that are users Goodhart has usage for.
    async fn known_users(&self, names: &[String]) -> Result<Vec<String>, StoreError>;
}

pub(crate) const UPSERT_DAY: &str = "INSERT INTO agent_activity_days (tool, org, day, imported_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (tool, org, day) DO UPDATE SET imported_at = excluded.imported_at";
pub(crate) const DELETE_LINES: &str = "DELETE FROM agent_activity WHERE tool = $1 AND org = $2 AND day = $3";
pub(crate) const DELETE_MODELS: &str = "DELETE FROM agent_activity_models WHERE tool = $1 AND org = $2 AND day = $3";
pub(crate) const INSERT_LINE: &str = "INSERT INTO agent_activity (tool, org, day, line, actor_kind, actor, \
     surface, sessions, lines_added, lines_removed, commits, pull_requests, tool_accepted, tool_rejected, \
     interactions, generations, acceptances, lines_suggested_added, lines_suggested_removed) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";
pub(crate) const INSERT_MODEL: &str = "INSERT INTO agent_activity_models (tool, org, day, line, model, \
     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, estimated_cost_nanos) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(crate) const IMPORTED_UNTIL: &str = "SELECT MAX(day) FROM agent_activity_days WHERE tool = $1 AND org = $2";
pub(crate) const SELECT_LINES: &str = "SELECT tool, org, day, line, actor_kind, actor, surface, sessions, \
     lines_added, lines_removed, commits, pull_requests, tool_accepted, tool_rejected, interactions, generations, \
     acceptances, lines_suggested_added, lines_suggested_removed FROM agent_activity \
     WHERE day >= $1 AND day < $2 ORDER BY tool, org, day, line";
pub(crate) const SELECT_MODELS: &str = "SELECT tool, org, day, line, model, input_tokens, output_tokens, \
     cache_read_tokens, cache_write_tokens, estimated_cost_nanos FROM agent_activity_models \
     WHERE day >= $1 AND day < $2 ORDER BY tool, org, day, line, model";
pub(crate) const KNOWN_USER: &str = "SELECT name FROM users WHERE name = $1";

/// The end of the day that starts at `day`.
pub(crate) fn day_end(day: i64) -> Micros {
    Micros(day + MICROS_PER_DAY)
}

/// A line's counts as stored (BIGINT).
pub(crate) fn stored_counts(counts: &ActivityCounts) -> [i64; ActivityCounts::LEN] {
    counts.to_array().map(stored)
}

/// A model's token counts as stored, in the order of [`INSERT_MODEL`].
pub(crate) fn stored_tokens(t: &TokenCounts) -> [i64; 4] {
    [t.input, t.output, t.cache_read, t.cache_write_5m].map(stored)
}

/// A line's columns in the order of [`SELECT_LINES`]: tool, organisation, day, line number,
/// actor kind and name, surface, counts.
pub(crate) type LineRow = (
    String,
    String,
    i64,
    i64,
    String,
    String,
    String,
    [i64; ActivityCounts::LEN],
);
/// A model's columns in the order of [`SELECT_MODELS`].
pub(crate) type ModelRow = (String, String, i64, i64, String, [i64; 4], Option<i64>);

/// The stored lines with their models, in stored order.
pub(crate) fn assemble(lines: Vec<LineRow>, models: Vec<ModelRow>) -> Result<Vec<(String, ActivityLine)>, StoreError> {
    let corrupt = |what: &'static str, value: &str| StoreError::Corrupt {
        what,
        value: value.to_owned(),
    };
    let mut index = HashMap::new();
    let mut assembled = Vec::with_capacity(lines.len());
    for (tool_name, org, day, line, kind, actor, surface, counts) in lines {
        let tool = Tool::parse(&tool_name).ok_or_else(|| corrupt("agent tool", &tool_name))?;
        let kind = ActorKind::parse(&kind).ok_or_else(|| corrupt("actor kind", &kind))?;
        index.insert((tool_name, org.clone(), day, line), assembled.len());
        assembled.push((
            org,
            ActivityLine {
                tool,
                day: Micros(day),
                actor: Actor { kind, name: actor },
                surface,
                counts: ActivityCounts::from_array(counts.map(|n| n.max(0) as u64)),
                models: Vec::new(),
            },
        ));
    }
    for (tool, org, day, line, model, tokens, cost) in models {
        let Some(&at) = index.get(&(tool, org, day, line)) else {
            continue;
        };
        let [input, output, cache_read, cache_write_5m] = tokens.map(|n| n.max(0) as u64);
        assembled[at].1.models.push(ModelUsage {
            model,
            tokens: TokenCounts {
                input,
                output,
                cache_read,
                cache_write_5m,
                ..TokenCounts::default()
            },
            estimated_cost: cost.map(Nanos),
        });
    }
    Ok(assembled)
}
