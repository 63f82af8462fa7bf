//! `[alerts]`: the webhooks alerts are posted to and the rule that tells a runaway from heavy
//! but usual spend, as written in the configuration file and as validated.

use goodhart_core::money::Nanos;
use serde::Deserialize;

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

/// The validated `[alerts]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsConfig {
    pub webhooks: Vec<Webhook>,
    pub runaway: RunawayRule,
}

/// A value of `[alerts]` that cannot be used: `key` names it (e.g. `alerts.runaway_factor`).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct AlertsConfigError {
    pub key: String,
    pub reason: String,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> AlertsConfigError {
    AlertsConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl RawAlerts {
    /// Checks the webhooks are http(s) URLs and the runaway rule is sane.
    pub fn resolve(self) -> Result<AlertsConfig, AlertsConfigError> {
        for (i, webhook) in self.webhooks.iter().enumerate() {
            if !(webhook.url.starts_with("http://") || webhook.url.starts_with("https://"))
                || webhook.url.parse::<axum::http::Uri>().is_err()
            {
                return Err(invalid(
                    format!("alerts.webhooks[{i}].url"),
                    format!("{:?} is not an http(s) URL", webhook.url),
                ));
            }
        }
        let mut runaway = RunawayRule::default();
        if let Some(factor) = self.runaway_factor {
            if factor < 2 {
                return Err(invalid("alerts.runaway_factor", "must be at least 2"));
            }
            runaway.factor = factor;
        }
        if let Some(floor) = self.runaway_floor_usd_per_hour {
            runaway.floor_per_hour =
                Nanos::from_usd(&floor).map_err(|e| invalid("alerts.runaway_floor_usd_per_hour", e.to_string()))?;
        }
        Ok(AlertsConfig {
            webhooks: self.webhooks,
            runaway,
        })
    }
}
