//! Single sign-on through an OpenID Connect provider (`[auth.oidc]`): the authorization code
//! flow with PKCE (S256), `state` and `nonce`, using the `openidconnect` crate for discovery,
//! the code exchange and the ID token's verification, and the gateway's hyper client for its
//! requests to the provider.
//!
//! What is checked of an ID token: its signature, by the provider's key the `kid` names (an
//! unknown `kid` refetches the provider's JWKS, at most once per [`JWKS_REFETCH_EVERY`], for
//! key rotation); its `alg`, pinned to the asymmetric algorithms the provider's discovery
//! document lists (`none` and the HMAC ones are refused, so a public key can never serve as an
//! HMAC secret); `iss`, `aud` (ours, and no other untrusted one), `azp` (ours when present,
//! required with several audiences), `exp`, `iat` and `nbf` within [`OidcSettings::clock_skew`],
//! and the `nonce` of the login it answers. A login under way (its `state`, `nonce` and PKCE
//! verifier) travels in a cookie encrypted and authenticated with the session key (so that any
//! instance can complete it and `/auth/login` stores nothing), lasts [`PENDING_LOGIN_TTL`], and
//! its `state` is recorded in the store when used, so a callback is used once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use goodhart_gateway::upstream::UpstreamClient;
use http_body_util::{BodyExt, Full, Limited};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl, JwsSigningAlgorithm,
    LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::app::sessions::{IdTokenHint, Identity, SessionKey};
use crate::app::sign_in_limit::{SignInLimit, SignInStep};
use crate::app::tokens::{constant_time_eq, hash_token};

/// How long a login started at `/auth/login` may take to come back to `/auth/callback`.
pub const PENDING_LOGIN_TTL: Duration = Duration::from_secs(600);
/// The provider's keys are refetched for an unknown `kid` at most this often.
pub const JWKS_REFETCH_EVERY: Duration = Duration::from_secs(30);
/// How long one request to the provider may take, and how large its answer may be.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PROVIDER_BYTES: usize = 1 << 20;

/// `[auth.oidc]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    /// The provider's issuer URL; its discovery document is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// What the dashboard's "Sign in with …" button calls the provider (default its host).
    pub provider_name: Option<String>,
    /// The environment variable holding the client secret (none: a public client, PKCE only).
    pub client_secret_env: Option<String>,
    /// Where people reach Goodhart, e.g. `https://goodhart.example.com`: the redirect URL is
    /// `<public_url>/auth/callback` unless `redirect_url` says otherwise.
    pub public_url: Option<String>,
    pub redirect_url: Option<String>,
    /// Where the provider sends the browser back after signing out at its end-session
    /// endpoint (default `<public_url>/`; register it at the provider).
    pub post_logout_redirect_url: Option<String>,
    /// Scopes asked for (default `openid`, `email`, `profile`; `openid` is always asked for).
    pub scopes: Option<Vec<String>>,
    /// The ID token claim listing the person's groups (default `groups`).
    pub groups_claim: Option<String>,
    /// The ID token claim with the person's email (default `email`).
    pub email_claim: Option<String>,
    /// Groups whose members are admins.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Groups whose members see every team, read-only.
    #[serde(default)]
    pub viewer_groups: Vec<String>,
    /// Group → team: members see that team only, read-only.
    #[serde(default)]
    pub team_groups: BTreeMap<String, String>,
    /// Groups whose members are finops: every team's numbers, budgets, keys and bills.
    #[serde(default)]
    pub finops_groups: Vec<String>,
    /// Group → team: members manage that team (read it, decide its people's findings).
    #[serde(default)]
    pub manager_groups: BTreeMap<String, String>,
    /// Groups whose members are engineers: their own numbers and keys.
    #[serde(default)]
    pub engineer_groups: Vec<String>,
    /// Group → team: the team its members belong to, for attribution only (no role): usage of
    /// theirs that names no team is the team's.
    #[serde(default)]
    pub member_groups: BTreeMap<String, String>,
    /// How a signed-in person is named in usage: their email without this domain (e.g.
    /// `example.com` makes `ana@example.com` the user `ana`); default: the whole email.
    pub user_domain: Option<String>,
    /// How long a session lasts (default 8).
    pub session_hours: Option<u64>,
    /// Whether the session cookie is `Secure` (default: when the public URL is https).
    pub secure_cookie: Option<bool>,
    /// Tolerated clock difference with the provider for `exp`, `iat` and `nbf` (default 60, at most 300).
    pub clock_skew_secs: Option<u64>,
    /// How many times a minute one client address may start a sign-in (`/auth/login`) and,
    /// apart, complete one (`/auth/callback`) at one instance (default 30, 1 – 10000).
    pub max_sign_ins_per_minute: Option<u32>,
}

