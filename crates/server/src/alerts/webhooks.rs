//! Posting an alert to the configured webhooks — generic JSON or Slack-compatible
//! (`{"text": …}`) — retried with exponential backoff until delivered or out of attempts; every
//! attempt is recorded with the stored alert.

use std::time::Duration;

use axum::http;
use bytes::Bytes;
use goodhart_core::budgets::Alert;
use goodhart_gateway::upstream::UpstreamClient;
use goodhart_store::Store;
use http_body_util::Full;
use tokio_util::sync::CancellationToken;

use super::config::{Webhook, WebhookFormat};

/// Delivery attempts per alert, and the first pause between them (doubling each time).
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

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

/// Posts `alert` to every webhook until each has taken it, retrying with backoff; a shutdown
/// stops the retries (the alert stays stored, undelivered, with its last error).
pub async fn deliver(
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
    let request = http::Request::post(&webhook.url)
        .header(http::header::CONTENT_TYPE, "application/json")
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
    use goodhart_core::Micros;
    use goodhart_core::budgets;

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
