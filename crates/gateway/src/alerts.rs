//! Raising and delivering alerts.
//!
//! Threshold alerts come from settled calls; forecast and runaway alerts from an evaluation
//! every minute. Each alert is stored first — its id names the event, so one raised twice
//! (by two instances, or after a restart) is stored and delivered once — then posted to every
//! configured webhook, generic JSON or Slack-compatible (`{"text": …}`), retried with
//! exponential backoff until delivered or out of attempts; every attempt is recorded.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use goodhart_core::Micros;
use goodhart_core::budgets::{self, Alert};
use goodhart_core::limits::BudgetWindow;
use goodhart_core::money::Nanos;
use goodhart_core::time::MICROS_PER_HOUR;
use goodhart_store::{Store, StoreError};
use http_body_util::Full;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::Limiter;
use crate::upstream::UpstreamClient;

/// `[alerts]` as written in the configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// A scope's last 15 minutes are a runaway when their hourly rate is this many times its
    /// baseline (default 5).
    pub runaway_factor: Option<u32>,
    /// …and above this many USD per hour (default 1).
    pub runaway_floor_usd_per_hour: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// `json` (default) or `slack`.
    #[serde(default)]
    pub format: WebhookFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

/// How runaways are told apart from heavy but usual spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunawayRule {
    pub factor: u32,
    pub floor_per_hour: Nanos,
}

impl Default for RunawayRule {
    fn default() -> Self {
        RunawayRule {
            factor: 5,
            floor_per_hour: Nanos(1_000_000_000),
        }
    }
}

/// The recent window and the baseline a runaway is judged on.
const RECENT: i64 = MICROS_PER_HOUR / 4;
const BASELINE: i64 = 7 * 24 * MICROS_PER_HOUR;
/// Delivery attempts per alert, and the first pause between them (doubling each time).
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Forecast and runaway alerts for the budgets in `snapshot` at `now`.
pub async fn evaluate(
    store: &dyn Store,
    snapshot: &[BudgetWindow],
    rule: RunawayRule,
    now: Micros,
) -> Result<Vec<Alert>, StoreError> {
    let mut raised = Vec::new();
    for BudgetWindow { budget, window, spent } in snapshot {
        if let Some(projected) = budgets::forecast(spent.cost, *window, now)
            && projected > budget.limit
        {
            raised.push(Alert::forecast(budget, *window, projected, now));
        }
        let recent = store.spend(&budget.scope, Micros(now.0 - RECENT), now).await?.cost;
        let before = store
            .spend(&budget.scope, Micros(now.0 - RECENT - BASELINE), Micros(now.0 - RECENT))
            .await?
            .cost;
        let per_hour = |cost: Nanos, span: i64| {
            Nanos((i128::from(cost.0) * i128::from(MICROS_PER_HOUR) / i128::from(span)) as i64)
        };
        let (recent_rate, baseline_rate) = (per_hour(recent, RECENT), per_hour(before, BASELINE));
        if budgets::is_runaway(recent_rate, baseline_rate, rule.factor, rule.floor_per_hour) {
            raised.push(Alert::runaway(budget, recent_rate, baseline_rate, now));
        }
    }
    Ok(raised)
}

/// The body a webhook receives.
pub fn payload(alert: &Alert, format: WebhookFormat) -> serde_json::Value {
    match format {
        WebhookFormat::Json => serde_json::json!({
            "id": alert.id,
            "kind": alert.kind.as_str(),
            "budget_id": alert.budget(),
            "scope": alert.scope,
            "message": alert.message,
            "created_at": alert.created_at.rfc3339(),
        }),
        WebhookFormat::Slack => serde_json::json!({
            "text": format!(":rotating_light: *Goodhart {} alert*: {}", alert.kind.as_str(), alert.message),
        }),
    }
}

/// Stores and delivers alerts sent to it.
#[derive(Clone)]
pub struct Alerter {
    sender: mpsc::UnboundedSender<Alert>,
}

