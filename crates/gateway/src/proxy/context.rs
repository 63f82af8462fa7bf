//! What every handler shares ([`Proxy`]), and the phases each call goes through before it is
//! sent, whatever carries it (an HTTP request or a WebSocket frame): authenticate the key,
//! admit the call against budgets and rate limits, name it.

use std::sync::Arc;

use axum::http::HeaderMap;
use goodhart_core::Micros;
use goodhart_core::budgets;
use goodhart_core::keys::VirtualKey;
use goodhart_core::limits::{Call, Pool, Refusal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, KeyCache};
use crate::config::GatewayConfig;
use crate::errors::GatewayError;
use crate::limits::{Admission, Denied};
use crate::proxy::plan::CallPlan;
use crate::services::Services;
use crate::upstream::UpstreamClient;

/// What the handlers share: configuration, the upstream client, the key cache, the services,
/// and what long-lived connections watch: the gateway's shutdown, and its task tracker (which
/// waits for them).
pub struct Proxy {
    pub config: GatewayConfig,
    pub client: UpstreamClient,
    pub keys: KeyCache,
    pub services: Arc<Services>,
    pub shutdown: CancellationToken,
    pub sessions: TaskTracker,
}

pub async fn authenticate(
    proxy: &Proxy,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Arc<VirtualKey>, GatewayError> {
    let now = goodhart_store::now_micros();
    match proxy.keys.authenticate(auth::credential(headers, query), now).await {
        Ok(Ok(key)) => Ok(key),
        Ok(Err(refusal)) => Err(GatewayError::Unauthorized(refusal.to_string())),
        Err(e) => {
            // Handled here: the detail is logged once, and the client is told only that keys
            // cannot be checked (never the database's own words).
            tracing::error!("key lookup failed: {e}");
            Err(GatewayError::KeyStoreUnavailable)
        }
    }
}

/// The admit phase: holds the call's worst-case cost against its budgets and its tokens
/// against its key's rate limits (unmetered calls hold nothing).
pub async fn admit(services: &Services, plan: &CallPlan, key: &VirtualKey) -> Result<Option<Admission>, GatewayError> {
    if !plan.metered {
        return Ok(None);
    }
    let facts = &plan.facts;
    let call = Call {
        key_id: &key.id,
        rates: key.limits,
        who: &facts.attribution,
        cost: services
            .prices
            .resolve(Some(&facts.provider), &facts.model)
            .map(|price| budgets::worst_case_cost(price, plan.input_estimate, plan.max_output)),
        tokens: plan.input_estimate.saturating_add(plan.max_output),
    };
    match services.limits.admit(&call, facts.started_at).await {
        Ok(admission) => {
            if !admission.lent_own().is_empty() {
                failed_open(services, &admission, facts.started_at);
            }
            Ok(Some(admission))
        }
        Err(Denied::Refused(Refusal::Rate(refusal))) => Err(GatewayError::RateLimited(refusal)),
        Err(Denied::Refused(Refusal::Budget(refusal))) => {
            // The first refusal of a budget's window is also an alert that its hard cap was
            // hit (the dispatcher keeps one per window, however many calls are refused).
            services.alerts.raise(goodhart_core::budgets::Alert::blocked(
                &refusal.budget_id,
                &refusal.scope,
                refusal.window_start,
                refusal.limit,
                refusal.resets_at,
                facts.started_at,
            ));
            Err(GatewayError::BudgetExceeded(Box::new(refusal)))
        }
        Err(Denied::Store(e)) => {
            tracing::error!("shared budgets and rate limits unreachable: {e}");
            Err(GatewayError::LimitsUnavailable)
        }
    }
}

/// Counts a call admitted on this instance's own authority, the store being unreachable, and
/// raises each budget's fail-open alert (the dispatcher keeps one per window).
fn failed_open(services: &Services, admission: &Admission, now: Micros) {
    services.metrics.fail_open_admissions.inc();
    for pool in admission.lent_own() {
        if let Pool::Budget { budget, window } = pool
            && let Some(percent) = services.limits.when_unreachable(pool).percent()
        {
            services
                .alerts
                .raise(goodhart_core::budgets::Alert::fail_open(budget, *window, percent, now));
        }
    }
}

/// A request id for a provider that sent none.
pub fn new_request_id() -> String {
    format!("req_gh{:032x}", rand::random::<u128>())
}