/// What a signed-in person may do, from their groups (see [`RoleMap::role`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Admin,
    Finops,
    /// Read-only; limited to one team when `team` is set.
    Viewer {
        team: Option<String>,
    },
    Manager {
        team: String,
    },
    /// Their own numbers and keys.
    Engineer,
}

impl Role {
    /// The role's name, as `/api/v1/me` says it.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Finops => "finops",
            Role::Viewer { .. } => "viewer",
            Role::Manager { .. } => "manager",
            Role::Engineer => "engineer",
        }
    }

    /// A role by name with the team it needs (a manager's) or may have (a viewer's); the error
    /// names the field at fault (`role` or `team`) and why.
    pub fn parse(name: &str, team: Option<String>) -> Result<Role, (&'static str, String)> {
        let no_team = |role: Role| match team.is_some() {
            true => Err(("team", format!("{} role has no team", role.name()))),
            false => Ok(role),
        };
        match name {
            "admin" => no_team(Role::Admin),
            "finops" => no_team(Role::Finops),
            "engineer" => no_team(Role::Engineer),
            "viewer" => Ok(Role::Viewer { team }),
            "manager" => match team {
                Some(team) => Ok(Role::Manager { team }),
                None => Err(("team", "a manager role needs the team they manage".into())),
            },
            other => Err((
                "role",
                format!("{other:?} is not `admin`, `finops`, `viewer`, `manager` or `engineer`"),
            )),
        }
    }

    /// The one team the role is limited to, if any.
    pub fn team(&self) -> Option<&str> {
        match self {
            Role::Viewer { team } => team.as_deref(),
            Role::Manager { team } => Some(team),
            Role::Admin | Role::Finops | Role::Engineer => None,
        }
    }
}

/// How the provider's groups map to roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    pub admin_groups: BTreeSet<String>,
    pub viewer_groups: BTreeSet<String>,
    pub team_groups: BTreeMap<String, String>,
    pub finops_groups: BTreeSet<String>,
    pub manager_groups: BTreeMap<String, String>,
    pub engineer_groups: BTreeSet<String>,
}

impl RoleMap {
    /// The widest role the groups give, in this order: admin; finops; a viewer of every team;
    /// the manager of one team; a viewer of one team; an engineer; else none (the person is
    /// refused). Where groups name several teams, the alphabetically first is the person's
    /// home team, so a person counts in one team only.
    pub fn role(&self, groups: &[String]) -> Option<Role> {
        let any = |set: &BTreeSet<String>| groups.iter().any(|g| set.contains(g));
        let first_team = |map: &BTreeMap<String, String>| groups.iter().filter_map(|g| map.get(g)).min().cloned();
        if any(&self.admin_groups) {
            Some(Role::Admin)
        } else if any(&self.finops_groups) {
            Some(Role::Finops)
        } else if any(&self.viewer_groups) {
            Some(Role::Viewer { team: None })
        } else if let Some(team) = first_team(&self.manager_groups) {
            Some(Role::Manager { team })
        } else if let Some(team) = first_team(&self.team_groups) {
            Some(Role::Viewer { team: Some(team) })
        } else if any(&self.engineer_groups) {
            Some(Role::Engineer)
        } else {
            None
        }
    }
}

/// `[auth.oidc]`, validated.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: IssuerUrl,
    pub provider_name: String,
    pub client_id: ClientId,
    pub client_secret: Option<ClientSecret>,
    pub redirect_url: RedirectUrl,
    pub post_logout_redirect_url: PostLogoutRedirectUrl,
    /// The public URL's origin (`scheme://host[:port]`): state-changing requests made with the
    /// session cookie must come from it when they say where they come from.
    pub origin: String,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub email_claim: String,
    pub roles: RoleMap,
    /// Group → team for attribution only (see [`OidcSettings::home_team`]).
    pub member_groups: BTreeMap<String, String>,
    /// Removed from the email to name an engineer in usage (`ana@example.com` → `ana`).
    pub user_domain: Option<String>,
    pub session_length: Duration,
    pub secure_cookie: bool,
    pub clock_skew: Duration,
    pub max_sign_ins_per_minute: u32,
}

