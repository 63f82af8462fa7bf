//! Usage that did not pass through the gateway (the ingest API, OTLP, imports): priced with
//! the current table and stored, idempotent by id; and the agents' counters kept for
//! reconciliation.

use goodhart_core::telemetry::TelemetryPoint;
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::usage::{IngestPolicy, Source, UsageEvent};
use goodhart_store::{InsertOutcome, PricedEvent};
use serde::Serialize;

use super::access::Access;
use super::{App, AppError};

/// Events may be stamped at most this far in the future (clock skew), never more.
pub const MAX_FUTURE_SKEW_MICROS: i64 = MICROS_PER_DAY;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct IngestResponse {
    pub accepted: u64,
    pub duplicates: u64,
    /// Accepted events whose model has no price yet (stored, flagged, priced on `goodhart prices reprice`).
    pub unpriced: u64,
    pub price_version: String,
    /// A personal ingest token's person: every accepted event is theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributed_to: Option<String>,
    /// Events that named another user, attributed to `attributed_to` instead.
    #[serde(skip_serializing_if = "is_zero")]
    pub reattributed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Attributes usage as its sender's token says: all of it to a personal ingest token's
/// person (whatever user an event names: they may only send their own), and what names no
/// team to an ingest token's team. Returns how many events named another user.
pub fn attribute_to_sender(access: &Access, events: &mut [UsageEvent]) -> u64 {
    let mut reattributed = 0;
    for event in events {
        let attribution = &mut event.attribution;
        if let Some(person) = access.user()
            && attribution.user != person
        {
            attribution.user = person.to_owned();
            reattributed += 1;
        }
        if attribution.team.is_none() {
            attribution.team = access.team().map(str::to_owned);
        }
    }
    reattributed
}

impl App {
    /// How events arriving from `source` are validated and what of their text is kept.
    pub fn ingest_policy(&self, source: Source) -> IngestPolicy {
        IngestPolicy {
            store_content: self.settings().store_content,
            source,
        }
    }

    /// Attributes validated events as the sender's token says ([`attribute_to_sender`]),
    /// prices and stores them; duplicates by id are skipped and counted.
    pub async fn ingest_usage(&self, sender: &Access, mut events: Vec<UsageEvent>) -> Result<IngestResponse, AppError> {
        let reattributed = attribute_to_sender(sender, &mut events);
        let outcome = self.store_usage(events).await?;
        Ok(IngestResponse {
            accepted: outcome.inserted,
            duplicates: outcome.duplicates,
            unpriced: outcome.unpriced,
            price_version: self.prices().version().to_owned(),
            attributed_to: sender.user().map(str::to_owned),
            reattributed,
        })
    }

    /// Prices events with the current table and stores them (duplicates by id are skipped);
    /// those naming no team are their person's home team's, where the directory has one.
    pub async fn store_usage(&self, mut events: Vec<UsageEvent>) -> Result<InsertOutcome, AppError> {
        self.attribute_to_home_teams(&mut events).await?;
        let prices = self.prices();
        let priced: Vec<PricedEvent> = events
            .into_iter()
            .map(|event| {
                let cost = prices.cost_of(event.provider.as_deref(), &event.model, &event.tokens);
                PricedEvent { event, cost }
            })
            .collect();
        Ok(self.store().insert_usage(priced, prices.version()).await?)
    }

    /// Keeps agents' reported counters for reconciliation; returns how many were new.
    pub async fn store_telemetry(&self, points: &[TelemetryPoint]) -> Result<u64, AppError> {
        Ok(self.store().insert_telemetry_points(points).await?)
    }
}
