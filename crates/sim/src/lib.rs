//! Goodhart's simulators: synthetic but realistic usage for tests, benchmarks and the demo,
//! and a mock LLM provider ([`mock_provider`]) speaking both wire protocols.
//!
//! [`UsageGenerator`] writes usage events in the public ingestion format (`POST /api/v1/usage`)
//! for an organisation of users in teams, working on projects with a mix of models, over a span
//! of days. It is deterministic for a seed.

pub mod adversary;
pub mod evaluate;
pub mod mock_admin;
pub mod mock_analytics;
pub mod mock_provider;
pub mod org;

use goodhart_core::Micros;
use goodhart_core::time::MICROS_PER_DAY;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Binds a loopback port and serves `router` in the background for as long as the runtime runs
/// (the mocks, in tests).
pub async fn spawn_router(router: axum::Router) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    #[expect(clippy::disallowed_methods, reason = "a test's mock lives as long as its runtime")]
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

/// Models and their relative popularity in generated traffic.
const MODELS: &[(&str, &str, u32)] = &[
    ("anthropic", "claude-sonnet-4-5", 40),
    ("anthropic", "claude-opus-4-8", 10),
    ("anthropic", "claude-haiku-4-5", 15),
    ("openai", "gpt-5", 10),
    ("openai", "gpt-5-mini", 15),
    ("openai", "gpt-4o-mini", 10),
];

/// The shape of a generated organisation.
#[derive(Debug, Clone)]
pub struct OrgShape {
    pub users: usize,
    pub teams: usize,
    pub projects: usize,
    pub agents: usize,
}

impl Default for OrgShape {
    fn default() -> Self {
        OrgShape {
            users: 200,
            teams: 20,
            projects: 40,
            agents: 60,
        }
    }
}

/// Deterministic usage events over `[start, start + days)`, in time order (as live traffic and
/// log backfills arrive). Each user has a home team, two projects and a favourite model, as
/// people do, so rollups see realistic cardinality.
pub struct UsageGenerator {
    rng: StdRng,
    seed: u64,
    shape: OrgShape,
    start: Micros,
    span_micros: i64,
    next_id: u64,
    model_weight_total: u32,
    /// Expected number of events over the span, to advance time evenly; grows if exceeded.
    expected_events: u64,
}

impl UsageGenerator {
    /// `expected_events` spreads that many events evenly over the span; more wrap around to its start.
    pub fn new(seed: u64, shape: OrgShape, start: Micros, days: u32, expected_events: u64) -> UsageGenerator {
        UsageGenerator {
            rng: StdRng::seed_from_u64(seed),
            seed,
            shape,
            start,
            span_micros: i64::from(days.max(1)) * MICROS_PER_DAY,
            next_id: 0,
            model_weight_total: MODELS.iter().map(|m| m.2).sum(),
            expected_events: expected_events.max(1),
        }
    }

    fn model(&mut self) -> (&'static str, &'static str) {
        let mut pick = self.rng.random_range(0..self.model_weight_total);
        for (provider, model, weight) in MODELS {
            if pick < *weight {
                return (provider, model);
            }
            pick -= weight;
        }
        (MODELS[0].0, MODELS[0].1)
    }

    /// One event as a single line of JSON (no trailing newline).
    pub fn event_json(&mut self) -> String {
        let id = self.next_id;
        self.next_id += 1;
        let user = self.rng.random_range(0..self.shape.users);
        let team = user % self.shape.teams.max(1);
        let project = (user * 7 + usize::from(self.rng.random_bool(0.3))) % self.shape.projects.max(1);
        let position = (id % self.expected_events) as i128;
        let jitter = self.rng.random_range(0..60_000_000);
        let offset = (position * i128::from(self.span_micros) / i128::from(self.expected_events)) as i64 + jitter;
        let ts = Micros(self.start.0 + offset.min(self.span_micros - 1));
        let (provider, model) = if self.rng.random_bool(0.8) {
            let favourite = MODELS[user % MODELS.len()];
            (favourite.0, favourite.1)
        } else {
            self.model()
        };
        let agent = if self.shape.agents > 0 && self.rng.random_bool(0.3) {
            format!(r#", "agent": "agent-{}""#, user % self.shape.agents)
        } else {
            String::new()
        };
        let input: u32 = self.rng.random_range(50..20_000);
        let output: u32 = self.rng.random_range(10..4_000);
        let cache_read: u32 = if self.rng.random_bool(0.6) {
            self.rng.random_range(1_000..150_000)
        } else {
            0
        };
        let cache_write: u32 = if self.rng.random_bool(0.2) {
            self.rng.random_range(100..20_000)
        } else {
            0
        };
        format!(
            r#"{{"id": "sim-{seed}-{id}", "timestamp": "{ts}", "user": "user-{user:04}", "team": "team-{team:02}", "project": "project-{project:02}"{agent}, "provider": "{provider}", "model": "{model}", "input_tokens": {input}, "output_tokens": {output}, "cache_read_tokens": {cache_read}, "cache_write_tokens": {cache_write}, "finish_reason": "stop"}}"#,
            seed = self.seed,
            ts = ts.rfc3339(),
        )
    }

    /// `count` events as an NDJSON body.
    pub fn ndjson(&mut self, count: usize) -> String {
        let mut body = String::with_capacity(count * 330);
        for _ in 0..count {
            body.push_str(&self.event_json());
            body.push('\n');
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::usage::{IngestPolicy, Source, UsageEventInput};

    #[test]
    fn generated_events_pass_validation_and_are_deterministic() {
        let start = Micros(1_790_000_000_000_000);
        let mut generator = UsageGenerator::new(3, OrgShape::default(), start, 30, 500);
        let body = generator.ndjson(500);
        let policy = IngestPolicy {
            store_content: false,
            source: Source::Api,
        };
        for line in body.lines() {
            let input: UsageEventInput = serde_json::from_str(line).unwrap();
            let event = input.validate(policy).unwrap();
            assert!(event.timestamp >= start && event.timestamp.0 < start.0 + 30 * MICROS_PER_DAY);
        }
        assert_eq!(
            UsageGenerator::new(3, OrgShape::default(), start, 30, 500).ndjson(500),
            body
        );
    }
}
