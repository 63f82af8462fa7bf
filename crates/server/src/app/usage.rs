//! Usage that did not pass through the gateway (the ingest API, OTLP, imports): priced with
//! the current table and stored, idempotent by id; and the agents' counters kept for
//! reconciliation.

use goodhart_core::telemetry::TelemetryPoint;
use goodhart_core::time::MICROS_PER_DAY;
use goodhart_core::usage::{IngestPolicy, Source, UsageEvent};
use goodhart_store::{InsertOutcome, PricedEvent};
use serde::Serialize;

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
}

impl App {
    /// How events arriving from `source` are validated and what of their text is kept.
    pub fn ingest_policy(&self, source: Source) -> IngestPolicy {
        IngestPolicy {
            store_content: self.settings().store_content,
            source,
        }
    }

    /// Prices and stores validated events; duplicates by id are skipped and counted.
    pub async fn ingest_usage(&self, events: Vec<UsageEvent>) -> Result<IngestResponse, AppError> {
        let outcome = self.store_usage(events).await?;
        Ok(IngestResponse {
            accepted: outcome.inserted,
            duplicates: outcome.duplicates,
            unpriced: outcome.unpriced,
            price_version: self.prices().version().to_owned(),
        })
    }

    /// Prices events with the current table and stores them (duplicates by id are skipped).
    pub async fn store_usage(&self, events: Vec<UsageEvent>) -> Result<InsertOutcome, AppError> {
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
