//! Secret tokens of the API (the admin token, viewer and ingest tokens): generated from 256
//! random bits, stored only as SHA-256 digests, compared in constant time.

use rand::Rng;
use sha2::{Digest, Sha256};

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

pub fn constant_time_eq(a: &TokenHash, b: &TokenHash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_unique_and_compare_by_hash() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(constant_time_eq(&hash_token(&a), &hash_token(&a)));
        assert!(!constant_time_eq(&hash_token(&a), &hash_token(&b)));
    }
}
