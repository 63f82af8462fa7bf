//! An engineer's own credentials, listed, created and revoked by the person they are for
//! within the bounds of `[self_service]`: virtual keys (how many active at once, how long a key
//! lives, the most calls and tokens per minute it may allow) — a key made so is the person's in
//! every respect an admin's would be: attributed to them, metered, capped by their budgets —
//! and personal ingest tokens, with which they send their local agents' logs to the server
//! (`goodhart import … --server`), all of it attributed to themselves.

use goodhart_core::keys::{KeyStatus, VirtualKey};
use goodhart_core::time::{MICROS_PER_DAY, parse_span};
use goodhart_store::viewers::{TokenRole, ViewerToken};
use serde::Deserialize;

use super::audit::Origin;
use super::keys::NewKey;
use super::viewers::NewViewer;
use super::{App, AppError};

/// `POST /api/v1/me/ingest-tokens`: what a person chooses of their ingest token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOwnIngestToken {
    /// What it is for, e.g. `laptop`.
    pub name: Option<String>,
}

/// `POST /api/v1/me/keys`: what a person chooses of their own key (never whose it is).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOwnKey {
    pub name: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
    /// A span such as `30d`; at most `[self_service] max_key_days`, which is also the default.
    pub expires_in: Option<String>,
    /// At most `[self_service] max_requests_per_minute` where that is set (also the default).
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

/// A limit the person asked for, within the admin's cap: the cap when they ask none.
fn within_cap(field: &'static str, asked: Option<u64>, cap: Option<u64>) -> Result<Option<u64>, AppError> {
    match (asked, cap) {
        (Some(asked), Some(cap)) if asked > cap => Err(AppError::field(
            field,
            format!("`{field}` may be at most {cap} for a key you make yourself ([self_service])"),
        )),
        (asked, cap) => Ok(asked.or(cap)),
    }
}

impl App {
    /// The keys made for `user`, by anyone.
    pub async fn own_keys(&self, user: &str) -> Result<Vec<VirtualKey>, AppError> {
        let mut keys = self.keys().await?;
        keys.retain(|k| k.scope.user == user);
        Ok(keys)
    }

    /// A new key for `user`, made by them; returns it with its secret (shown once).
    pub async fn create_own_key(
        &self,
        origin: &Origin,
        user: &str,
        request: NewOwnKey,
    ) -> Result<(VirtualKey, String), AppError> {
        let rules = &self.settings().self_service;
        let now = self.now();
        let active = self
            .own_keys(user)
            .await?
            .iter()
            .filter(|k| k.status(now) == KeyStatus::Active)
            .count();
        if active >= rules.max_keys as usize {
            return Err(AppError::Conflict(format!(
                "{user} already holds {active} active keys, the most a person may ([self_service] max_keys); revoke one first"
            )));
        }
        let longest = i64::from(rules.max_key_days) * MICROS_PER_DAY;
        let expires_in = match request.expires_in.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => format!("{}d", rules.max_key_days),
            Some(span) => match parse_span(span) {
                Some(micros) if micros > longest => {
                    return Err(AppError::field(
                        "expires_in",
                        format!(
                            "a key you make yourself lives at most {}d ([self_service] max_key_days)",
                            rules.max_key_days
                        ),
                    ));
                }
                // Anything else is checked as an admin's key's would be.
                _ => span.to_owned(),
            },
        };
        self.create_key(
            origin,
            NewKey {
                user: user.to_owned(),
                team: None,
                project: request.project,
                agent: request.agent,
                name: request.name,
                expires_in: Some(expires_in),
                requests_per_minute: within_cap(
                    "requests_per_minute",
                    request.requests_per_minute,
                    rules.max_requests_per_minute,
                )?,
                tokens_per_minute: within_cap(
                    "tokens_per_minute",
                    request.tokens_per_minute,
                    rules.max_tokens_per_minute,
                )?,
            },
        )
        .await
    }

    /// The ingest tokens made for `user`, by anyone, newest first.
    pub async fn own_ingest_tokens(&self, user: &str) -> Result<Vec<ViewerToken>, AppError> {
        let mut tokens = self.tokens().await?;
        tokens.retain(|t| t.role == TokenRole::Ingest && t.user.as_deref() == Some(user));
        Ok(tokens)
    }

    /// A new personal ingest token for `user`, made by them; returns it with its secret
    /// (shown once). Its team is none: what it sends is the person's home team's
    /// ([`crate::app::directory`]).
    pub async fn create_own_ingest_token(
        &self,
        origin: &Origin,
        user: &str,
        request: NewOwnIngestToken,
    ) -> Result<(ViewerToken, String), AppError> {
        let most = self.settings().self_service.max_ingest_tokens;
        let active = self
            .own_ingest_tokens(user)
            .await?
            .iter()
            .filter(|t| t.revoked_at.is_none())
            .count();
        if active >= most as usize {
            return Err(AppError::Conflict(format!(
                "{user} already holds {active} active ingest tokens, the most a person may ([self_service] max_ingest_tokens); revoke one first"
            )));
        }
        let request = NewViewer {
            name: request.name,
            team: None,
            role: Some(TokenRole::Ingest.as_str().to_owned()),
            user: Some(user.to_owned()),
        };
        self.create_token(origin, request).await
    }

    /// Revokes one of `user`'s ingest tokens; anyone else's answers as if it did not exist.
    pub async fn revoke_own_ingest_token(
        &self,
        origin: &Origin,
        user: &str,
        id: &str,
    ) -> Result<ViewerToken, AppError> {
        if !self.own_ingest_tokens(user).await?.iter().any(|t| t.id == id) {
            return Err(AppError::not_found(format!("ingest token {id}")));
        }
        self.revoke_token(origin, id).await
    }

    /// Revokes one of `user`'s keys; anyone else's answers as if it did not exist.
    pub async fn revoke_own_key(&self, origin: &Origin, user: &str, id: &str) -> Result<VirtualKey, AppError> {
        if !self.own_keys(user).await?.iter().any(|k| k.id == id) {
            return Err(AppError::not_found(format!("key {id}")));
        }
        self.revoke_key(origin, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_asked_for_stays_within_the_cap_which_is_also_the_default() {
        assert_eq!(within_cap("f", None, None).unwrap(), None);
        assert_eq!(within_cap("f", Some(10), None).unwrap(), Some(10));
        assert_eq!(within_cap("f", None, Some(60)).unwrap(), Some(60));
        assert_eq!(within_cap("f", Some(60), Some(60)).unwrap(), Some(60));
        assert!(matches!(
            within_cap("f", Some(61), Some(60)),
            Err(AppError::InvalidField { field: "f", .. })
        ));
    }
}
