//! Providers and routing: which upstream serves which model, over which wire protocol, with
//! which key.
//!
//! A model is routed, among the providers speaking the endpoint's protocol, by the first rule
//! that matches: an alias in a provider's `model_map` (renamed on the way up), a name in its
//! `models`, the longest of its `prefixes`, and finally the provider marked `default` (a
//! provider without any model rule is a default). Providers' API keys are read from the
//! environment variable each one names; they are held in [`ApiKey`], whose `Debug` never shows
//! them. A Bedrock provider is called with AWS credentials instead (every request signed with
//! SigV4, [`AwsSigning`]), or with a Bedrock API key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use goodhart_core::budgets::WhenUnreachable;
pub use goodhart_core::requests::Protocol;
use serde::Deserialize;

use crate::google_auth::ServiceAccount;

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
    /// What blocking budgets that name no policy, and keys' rate limits, do when the database
    /// cannot be reached to lend a slice: `fail_closed` (default: refuse the calls that need
    /// one) or `fail_open` (admit them up to `fail_open_percent` of each budget's limit per
    /// window, and each key's own per-minute limit per minute, per instance).
    pub when_store_unreachable: Option<String>,
    /// Failing open, each instance's allowance per budget window, in percent of the limit
    /// (1 to 100, default 5).
    pub fail_open_percent: Option<u32>,
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
    /// Bedrock: the AWS region requests are signed for (default: the one in `base_url`'s
    /// `bedrock-runtime.{region}.amazonaws.com`, else `AWS_REGION`).
    pub region: Option<String>,
    /// Bedrock: the environment variables holding the AWS credentials requests are signed
    /// with (default: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    pub aws_access_key_id_env: Option<String>,
    pub aws_secret_access_key_env: Option<String>,
    pub aws_session_token_env: Option<String>,
    /// Vertex AI: a service account's key file (JSON); requests carry the access tokens it
    /// earns (instead of a static token in `api_key_env`).
    pub google_credentials_file: Option<PathBuf>,
}

/// The AWS credentials and region a Bedrock provider's requests are signed with (SigV4,
/// service `bedrock`); the secrets never print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSigning {
    pub access_key_id: String,
    pub secret_access_key: ApiKey,
    pub session_token: Option<ApiKey>,
    pub region: String,
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
    /// Bedrock: sign each request with these credentials.
    pub aws: Option<AwsSigning>,
    /// Vertex AI: the service account whose access tokens requests carry.
    pub google: Option<Arc<ServiceAccount>>,
}

