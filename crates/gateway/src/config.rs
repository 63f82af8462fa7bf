//! Providers and routing: which upstream serves which model, over which wire protocol, with
//! which key.
//!
//! A model is routed, among the providers speaking the endpoint's protocol, by the first rule
//! that matches: an alias in a provider's `model_map` (renamed on the way up), a name in its
//! `models`, the longest of its `prefixes`, and finally the provider marked `default` (a
//! provider without any model rule is a default). Providers' API keys are read from the
//! environment variable each one names; they are held in [`ApiKey`], whose `Debug` never shows
//! them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use goodhart_core::requests::Protocol;
use serde::Deserialize;

pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 600;
pub const DEFAULT_SPOOL_SYNC_MS: u64 = 10;
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 100;
pub const DEFAULT_SPOOL_DIR: &str = "goodhart-spool";
pub const DEFAULT_MAX_TOKENS: u64 = 4_096;

/// `[gateway]` as written in the configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Where the usage spool lives (default `goodhart-spool` in the working directory).
    pub spool_dir: Option<PathBuf>,
    /// How often appended usage is synced to disk; 0 syncs every call before it completes.
    pub spool_sync_ms: Option<u64>,
    /// How often spooled usage is moved into the database.
    pub flush_interval_ms: Option<u64>,
    /// The longest a call may wait for the provider's response headers, and between two
    /// chunks of a stream.
    pub upstream_timeout_secs: Option<u64>,
    /// Output tokens reserved against budgets for a call that names no `max_tokens`.
    pub default_max_tokens: Option<u64>,
}

/// One `[[providers]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub protocol: Protocol,
    /// e.g. `https://api.openai.com/v1` or `https://api.anthropic.com`.
    pub base_url: String,
    /// The environment variable holding the provider's API key.
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Client-facing alias → the provider's model name.
    #[serde(default)]
    pub model_map: BTreeMap<String, String>,
    /// Azure deployment name → the model it serves, for pricing and records; a deployment
    /// listed here is routed to this provider.
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
    /// Client protocols this provider also serves, translated (an `openai` provider may serve
    /// `anthropic` clients): the models its rules name are routed here from those clients too.
    #[serde(default)]
    pub clients: Vec<Protocol>,
    #[serde(default)]
    pub default: bool,
}

/// A provider's API key; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> ApiKey {
        ApiKey(key)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub protocol: Protocol,
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    pub models: Vec<String>,
    pub prefixes: Vec<String>,
    pub model_map: BTreeMap<String, String>,
    pub deployments: BTreeMap<String, String>,
    /// Client protocols served by translation.
    pub clients: Vec<Protocol>,
    pub default: bool,
}

/// The client protocols a provider speaking `provider` can serve by translation.
fn translatable(client: Protocol, provider: Protocol) -> bool {
    client == Protocol::Anthropic && provider == Protocol::OpenAi
}

/// The validated gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub providers: Vec<Provider>,
    /// The providers are the built-in mock (no real provider was configured).
    pub mock: bool,
    pub spool_dir: PathBuf,
    pub spool_sync: Duration,
    pub flush_interval: Duration,
    pub upstream_timeout: Duration,
    pub max_body_bytes: usize,
    pub store_content: bool,
    /// The output a call is assumed to produce, for its budget reservation, when it names no
    /// `max_tokens`.
    pub default_max_tokens: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {key}: {reason}")]
