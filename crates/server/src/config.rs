//! Configuration: one validated runtime type built from defaults, an optional TOML file,
//! environment variables and command-line flags, in increasing precedence.
//!
//! The file is read strictly: an unknown key or a bad value is an error naming the key. The CLI
//! (clap) already merges flags over environment variables; this module merges that over the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use goodhart_core::money::{Nanos, parse_scaled_decimal};
use goodhart_core::outcomes::{KindRule, OutcomeKind};
use goodhart_core::pricing::{PriceTable, RawDecimal, RawModelPrice};
use goodhart_gateway::{GatewayConfig, RawGateway, RawProvider};
use serde::Deserialize;

use crate::agent_import::{AnalyticsSource, GITHUB_API};
use crate::alerts::{AlertsConfig, RawAlerts};
use crate::provider_import::{ReportApi, ReportSource};
use crate::settings::{OutcomeSettings, ReconciliationSettings, SelfServiceSettings, Settings, WasteSettings};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://goodhart.db";
pub const DEFAULT_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 60;

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// `sqlite://PATH` or `postgres://…`.
    pub database_url: Option<String>,
    /// Keep prompt and completion text (off by default: only fingerprints are kept).
    pub store_content: Option<bool>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub prices: RawPrices,
    #[serde(default)]
    pub gateway: RawGateway,
    /// The LLM providers the gateway forwards to (none: real APIs for the keys set in
    /// `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` / `GEMINI_API_KEY`, the built-in mock for the others).
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    /// Alert webhooks and the runaway rule.
    #[serde(default)]
    pub alerts: RawAlerts,
    /// GitHub webhooks and how outcomes are valued.
    #[serde(default)]
    pub outcomes: RawOutcomes,
    /// Waste detection: its schedule and its alerts.
    #[serde(default)]
    pub waste: RawWaste,
    /// The providers' bills: their scheduled import and how they are held against the meter.
    #[serde(default)]
    pub reconciliation: RawReconciliation,
    /// What engineers may do for themselves.
    #[serde(default)]
    pub self_service: RawSelfService,
    /// The audit log.
    #[serde(default)]
    pub audit: RawAudit,
    /// How people sign in: `[auth.oidc]`, single sign-on through an OpenID Connect provider.
    #[serde(default)]
    pub auth: RawAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelfService {
    pub keys: Option<bool>,
    pub max_keys: Option<u32>,
    pub max_key_days: Option<u32>,
    pub max_requests_per_minute: Option<u64>,
    pub max_tokens_per_minute: Option<u64>,
    pub ingest_tokens: Option<bool>,
    pub max_ingest_tokens: Option<u32>,
}

/// The `[audit]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// The server is behind a proxy that appends the client's address to `X-Forwarded-For`:
    /// record that address instead of the proxy's (default false: a client could write any
    /// address there).
    pub trust_forwarded_for: Option<bool>,
}

