//! A person's coding-agent activity as the vendors report it (Claude Code's usage report,
//! Copilot's usage metrics), summed over a window for their page. Labelled as activity beside
//! their verified outcomes: nothing here reaches the value board, ROI or outcome credit —
//! accepted lines and agent commits measure use, not what shipped.

use goodhart_core::agent_analytics::{ActivityCounts, ActorKind, Tool};
use goodhart_core::money::Nanos;
use serde::Serialize;
use serde_json::value::RawValue;

use super::json::usd_number;
use super::query::Window;
use super::{App, AppError};
use crate::agent_import::people;

/// The section's title wherever it is shown.
pub const LABEL: &str = "Activity (vendor-reported — not value)";

/// A person's activity over a window.
#[derive(Debug, Serialize)]
pub struct ActivityJson {
    pub label: &'static str,
    pub note: &'static str,
    /// The vendors' names for the person (`ann@example.com (email)`, `ann-gh (GitHub login)`).
    pub actors: Vec<String>,
    /// Whether every one of them is matched to a known Goodhart user (else the activity is
    /// shown under the name the rule gives it, and listed as unmatched by the import).
    pub matched: bool,
    /// Absent when the tool reported nothing for the person.
    pub claude_code: Option<ClaudeCodeJson>,
    pub copilot: Option<CopilotJson>,
}

#[derive(Debug, Serialize)]
pub struct ClaudeCodeJson {
    /// Days with activity.
    pub days: u64,
    pub sessions: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
    pub commits: u64,
    pub pull_requests: u64,
    pub tool_accepted: u64,
    pub tool_rejected: u64,
    /// Accepted of the edit proposals answered, 0 to 1 (absent with none).
    pub tool_acceptance_rate: Option<f64>,
    pub tokens: u64,
    /// Anthropic's estimate, not a bill and not Goodhart's price.
    pub estimated_cost_usd: Box<RawValue>,
}

#[derive(Debug, Serialize)]
pub struct CopilotJson {
    pub days: u64,
    pub interactions: u64,
    pub generations: u64,
    pub acceptances: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
    /// CLI and Copilot-app tokens (the only ones Copilot reports).
    pub tokens: u64,
}

/// One tool's sums.
#[derive(Default)]
struct Sums {
    days: std::collections::BTreeSet<i64>,
    counts: ActivityCounts,
    tokens: u64,
    cost: Nanos,
}

impl App {
    /// The activity the vendors report for person `name` over `window`.
    pub async fn person_activity(&self, name: &str, window: Window) -> Result<ActivityJson, AppError> {
        let lines = self.store().agent_activity(window.from, window.to).await?;
        let people = people(self.store(), lines.iter().map(|(_, l)| &l.actor)).await?;
        let mut sums = [Sums::default(), Sums::default()];
        let mut actors = Vec::new();
        let mut matched = true;
        for (_, line) in &lines {
            let Some(Some(person)) = people.get(&line.actor) else {
                continue;
            };
            if person.user != name {
                continue;
            }
            let kind = match line.actor.kind {
                ActorKind::Email => "email",
                ActorKind::GithubLogin => "GitHub login",
                ActorKind::ApiKey => "API key",
            };
            let actor = format!("{} ({kind})", line.actor.name);
            if !actors.contains(&actor) {
                actors.push(actor);
            }
            matched &= person.matched;
            let sum = &mut sums[usize::from(line.tool == Tool::Copilot)];
            sum.days.insert(line.day.0);
            sum.counts.add(&line.counts);
            for model in &line.models {
                sum.tokens = sum.tokens.saturating_add(model.tokens.total());
                sum.cost = sum.cost.saturating_add(model.estimated_cost.unwrap_or(Nanos::ZERO));
            }
        }
        actors.sort();
        let [claude, copilot] = sums;
        let answered = claude.counts.tool_accepted + claude.counts.tool_rejected;
        Ok(ActivityJson {
            label: LABEL,
            note: "What the tools report doing (sessions, lines, commits, acceptances), not what shipped: \
                   never counted as value, on the board or in ROI.",
            matched: matched || actors.is_empty(),
            actors,
            claude_code: (!claude.days.is_empty()).then(|| ClaudeCodeJson {
                days: claude.days.len() as u64,
                sessions: claude.counts.sessions,
                lines_added: claude.counts.lines_added,
                lines_removed: claude.counts.lines_removed,
                commits: claude.counts.commits,
                pull_requests: claude.counts.pull_requests,
                tool_accepted: claude.counts.tool_accepted,
                tool_rejected: claude.counts.tool_rejected,
                tool_acceptance_rate: (answered > 0).then(|| claude.counts.tool_accepted as f64 / answered as f64),
                tokens: claude.tokens,
                estimated_cost_usd: usd_number(claude.cost),
            }),
            copilot: (!copilot.days.is_empty()).then_some(CopilotJson {
                days: copilot.days.len() as u64,
                interactions: copilot.counts.interactions,
                generations: copilot.counts.generations,
                acceptances: copilot.counts.acceptances,
                lines_added: copilot.counts.lines_added,
                lines_removed: copilot.counts.lines_removed,
                tokens: copilot.tokens,
            }),
        })
    }
}
