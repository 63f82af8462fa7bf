//! Access tokens for Google Cloud (Vertex AI) from a service account's key: the OAuth 2.0 JWT
//! bearer flow (RFC 7523). A JWT naming the account (`iss`), the token endpoint (`aud`) and the
//! `cloud-platform` scope, signed with the account's RSA key (RS256), is exchanged at the key's
//! `token_uri` for an access token, which is kept until a minute before it expires; concurrent
//! calls wait for one exchange rather than each making their own.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::errors::GatewayError;
use crate::upstream::UpstreamClient;

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long a requested token is asked to live (Google's maximum).
const LIFETIME_SECS: u64 = 3_600;
/// A token this close to its expiry is replaced before use.
const MARGIN: Duration = Duration::from_secs(60);
/// The most of a token endpoint's answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The fields of a service account key file that the flow needs.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key: String,
    #[serde(default = "default_token_uri")]
    token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

/// A service account's tokens.
pub struct ServiceAccount {
    email: String,
    token_uri: String,
    key: RsaKeyPair,
    cached: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("email", &self.email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

impl ServiceAccount {
    /// Reads a service account key file (the JSON Google Cloud issues); the error says why it
    /// cannot be used.
    pub fn from_file(path: &Path) -> Result<ServiceAccount, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ServiceAccount::from_json(&text)
    }

    pub fn from_json(text: &str) -> Result<ServiceAccount, String> {
        let file: KeyFile = serde_json::from_str(text).map_err(|e| format!("not a service account key file: {e}"))?;
        if file.kind != "service_account" {
            return Err(format!("`type` is {:?}, not \"service_account\"", file.kind));
        }
        let base64: String = file
            .private_key
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = STANDARD
            .decode(base64.trim())
            .map_err(|e| format!("`private_key` is not a PEM key: {e}"))?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| format!("`private_key` is not an RSA PKCS#8 key: {e}"))?;
        Ok(ServiceAccount {
            email: file.client_email,
            token_uri: file.token_uri,
            key,
            cached: Mutex::new(None),
        })
    }

    /// The signed assertion for a token, issued at `now` (seconds since the epoch).
    fn assertion(&self, now: u64) -> Result<String, GatewayError> {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({"iss": self.email, "scope": SCOPE, "aud": self.token_uri,
                                        "iat": now, "exp": now + LIFETIME_SECS});
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| GatewayError::UpstreamUnavailable("the service account's key could not sign".into()))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    pub async fn token(&self, client: &UpstreamClient, timeout: Duration) -> Result<String, GatewayError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() + MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let now = jiff::Timestamp::now().as_second().max(0).unsigned_abs();
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            self.assertion(now)?
        );
        let request = hyper::Request::post(&self.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| GatewayError::UpstreamUnavailable(format!("cannot build the token request: {e}")))?;
        let failed = |what: String| {
            tracing::warn!(account = %self.email, "Google access token: {what}");
            GatewayError::UpstreamUnavailable(format!("no Google access token for the provider: {what}"))
        };
        let response = match tokio::time::timeout(timeout, client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => return Err(GatewayError::UpstreamTimeout(timeout.as_secs())),
        };
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(failed(format!(
                "the token endpoint answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| failed(format!("unreadable token answer: {e}")))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(LIFETIME_SECS));
        *cached = Some((answer.access_token.clone(), Instant::now() + lifetime));
        Ok(answer.access_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_that_cannot_be_used_say_why() {
        let refuse = |text: &str| ServiceAccount::from_json(text).unwrap_err();
        assert!(refuse("{").contains("not a service account key file"));
        let user = r#"{"type": "authorized_user", "client_email": "a", "private_key": "b"}"#;
        assert!(refuse(user).contains("not \"service_account\""));
        let garbled = r#"{"type": "service_account", "client_email": "a", "private_key": "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n"}"#;
        assert!(refuse(garbled).contains("not a PEM key"));
        let not_rsa = r#"{"type": "service_account", "client_email": "a", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#;
        assert!(refuse(not_rsa).contains("not an RSA PKCS#8 key"));
    }
}