impl OidcSettings {
    /// The person's home team, where usage of theirs that names no team is attributed: of
    /// the teams their groups name (`manager_groups`, `team_groups`, `member_groups`), the
    /// alphabetically first — the same rule that picks the team a manager or viewer sees, so a
    /// person is counted in one team only.
    pub fn home_team(&self, groups: &[String]) -> Option<String> {
        let maps = [&self.roles.manager_groups, &self.roles.team_groups, &self.member_groups];
        groups
            .iter()
            .flat_map(|group| maps.iter().filter_map(move |map| map.get(group)))
            .min()
            .cloned()
    }

    /// The usage `user` a signed-in person is: their email without `user_domain` (when it
    /// ends so), else their email, else their subject.
    pub fn usage_user(&self, email: Option<&str>, subject: &str) -> String {
        let Some(email) = email else {
            return subject.to_owned();
        };
        self.user_domain
            .as_deref()
            .and_then(|domain| email.strip_suffix(domain)?.strip_suffix('@'))
            .filter(|local| !local.is_empty())
            .unwrap_or(email)
            .to_owned()
    }
}

/// A bad `[auth.oidc]` value: its key (relative to the section) and why.
#[derive(Debug)]
pub struct OidcConfigError {
    pub key: String,
    pub reason: String,
}

