//! Client authentication with virtual keys, and a short-lived cache of key lookups.
//!
//! Clients send their Goodhart key where they would send a provider key: `Authorization:
//! Bearer …` (OpenAI SDKs, Anthropic SDK ≥ 2), `x-api-key` (Claude Code, older Anthropic
//! clients), `x-goog-api-key` or the query's `key` (Gemini clients), `api-key` (Azure OpenAI clients). Bedrock clients send it
//! as a Bedrock API key (`Authorization: Bearer …`, what `AWS_BEARER_TOKEN_BEDROCK` makes the
//! AWS SDKs and Claude Code send), or as the access key id of an AWS signature
//! (`Authorization: AWS4-HMAC-SHA256 Credential=<key>/…`): there the key itself is the
//! credential, as a bearer token is — the signature, made with a secret the gateway does not
//! hold, is not checked, and never goes upstream. Lookups by the key's SHA-256 are cached for [`KEY_CACHE_TTL`] — unknown keys
//! too, so a client hammering with a bad key does not hammer the database. A revocation made
//! through this process clears the cache at once; one made through another instance takes
//! effect here within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use goodhart_core::Micros;
use goodhart_core::keys::{self, KeyStatus, VirtualKey};
use goodhart_store::{Store, StoreError};

pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Entries beyond this are dropped wholesale (a bound on memory under a flood of bad keys).
const MAX_CACHED_KEYS: usize = 50_000;

/// The credential a client presented, if any: in a header, else in the query's `key`
/// parameter (Gemini's REST convention).
pub fn credential<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    header_credential(headers).or_else(|| {
        query?
            .split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .filter(|key| !key.is_empty())
    })
}

fn header_credential(headers: &HeaderMap) -> Option<&str> {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let bearer = authorization
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| authorization.and_then(sigv4_access_key))
        .map(str::trim);
    let api_key = ["x-api-key", "x-goog-api-key", "api-key"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    // Some clients send both (one of them a placeholder): prefer the one shaped like our key.
    match (bearer, api_key) {
        (Some(b), Some(a)) if !keys::looks_like_secret(b) && keys::looks_like_secret(a) => Some(a),
        (Some(b), _) => Some(b),
        (None, a) => a,
    }
    .filter(|c| !c.is_empty())
}

/// The access key id of a SigV4 `Authorization` header (`AWS4-HMAC-SHA256
/// Credential=<id>/<date>/<region>/<service>/aws4_request, SignedHeaders=…, Signature=…`).
fn sigv4_access_key(authorization: &str) -> Option<&str> {
    let fields = authorization.strip_prefix("AWS4-HMAC-SHA256 ")?;
    fields
        .split(',')
        .find_map(|field| field.trim().strip_prefix("Credential="))?
        .split('/')
        .next()
}

type CacheEntry = (Option<Arc<VirtualKey>>, Instant);

pub struct KeyCache {
    store: Arc<dyn Store>,
    entries: RwLock<HashMap<String, CacheEntry>>,
}

/// Why a credential was refused (the message the client sees).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("missing credential: send your Goodhart key as `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    Missing,
    #[error("unknown key")]
    Unknown,
    #[error("key {0} is revoked")]
    Revoked(String),
    #[error("key {0} has expired")]
    Expired(String),
}

impl KeyCache {
    pub fn new(store: Arc<dyn Store>) -> KeyCache {
        KeyCache {
            store,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The active key behind `secret`, or why it cannot be used.
    pub async fn authenticate(
        &self,
        secret: Option<&str>,
        now: Micros,
    ) -> Result<Result<Arc<VirtualKey>, KeyRefusal>, StoreError> {
        let Some(secret) = secret else {
            return Ok(Err(KeyRefusal::Missing));
        };
        if !keys::looks_like_secret(secret) {
            return Ok(Err(KeyRefusal::Unknown));
        }
        let hash = keys::hash_secret(secret);
        let key = match self.cached(&hash) {
            Some(key) => key,
            None => {
                let key = self.store.key_by_hash(&hash).await?.map(Arc::new);
                let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
                if entries.len() >= MAX_CACHED_KEYS {
                    entries.clear();
                }
                entries.insert(hash, (key.clone(), Instant::now()));
                key
            }
        };
        let Some(key) = key else {
            return Ok(Err(KeyRefusal::Unknown));
        };
        Ok(match key.status(now) {
            KeyStatus::Active => Ok(key),
            KeyStatus::Revoked => Err(KeyRefusal::Revoked(key.id.clone())),
            KeyStatus::Expired => Err(KeyRefusal::Expired(key.id.clone())),
        })
    }

    fn cached(&self, hash: &str) -> Option<Option<Arc<VirtualKey>>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL)
            .map(|(key, _)| key.clone())
    }

    /// Forgets every cached lookup (after a key was revoked or rotated).
    pub fn invalidate(&self) {
        self.entries.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_credential_comes_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(credential(&headers, None), None);
        headers.insert("x-api-key", HeaderValue::from_static("gk-abc"));
        assert_eq!(credential(&headers, None), Some("gk-abc"));
        headers.insert("authorization", HeaderValue::from_static("Bearer gk-def"));
        assert_eq!(credential(&headers, None), Some("gk-def"));
        let mut both = HeaderMap::new();
        both.insert("authorization", HeaderValue::from_static("Bearer placeholder"));
        let real = format!("gk-{}-{}", "a".repeat(12), "b".repeat(64));
        both.insert("x-api-key", HeaderValue::from_str(&real).unwrap());
        assert_eq!(credential(&both, None), Some(real.as_str()));
    }

    #[test]
    fn bedrock_clients_send_it_as_an_api_key_or_as_the_access_key_of_a_signature() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer gk-bedrock"));
        assert_eq!(credential(&headers, None), Some("gk-bedrock"));
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=gk-signed/20260101/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc123",
            ),
        );
        assert_eq!(credential(&headers, None), Some("gk-signed"));
        headers.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Signature=abc"),
        );
        assert_eq!(credential(&headers, None), None);
    }

    #[test]
    fn gemini_clients_send_it_in_their_header_or_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(credential(&headers, Some("alt=sse&key=gk-q")), Some("gk-q"));
        assert_eq!(credential(&headers, Some("alt=sse&key=")), None);
        assert_eq!(credential(&headers, Some("monkey=gk-no")), None);
        headers.insert("x-goog-api-key", HeaderValue::from_static("gk-goog"));
        assert_eq!(credential(&headers, Some("key=gk-q")), Some("gk-goog"));
    }
}