/// The audit log's settings.
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub oidc: Option<crate::oidc::RawOidc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReconciliation {
    /// Seconds between scheduled imports of the providers' usage and cost reports, for each
    /// provider whose admin key is set (default 3600; 0 turns them off).
    pub import_every_secs: Option<u64>,
    /// A day whose billed and metered totals differ by more than this percent of the bill
    /// (default 5) …
    pub drift_alert_percent: Option<RawDecimal>,
    /// … and by more than this many dollars (default 1) raises a `reconciliation` alert.
    pub drift_alert_min_usd: Option<RawDecimal>,
    /// Whether drift raises alerts (default true).
    pub alerts: Option<bool>,
    /// The ids the providers' reports give the provider keys the gateway sends upstream; usage
    /// by any other key is reported as bypassing the gateway.
    pub gateway_keys: Option<Vec<String>>,
    /// The team that owns a provider key, workspace or project (by its id in the reports).
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// The provider (`anthropic`, `openai`) that bills what is metered under another name: a
    /// gateway provider named `claude-prod`, say.
    #[serde(default)]
    pub billed_as: BTreeMap<String, String>,
    /// Where the admin APIs are (default the providers' own; a proxy or a mock in tests).
    pub anthropic_admin_url: Option<String>,
    pub openai_admin_url: Option<String>,
    /// The GitHub organisation whose Copilot usage metrics are imported (with `GITHUB_TOKEN`).
    pub copilot_org: Option<String>,
    /// Where GitHub's REST API is (default `https://api.github.com`).
    pub github_api_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWaste {
    /// Seconds between scheduled detection passes (default 300; 0 turns them off, leaving
    /// on-demand passes).
    pub detect_every_secs: Option<u64>,
    /// Days the first pass after start covers (default 30).
    pub backfill_days: Option<u32>,
    /// Whether new findings raise alerts (default true).
    pub alerts: Option<bool>,
    /// The confidence from which a new finding raises an alert, 0 to 1 (default 0.85).
    pub alert_min_confidence: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutcomes {
    /// The secret GitHub signs deliveries with (else `GOODHART_GITHUB_WEBHOOK_SECRET`).
    pub github_webhook_secret: Option<String>,
    /// Environments whose successful deployments count (default `production`, `prod`).
    pub production_environments: Option<Vec<String>>,
    /// Teams with fewer active members are left out of team rankings (default 5).
    pub min_team_members: Option<usize>,
    /// The share of a self-reported outcome that counts (default 0.5).
    pub self_reported_discount: Option<f64>,
    /// Most value one person earns by self-reporting in a week, in normalised deployments
    /// (default 0.5).
    pub self_reported_cap_per_week: Option<f64>,
    /// Per kind of outcome (`deployment`, `pr_merged`, `ticket_resolved`, `incident`, `custom`).
    #[serde(default)]
    pub kinds: BTreeMap<String, RawOutcomeKind>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutcomeKind {
    /// What one self-reported outcome of the kind earns, in normalised deployments, before the
    /// self-report discount.
    pub weight: Option<f64>,
    /// Engineer-hours one outcome of the kind is estimated to save (for the ROI report).
    pub hours_saved: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest request body, compressed or decompressed.
    pub max_body_bytes: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    /// The rest: see [`ConnectionLimits`].
    pub max_connections: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    pub max_header_bytes: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    pub write_stall_secs: Option<u64>,
    pub drain_secs: Option<u64>,
}

/// What one client connection may do, how many there may be, and how long shutdown waits
/// (`[limits]`; README "What Goodhart promises"), as `crate::serve` enforces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open client connections at most. At the cap a new connection takes the place of the
    /// connection idle the longest (no request in flight); when every connection has a request
    /// in flight, the new one is answered 503 with `Retry-After` and closed (`/healthz` is still
    /// answered). Lowered at start to what the process's file descriptor limit allows.
    pub max_connections: usize,
    /// Time to send a complete request head, counted from the connection's opening or the end
    /// of its previous response: the slowloris bound, and the keep-alive idle timeout.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers); a larger one gets 431.
    pub max_header_bytes: usize,
    /// Time for a request body to arrive in full, counted from its head; then the handler
    /// reading it gets an error (400 for a trickled body).
    pub body_timeout: Duration,
    /// Time a response may wait on a client that reads none of it; then the connection is
    /// closed (a stream cut so is recorded as abandoned by the client, its hold on budgets
    /// released, its provider connection dropped).
    pub write_stall: Duration,
    /// How long in-flight requests get to finish after a shutdown signal; then open streams
    /// end with an in-band error event and are recorded as cut.
    pub drain: Duration,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_WRITE_STALL: Duration = Duration::from_secs(30);
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            write_stall: DEFAULT_WRITE_STALL,
            drain: DEFAULT_DRAIN,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrices {
    /// Extra or replacement `[[prices.model]]` entries, same keys as `prices/prices.toml`.
    #[serde(default)]
    pub model: Vec<RawModelPrice>,
}

/// Values from flags or the environment, which win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database_url: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub store_content: bool,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub connections: ConnectionLimits,
    pub prices: Arc<PriceTable>,
    /// Providers before the defaults for unset ones are filled in (see [`GatewayConfig::with_default_providers`]).
    pub gateway: GatewayConfig,
    /// Alert webhooks and the runaway rule (the server's alert dispatcher's).
    pub alerts: AlertsConfig,
    pub outcomes: OutcomeSettings,
    pub waste: WasteSettings,
    pub reconciliation: ReconciliationSettings,
    pub self_service: SelfServiceSettings,
    pub audit: AuditConfig,
    /// Single sign-on, when `[auth.oidc]` is configured.
    pub oidc: Option<crate::oidc::OidcSettings>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

impl RawConfig {
    /// Reads a TOML file strictly, naming the offending key on error.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| invalid(&path.display().to_string(), e.to_string()))?;
        RawConfig::from_toml(&text).map_err(|e| ConfigError {
            key: format!("{}: {}", path.display(), e.key),
            ..e
        })
    }

    pub fn from_toml(text: &str) -> Result<RawConfig, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| invalid("(file)", e.to_string()))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            invalid(
                if key == "." { "(file)" } else { &key },
                e.into_inner().message().to_owned(),
            )
        })
    }
}

