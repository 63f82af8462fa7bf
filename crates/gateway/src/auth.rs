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
//!
//! When the store cannot be asked (a database outage), a key that was looked up and found
//! within the last [`STALE_IF_ERROR`] is served from that lookup (its expiry still checked,
//! the use counted in `keys_served_stale` and logged): an outage does not refuse every call.
//! Keys never seen, or last seen unknown, are refused with 503 as before; the first answer of
//! the store after the outage replaces the stale one, so a revocation takes effect then.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use goodhart_core::Micros;
use goodhart_core::keys::{self, KeyStatus, VirtualKey};
use goodhart_store::{KeyStore, StoreError};
use prometheus_client::metrics::counter::Counter;

pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// How old a key lookup may be and still let calls in while the store cannot be asked: an
/// outage up to this long keeps known keys working; a key revoked through another instance
/// meanwhile works here until the store answers again, at most this long.
pub const STALE_IF_ERROR: Duration = Duration::from_secs(15 * 60);
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

struct CacheEntry {
    key: Option<Arc<VirtualKey>>,
    /// When the store gave this answer.
    answered: Instant,
    /// When the store was last asked about this key (its answer or its failure): nobody asks
    /// again within the TTL, outage or not.
    asked: Instant,
}

pub struct KeyCache {
    store: Arc<dyn KeyStore>,
    entries: RwLock<HashMap<String, CacheEntry>>,
    /// [`KEY_CACHE_TTL`] (shorter in tests).
    ttl: Duration,
    served_stale: Counter,
    /// When a stale answer was last logged (as milliseconds since `created`): once a second.
    logged_stale: AtomicU64,
    created: Instant,
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
    /// A cache over `store`; calls let in on a stale lookup are counted in `served_stale`.
    pub fn new(store: Arc<dyn KeyStore>, served_stale: Counter) -> KeyCache {
        KeyCache {
            store,
            entries: RwLock::new(HashMap::new()),
            ttl: KEY_CACHE_TTL,
            served_stale,
            logged_stale: AtomicU64::new(0),
            created: Instant::now(),
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
            None => match self.store.key_by_hash(&hash).await {
                Ok(key) => {
                    let key = key.map(Arc::new);
                    let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
                    if entries.len() >= MAX_CACHED_KEYS {
                        entries.clear();
                    }
                    let now = Instant::now();
                    let entry = CacheEntry {
                        key: key.clone(),
                        answered: now,
                        asked: now,
                    };
                    entries.insert(hash, entry);
                    key
                }
                Err(e) => self.stale(&hash, e)?,
            },
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

    /// The cached answer for `hash`, if the store was asked about it within the TTL (a stale
    /// known key whose last asking failed is served without asking again until then).
    fn cached(&self, hash: &str) -> Option<Option<Arc<VirtualKey>>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(hash)?;
        let fresh = entry.answered.elapsed() < self.ttl;
        let stale_but_known = entry.key.is_some() && entry.answered.elapsed() < STALE_IF_ERROR;
        if fresh {
            return Some(entry.key.clone());
        }
        if stale_but_known && entry.asked.elapsed() < self.ttl {
            self.served_stale.inc();
            return Some(entry.key.clone());
        }
        None
    }

    /// The last known key behind `hash` when the store failed to answer (`error`), if it was
    /// known within [`STALE_IF_ERROR`]; else the error.
    fn stale(&self, hash: &str, error: StoreError) -> Result<Option<Arc<VirtualKey>>, StoreError> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = entries
            .get_mut(hash)
            .filter(|entry| entry.key.is_some() && entry.answered.elapsed() < STALE_IF_ERROR)
        else {
            return Err(error);
        };
        entry.asked = Instant::now();
        self.served_stale.inc();
        let now_ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.logged_stale.load(Ordering::Relaxed);
        if (last == 0 || now_ms.saturating_sub(last) >= 1_000)
            && self
                .logged_stale
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                age_s = entry.answered.elapsed().as_secs(),
                bound_s = STALE_IF_ERROR.as_secs(),
                "key lookup failed; serving the last known answer: {error}"
            );
        }
        Ok(entry.key.clone())
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
    use goodhart_core::keys::{KeyScope, RateLimits};
    use std::sync::atomic::AtomicBool;

    /// One key, and a switch that makes every lookup fail as an unreachable database does.
    struct FlakyKeys {
        hash: String,
        down: AtomicBool,
        revoked: AtomicBool,
    }

    #[async_trait::async_trait]
    impl KeyStore for FlakyKeys {
        async fn create_key(&self, _: &VirtualKey, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        async fn keys(&self) -> Result<Vec<VirtualKey>, StoreError> {
            Ok(Vec::new())
        }
        async fn key_by_hash(&self, hash: &str) -> Result<Option<VirtualKey>, StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Pool("connection refused".into()));
            }
            Ok((hash == self.hash).then(|| VirtualKey {
                id: "k1".into(),
                name: None,
                scope: KeyScope {
                    user: "alice".into(),
                    ..KeyScope::default()
                },
                created_at: Micros(0),
                expires_at: None,
                revoked_at: self.revoked.load(Ordering::SeqCst).then_some(Micros(1)),
                replaced_by: None,
                limits: RateLimits::default(),
            }))
        }
        async fn revoke_key(&self, _: &str, _: Micros) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn replace_key(&self, _: &str, _: &VirtualKey, _: &str, _: Micros) -> Result<bool, StoreError> {
            Ok(true)
        }
    }

    #[tokio::test]
    async fn while_the_store_is_down_known_keys_keep_working_unknown_ones_do_not_and_revocation_waits_for_it() {
        let (_, known) = keys::new_secret([1; 6], [2; 32]);
        let (_, never_seen) = keys::new_secret([3; 6], [4; 32]);
        let store = Arc::new(FlakyKeys {
            hash: keys::hash_secret(&known),
            down: AtomicBool::new(false),
            revoked: AtomicBool::new(false),
        });
        let stale = Counter::default();
        let mut cache = KeyCache::new(Arc::clone(&store) as _, stale.clone());
        cache.ttl = Duration::from_millis(20);
        let now = Micros(10);
        assert!(cache.authenticate(Some(&known), now).await.unwrap().is_ok());
        store.down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Past the TTL, with the store down: the last answer, counted.
        let key = cache.authenticate(Some(&known), now).await.unwrap().unwrap();
        assert_eq!(key.id, "k1");
        assert!(stale.get() >= 1);
        assert!(
            cache.authenticate(Some(&never_seen), now).await.is_err(),
            "a key never seen cannot be vouched for"
        );
        // Revoked meanwhile: the first answer of the store after the outage is the one used.
        store.revoked.store(true, Ordering::SeqCst);
        store.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            cache.authenticate(Some(&known), now).await.unwrap(),
            Err(KeyRefusal::Revoked("k1".into()))
        );
        // Now down again: what is served is what the store last said, the revocation.
        store.down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(cache.authenticate(Some(&known), now).await.unwrap().is_err());
    }

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