impl Alerter {
    /// Starts the delivery loop and the minute-by-minute evaluation on `tracker`.
    pub fn start(
        store: Arc<dyn Store>,
        client: UpstreamClient,
        webhooks: Vec<Webhook>,
        rule: RunawayRule,
        limits: Arc<Limiter>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Alerter {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Alert>();
        let webhooks = Arc::new(webhooks);
        let (delivery_store, delivery_tracker, delivery_cancel) = (Arc::clone(&store), tracker.clone(), cancel.clone());
        tracker.spawn(async move {
            // Ids handled lately: an event raised on every refused call is stored once
            // without a database round trip per call.
            let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
            loop {
                let alert = tokio::select! {
                    alert = receiver.recv() => match alert {
                        Some(alert) => alert,
                        None => break,
                    },
                    () = delivery_cancel.cancelled() => break,
                };
                if seen.len() >= 10_000 {
                    seen.clear();
                }
                if !seen.insert(alert.id.clone()) {
                    continue;
                }
                match delivery_store.insert_alert(&alert).await {
                    Ok(false) => continue, // raised before: stored and delivered once
                    Ok(true) => tracing::warn!(alert = %alert.id, "{}", alert.message),
                    Err(e) => {
                        tracing::error!(alert = %alert.id, "alert could not be stored: {e}; {}", alert.message);
                        continue;
                    }
                }
                let (store, client, webhooks) = (Arc::clone(&delivery_store), client.clone(), Arc::clone(&webhooks));
                let cancel = delivery_cancel.clone();
                delivery_tracker
                    .spawn(async move { deliver(store.as_ref(), &client, &webhooks, &alert, &cancel).await });
            }
        });
        let alerter = Alerter { sender };
        let evaluator = alerter.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = cancel.cancelled() => break,
                }
                match evaluate(store.as_ref(), &limits.snapshot(), rule, goodhart_store::now_micros()).await {
                    Ok(alerts) => alerts.into_iter().for_each(|a| evaluator.raise(a)),
                    Err(e) => tracing::warn!("alert evaluation failed: {e}"),
                }
            }
        });
        alerter
    }

    /// An alerter that drops what it is given (for measuring the record path alone).
    pub fn disconnected() -> Alerter {
        Alerter {
            sender: mpsc::unbounded_channel().0,
        }
    }

    /// Queues an alert for storing and delivery (never blocks the caller).
    pub fn raise(&self, alert: Alert) {
        let _ = self.sender.send(alert);
    }
}

/// Posts `alert` to every webhook until each has taken it, retrying with backoff; a shutdown
/// stops the retries (the alert stays stored, undelivered, with its last error).
async fn deliver(
    store: &dyn Store,
    client: &UpstreamClient,
    webhooks: &[Webhook],
    alert: &Alert,
    cancel: &CancellationToken,
) {
    if webhooks.is_empty() {
        return;
    }
    let mut pending: Vec<&Webhook> = webhooks.iter().collect();
    let mut pause = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let mut failed = Vec::new();
        let mut last_error = None;
        for webhook in pending {
            if let Err(e) = post(client, webhook, alert).await {
                last_error = Some(format!("{}: {e}", webhook.url));
                failed.push(webhook);
            }
        }
        let delivered = failed.is_empty().then(goodhart_store::now_micros);
        if let Err(e) = store.alert_attempt(&alert.id, delivered, last_error.as_deref()).await {
            tracing::warn!(alert = %alert.id, "could not record a delivery attempt: {e}");
        }
        if failed.is_empty() {
            return;
        }
        if attempt == ATTEMPTS {
            tracing::error!(alert = %alert.id, error = last_error.as_deref().unwrap_or(""), "alert delivery gave up");
            return;
        }
        pending = failed;
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => return,
        }
        pause *= 2;
    }
}

