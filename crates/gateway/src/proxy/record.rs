//! The record phase: the call's usage event is assembled by a pure function in core
//! ([`goodhart_core::calls::gateway_event`]) from the plan and the outcome; then the effects —
//! settle the admission (raising any budget alert it crosses), append to the spool, count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use goodhart_core::calls::{self, CallResult};
use goodhart_core::limits::Spent;
use goodhart_core::money::Nanos;
use goodhart_core::providers::ReportedUsage;
use goodhart_core::usage::request_call_id;
use goodhart_store::spool::SpooledEvent;

use crate::estimate::count_tokens;
use crate::limits::Admission;
use crate::metrics::Metrics;
use crate::proxy::context::new_request_id;
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
    /// The provider had the call but never answered it.
    pub unanswered: bool,
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
            unanswered: outcome.unanswered,
        };
        let mut facts = plan.facts;
        if facts.id.is_empty() {
            // Unanswered: no provider request id to name the call by.
            facts.id = request_call_id(&new_request_id());
        }
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

/// A metered call sent to its provider, until the provider answers: if it never does — the
/// client went away, or shutdown cut the connection, and the handler was dropped while it
/// waited — the call is recorded as abandoned by the client (status 499), its input
/// estimated, for the provider has it and may bill it. Without this, a client that hung up
/// on a slow non-streamed call spent money nothing recorded, and its budgets' hold was
/// released as if nothing had happened.
pub struct AwaitingAnswer(Option<Recording>);

/// nginx's "client closed request": what the client saw of a call it left before the answer.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

impl AwaitingAnswer {
    pub fn new(recording: Recording) -> AwaitingAnswer {
        AwaitingAnswer(Some(recording))
    }

    /// The provider answered (or the call failed before reaching it): the call goes on.
    #[expect(
        clippy::expect_used,
        reason = "only this method and drop take the recording, and this one consumes the guard"
    )]
    pub fn answered(mut self) -> Recording {
        self.0.take().expect("taken only here")
    }
}

impl Drop for AwaitingAnswer {
    fn drop(&mut self) {
        if let Some(recording) = self.0.take() {
            recording.record_unanswered(CLIENT_CLOSED_REQUEST, true);
        }
    }
}

impl Recording {
    /// Records a call its provider had but did not answer (see [`AwaitingAnswer`]).
    pub fn record_unanswered(self, status: u16, client_disconnected: bool) {
        if !self.plan.metered {
            return;
        }
        self.record(Outcome {
            status,
            client_disconnected,
            unanswered: true,
            ..Default::default()
        });
    }
}
