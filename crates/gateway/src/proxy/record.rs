//! The record phase: the call's usage event is assembled by a pure function in core
//! ([`goodhart_core::calls::gateway_event`]) from the plan and the outcome; then the effects —
//! settle the admission (raising any budget alert it crosses), append to the spool, count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use goodhart_core::calls::{self, CallResult};
use goodhart_core::limits::Spent;
use goodhart_core::money::Nanos;
use goodhart_core::providers::ReportedUsage;
use goodhart_store::spool::SpooledEvent;

use crate::estimate::count_tokens;
use crate::limits::Admission;
use crate::metrics::Metrics;
use crate::proxy::plan::CallPlan;
use crate::services::Services;

/// What the response told us.
#[derive(Default)]
pub struct Outcome {
    pub status: u16,
    pub reported: Option<ReportedUsage>,
    pub response_id: Option<String>,
    pub output_text: String,
    pub first_byte: Option<Instant>,
    pub upstream_request_id: Option<String>,
    /// The response ended as the protocol says a response ends.
    pub complete: bool,
    pub client_disconnected: bool,
}

/// A call on its way to its record: the plan, the services that record it, and its hold on
/// budgets and rate limits (settled with the real usage, or released if it is dropped unrecorded).
pub struct Recording {
    pub services: Arc<Services>,
    pub plan: CallPlan,
    pub admission: Option<Admission>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Recording {
    /// Prices the call, settles its admission and appends its record to the spool.
    pub fn record(self, outcome: Outcome) {
        let recording = Instant::now();
        let Recording {
            services,
            plan,
            admission,
        } = self;
        let started = plan.started;
        let result = CallResult {
            status: outcome.status,
            reported: outcome.reported,
            response_id: outcome.response_id,
            output_text: outcome.output_text,
            latency_micros: micros(started.elapsed()),
            ttft_micros: outcome.first_byte.map(|t| micros(t - started)),
            upstream_request_id: outcome.upstream_request_id,
            complete: outcome.complete,
            client_disconnected: outcome.client_disconnected,
        };
        let facts = plan.facts;
        let mut event = calls::gateway_event(&facts, result, count_tokens);
        if plan.pinned_model {
            event.model.clone_from(&facts.model);
        }
        if event.estimated {
            services.metrics.estimated.inc();
        }
        let cost = services
            .prices
            .cost_of(Some(&facts.provider), &event.model, &event.tokens);
        if let Some(admission) = admission {
            let crossed = admission.settle(&Spent {
                key_id: &facts.key_id,
                who: &event.attribution,
                at: event.timestamp,
                cost: cost.map_or(Nanos::ZERO, |c| c.total()),
                tokens: event.tokens.total(),
            });
            crossed.into_iter().for_each(|alert| services.alerts.raise(alert));
        }
        services.recorder.append(SpooledEvent {
            event,
            cost,
            price_version: services.prices.version().to_owned(),
        });
        Metrics::observe_since(&services.metrics.phases.record, recording);
    }
}
