//! Admin authentication: a bearer token whose SHA-256 is all the server keeps.
//!
//! The token comes from `GOODHART_ADMIN_TOKEN`, or is generated on first start, printed once
//! and stored only as a hash. Comparison is constant-time over the digests.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// The settings key under which a generated admin token's hash is stored.
pub const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

/// SHA-256 digest of a secret token.
pub type TokenHash = [u8; 32];

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random admin token (256 bits).
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("gh_admin_{}", hex::encode(bytes))
}

/// The token a request presents: `Authorization: Bearer …` or `x-api-key: …`.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

fn constant_time_eq(a: &TokenHash, b: &TokenHash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lets a request through only with the admin token.
pub async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let presented = presented_token(request.headers()).map(hash_token);
    match presented {
        Some(hash) if constant_time_eq(&hash, &state.admin_token_hash) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_either_header() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented_token(&headers), Some("abc"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "xyz".parse().unwrap());
        assert_eq!(presented_token(&headers), Some("xyz"));
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented_token(&headers), None);
    }

    #[test]
    fn generated_tokens_are_unique_and_compare_by_hash() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(constant_time_eq(&hash_token(&a), &hash_token(&a)));
        assert!(!constant_time_eq(&hash_token(&a), &hash_token(&b)));
    }
}
