//! Agents' own usage counters (Claude Code's `claude_code.token.usage` and
//! `claude_code.cost.usage` metrics), kept beside the usage events to check them, never added
//! to them: [`reconcile`] puts what the counters say next to what was recorded, per session.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::money::Nanos;
use crate::time::Micros;
use crate::usage::TokenCounts;

crate::named_enum! {
    /// What one metric point counts.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum TelemetryKind {
        InputTokens = "input_tokens",
        OutputTokens = "output_tokens",
        CacheReadTokens = "cache_read_tokens",
        CacheWriteTokens = "cache_write_tokens",
        /// Nano-dollars, as the agent priced its own calls.
        CostNanos = "cost_nanos",
    }
}

/// One delta point of an agent's usage counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryPoint {
    /// A digest of the series and its interval: an exporter's retry is stored once.
    pub id: String,
    /// The end of the interval the point counts.
    pub timestamp: Micros,
    pub user: String,
    pub session: Option<String>,
    pub agent: String,
    pub model: Option<String>,
    pub kind: TelemetryKind,
    pub amount: u64,
}

/// Usage recorded for one session, by any source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordedSession {
    pub session: String,
    pub calls: u64,
    pub tokens: TokenCounts,
    pub cost: Nanos,
}

/// Counted by the agent and recorded here, side by side.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Totals {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    /// Cache writes of every duration.
    pub cache_write_tokens: u64,
    pub cost_nanos: i64,
}

impl Totals {
    pub fn tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    fn add_point(&mut self, kind: TelemetryKind, amount: u64) {
        let slot = match kind {
            TelemetryKind::InputTokens => &mut self.input_tokens,
            TelemetryKind::OutputTokens => &mut self.output_tokens,
            TelemetryKind::CacheReadTokens => &mut self.cache_read_tokens,
            TelemetryKind::CacheWriteTokens => &mut self.cache_write_tokens,
            TelemetryKind::CostNanos => {
                self.cost_nanos = self
                    .cost_nanos
                    .saturating_add(i64::try_from(amount).unwrap_or(i64::MAX));
                return;
            }
        };
        *slot = slot.saturating_add(amount);
    }

    fn of_recorded(tokens: &TokenCounts, cost: Nanos) -> Totals {
        Totals {
            // Reasoning is part of the output in the agents' own counts.
            input_tokens: tokens.input,
            output_tokens: tokens.output.saturating_add(tokens.reasoning),
            cache_read_tokens: tokens.cache_read,
            cache_write_tokens: tokens.cache_write_5m.saturating_add(tokens.cache_write_1h),
            cost_nanos: cost.0,
        }
    }
}

/// One session's reconciliation: what its agent counted, what was recorded, and how many of the
/// counted tokens no recorded call accounts for (negative: more recorded than counted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    pub user: String,
    pub session: String,
    pub agent: String,
    pub counted: Totals,
    pub recorded: Totals,
    pub recorded_calls: u64,
    pub missing_tokens: i64,
}

/// Sessions that reported counters, with the usage recorded for them; most missing first.
pub fn reconcile(points: &[TelemetryPoint], recorded: &[RecordedSession]) -> Vec<Reconciled> {
    let mut counted: BTreeMap<(&str, &str), (&str, Totals)> = BTreeMap::new();
    for point in points {
        let Some(session) = point.session.as_deref() else {
            continue;
        };
        let entry = counted
            .entry((point.user.as_str(), session))
            .or_insert_with(|| (point.agent.as_str(), Totals::default()));
        entry.1.add_point(point.kind, point.amount);
    }
    let recorded: BTreeMap<&str, &RecordedSession> = recorded.iter().map(|r| (r.session.as_str(), r)).collect();
    let mut rows: Vec<Reconciled> = counted
        .into_iter()
        .map(|((user, session), (agent, counted))| {
            let (recorded, calls) = recorded
                .get(session)
                .map(|r| (Totals::of_recorded(&r.tokens, r.cost), r.calls))
                .unwrap_or_default();
            let missing = i128::from(counted.tokens()) - i128::from(recorded.tokens());
            Reconciled {
                user: user.to_owned(),
                session: session.to_owned(),
                agent: agent.to_owned(),
                missing_tokens: i64::try_from(missing).unwrap_or(if missing > 0 { i64::MAX } else { i64::MIN }),
                counted,
                recorded,
                recorded_calls: calls,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.missing_tokens.cmp(&a.missing_tokens).then(a.session.cmp(&b.session)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(session: &str, kind: TelemetryKind, amount: u64) -> TelemetryPoint {
        TelemetryPoint {
            id: format!("{session}{kind:?}{amount}"),
            timestamp: Micros(0),
            user: "ana".into(),
            session: Some(session.into()),
            agent: "claude-code".into(),
            model: Some("claude-opus-4-8".into()),
            kind,
            amount,
        }
    }

    #[test]
    fn counted_and_recorded_sessions_line_up() {
        let points = [
            point("s1", TelemetryKind::InputTokens, 100),
            point("s1", TelemetryKind::InputTokens, 50),
            point("s1", TelemetryKind::OutputTokens, 10),
            point("s1", TelemetryKind::CostNanos, 2_000),
            point("s2", TelemetryKind::OutputTokens, 7),
        ];
        let recorded = [RecordedSession {
            session: "s1".into(),
            calls: 2,
            tokens: TokenCounts {
                input: 150,
                output: 4,
                reasoning: 6,
                ..Default::default()
            },
            cost: Nanos(2_000),
        }];
        let rows = reconcile(&points, &recorded);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].session, "s2", "the session nothing recorded comes first");
        assert_eq!((rows[0].missing_tokens, rows[0].recorded_calls), (7, 0));
        assert_eq!(rows[1].counted.input_tokens, 150);
        assert_eq!(rows[1].recorded.output_tokens, 10, "reasoning counts as output");
        assert_eq!((rows[1].missing_tokens, rows[1].counted.cost_nanos), (0, 2_000));
    }
}
