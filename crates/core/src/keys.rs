//! Virtual keys: what clients present instead of a provider key.
//!
//! A key's secret is `gk-<id>-<random>`: the 12-hex-digit id is public (it names the key in
//! lists and logs), the 64 hex digits after it are 256 random bits. Only the SHA-256 of the
//! whole secret is stored; the secret itself is shown once, when the key is created.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Micros;

pub const SECRET_PREFIX: &str = "gk-";

/// Who a key's calls are attributed to (requests may narrow it later, never widen it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct KeyScope {
    pub user: String,
    pub team: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
}

/// Per-key rate limits (absent: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RateLimits {
    pub requests_per_minute: Option<u64>,
    /// Tokens of every kind; a call is charged its worst case up front and refunded the rest.
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualKey {
    pub id: String,
    pub name: Option<String>,
    pub scope: KeyScope,
    pub created_at: Micros,
    pub expires_at: Option<Micros>,
    pub revoked_at: Option<Micros>,
    /// The key that replaced this one when it was rotated.
    pub replaced_by: Option<String>,
    pub limits: RateLimits,
}

crate::named_enum! {
    /// Whether a key lets calls through.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum KeyStatus {
        Active = "active",
        Expired = "expired",
        Revoked = "revoked",
    }
}

impl VirtualKey {
    /// Whether the key may be used at `now`. Revocation wins over expiry.
    pub fn status(&self, now: Micros) -> KeyStatus {
        if self.revoked_at.is_some_and(|at| at <= now) {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

/// A new key's id and secret from caller-supplied randomness (core never draws it).
pub fn new_secret(id_bytes: [u8; 6], secret_bytes: [u8; 32]) -> (String, String) {
    let id = hex::encode(id_bytes);
    let secret = format!("{SECRET_PREFIX}{id}-{}", hex::encode(secret_bytes));
    (id, secret)
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.trim().as_bytes()))
}

/// Whether a presented credential looks like a virtual key (and not, say, a provider key).
pub fn looks_like_secret(text: &str) -> bool {
    text.strip_prefix(SECRET_PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(id, random)| {
            id.len() == 12 && random.len() == 64 && (id.chars().chain(random.chars())).all(|c| c.is_ascii_hexdigit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(expires: Option<i64>, revoked: Option<i64>) -> VirtualKey {
        VirtualKey {
            id: "0123456789ab".into(),
            name: None,
            scope: KeyScope {
                user: "alice".into(),
                ..KeyScope::default()
            },
            created_at: Micros(0),
            expires_at: expires.map(Micros),
            revoked_at: revoked.map(Micros),
            replaced_by: None,
            limits: RateLimits::default(),
        }
    }

    #[test]
    fn status_at_a_time() {
        assert_eq!(key(None, None).status(Micros(10)), KeyStatus::Active);
        assert_eq!(key(Some(10), None).status(Micros(9)), KeyStatus::Active);
        assert_eq!(key(Some(10), None).status(Micros(10)), KeyStatus::Expired);
        assert_eq!(key(Some(10), Some(5)).status(Micros(20)), KeyStatus::Revoked);
    }

    #[test]
    fn secrets_have_a_public_id_and_hash_stably() {
        let (id, secret) = new_secret([1, 2, 3, 4, 5, 6], [7; 32]);
        assert_eq!(id, "010203040506");
        assert!(secret.starts_with("gk-010203040506-0707"));
        assert!(looks_like_secret(&secret));
        assert!(!looks_like_secret("sk-ant-api03-whatever"));
        assert_eq!(hash_secret(&secret), hash_secret(&format!(" {secret}\n")));
        assert_ne!(
            hash_secret(&secret),
            hash_secret(&new_secret([1, 2, 3, 4, 5, 6], [8; 32]).1)
        );
    }
}