async fn post(client: &UpstreamClient, webhook: &Webhook, alert: &Alert) -> Result<(), String> {
    let body = payload(alert, webhook.format).to_string();
    let request = hyper::Request::post(&webhook.url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", response.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_core::budgets::{Action, Budget, BudgetScope, Period};
    use goodhart_core::limits::Amount;
    use goodhart_core::pricing::PriceTable;
    use goodhart_core::usage::{Attribution, Source, TokenCounts, UsageEvent};
    use goodhart_store::PricedEvent;
    use goodhart_store::testing::TestDatabase;

    fn budget(agent: &str) -> Budget {
        Budget {
            id: agent.into(),
            scope: BudgetScope::Agent(agent.into()),
            period: Period::Month,
            limit: Nanos(10_000 * 1_000_000_000),
            token_limit: None,
            action: Action::Alert,
            thresholds: vec![50, 80, 100],
            timezone: "UTC".into(),
            created_at: Micros(0),
        }
    }

    /// Calls of `dollars` each (Sonnet input at $3/Mtok), every `every` minutes from `from` to `to`.
    fn calls(agent: &str, from: Micros, to: Micros, every: i64, dollars: u64) -> Vec<PricedEvent> {
        let prices = PriceTable::builtin();
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let tokens = TokenCounts {
                input: dollars * 1_000_000 / 3,
                ..Default::default()
            };
            let event = UsageEvent {
                id: format!("{agent}-{}", at.0),
                timestamp: at,
                attribution: Attribution {
                    user: "u".into(),
                    agent: Some(agent.into()),
                    ..Default::default()
                },
                provider: None,
                model: "claude-sonnet-4-5".into(),
                tokens,
                finish_reason: None,
                fingerprints: Default::default(),
                content: None,
                source: Source::Api,
                estimated: false,
                call: None,
            };
            let cost = prices.cost_of(None, "claude-sonnet-4-5", &tokens);
            out.push(PricedEvent { event, cost });
            at = Micros(at.0 + every * 60_000_000);
        }
        out
    }

    #[tokio::test]
    async fn a_3am_loop_is_a_runaway_and_a_steady_heavy_agent_is_not() {
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        let now = goodhart_core::time::parse_rfc3339("2026-11-20T03:10:00Z").unwrap();
        let week_ago = Micros(now.0 - BASELINE - RECENT);
        let recent = Micros(now.0 - RECENT);
        let mut events = calls("looper", week_ago, recent, 60, 1); // $1 an hour, all week
        events.extend(calls("looper", recent, now, 1, 1)); // then $1 a minute at 3 a.m.
        events.extend(calls("heavy", week_ago, now, 1, 1)); // $1 a minute, all week long
        store.insert_usage(events, "test").await.unwrap();
        let window = budgets::window(Period::Month, &jiff::tz::TimeZone::UTC, now);
        let snapshot = vec![
            BudgetWindow {
                budget: budget("looper"),
                window,
                spent: Amount::ZERO,
            },
            BudgetWindow {
                budget: budget("heavy"),
                window,
                spent: Amount::ZERO,
            },
        ];
        let alerts = evaluate(store.as_ref(), &snapshot, RunawayRule::default(), now)
            .await
            .unwrap();
        let runaways: Vec<&str> = alerts
            .iter()
            .filter(|a| a.kind == budgets::AlertKind::Runaway)
            .map(|a| a.budget_id.as_str())
            .collect();
        assert_eq!(runaways, vec!["looper"], "{alerts:?}");
        assert!(alerts[0].message.contains("/hour"), "{}", alerts[0].message);
    }

    #[tokio::test]
    async fn forecasts_over_the_limit_raise_one_alert_per_window() {
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        let now = goodhart_core::time::parse_rfc3339("2026-11-16T00:00:00Z").unwrap();
        let window = budgets::window(Period::Month, &jiff::tz::TimeZone::UTC, now);
        let half_spent = Nanos(6_000 * 1_000_000_000); // $6,000 of $10,000 by mid-month
        let alerts = evaluate(
            store.as_ref(),
            &[BudgetWindow {
                budget: budget("a"),
                window,
                spent: Amount {
                    cost: half_spent,
                    ..Amount::ZERO
                },
            }],
            RunawayRule::default(),
            now,
        )
        .await
        .unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].id, format!("forecast:a:{}", window.start.0));
        assert!(
            alerts[0].message.contains("$12,000.00") || alerts[0].message.contains("$12000.00"),
            "{}",
            alerts[0].message
        );
    }

    #[test]
    fn slack_webhooks_get_text() {
        let alert = Alert {
            id: "x".into(),
            kind: budgets::AlertKind::Threshold,
            budget_id: "b".into(),
            scope: "team payments".into(),
            message: "team payments reached 80 %".into(),
            created_at: Micros(0),
        };
        assert_eq!(
            payload(&alert, WebhookFormat::Slack)["text"],
            ":rotating_light: *Goodhart threshold alert*: team payments reached 80 %"
        );
        assert_eq!(payload(&alert, WebhookFormat::Json)["kind"], "threshold");
    }
}