pub struct GatewayConfigError {
    pub key: String,
    pub reason: String,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> GatewayConfigError {
    GatewayConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Where a model goes.
#[derive(Debug)]
pub struct Route<'a, 'm> {
    pub provider: &'a Provider,
    /// The model name to send upstream (differs from the client's for aliases).
    pub upstream_model: &'m str,
    /// The model the configuration says the upstream deployment serves, if it says.
    pub deployment_model: Option<&'a str>,
    /// The provider speaks another protocol than the client: the call is translated.
    pub translated: bool,
}

impl GatewayConfig {
    /// Validates `[gateway]` and `[[providers]]`, reading each provider's key from `env`.
    pub fn resolve(
        raw: RawGateway,
        providers: Vec<RawProvider>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<GatewayConfig, GatewayConfigError> {
        let mut resolved = Vec::with_capacity(providers.len());
        for (i, p) in providers.into_iter().enumerate() {
            let key = |field: &str| format!("providers[{i}].{field}");
            if p.name.trim().is_empty() {
                return Err(invalid(key("name"), "must not be empty"));
            }
            let base_url = p.base_url.trim_end_matches('/').to_owned();
            if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
                || base_url.parse::<hyper::Uri>().is_err()
            {
                return Err(invalid(
                    key("base_url"),
                    format!("{:?} is not an http(s) URL", p.base_url),
                ));
            }
            let api_key = match &p.api_key_env {
                Some(var) => match env(var).filter(|v| !v.trim().is_empty()) {
                    Some(value) if hyper::header::HeaderValue::from_str(value.trim()).is_err() => {
                        return Err(invalid(
                            key("api_key_env"),
                            format!("environment variable {var} holds characters a header cannot carry"),
                        ));
                    }
                    Some(value) => Some(ApiKey::new(value.trim().to_owned())),
                    None => {
                        return Err(invalid(
                            key("api_key_env"),
                            format!("environment variable {var} is not set"),
                        ));
                    }
                },
                None => None,
            };
            if let Some(client) = p.clients.iter().find(|c| !translatable(**c, p.protocol)) {
                return Err(invalid(
                    key("clients"),
                    format!(
                        "{client} clients cannot be translated to {}: only anthropic clients of an openai provider can",
                        p.protocol
                    ),
                ));
            }
            let has_rules =
                !(p.models.is_empty() && p.prefixes.is_empty() && p.model_map.is_empty() && p.deployments.is_empty());
            if !p.clients.is_empty() && !has_rules {
                return Err(invalid(
                    key("clients"),
                    "a translating provider needs `model_map`, `models` or `prefixes` to say which models it serves",
                ));
            }
            resolved.push(Provider {
                name: p.name.trim().to_owned(),
                protocol: p.protocol,
                base_url,
                api_key,
                models: p.models,
                prefixes: p.prefixes,
                model_map: p.model_map,
                deployments: p.deployments,
                clients: p.clients,
                default: p.default || !has_rules,
            });
        }
        let positive = |field: &str, value: Option<u64>, default: u64, max: u64| match value.unwrap_or(default) {
            v if v <= max => Ok(v),
            _ => Err(invalid(format!("gateway.{field}"), format!("must be at most {max}"))),
        };
        let upstream_timeout = positive(
            "upstream_timeout_secs",
            raw.upstream_timeout_secs,
            DEFAULT_UPSTREAM_TIMEOUT_SECS,
            86_400,
        )?;
        if upstream_timeout == 0 {
            return Err(invalid("gateway.upstream_timeout_secs", "must be at least 1"));
        }
        let flush = positive(
            "flush_interval_ms",
            raw.flush_interval_ms,
            DEFAULT_FLUSH_INTERVAL_MS,
            60_000,
        )?
        .max(1);
        Ok(GatewayConfig {
            providers: resolved,
            mock: false,
            spool_dir: raw.spool_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR)),
            spool_sync: Duration::from_millis(positive(
                "spool_sync_ms",
                raw.spool_sync_ms,
                DEFAULT_SPOOL_SYNC_MS,
                10_000,
            )?),
            flush_interval: Duration::from_millis(flush),
            upstream_timeout: Duration::from_secs(upstream_timeout),
            max_body_bytes: 32 * 1024 * 1024,
            store_content: false,
            default_max_tokens: positive(
                "default_max_tokens",
                raw.default_max_tokens,
                DEFAULT_MAX_TOKENS,
                10_000_000,
            )?,
        })
    }

    /// When no provider is configured: the real OpenAI, Anthropic and Gemini APIs for
    /// whichever of `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` / `GEMINI_API_KEY` is set, and the
    /// built-in mock (listening at `mock_base`) for the protocols without a key.
    pub fn with_default_providers(mut self, env: impl Fn(&str) -> Option<String>, mock_base: &str) -> GatewayConfig {
        if !self.providers.is_empty() {
            return self;
        }
        let real = [
            (
                Protocol::OpenAi,
                "openai",
                "https://api.openai.com/v1",
                "OPENAI_API_KEY",
            ),
            (
                Protocol::Anthropic,
                "anthropic",
                "https://api.anthropic.com",
                "ANTHROPIC_API_KEY",
            ),
            (
                Protocol::Gemini,
                "google",
                "https://generativelanguage.googleapis.com",
                "GEMINI_API_KEY",
            ),
        ];
        for (protocol, name, base, var) in real {
            let key = env(var).filter(|k| !k.trim().is_empty());
            let (name, base_url, api_key) = match key {
                Some(key) => (name, base.to_owned(), Some(ApiKey::new(key.trim().to_owned()))),
                None => {
                    self.mock = true;
                    let suffix = if protocol == Protocol::OpenAi { "/v1" } else { "" };
                    ("mock", format!("{}{suffix}", mock_base.trim_end_matches('/')), None)
                }
            };
            self.providers.push(Provider {
                name: name.to_owned(),
                protocol,
                base_url,
                api_key,
                models: Vec::new(),
                prefixes: Vec::new(),
                model_map: BTreeMap::new(),
                deployments: BTreeMap::new(),
                clients: Vec::new(),
                default: true,
            });
        }
        self
    }

    /// The provider that serves `model` over `protocol`, if any.
    pub fn route<'a: 'm, 'm>(&'a self, protocol: Protocol, model: &'m str) -> Option<Route<'a, 'm>> {
        // The providers of the client's protocol, then those serving it by translation (whose
        // rules only ever name models: they are never a protocol's default).
        let speaking = || {
            self.providers
                .iter()
                .filter(move |p| p.protocol == protocol)
                .chain(self.providers.iter().filter(move |p| p.clients.contains(&protocol)))
        };
        let to = |provider: &'a Provider, upstream_model: &'m str| Route {
            provider,
            upstream_model,
            deployment_model: provider.deployments.get(upstream_model).map(String::as_str),
            translated: provider.protocol != protocol,
        };
        if let Some((provider, upstream)) = speaking().find_map(|p| p.model_map.get(model).map(|m| (p, m))) {
            return Some(to(provider, upstream));
        }
        let direct = |provider| to(provider, model);
        if let Some(provider) =
            speaking().find(|p| p.models.iter().any(|m| m == model) || p.deployments.contains_key(model))
        {
            return Some(direct(provider));
        }
        let by_prefix = speaking()
            .flat_map(|p| p.prefixes.iter().map(move |prefix| (p, prefix)))
            .filter(|(_, prefix)| model.starts_with(prefix.as_str()))
            .max_by_key(|(_, prefix)| prefix.len());
        if let Some((provider, _)) = by_prefix {
            return Some(direct(provider));
        }
        speaking().find(|p| p.default && p.protocol == protocol).map(direct)
    }