/// The process environment: the one place configuration reads it.
#[expect(clippy::disallowed_methods, reason = "this is the one place")]
fn env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// The provider keys whose absence sends a protocol to the built-in mock provider.
const PROVIDER_KEY_VARS: [&str; 3] = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"];

impl Config {
    /// Whether some protocol has no provider: none is configured and a provider key is not set.
    /// The caller then runs the mock provider and passes its URL to
    /// [`Config::gateway_with_defaults`].
    pub fn needs_mock_provider(&self) -> bool {
        self.gateway.providers.is_empty()
            && PROVIDER_KEY_VARS
                .iter()
                .any(|var| env(var).is_none_or(|v| v.trim().is_empty()))
    }

    /// The gateway's configuration with a provider for every protocol: the configured ones, or
    /// the real APIs for the keys set and the mock at `mock_base` for the others.
    pub fn gateway_with_defaults(&self, mock_base: &str) -> GatewayConfig {
        self.gateway.clone().with_default_providers(env, mock_base)
    }

    /// What the application layer is configured with.
    pub fn settings(&self) -> Settings {
        Settings {
            outcomes: self.outcomes.clone(),
            waste: self.waste.clone(),
            reconciliation: self.reconciliation.clone(),
            self_service: self.self_service.clone(),
            store_content: self.store_content,
        }
    }

    /// Merges defaults < file < overrides and validates every value once.
    pub fn resolve(file: RawConfig, overrides: Overrides) -> Result<Config, ConfigError> {
        let listen_text = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text
            .parse()
            .map_err(|e| invalid("listen", format!("{listen_text:?} is not host:port ({e})")))?;
        let database_url = overrides
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if database_url.trim().is_empty() {
            return Err(invalid("database_url", "must not be empty"));
        }
        let max_body_bytes = file.limits.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=1 << 30).contains(&max_body_bytes) {
            return Err(invalid("limits.max_body_bytes", "must be between 1024 and 1073741824"));
        }
        let timeout = file.limits.request_timeout_secs.unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS);
        if !(1..=3600).contains(&timeout) {
            return Err(invalid("limits.request_timeout_secs", "must be between 1 and 3600"));
        }
        let connections = resolve_connection_limits(&file.limits)?;
        let prices = PriceTable::builtin()
            .with_overrides(&file.prices.model)
            .map_err(|e| invalid(&format!("prices: {}", e.key), e.reason))?;
        let mut raw_gateway = file.gateway;
        if raw_gateway.spool_dir.is_none() {
            raw_gateway.spool_dir = Some(default_spool_dir(&database_url));
        }
        let mut gateway =
            GatewayConfig::resolve(raw_gateway, file.providers, env).map_err(|e| invalid(&e.key, e.reason))?;
        let alerts = file.alerts.resolve().map_err(|e| invalid(&e.key, e.reason))?;
        let outcomes = resolve_outcomes(file.outcomes, env)?;
        let waste = resolve_waste(file.waste)?;
        let reconciliation = resolve_reconciliation(file.reconciliation, env)?;
        let self_service = resolve_self_service(file.self_service)?;
        let oidc = file
            .auth
            .oidc
            .map(|raw| raw.resolve(env))
            .transpose()
            .map_err(|e| invalid(&format!("auth.oidc.{}", e.key), e.reason))?;
        let store_content = file.store_content.unwrap_or(false);
        gateway.max_body_bytes = max_body_bytes as usize;
        gateway.store_content = store_content;
        Ok(Config {
            oidc,
            outcomes,
            waste,
            reconciliation,
            self_service,
            listen,
            database_url,
            gateway,
            alerts,
            store_content,
            max_body_bytes: max_body_bytes as usize,
            request_timeout: Duration::from_secs(timeout),
            connections,
            prices: Arc::new(prices),
            audit: AuditConfig {
                trust_forwarded_for: file.audit.trust_forwarded_for.unwrap_or(false),
            },
        })
    }
}