/// The client protocols a provider speaking `provider` can serve by translation.
fn translatable(client: Protocol, provider: Protocol) -> bool {
    matches!(
        (client, provider),
        (Protocol::Anthropic, Protocol::OpenAi) | (Protocol::OpenAi, Protocol::Anthropic)
    )
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
    /// What pools do when the store is unreachable, unless a budget says otherwise.
    pub when_unreachable: WhenUnreachable,
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

/// The default policy when the store is unreachable, from `[gateway]`'s two keys.
fn when_unreachable(name: Option<&str>, percent: Option<u32>) -> Result<WhenUnreachable, GatewayConfigError> {
    match (name.map(str::trim), percent) {
        (None | Some("fail_closed"), None) => Ok(WhenUnreachable::FailClosed),
        (None | Some("fail_closed"), Some(_)) => Err(invalid(
            "gateway.fail_open_percent",
            "applies only with `when_store_unreachable = \"fail_open\"`",
        )),
        (Some("fail_open"), percent) => {
            let percent = percent.unwrap_or(WhenUnreachable::DEFAULT_PERCENT);
            WhenUnreachable::from_parts("fail_open", Some(percent)).ok_or_else(|| {
                invalid(
                    "gateway.fail_open_percent",
                    format!("must be 1 to {}, got {percent}", WhenUnreachable::MAX_PERCENT),
                )
            })
        }
        (Some(other), _) => Err(invalid(
            "gateway.when_store_unreachable",
            format!("expected \"fail_closed\" or \"fail_open\", got {other:?}"),
        )),
    }
}

/// The region of a Bedrock runtime URL: `https://bedrock-runtime.{region}.amazonaws.com`
/// (or its `-fips` twin).
fn region_in_url(base_url: &str) -> Option<&str> {
    let host = base_url.split_once("://")?.1.split(['/', ':']).next()?;
    let rest = host
        .strip_prefix("bedrock-runtime.")
        .or_else(|| host.strip_prefix("bedrock-runtime-fips."))?;
    rest.split_once('.').map(|(region, _)| region).filter(|r| !r.is_empty())
}

/// A Bedrock provider's signing credentials: from the variables it names, else the standard
/// AWS ones. None without credentials (a Bedrock API key in `api_key_env`, or a mock); the
/// error names the field at fault.
fn aws_signing(
    p: &RawProvider,
    base_url: &str,
    has_api_key: bool,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<AwsSigning>, (&'static str, String)> {
    let named = [
        ("region", p.region.is_some()),
        ("aws_access_key_id_env", p.aws_access_key_id_env.is_some()),
        ("aws_secret_access_key_env", p.aws_secret_access_key_env.is_some()),
        ("aws_session_token_env", p.aws_session_token_env.is_some()),
    ];
    if p.protocol != Protocol::Bedrock {
        return match named.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err((
                field,
                "only a provider with `protocol = \"bedrock\"` takes AWS settings".into(),
            )),
            None => Ok(None),
        };
    }
    let read = |var: &str| env(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let explicit = p.aws_access_key_id_env.is_some() || p.aws_secret_access_key_env.is_some();
    let id_var = p.aws_access_key_id_env.as_deref().unwrap_or("AWS_ACCESS_KEY_ID");
    let secret_var = p
        .aws_secret_access_key_env
        .as_deref()
        .unwrap_or("AWS_SECRET_ACCESS_KEY");
    let (id, secret) = (read(id_var), read(secret_var));
    let (id, secret) = match (id, secret) {
        (Some(id), Some(secret)) => (id, secret),
        // Neither named nor in the environment: unsigned (an API key, or a mock).
        (None, None) if !explicit => return Ok(None),
        _ if !explicit && has_api_key => return Ok(None),
        (None, _) => {
            return Err((
                "aws_access_key_id_env",
                format!("environment variable {id_var} is not set"),
            ));
        }
        (_, None) => {
            return Err((
                "aws_secret_access_key_env",
                format!("environment variable {secret_var} is not set"),
            ));
        }
    };
    let session_token = match &p.aws_session_token_env {
        Some(var) => Some(read(var).ok_or_else(|| {
            (
                "aws_session_token_env",
                format!("environment variable {var} is not set"),
            )
        })?),
        None => read("AWS_SESSION_TOKEN").filter(|_| !explicit),
    };
    let region = p
        .region
        .clone()
        .or_else(|| region_in_url(base_url).map(str::to_owned))
        .or_else(|| read("AWS_REGION"))
        .or_else(|| read("AWS_DEFAULT_REGION"))
        .ok_or_else(|| {
            (
                "region",
                "set `region` (or AWS_REGION): it is not in the base URL (bedrock-runtime.{region}.amazonaws.com)"
                    .into(),
            )
        })?;
    if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(("region", format!("{region:?} is not an AWS region")));
    }
    Ok(Some(AwsSigning {
        access_key_id: id,
        secret_access_key: ApiKey::new(secret),
        session_token: session_token.map(ApiKey::new),
        region,
    }))
}

/// Bedrock when no provider is configured: AWS's, in `AWS_REGION` (default `us-east-1`), when
/// the environment holds a Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`) or AWS credentials;
/// else the mock.
fn default_bedrock(env: &impl Fn(&str) -> Option<String>, mock_base: &str, mock: &mut bool) -> Provider {
    let read = |var: &str| env(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let region = read("AWS_REGION")
        .or_else(|| read("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let api_key = read("AWS_BEARER_TOKEN_BEDROCK").map(ApiKey::new);
    let aws = match (read("AWS_ACCESS_KEY_ID"), read("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) if api_key.is_none() => Some(AwsSigning {
            access_key_id: id,
            secret_access_key: ApiKey::new(secret),
            session_token: read("AWS_SESSION_TOKEN").map(ApiKey::new),
            region: region.clone(),
        }),
        _ => None,
    };
    let real = api_key.is_some() || aws.is_some();
    *mock |= !real;
    Provider {
        name: if real { "bedrock" } else { "mock" }.to_owned(),
        protocol: Protocol::Bedrock,
        base_url: if real {
            format!("https://bedrock-runtime.{region}.amazonaws.com")
        } else {
            mock_base.trim_end_matches('/').to_owned()
        },
        api_key,
        models: Vec::new(),
        prefixes: Vec::new(),
        model_map: BTreeMap::new(),
        deployments: BTreeMap::new(),
        clients: Vec::new(),
        default: true,
        aws,
        google: None,
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
                        "{client} clients cannot be translated to {}: anthropic clients of an openai provider and \
                         openai clients of an anthropic provider can",
                        p.protocol
                    ),
                ));
            }
            let aws = aws_signing(&p, &base_url, api_key.is_some(), &env)
                .map_err(|(field, reason)| invalid(key(field), reason))?;
            let google = match &p.google_credentials_file {
                Some(_) if p.protocol != Protocol::Vertex => {
                    return Err(invalid(
                        key("google_credentials_file"),
                        "only a vertex provider uses one",
                    ));
                }
                Some(_) if api_key.is_some() => {
                    return Err(invalid(
                        key("google_credentials_file"),
                        "give a service account key or a static token (`api_key_env`), not both",
                    ));
                }
                Some(path) => Some(Arc::new(
                    ServiceAccount::from_file(path)
                        .map_err(|reason| invalid(key("google_credentials_file"), reason))?,
                )),
                None => None,
            };
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
                google,
                default: p.default || !has_rules,
                aws,
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
        let when_unreachable = when_unreachable(raw.when_store_unreachable.as_deref(), raw.fail_open_percent)?;
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
            when_unreachable,
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
            let aws = None;
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
                aws,
                google: None,
            });
        }
        self.providers.push(default_bedrock(&env, mock_base, &mut self.mock));
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
            region: None,
            aws_access_key_id_env: None,
            aws_secret_access_key_env: None,
            aws_session_token_env: None,
            google_credentials_file: None,
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
            err.reason
                .contains("anthropic clients of an openai provider and openai clients of an anthropic provider"),
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
    fn the_default_when_the_store_is_unreachable_fails_closed_unless_set_to_fail_open() {
        let resolve = |name: Option<&str>, percent: Option<u32>| {
            let raw = RawGateway {
                when_store_unreachable: name.map(str::to_owned),
                fail_open_percent: percent,
                ..Default::default()
            };
            GatewayConfig::resolve(raw, vec![], no_env).map(|c| c.when_unreachable)
        };
        assert_eq!(resolve(None, None).unwrap(), WhenUnreachable::FailClosed);
        assert_eq!(
            resolve(Some("fail_open"), None).unwrap(),
            WhenUnreachable::FailOpen { percent: 5 }
        );
        assert_eq!(
            resolve(Some("fail_open"), Some(25)).unwrap(),
            WhenUnreachable::FailOpen { percent: 25 }
        );
        for (name, percent, key) in [
            (Some("fail_open"), Some(0), "gateway.fail_open_percent"),
            (Some("fail_open"), Some(500), "gateway.fail_open_percent"),
            (None, Some(5), "gateway.fail_open_percent"),
            (Some("open"), None, "gateway.when_store_unreachable"),
        ] {
            assert_eq!(resolve(name, percent).unwrap_err().key, key, "{name:?} {percent:?}");
        }
    }

    #[test]
    fn bedrock_signs_with_the_credentials_it_names_in_the_region_of_its_url() {
        let mut p = provider("bedrock", Protocol::Bedrock);
        p.base_url = "https://bedrock-runtime.eu-west-3.amazonaws.com/".into();
        p.aws_access_key_id_env = Some("TEAM_AWS_ID".into());
        p.aws_secret_access_key_env = Some("TEAM_AWS_SECRET".into());
        let env = |var: &str| match var {
            "TEAM_AWS_ID" => Some("AKIDEXAMPLE".to_owned()),
            "TEAM_AWS_SECRET" => Some("wJalrXUtnFEMI".to_owned()),
            "AWS_SESSION_TOKEN" => Some("ambient-token".to_owned()),
            _ => None,
        };
        let config = GatewayConfig::resolve(RawGateway::default(), vec![p.clone()], env).unwrap();
        let aws = config.providers[0].aws.clone().unwrap();
        assert_eq!(
            (aws.access_key_id.as_str(), aws.region.as_str()),
            ("AKIDEXAMPLE", "eu-west-3")
        );
        assert_eq!(aws.session_token, None, "named credentials take no ambient token");
        assert!(!format!("{config:?}").contains("wJalrXUtnFEMI"));

        // A named variable that is not set, a URL without a region, AWS settings elsewhere.
        let missing = GatewayConfig::resolve(RawGateway::default(), vec![p.clone()], no_env).unwrap_err();
        assert_eq!(missing.key, "providers[0].aws_access_key_id_env");
        p.base_url = "https://bedrock.internal.example".into();
        let no_region = GatewayConfig::resolve(RawGateway::default(), vec![p.clone()], env).unwrap_err();
        assert_eq!(no_region.key, "providers[0].region", "{no_region}");
        p.region = Some("us-west-2".into());
        let config = GatewayConfig::resolve(RawGateway::default(), vec![p], env).unwrap();
        assert_eq!(config.providers[0].aws.as_ref().unwrap().region, "us-west-2");
        let mut openai = provider("openai", Protocol::OpenAi);
        openai.region = Some("us-east-1".into());
        let wrong = GatewayConfig::resolve(RawGateway::default(), vec![openai], no_env).unwrap_err();
        assert_eq!(wrong.key, "providers[0].region");

        // The standard variables when none are named; none at all is an unsigned provider.
        let standard = |var: &str| match var {
            "AWS_ACCESS_KEY_ID" => Some("AKIDSTD".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_owned()),
            "AWS_REGION" => Some("ap-south-1".to_owned()),
            _ => None,
        };
        let mut plain = provider("bedrock", Protocol::Bedrock);
        plain.base_url = "http://127.0.0.1:9".into();
        let config = GatewayConfig::resolve(RawGateway::default(), vec![plain.clone()], standard).unwrap();
        let aws = config.providers[0].aws.clone().unwrap();
        assert_eq!(
            (aws.access_key_id.as_str(), aws.region.as_str()),
            ("AKIDSTD", "ap-south-1")
        );
        let config = GatewayConfig::resolve(RawGateway::default(), vec![plain], no_env).unwrap();
        assert_eq!(config.providers[0].aws, None);
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