fn invalid(key: &str, reason: impl Into<String>) -> OidcConfigError {
    OidcConfigError {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

impl RawOidc {
    /// Validates the section; `env` reads the client secret's variable. Keys in errors are
    /// relative to `auth.oidc`.
    pub fn resolve(self, env: impl Fn(&str) -> Option<String>) -> Result<OidcSettings, OidcConfigError> {
        let issuer = IssuerUrl::new(self.issuer.trim_end_matches('/').to_owned())
            .map_err(|e| invalid("issuer", format!("is not a URL ({e})")))?;
        if !["http", "https"].contains(&issuer.url().scheme()) {
            return Err(invalid("issuer", "must be an http(s) URL"));
        }
        if self.client_id.trim().is_empty() {
            return Err(invalid("client_id", "must not be empty"));
        }
        let client_secret = match self.client_secret_env {
            Some(var) => Some(ClientSecret::new(env(&var).filter(|s| !s.is_empty()).ok_or_else(
                || {
                    invalid(
                        "client_secret_env",
                        format!("the environment variable {var} is not set"),
                    )
                },
            )?)),
            None => None,
        };
        let public = self.public_url.as_deref().map(|p| p.trim_end_matches('/').to_owned());
        let redirect = match (self.redirect_url, &public) {
            (Some(url), _) => ("redirect_url", url),
            (None, Some(public)) => ("public_url", format!("{public}/auth/callback")),
            (None, None) => return Err(invalid("public_url", "set public_url (or redirect_url)")),
        };
        let redirect_url =
            RedirectUrl::new(redirect.1).map_err(|e| invalid(redirect.0, format!("is not a URL ({e})")))?;
        let scheme = redirect_url.url().scheme().to_owned();
        if !["http", "https"].contains(&scheme.as_str()) {
            return Err(invalid(redirect.0, "must be an http(s) URL"));
        }
        let origin = redirect_url.url().origin().ascii_serialization();
        let post_logout = match (self.post_logout_redirect_url, &public) {
            (Some(url), _) => ("post_logout_redirect_url", url),
            (None, Some(public)) => ("public_url", format!("{public}/")),
            (None, None) => ("redirect_url", format!("{origin}/")),
        };
        let post_logout_redirect_url = PostLogoutRedirectUrl::new(post_logout.1)
            .map_err(|e| invalid(post_logout.0, format!("is not a URL ({e})")))?;
        if !["http", "https"].contains(&post_logout_redirect_url.url().scheme()) {
            return Err(invalid(post_logout.0, "must be an http(s) URL"));
        }
        let mut scopes = self
            .scopes
            .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
        if scopes.iter().any(|s| s.trim().is_empty() || s.contains(' ')) {
            return Err(invalid("scopes", "must be non-empty words without spaces"));
        }
        scopes.retain(|s| s != "openid");
        let nonempty = |key: &str, value: Option<String>, default: &str| match value {
            Some(v) if v.trim().is_empty() => Err(invalid(key, "must not be empty")),
            Some(v) => Ok(v),
            None => Ok(default.to_owned()),
        };
        let groups_claim = nonempty("groups_claim", self.groups_claim, "groups")?;
        let email_claim = nonempty("email_claim", self.email_claim, "email")?;
        for (key, map) in [
            ("team_groups", &self.team_groups),
            ("manager_groups", &self.manager_groups),
            ("member_groups", &self.member_groups),
        ] {
            if let Some((group, _)) = map.iter().find(|(_, team)| team.trim().is_empty()) {
                return Err(invalid(&format!("{key}.{group}"), "must name a team"));
            }
        }
        let user_domain = match self.user_domain {
            Some(domain) if domain.trim().is_empty() || domain.contains('@') => {
                return Err(invalid("user_domain", "must be a domain such as example.com"));
            }
            domain => domain,
        };
        let roles = RoleMap {
            admin_groups: self.admin_groups.into_iter().collect(),
            viewer_groups: self.viewer_groups.into_iter().collect(),
            team_groups: self.team_groups,
            finops_groups: self.finops_groups.into_iter().collect(),
            manager_groups: self.manager_groups,
            engineer_groups: self.engineer_groups.into_iter().collect(),
        };
        if roles == RoleMap::default() {
            return Err(invalid(
                "admin_groups",
                "map at least one group to a role (admin_groups, finops_groups, viewer_groups, manager_groups, team_groups or engineer_groups)",
            ));
        }
        let hours = self.session_hours.unwrap_or(8);
        if !(1..=720).contains(&hours) {
            return Err(invalid("session_hours", "must be between 1 and 720"));
        }
        let skew = self.clock_skew_secs.unwrap_or(60);
        if skew > 300 {
            return Err(invalid("clock_skew_secs", "must be at most 300"));
        }
        let max_sign_ins_per_minute = self.max_sign_ins_per_minute.unwrap_or(30);
        if !(1..=10_000).contains(&max_sign_ins_per_minute) {
            return Err(invalid("max_sign_ins_per_minute", "must be between 1 and 10000"));
        }
        let provider_name = match self.provider_name {
            Some(name) if name.trim().is_empty() => return Err(invalid("provider_name", "must not be empty")),
            Some(name) => name,
            None => issuer.url().host_str().unwrap_or("single sign-on").to_owned(),
        };
        Ok(OidcSettings {
            provider_name,
            issuer,
            client_id: ClientId::new(self.client_id),
            client_secret,
            redirect_url,
            post_logout_redirect_url,
            origin,
            scopes,
            groups_claim,
            email_claim,
            roles,
            member_groups: self.member_groups,
            user_domain,
            session_length: Duration::from_secs(hours * 3_600),
            secure_cookie: self.secure_cookie.unwrap_or(scheme == "https"),
            clock_skew: Duration::from_secs(skew),
            max_sign_ins_per_minute,
        })
    }
}

/// Why a sign-in failed. `Refused` is the person's or the request's doing (4xx); `Provider`
/// is the provider's or the network's (502).
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("{0}")]
    Refused(String),
    #[error("the identity provider: {0}")]
    Provider(String),
}

/// A failed request to the provider.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderHttpError(String);