fn resolve_connection_limits(raw: &RawLimits) -> Result<ConnectionLimits, ConfigError> {
    let bounded = |key: &str, value: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| {
        let value = value.unwrap_or(default);
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(invalid(
                &format!("limits.{key}"),
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    };
    let secs = |key: &str, value: Option<u64>, default: Duration| {
        bounded(key, value, default.as_secs(), 1..=3600).map(Duration::from_secs)
    };
    let count = |key: &str, value: Option<u64>, default: usize, range: std::ops::RangeInclusive<u64>| {
        bounded(key, value, default as u64, range).map(|n| n as usize)
    };
    Ok(ConnectionLimits {
        max_connections: count(
            "max_connections",
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            1..=1_000_000,
        )?,
        header_timeout: secs("header_timeout_secs", raw.header_timeout_secs, DEFAULT_HEADER_TIMEOUT)?,
        max_header_bytes: count(
            "max_header_bytes",
            raw.max_header_bytes,
            DEFAULT_MAX_HEADER_BYTES,
            8192..=1 << 20,
        )?,
        body_timeout: secs("body_timeout_secs", raw.body_timeout_secs, DEFAULT_BODY_TIMEOUT)?,
        write_stall: secs("write_stall_secs", raw.write_stall_secs, DEFAULT_WRITE_STALL)?,
        drain: secs("drain_secs", raw.drain_secs, DEFAULT_DRAIN)?,
    })
}

fn resolve_outcomes(raw: RawOutcomes, env: impl Fn(&str) -> Option<String>) -> Result<OutcomeSettings, ConfigError> {
    let mut settings = OutcomeSettings {
        github_secret: raw
            .github_webhook_secret
            .or_else(|| env("GOODHART_GITHUB_WEBHOOK_SECRET"))
            .filter(|s| !s.is_empty()),
        ..OutcomeSettings::default()
    };
    if let Some(environments) = raw.production_environments {
        if environments.is_empty() || environments.iter().any(|e| e.trim().is_empty()) {
            return Err(invalid("outcomes.production_environments", "must list non-empty names"));
        }
        settings.production_environments = environments;
    }
    if let Some(min) = raw.min_team_members {
        settings.min_team_members = min;
    }
    let fraction = |key: &str, value: f64, max: f64| {
        if (0.0..=max).contains(&value) {
            Ok((value * 1_000.0).round() as u64)
        } else {
            Err(invalid(key, format!("must be between 0 and {max}")))
        }
    };
    if let Some(discount) = raw.self_reported_discount {
        settings.rules.reported_discount = fraction("outcomes.self_reported_discount", discount, 1.0)?;
    }
    if let Some(cap) = raw.self_reported_cap_per_week {
        settings.rules.reported_cap_per_week = fraction("outcomes.self_reported_cap_per_week", cap, 1_000.0)?;
    }
    for (name, raw) in raw.kinds {
        let kind = OutcomeKind::parse(&name).ok_or_else(|| {
            invalid(
                &format!("outcomes.kinds.{name}"),
                "is not a kind of outcome (deployment, pr_merged, ticket_resolved, incident, custom)",
            )
        })?;
        let rule = settings.rules.kinds.entry(kind).or_insert(KindRule::new(0, 0));
        if let Some(weight) = raw.weight {
            rule.weight = fraction(&format!("outcomes.kinds.{name}.weight"), weight, 100.0)?;
        }
        if let Some(hours) = raw.hours_saved {
            if !(0.0..=10_000.0).contains(&hours) {
                return Err(invalid(
                    &format!("outcomes.kinds.{name}.hours_saved"),
                    "must be between 0 and 10000",
                ));
            }
            rule.minutes_saved = (hours * 60.0).round() as u64;
        }
    }
    Ok(settings)
}

fn resolve_self_service(raw: RawSelfService) -> Result<SelfServiceSettings, ConfigError> {
    let defaults = SelfServiceSettings::default();
    let max_keys = raw.max_keys.unwrap_or(defaults.max_keys);
    if !(1..=1000).contains(&max_keys) {
        return Err(invalid("self_service.max_keys", "must be between 1 and 1000"));
    }
    let max_key_days = raw.max_key_days.unwrap_or(defaults.max_key_days);
    if !(1..=3650).contains(&max_key_days) {
        return Err(invalid("self_service.max_key_days", "must be between 1 and 3650"));
    }
    let max_ingest_tokens = raw.max_ingest_tokens.unwrap_or(defaults.max_ingest_tokens);
    if !(1..=100).contains(&max_ingest_tokens) {
        return Err(invalid("self_service.max_ingest_tokens", "must be between 1 and 100"));
    }
    for (key, cap) in [
        ("self_service.max_requests_per_minute", raw.max_requests_per_minute),
        ("self_service.max_tokens_per_minute", raw.max_tokens_per_minute),
    ] {
        if cap == Some(0) || cap.is_some_and(|n| i64::try_from(n).is_err()) {
            return Err(invalid(key, "must be at least 1 (leave it out for no cap)"));
        }
    }
    Ok(SelfServiceSettings {
        keys: raw.keys.unwrap_or(defaults.keys),
        max_keys,
        max_key_days,
        max_requests_per_minute: raw.max_requests_per_minute,
        max_tokens_per_minute: raw.max_tokens_per_minute,
        ingest_tokens: raw.ingest_tokens.unwrap_or(defaults.ingest_tokens),
        max_ingest_tokens,
    })
}

fn resolve_waste(raw: RawWaste) -> Result<WasteSettings, ConfigError> {
    let mut settings = WasteSettings::default();
    if let Some(secs) = raw.detect_every_secs {
        settings.detect_every = (secs > 0).then(|| Duration::from_secs(secs));
    }
    if let Some(days) = raw.backfill_days {
        if !(1..=3_650).contains(&days) {
            return Err(invalid("waste.backfill_days", "must be between 1 and 3650"));
        }
        settings.backfill_days = days;
    }
    if let Some(alerts) = raw.alerts {
        settings.alerts = alerts;
    }
    if let Some(confidence) = raw.alert_min_confidence {
        if !(0.0..=1.0).contains(&confidence) {
            return Err(invalid("waste.alert_min_confidence", "must be between 0 and 1"));
        }
        settings.alert_min_confidence = (confidence * 1_000.0).round() as u32;
    }
    Ok(settings)
}

fn resolve_reconciliation(
    raw: RawReconciliation,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ReconciliationSettings, ConfigError> {
    let mut settings = ReconciliationSettings::default();
    if let Some(secs) = raw.import_every_secs {
        settings.import_every = (secs > 0).then(|| Duration::from_secs(secs));
    }
    let decimal = |key: &str, raw: &RawDecimal| raw.text().map_err(|reason| invalid(key, reason));
    if let Some(percent) = &raw.drift_alert_percent {
        let key = "reconciliation.drift_alert_percent";
        let permille = parse_scaled_decimal(&decimal(key, percent)?, 1)
            .map_err(|e| invalid(key, format!("{e} (a percent with at most one decimal)")))?;
        settings.drift.permille = u32::try_from(permille)
            .ok()
            .filter(|p| *p <= 1_000)
            .ok_or_else(|| invalid(key, "must be between 0 and 100"))?;
    }
    if let Some(min) = &raw.drift_alert_min_usd {
        let key = "reconciliation.drift_alert_min_usd";
        settings.drift.min = Nanos::from_usd(&decimal(key, min)?).map_err(|e| invalid(key, e.to_string()))?;
    }
    if let Some(alerts) = raw.alerts {
        settings.alerts = alerts;
    }
    let blank = |id: &String| id.trim().is_empty();
    if raw.gateway_keys.iter().flatten().any(blank) {
        return Err(invalid("reconciliation.gateway_keys", "must not name an empty id"));
    }
    if raw.owners.keys().any(blank) {
        return Err(invalid("reconciliation.owners", "must not name an empty id"));
    }
    if let Some((id, _)) = raw.owners.iter().find(|(_, team)| team.trim().is_empty()) {
        return Err(invalid(&format!("reconciliation.owners.{id}"), "must name a team"));
    }
    settings.accounts.gateway_keys = raw.gateway_keys.unwrap_or_default().into_iter().collect();
    settings.accounts.owners = raw.owners;
    if let Some((name, _)) = raw
        .billed_as
        .iter()
        .find(|(_, by)| ReportApi::ALL.iter().all(|api| api.provider() != by.as_str()))
    {
        return Err(invalid(
            &format!("reconciliation.billed_as.{name}"),
            "must name anthropic or openai",
        ));
    }
    settings.billed_as = raw.billed_as;
    for api in ReportApi::ALL {
        let Some(admin_key) = env(api.key_var())
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
        else {
            continue;
        };
        let url = match api {
            ReportApi::AnthropicAdmin => raw.anthropic_admin_url.clone(),
            ReportApi::OpenAiAdmin => raw.openai_admin_url.clone(),
        };
        let base_url = url.unwrap_or_else(|| api.base_url().to_owned());
        if api == ReportApi::AnthropicAdmin {
            settings.claude_code = Some(AnalyticsSource {
                org: String::new(),
                base_url: base_url.clone(),
                key: admin_key.clone(),
            });
        }
        settings.sources.push(ReportSource {
            api,
            provider: api.provider().to_owned(),
            base_url,
            admin_key,
        });
    }
    if let Some(org) = raw.copilot_org {
        if org.trim().is_empty() {
            return Err(invalid("reconciliation.copilot_org", "must name an organisation"));
        }
        let token = env("GITHUB_TOKEN")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        settings.copilot = token.map(|key| AnalyticsSource {
            org,
            base_url: raw.github_api_url.unwrap_or_else(|| GITHUB_API.to_owned()),
            key,
        });
    }
    Ok(settings)
}

/// The spool lives next to an SQLite database (`goodhart.db` → `goodhart.db-spool/`), else in
/// `goodhart-spool/` in the working directory.
fn default_spool_dir(database_url: &str) -> PathBuf {
    match goodhart_store::sqlite_path(database_url) {
        Ok(Some(path)) if path != ":memory:" => PathBuf::from(format!("{path}-spool")),
        _ => PathBuf::from(goodhart_gateway::config::DEFAULT_SPOOL_DIR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_sign_on_keys_are_named_in_full_when_unknown_or_bad() {
        let error = RawConfig::from_toml("[auth.oidc]\nissuer = \"https://idp\"\nclient_id = \"g\"\nadmin_group = []")
            .unwrap_err();
        assert_eq!(error.key, "auth.oidc.admin_group", "{error}");
        let file = RawConfig::from_toml(
            "[auth.oidc]\nissuer = \"https://idp\"\nclient_id = \"g\"\npublic_url = \"https://g.example\"\n\
             admin_groups = [\"a\"]\nclock_skew_secs = 900",
        )
        .unwrap();
        let error = Config::resolve(file, Overrides::default()).unwrap_err();
        assert_eq!(error.key, "auth.oidc.clock_skew_secs", "{error}");
    }

    #[test]
    fn connection_limits_have_defaults_and_each_bad_value_names_its_key() {
        let limits = |text: &str| resolve_connection_limits(&RawConfig::from_toml(text).unwrap().limits);
        assert_eq!(limits("").unwrap(), ConnectionLimits::default());
        let custom = limits(
            "[limits]\nmax_connections = 500\nheader_timeout_secs = 5\nmax_header_bytes = 16384\n\
             body_timeout_secs = 7\nwrite_stall_secs = 9\ndrain_secs = 2",
        )
        .unwrap();
        assert_eq!(
            custom,
            ConnectionLimits {
                max_connections: 500,
                header_timeout: Duration::from_secs(5),
                max_header_bytes: 16384,
                body_timeout: Duration::from_secs(7),
                write_stall: Duration::from_secs(9),
                drain: Duration::from_secs(2),
            }
        );
        for (text, key) in [
            ("max_connections = 0", "limits.max_connections"),
            ("header_timeout_secs = 0", "limits.header_timeout_secs"),
            ("max_header_bytes = 1024", "limits.max_header_bytes"),
            ("body_timeout_secs = 4000", "limits.body_timeout_secs"),
            ("write_stall_secs = 0", "limits.write_stall_secs"),
            ("drain_secs = 0", "limits.drain_secs"),
        ] {
            let error = limits(&format!("[limits]\n{text}")).unwrap_err();
            assert_eq!(error.key, key, "{text}");
            assert!(error.reason.starts_with("must be between"), "{error}");
        }
    }

    #[test]
    fn reconciliation_reads_its_threshold_keys_and_admin_keys_from_the_environment() {
        let raw = |text: &str| RawConfig::from_toml(text).unwrap().reconciliation;
        let no_env = |_: &str| None;
        let defaults = resolve_reconciliation(RawReconciliation::default(), no_env).unwrap();
        assert_eq!(defaults, ReconciliationSettings::default());
        assert!(defaults.sources.is_empty(), "no admin key, no scheduled import");
        let custom = resolve_reconciliation(
            raw("[reconciliation]\nimport_every_secs = 0\ndrift_alert_percent = 2.5\n\
                 drift_alert_min_usd = \"0.25\"\ngateway_keys = [\"apikey_gw\"]\n\
                 anthropic_admin_url = \"http://127.0.0.1:9\"\n\
                 [reconciliation.owners]\napikey_nb = \"research\""),
            |var: &str| (var == "ANTHROPIC_ADMIN_KEY").then(|| " sk-ant-admin01-x ".to_owned()),
        )
        .unwrap();
        assert_eq!(custom.import_every, None);
        assert_eq!((custom.drift.permille, custom.drift.min), (25, Nanos(250_000_000)));
        assert!(custom.accounts.gateway_keys.contains("apikey_gw"));
        assert_eq!(custom.accounts.owners["apikey_nb"], "research");
        let [source] = &custom.sources[..] else {
            panic!("{:?}", custom.sources)
        };
        assert_eq!(
            (source.provider.as_str(), source.base_url.as_str()),
            ("anthropic", "http://127.0.0.1:9")
        );
        assert_eq!(source.admin_key, "sk-ant-admin01-x");
        assert!(
            !format!("{custom:?}").contains("sk-ant-admin01"),
            "the key is never printed"
        );
        for (text, key) in [
            ("drift_alert_percent = 101", "reconciliation.drift_alert_percent"),
            ("drift_alert_percent = 2.55", "reconciliation.drift_alert_percent"),
            ("drift_alert_min_usd = -1", "reconciliation.drift_alert_min_usd"),
            ("gateway_keys = [\" \"]", "reconciliation.gateway_keys"),
            ("copilot_org = \"\"", "reconciliation.copilot_org"),
            (
                "billed_as = { claude-prod = \"aws\" }",
                "reconciliation.billed_as.claude-prod",
            ),
        ] {
            let error = resolve_reconciliation(raw(&format!("[reconciliation]\n{text}")), no_env).unwrap_err();
            assert_eq!(error.key, key, "{text}: {error}");
        }
        let unknown = RawConfig::from_toml("[reconciliation]\nthreshold = 5").unwrap_err();
        assert_eq!(unknown.key, "reconciliation.threshold");
    }

    #[test]
    fn zero_config_starts_with_defaults() {
        let config = Config::resolve(RawConfig::default(), Overrides::default()).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert!(!config.store_content);
    }

    #[test]
    fn overrides_win_over_the_file() {
        let file = RawConfig::from_toml("listen = \"127.0.0.1:1\"\ndatabase_url = \"sqlite://a.db\"").unwrap();
        let config = Config::resolve(
            file,
            Overrides {
                listen: Some("127.0.0.1:2".into()),
                database_url: None,
            },
        )
        .unwrap();
        assert_eq!(config.listen.port(), 2);
        assert_eq!(config.database_url, "sqlite://a.db");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let unknown = RawConfig::from_toml("[limits]\nmax_body = 3").unwrap_err();
        assert_eq!(unknown.key, "limits.max_body");
        assert!(unknown.reason.contains("unknown field `max_body`"), "{unknown}");
        let wrong_type = RawConfig::from_toml("store_content = \"yes\"").unwrap_err();
        assert_eq!(wrong_type.key, "store_content");
        let small = Config::resolve(
            RawConfig::from_toml("[limits]\nmax_body_bytes = 10").unwrap(),
            Overrides::default(),
        );
        assert_eq!(small.unwrap_err().key, "limits.max_body_bytes");
        let listen = Config::resolve(
            RawConfig::default(),
            Overrides {
                listen: Some("nowhere".into()),
                database_url: None,
            },
        );
        assert_eq!(listen.unwrap_err().key, "listen");
        let price =
            RawConfig::from_toml("[[prices.model]]\nprovider = \"x\"\nmodel = \"m\"\ninput = \"a\"\noutput = \"1\"")
                .unwrap();
        let err = Config::resolve(price, Overrides::default()).unwrap_err();
        assert!(err.key.contains("prices.model[0]"), "{err}");
    }

    #[test]
    fn price_overrides_reach_the_table() {
        let file = RawConfig::from_toml(
            "[[prices.model]]\nprovider = \"internal\"\nmodel = \"llama-local\"\ninput = 0.1\noutput = 0.2",
        )
        .unwrap();
        let config = Config::resolve(file, Overrides::default()).unwrap();
        assert!(config.prices.resolve(None, "llama-local").is_some());
        assert!(config.prices.version().contains("+local."));
    }

    #[test]
    fn outcome_kinds_take_weights_and_hours() {
        let resolve = |toml: &str| Config::resolve(RawConfig::from_toml(toml).unwrap(), Overrides::default());
        let config = resolve(
            "[outcomes]\nself_reported_discount = 0.25\n[outcomes.kinds.ticket_resolved]\nweight = 0.75\nhours_saved = 1.5\n[outcomes.kinds.incident]\nhours_saved = 0",
        )
        .unwrap();
        let rules = &config.outcomes.rules;
        assert_eq!(rules.reported_discount, 250);
        assert_eq!(rules.kind(OutcomeKind::TicketResolved), KindRule::new(750, 90));
        assert_eq!(
            rules.kind(OutcomeKind::Incident),
            KindRule::new(1_000, 0),
            "the weight keeps its default"
        );
        assert_eq!(
            resolve("[outcomes.kinds.bugfix]\nweight = 1").unwrap_err().key,
            "outcomes.kinds.bugfix"
        );
        assert_eq!(
            resolve("[outcomes.kinds.custom]\nhours_saved = -1").unwrap_err().key,
            "outcomes.kinds.custom.hours_saved"
        );
        let unknown = RawConfig::from_toml("[outcomes.kinds.custom]\nhours = 1").unwrap_err();
        assert_eq!(unknown.key, "outcomes.kinds.custom.hours");
    }

    #[test]
    fn self_service_is_bounded_by_default_and_each_bad_value_is_named() {
        let resolve = |toml: &str| Config::resolve(RawConfig::from_toml(toml).unwrap(), Overrides::default());
        let config = resolve("").unwrap();
        assert_eq!(config.self_service, SelfServiceSettings::default());
        let custom =
            resolve("[self_service]\nkeys = false\nmax_keys = 2\nmax_key_days = 7\nmax_requests_per_minute = 60")
                .unwrap();
        assert_eq!(
            (
                custom.self_service.keys,
                custom.self_service.max_keys,
                custom.self_service.max_key_days
            ),
            (false, 2, 7)
        );
        assert_eq!(custom.self_service.max_requests_per_minute, Some(60));
        for (text, key) in [
            ("max_keys = 0", "self_service.max_keys"),
            ("max_key_days = 0", "self_service.max_key_days"),
            ("max_tokens_per_minute = 0", "self_service.max_tokens_per_minute"),
        ] {
            assert_eq!(resolve(&format!("[self_service]\n{text}")).unwrap_err().key, key);
        }
    }

    #[test]
    fn waste_detection_is_scheduled_by_default_and_configurable() {
        let config = Config::resolve(RawConfig::default(), Overrides::default()).unwrap();
        assert_eq!(config.waste, WasteSettings::default());
        assert_eq!(config.waste.detect_every, Some(Duration::from_secs(300)));
        let resolve = |toml: &str| Config::resolve(RawConfig::from_toml(toml).unwrap(), Overrides::default());
        let custom = resolve("[waste]\ndetect_every_secs = 0\nbackfill_days = 7\nalert_min_confidence = 0.95").unwrap();
        assert_eq!(custom.waste.detect_every, None, "0 turns the schedule off");
        assert_eq!(
            (custom.waste.backfill_days, custom.waste.alert_min_confidence),
            (7, 950)
        );
        assert_eq!(
            resolve("[waste]\nalert_min_confidence = 85").unwrap_err().key,
            "waste.alert_min_confidence"
        );
        assert_eq!(
            resolve("[waste]\nbackfill_days = 0").unwrap_err().key,
            "waste.backfill_days"
        );
        assert_eq!(
            RawConfig::from_toml("[waste]\nevery = 5").unwrap_err().key,
            "waste.every"
        );
    }

    #[test]
    fn alerts_take_webhooks_and_a_runaway_rule() {
        use crate::alerts::{RunawayRule, Webhook, WebhookFormat};
        let resolve = |toml: &str| Config::resolve(RawConfig::from_toml(toml).unwrap(), Overrides::default());
        let defaults = resolve("").unwrap();
        assert_eq!(defaults.alerts, AlertsConfig::default());
        let config = resolve(
            "[alerts]\nrunaway_factor = 3\nrunaway_floor_usd_per_hour = \"2.50\"\n\
             [[alerts.webhooks]]\nurl = \"https://hooks.example.com/a\"\n\
             [[alerts.webhooks]]\nurl = \"http://chat.example.com/b\"\nformat = \"slack\"",
        )
        .unwrap();
        assert_eq!(
            config.alerts.webhooks,
            vec![
                Webhook {
                    url: "https://hooks.example.com/a".into(),
                    format: WebhookFormat::Json,
                },
                Webhook {
                    url: "http://chat.example.com/b".into(),
                    format: WebhookFormat::Slack,
                },
            ]
        );
        assert_eq!(
            config.alerts.runaway,
            RunawayRule {
                factor: 3,
                floor_per_hour: goodhart_core::Nanos(2_500_000_000),
            }
        );
        let bad_url = resolve("[[alerts.webhooks]]\nurl = \"ftp://x\"").unwrap_err();
        assert_eq!(
            (bad_url.key.as_str(), bad_url.reason.as_str()),
            ("alerts.webhooks[0].url", "\"ftp://x\" is not an http(s) URL")
        );
        let factor = resolve("[alerts]\nrunaway_factor = 1").unwrap_err();
        assert_eq!(
            (factor.key.as_str(), factor.reason.as_str()),
            ("alerts.runaway_factor", "must be at least 2")
        );
        assert_eq!(
            resolve("[alerts]\nrunaway_floor_usd_per_hour = \"lots\"")
                .unwrap_err()
                .key,
            "alerts.runaway_floor_usd_per_hour"
        );
        assert_eq!(
            RawConfig::from_toml("[[alerts.webhooks]]\nurl = \"http://x\"\nformat = \"xml\"")
                .unwrap_err()
                .key,
            "alerts.webhooks[0].format"
        );
        assert_eq!(
            RawConfig::from_toml("[alerts]\nfactor = 3").unwrap_err().key,
            "alerts.factor"
        );
    }
}