    /// The provider that answers model listings for `protocol`: its default one.
    pub fn listing_provider(&self, protocol: Protocol) -> Option<&Provider> {
        let mut speaking = self.providers.iter().filter(|p| p.protocol == protocol);
        speaking.clone().find(|p| p.default).or_else(|| speaking.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, protocol: Protocol) -> RawProvider {
        RawProvider {
            name: name.into(),
            protocol,
            base_url: format!("https://{name}.example/v1"),
            api_key_env: None,
            models: Vec::new(),
            prefixes: Vec::new(),
            model_map: BTreeMap::new(),
            deployments: BTreeMap::new(),
            clients: Vec::new(),
            default: false,
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn routing_rules_apply_in_order() {
        let mut openai = provider("openai", Protocol::OpenAi);
        openai.prefixes = vec!["gpt-".into(), "o".into()];
        let mut azure = provider("azure", Protocol::OpenAi);
        azure.prefixes = vec!["gpt-4o".into()];
        azure.model_map.insert("fast".into(), "gpt-4o-mini-deploy".into());
        let mut local = provider("local", Protocol::OpenAi);
        local.models = vec!["llama-3".into()];
        local.default = true;
        let mut anthropic = provider("anthropic", Protocol::Anthropic);
        anthropic.prefixes = vec!["claude-".into()];
        let config =
            GatewayConfig::resolve(RawGateway::default(), vec![openai, azure, local, anthropic], no_env).unwrap();
        let route = |protocol, model| {
            config
                .route(protocol, model)
                .map(|r| (r.provider.name.clone(), r.upstream_model.to_owned()))
        };
        assert_eq!(
            route(Protocol::OpenAi, "fast"),
            Some(("azure".into(), "gpt-4o-mini-deploy".into()))
        );
        assert_eq!(
            route(Protocol::OpenAi, "gpt-4o-mini"),
            Some(("azure".into(), "gpt-4o-mini".into()))
        );
        assert_eq!(
            route(Protocol::OpenAi, "gpt-5"),
            Some(("openai".into(), "gpt-5".into()))
        );
        assert_eq!(
            route(Protocol::OpenAi, "llama-3"),
            Some(("local".into(), "llama-3".into()))
        );
        assert_eq!(
            route(Protocol::OpenAi, "mistral"),
            Some(("local".into(), "mistral".into()))
        );
        assert_eq!(
            route(Protocol::Anthropic, "claude-sonnet-4-5"),
            Some(("anthropic".into(), "claude-sonnet-4-5".into()))
        );
        // Anthropic's only provider has rules and is not a default: other models have no route.
        assert_eq!(route(Protocol::Anthropic, "gpt-5"), None);
    }

    #[test]
    fn a_translating_provider_serves_the_models_it_names_to_the_other_protocols_clients() {
        let mut anthropic = provider("anthropic", Protocol::Anthropic);
        anthropic.default = true;
        let mut openai = provider("openai", Protocol::OpenAi);
        openai.default = true;
        openai.clients = vec![Protocol::Anthropic];
        openai.model_map = BTreeMap::from([("claude-sonnet-4-5".into(), "gpt-4o".into())]);
        let config = GatewayConfig::resolve(RawGateway::default(), vec![anthropic, openai.clone()], no_env).unwrap();
        let route = |protocol, model| {
            config
                .route(protocol, model)
                .map(|r| (r.provider.name.clone(), r.upstream_model.to_owned(), r.translated))
        };
        // A named model is translated; the rest stays with the client's protocol's default,
        // and a translating provider is never another protocol's default.
        assert_eq!(
            route(Protocol::Anthropic, "claude-sonnet-4-5"),
            Some(("openai".into(), "gpt-4o".into(), true))
        );
        assert_eq!(
            route(Protocol::Anthropic, "claude-opus-4-1"),
            Some(("anthropic".into(), "claude-opus-4-1".into(), false))
        );
        assert_eq!(
            route(Protocol::OpenAi, "gpt-5"),
            Some(("openai".into(), "gpt-5".into(), false))
        );

        let mut unsupported = openai.clone();
        unsupported.clients = vec![Protocol::Gemini];
        let err = GatewayConfig::resolve(RawGateway::default(), vec![unsupported], no_env).unwrap_err();
        assert_eq!(err.key, "providers[0].clients");
        assert!(
            err.reason.contains("only anthropic clients of an openai provider"),
            "{err}"
        );
        let mut ruleless = openai;
        ruleless.model_map.clear();
        let err = GatewayConfig::resolve(RawGateway::default(), vec![ruleless], no_env).unwrap_err();
        assert!(err.reason.contains("which models it serves"), "{err}");
    }

    #[test]
    fn keys_come_from_the_environment_and_never_print() {
        let mut p = provider("openai", Protocol::OpenAi);
        p.api_key_env = Some("MY_OPENAI_KEY".into());
        let env = |var: &str| (var == "MY_OPENAI_KEY").then(|| "sk-secret".to_owned());
        let config = GatewayConfig::resolve(RawGateway::default(), vec![p.clone()], env).unwrap();
        assert_eq!(config.providers[0].api_key.as_ref().unwrap().expose(), "sk-secret");
        assert!(!format!("{config:?}").contains("sk-secret"));
        let missing = GatewayConfig::resolve(RawGateway::default(), vec![p], no_env).unwrap_err();
        assert_eq!(missing.key, "providers[0].api_key_env");
        assert!(missing.reason.contains("MY_OPENAI_KEY"), "{missing}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut p = provider("x", Protocol::OpenAi);
        p.base_url = "ftp://nowhere".into();
        let err = GatewayConfig::resolve(RawGateway::default(), vec![p], no_env).unwrap_err();
        assert_eq!(err.key, "providers[0].base_url");
        let raw = RawGateway {
            upstream_timeout_secs: Some(0),
            ..Default::default()
        };
        assert_eq!(
            GatewayConfig::resolve(raw, vec![], no_env).unwrap_err().key,
            "gateway.upstream_timeout_secs"
        );
    }

    #[test]
    fn without_providers_real_keys_win_and_the_mock_fills_in() {
        let base = GatewayConfig::resolve(RawGateway::default(), vec![], no_env).unwrap();
        let mocked = base.clone().with_default_providers(no_env, "http://127.0.0.1:9");
        assert!(mocked.mock);
        assert_eq!(
            mocked.route(Protocol::OpenAi, "gpt-4o").unwrap().provider.base_url,
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(
            mocked.route(Protocol::Anthropic, "claude-x").unwrap().provider.base_url,
            "http://127.0.0.1:9"
        );
        let env = |var: &str| (var == "ANTHROPIC_API_KEY").then(|| "sk-ant".to_owned());
        let mixed = base.with_default_providers(env, "http://127.0.0.1:9");
        assert_eq!(
            mixed.route(Protocol::Anthropic, "claude-x").unwrap().provider.name,
            "anthropic"
        );
        assert_eq!(mixed.route(Protocol::OpenAi, "gpt-4o").unwrap().provider.name, "mock");
    }
}
