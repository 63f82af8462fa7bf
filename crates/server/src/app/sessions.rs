//! Sessions of people signed in through single sign-on ([`crate::oidc`]): who they are
//! ([`Identity`], which handlers read next to their [`Access`](super::access::Access)), the
//! cookie that carries a session's secret (signed with a key kept in the settings table), its
//! CSRF token, and the use cases: start, look up, list and revoke. A session's secret (256
//! random bits) is stored only as its SHA-256; revoking one takes effect at the next request.

use std::time::Duration;

use goodhart_core::Micros;
use goodhart_store::sessions::Session;
use rand::Rng;
use ring::hmac;
use serde::Serialize;

use super::tokens::hash_token;
use super::{App, AppError};

/// The settings key of the key that signs session cookies (hex, 256 bits).
pub const SESSION_KEY_SETTING: &str = "session_cookie_key";

/// Who a signed-in person is, as their identity provider says; handlers read it as an
/// `Extension<Identity>` next to the `Access` their groups give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// The session the request came with.
    pub session_id: Option<String>,
}

impl Identity {
    /// What to call the person: their email, else their name, else their subject.
    pub fn label(&self) -> String {
        self.email
            .clone()
            .or_else(|| self.name.clone())
            .unwrap_or_else(|| self.subject.clone())
    }
}

/// Signs and checks session cookies, and derives a session's CSRF token.
pub struct SessionKey(hmac::Key);

impl SessionKey {
    pub fn new(secret: &[u8]) -> SessionKey {
        SessionKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// A new random key, hex-encoded for the settings table.
    pub fn generate() -> String {
        let bytes: [u8; 32] = rand::rng().random();
        hex::encode(bytes)
    }

    /// The cookie value for a session's secret: the secret and its signature.
    pub fn seal(&self, secret: &str) -> String {
        format!("{secret}.{}", hex::encode(hmac::sign(&self.0, secret.as_bytes())))
    }

    /// The secret of a cookie value whose signature holds.
    pub fn open<'a>(&self, cookie: &'a str) -> Option<&'a str> {
        let (secret, signature) = cookie.rsplit_once('.')?;
        let signature = hex::decode(signature).ok()?;
        hmac::verify(&self.0, secret.as_bytes(), &signature).ok()?;
        Some(secret)
    }

    /// The CSRF token of a session: state-changing requests made with its cookie send it in
    /// `X-CSRF-Token`.
    pub fn csrf_token(&self, secret: &str) -> String {
        hex::encode(hmac::sign(&self.0, format!("csrf:{secret}").as_bytes()))
    }
}

/// A session as the API lists it (never its secret).
#[derive(Debug, Serialize)]
pub struct SessionView {
    pub id: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub created_at: String,
    pub expires_at: String,
    pub status: &'static str,
}

impl SessionView {
    pub fn of(session: &Session) -> SessionView {
        SessionView {
            id: session.id.clone(),
            issuer: session.issuer.clone(),
            subject: session.subject.clone(),
            email: session.email.clone(),
            name: session.name.clone(),
            groups: session.groups.clone(),
            created_at: session.created_at.rfc3339(),
            expires_at: session.expires_at.rfc3339(),
            status: if session.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
        }
    }
}

impl App {
    /// Starts a session for `identity` lasting `length`; returns its secret (for the cookie)
    /// and the session.
    pub async fn start_session(&self, identity: &Identity, length: Duration) -> Result<(String, Session), AppError> {
        let now = self.now();
        let bytes: [u8; 32] = rand::rng().random();
        let secret = hex::encode(bytes);
        let id: [u8; 8] = rand::rng().random();
        let session = Session {
            id: format!("ses_{}", hex::encode(id)),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            name: identity.name.clone(),
            groups: identity.groups.clone(),
            created_at: now,
            expires_at: Micros(
                now.0
                    .saturating_add(i64::try_from(length.as_micros()).unwrap_or(i64::MAX)),
            ),
            revoked_at: None,
        };
        self.store
            .create_session(&session, &hex::encode(hash_token(&secret)))
            .await?;
        Ok((secret, session))
    }

    /// The live session of a secret: neither revoked nor expired, else unauthorized.
    pub async fn session(&self, secret: &str) -> Result<Session, AppError> {
        let now = self.now();
        self.store
            .session_by_hash(&hex::encode(hash_token(secret)))
            .await?
            .filter(|s| s.revoked_at.is_none() && s.expires_at > now)
            .ok_or(AppError::Unauthorized)
    }

    /// The live sessions, newest first.
    pub async fn live_sessions(&self) -> Result<Vec<Session>, AppError> {
        Ok(self.store.live_sessions(self.now()).await?)
    }

    /// Revokes a live session: its cookie stops working at once.
    pub async fn revoke_session(&self, id: &str) -> Result<(), AppError> {
        if !self.store.revoke_session(id, self.now()).await? {
            return Err(AppError::not_found(format!("live session {id}")));
        }
        Ok(())
    }

    /// Revokes the session of a secret (signing out); whether there was a live one.
    pub async fn end_session(&self, secret: &str) -> Result<bool, AppError> {
        match self.session(secret).await {
            Ok(session) => Ok(self.store.revoke_session(&session.id, self.now()).await?),
            Err(AppError::Unauthorized) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_open_only_with_their_signature() {
        let key = SessionKey::new(b"key one");
        let cookie = key.seal("abc");
        assert_eq!(key.open(&cookie), Some("abc"));
        assert_eq!(SessionKey::new(b"key two").open(&cookie), None, "another key's cookie");
        assert_eq!(key.open("abd."), None);
        let forged = format!("abd{}", &cookie[3..]);
        assert_eq!(key.open(&forged), None, "a changed secret");
        assert_ne!(key.csrf_token("abc"), key.csrf_token("abd"));
    }
}