/// Sends one of the `openidconnect` crate's requests with the gateway's hyper client.
async fn send(
    client: UpstreamClient,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, ProviderHttpError> {
    let (parts, body) = request.into_parts();
    let request = axum::http::Request::from_parts(parts, Full::new(Bytes::from(body)));
    let response = tokio::time::timeout(PROVIDER_TIMEOUT, client.request(request))
        .await
        .map_err(|_| ProviderHttpError(format!("no answer within {} s", PROVIDER_TIMEOUT.as_secs())))?
        .map_err(|e| ProviderHttpError(e.to_string()))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_PROVIDER_BYTES)
        .collect()
        .await
        .map_err(|e| ProviderHttpError(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(axum::http::Response::from_parts(parts, body.to_vec()))
}

/// What discovery found, and the provider's keys.
#[derive(Clone)]
struct Provider {
    metadata: ProviderMetadataWithLogout,
    /// The asymmetric algorithms of the discovery document: the only ones an ID token may use.
    algs: Vec<CoreJwsSigningAlgorithm>,
    /// When an unknown `kid` last refetched the keys.
    refetched: Option<Instant>,
}

/// A login between `/auth/login` and `/auth/callback`, as its cookie carries it.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    /// Unix seconds.
    started: i64,
}

/// Single sign-on: the settings, the session cookie's key, the provider (discovered at the
/// first sign-in) and the bound on sign-in attempts.
pub struct Sso {
    pub settings: OidcSettings,
    pub key: SessionKey,
    http: UpstreamClient,
    provider: tokio::sync::Mutex<Option<Provider>>,
    limit: std::sync::Mutex<SignInLimit>,
}

impl Sso {
    pub fn new(settings: OidcSettings, key: SessionKey, http: UpstreamClient) -> Sso {
        let limit = SignInLimit::new(settings.max_sign_ins_per_minute);
        Sso {
            settings,
            key,
            http,
            provider: tokio::sync::Mutex::new(None),
            limit: std::sync::Mutex::new(limit),
        }
    }

    /// Counts a sign-in attempt at `step` from `address` (see [`SignInLimit`]): `Err` with
    /// how long to wait when it is past `max_sign_ins_per_minute`.
    pub fn admit(&self, step: SignInStep, address: Option<std::net::IpAddr>) -> Result<(), Duration> {
        self.limit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(step, address, Instant::now())
    }

    /// The provider, discovered now if not yet.
    async fn provider(&self) -> Result<Provider, SsoError> {
        let mut provider = self.provider.lock().await;
        if let Some(found) = provider.as_ref() {
            return Ok(found.clone());
        }
        let client = self.http.clone();
        let http = move |request| send(client.clone(), request);
        let metadata = ProviderMetadataWithLogout::discover_async(self.settings.issuer.clone(), &http)
            .await
            .map_err(|e| SsoError::Provider(format!("discovery: {}", error_chain(&e))))?;
        let algs: Vec<CoreJwsSigningAlgorithm> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|alg| **alg != CoreJwsSigningAlgorithm::None && !alg.uses_shared_secret())
            .cloned()
            .collect();
        if algs.is_empty() {
            return Err(SsoError::Provider(
                "its discovery document lists no asymmetric ID token signing algorithm".into(),
            ));
        }
        let found = Provider {
            metadata,
            algs,
            refetched: None,
        };
        *provider = Some(found.clone());
        Ok(found)
    }

    /// Refetches the provider's keys unless they were fetched less than
    /// [`JWKS_REFETCH_EVERY`] ago; returns whether they were.
    async fn refetch_keys(&self) -> Result<bool, SsoError> {
        let mut guard = self.provider.lock().await;
        let Some(provider) = guard.as_mut() else {
            return Ok(false);
        };
        if provider.refetched.is_some_and(|at| at.elapsed() < JWKS_REFETCH_EVERY) {
            return Ok(false);
        }
        provider.refetched = Some(Instant::now());
        let client = self.http.clone();
        let http = move |request| send(client.clone(), request);
        let jwks = CoreJsonWebKeySet::fetch_async(provider.metadata.jwks_uri(), &http)
            .await
            .map_err(|e| SsoError::Provider(format!("fetching its keys: {}", error_chain(&e))))?;
        provider.metadata = provider.metadata.clone().set_jwks(jwks);
        Ok(true)
    }

    fn client(
        &self,
        provider: &Provider,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            provider.metadata.clone(),
            self.settings.client_id.clone(),
            self.settings.client_secret.clone(),
        )
        .set_redirect_uri(self.settings.redirect_url.clone())
    }

    /// Where to send the browser after signing out here, to sign out at the provider too
    /// (OpenID Connect RP-Initiated Logout): its `end_session_endpoint` with the sign-in's ID
    /// token as `id_token_hint` (when kept), our `client_id`, the `post_logout_redirect_uri` and
    /// a fresh `state`; `None` when its discovery document
    /// lists none (or it cannot be reached: signing out here must not wait on it).
    pub async fn end_session_url(&self, hint: Option<&IdTokenHint>) -> Option<String> {
        let provider = match self.provider().await {
            Ok(provider) => provider,
            Err(e) => {
                tracing::warn!(error = %e, "single sign-on: signing out here only; the provider's discovery failed");
                return None;
            }
        };
        let endpoint = provider.metadata.additional_metadata().end_session_endpoint.clone()?;
        let mut request = LogoutRequest::from(endpoint);
        if let Some(token) = hint.and_then(|h| h.0.parse::<CoreIdToken>().ok()) {
            request = request.set_id_token_hint(&token);
        }
        let request = request
            .set_client_id(self.settings.client_id.clone())
            .set_post_logout_redirect_uri(self.settings.post_logout_redirect_url.clone())
            .set_state(CsrfToken::new_random());
        Some(request.http_get_url().to_string())
    }

    /// Starts a login: the provider's authorization URL to send the browser to, and the value
    /// of the cookie that carries the login (its `state`, `nonce`, PKCE verifier and start,
    /// encrypted and authenticated with the session key) until the callback.
    pub async fn login(&self) -> Result<(String, String), SsoError> {
        let provider = self.provider().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client(&provider)
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(self.settings.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            started: chrono::Utc::now().timestamp(),
        };
        let cookie = serde_json::to_vec(&pending)
            .ok()
            .and_then(|plain| self.key.seal_login(&plain))
            .ok_or_else(|| SsoError::Provider("could not seal the login cookie".into()))?;
        Ok((url.to_string(), cookie))
    }

    /// Completes the login the browser's login `cookie` carries, if the callback's `state` is
    /// its own, it started less than [`PENDING_LOGIN_TTL`] ago and its state was never used
    /// (in the store: once across every instance): exchanges `code` and verifies the ID token.
    pub async fn callback(
        &self,
        app: &App,
        cookie: Option<&str>,
        state: &str,
        code: &str,
    ) -> Result<(Identity, IdTokenHint), SsoError> {
        let not_this_browser =
            || SsoError::Refused("this sign-in was not started in this browser; sign in again".into());
        let pending: Pending = cookie
            .and_then(|c| self.key.open_login(c))
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .ok_or_else(not_this_browser)?;
        if !constant_time_eq(&hash_token(&pending.state), &hash_token(state)) {
            return Err(not_this_browser());
        }
        let age = chrono::Utc::now().timestamp().saturating_sub(pending.started);
        if !(0..i64::try_from(PENDING_LOGIN_TTL.as_secs()).unwrap_or(i64::MAX)).contains(&age) {
            return Err(SsoError::Refused(
                "unknown, used or expired sign-in state; sign in again".into(),
            ));
        }
        match app.use_login_state(state, PENDING_LOGIN_TTL * 2).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(SsoError::Refused(
                    "unknown, used or expired sign-in state; sign in again".into(),
                ));
            }
            Err(e) => return Err(SsoError::Provider(format!("recording the sign-in: {e}"))),
        }
        let provider = self.provider().await?;
        let client = self.client(&provider);
        let http_client = self.http.clone();
        let http = move |request| send(http_client.clone(), request);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| SsoError::Provider(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&http)
            .await
            .map_err(|e| SsoError::Refused(format!("the code was not accepted: {}", error_chain(&e))))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| SsoError::Provider("its token response has no ID token".into()))?;
        let raw = id_token.to_string();
        let nonce = Nonce::new(pending.nonce);
        let identity = match self.verify(&provider, &raw, &nonce) {
            Err(SsoError::Refused(reason)) if reason.contains(NO_MATCHING_KEY) && self.refetch_keys().await? => {
                let provider = self.provider().await?;
                self.verify(&provider, &raw, &nonce)
            }
            other => other,
        }?;
        Ok((identity, IdTokenHint(raw)))
    }

    /// Verifies an ID token (see the module's documentation) and reads who it is about.
    fn verify(&self, provider: &Provider, raw: &str, nonce: &Nonce) -> Result<Identity, SsoError> {
        let settings = &self.settings;
        let refused = |what: String| SsoError::Refused(format!("the ID token is refused: {what}"));
        let skew = chrono::Duration::from_std(settings.clock_skew).unwrap_or_default();
        let token: CoreIdToken = raw.parse().map_err(|e| refused(format!("{e}")))?;
        let verifier = CoreIdTokenVerifier::new_public_client(
            settings.client_id.clone(),
            settings.issuer.clone(),
            provider.metadata.jwks().clone(),
        )
        .set_allowed_algs(provider.algs.clone())
        .set_time_fn(move || chrono::Utc::now() - skew)
        .set_issue_time_verifier_fn(move |iat| {
            if iat > chrono::Utc::now() + skew {
                Err(format!("issued in the future ({iat})"))
            } else {
                Ok(())
            }
        });
        let claims = token.claims(&verifier, nonce).map_err(|e| match e {
            ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey) => {
                refused(NO_MATCHING_KEY.into())
            }
            other => refused(error_chain(&other)),
        })?;
        // The signature holds: the payload can be read for what the crate leaves to us.
        let payload = payload(raw).ok_or_else(|| refused("its payload is not a JSON object".into()))?;
        let audiences = claims.audiences();
        match payload.get("azp").and_then(|v| v.as_str()) {
            Some(azp) if azp != settings.client_id.as_str() => {
                return Err(refused(format!("azp {azp:?} is not this client")));
            }
            None if audiences.len() > 1 => return Err(refused("several audiences and no azp".into())),
            _ => {}
        }
        if let Some(nbf) = payload.get("nbf").and_then(|v| v.as_i64())
            && nbf > chrono::Utc::now().timestamp() + skew.num_seconds()
        {
            return Err(refused("not valid yet (nbf)".into()));
        }
        let text = |claim: &str| payload.get(claim).and_then(|v| v.as_str()).map(str::to_owned);
        let groups = match payload.get(&settings.groups_claim) {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect()
            }
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            email: text(&settings.email_claim),
            name: text("name"),
            groups,
            session_id: None,
        })
    }
}

/// The reason an ID token whose `kid` names no key of the provider's is refused (the cue to
/// refetch the keys).
const NO_MATCHING_KEY: &str = "no key of the provider's matches its kid";

/// The JSON object of a JWT's payload.
fn payload(raw: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let part = raw.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An error and its sources, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_widest_role_wins_and_the_first_team_is_home() {
        let roles = RoleMap {
            admin_groups: ["admins".to_owned()].into(),
            viewer_groups: ["finance".to_owned()].into(),
            team_groups: [("grp-search", "search"), ("grp-payments", "payments")]
                .map(|(g, t)| (g.to_owned(), t.to_owned()))
                .into(),
            ..RoleMap::default()
        };
        assert_eq!(roles.role(&groups(&["finance", "admins"])), Some(Role::Admin));
        assert_eq!(
            roles.role(&groups(&["grp-search", "finance"])),
            Some(Role::Viewer { team: None })
        );
        assert_eq!(
            roles.role(&groups(&["grp-search", "grp-payments"])),
            Some(Role::Viewer {
                team: Some("payments".into())
            })
        );
        assert_eq!(roles.role(&groups(&["someone-else"])), None);
        assert_eq!(roles.role(&[]), None);

        let roles = RoleMap {
            finops_groups: ["money".to_owned()].into(),
            manager_groups: [("leads-search", "search"), ("leads-payments", "payments")]
                .map(|(g, t)| (g.to_owned(), t.to_owned()))
                .into(),
            engineer_groups: ["eng".to_owned()].into(),
            ..roles
        };
        assert_eq!(roles.role(&groups(&["eng", "money", "finance"])), Some(Role::Finops));
        assert_eq!(
            roles.role(&groups(&["eng", "finance"])),
            Some(Role::Viewer { team: None })
        );
        assert_eq!(
            roles.role(&groups(&["eng", "grp-search", "leads-search", "leads-payments"])),
            Some(Role::Manager {
                team: "payments".into()
            }),
            "a manager of two teams manages the first"
        );
        assert_eq!(
            roles.role(&groups(&["eng", "grp-search"])),
            Some(Role::Viewer {
                team: Some("search".into())
            })
        );
        assert_eq!(roles.role(&groups(&["eng"])), Some(Role::Engineer));
    }

    #[test]
    fn the_home_team_is_the_first_team_any_group_names_role_or_not() {
        let settings = raw(
            "engineer_groups = [\"eng\"]\nmanager_groups = { \"leads-search\" = \"search\" }\n\
             team_groups = { \"grp-payments\" = \"payments\" }\n\
             member_groups = { \"org-ads\" = \"ads\", \"org-web\" = \"web\" }",
        )
        .resolve(|_| None)
        .unwrap();
        let home = |names: &[&str]| settings.home_team(&groups(names));
        assert_eq!(home(&["eng"]), None);
        assert_eq!(home(&["eng", "org-web"]), Some("web".into()));
        assert_eq!(home(&["org-web", "leads-search"]), Some("search".into()));
        assert_eq!(home(&["grp-payments", "leads-search", "org-ads"]), Some("ads".into()));
        assert_eq!(
            settings.roles.role(&groups(&["org-ads"])),
            None,
            "a member group gives a team, not a role"
        );
        assert!(
            raw("engineer_groups = [\"eng\"]\nmember_groups = { \"org-x\" = \" \" }")
                .resolve(|_| None)
                .is_err()
        );
    }

    #[test]
    fn a_signed_in_engineer_is_the_usage_user_their_email_names() {
        let mut settings = raw("engineer_groups = [\"eng\"]\nuser_domain = \"example.com\"")
            .resolve(|_| None)
            .unwrap();
        assert_eq!(settings.usage_user(Some("ana@example.com"), "sub-1"), "ana");
        assert_eq!(settings.usage_user(Some("ana@other.org"), "sub-1"), "ana@other.org");
        assert_eq!(
            settings.usage_user(Some("ana@notexample.com"), "sub-1"),
            "ana@notexample.com"
        );
        assert_eq!(settings.usage_user(None, "sub-1"), "sub-1");
        settings.user_domain = None;
        assert_eq!(settings.usage_user(Some("ana@example.com"), "sub-1"), "ana@example.com");
        assert!(raw("user_domain = \"@example.com\"").resolve(|_| None).is_err());
    }

    fn raw(extra: &str) -> RawOidc {
        toml::from_str(&format!(
            "issuer = \"https://idp.example/\"\nclient_id = \"goodhart\"\npublic_url = \"https://goodhart.example\"\nadmin_groups = [\"admins\"]\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn settings_are_derived_and_validated() {
        let settings = raw("").resolve(|_| None).unwrap();
        assert_eq!(settings.redirect_url.as_str(), "https://goodhart.example/auth/callback");
        assert_eq!(settings.origin, "https://goodhart.example");
        assert!(settings.secure_cookie);
        assert_eq!(settings.session_length, Duration::from_secs(8 * 3_600));
        assert_eq!(settings.groups_claim, "groups");
        let error = raw("client_secret_env = \"OIDC_SECRET\"")
            .resolve(|_| None)
            .unwrap_err();
        assert_eq!(error.key, "client_secret_env");
        let with_secret = raw("client_secret_env = \"OIDC_SECRET\"")
            .resolve(|v| (v == "OIDC_SECRET").then(|| "s3cret".to_owned()))
            .unwrap();
        assert!(
            !format!("{with_secret:?}").contains("s3cret"),
            "the secret is never printed"
        );
        assert_eq!(
            raw("session_hours = 0").resolve(|_| None).unwrap_err().key,
            "session_hours"
        );
        assert_eq!(settings.max_sign_ins_per_minute, 30);
        assert_eq!(settings.post_logout_redirect_url.as_str(), "https://goodhart.example/");
        let chosen = raw("post_logout_redirect_url = \"https://goodhart.example/signed-out\"")
            .resolve(|_| None)
            .unwrap();
        assert_eq!(
            chosen.post_logout_redirect_url.as_str(),
            "https://goodhart.example/signed-out"
        );
        assert_eq!(
            raw("post_logout_redirect_url = \"ftp://x\"")
                .resolve(|_| None)
                .unwrap_err()
                .key,
            "post_logout_redirect_url"
        );
        assert_eq!(
            raw("max_sign_ins_per_minute = 0").resolve(|_| None).unwrap_err().key,
            "max_sign_ins_per_minute"
        );
        let unknown = toml::from_str::<RawOidc>("issuer = \"x\"\nclient_id = \"y\"\nadmin_group = []").unwrap_err();
        assert!(unknown.to_string().contains("admin_group"), "{unknown}");
    }
}
