//! Sessions of people signed in through single sign-on ([`crate::oidc`]): who they are
//! ([`Identity`], which handlers read next to their [`Access`](super::access::Access)), the
//! cookie that carries a session's secret (signed with a key kept in the settings table), its
//! CSRF token, and the use cases: start, look up, list and revoke. A session's secret (256
//! random bits) is stored only as its SHA-256; revoking one takes effect at the next request.

use std::time::Duration;

use goodhart_core::Micros;
use goodhart_store::sessions::Session;
use rand::Rng;
use ring::{aead, hmac};
use serde::Serialize;

use super::audit::{Actor, ActorKind, Event, Origin};
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

/// The ID token of a sign-in, kept with its session to send back as `id_token_hint` when the
/// person signs out. Never printed: its `Debug` says only that it is there.
#[derive(Clone)]
pub struct IdTokenHint(pub String);

impl std::fmt::Debug for IdTokenHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdTokenHint(…)")
    }
}

impl Identity {
    /// The person as an audit actor: their subject, and their email or name.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: Some(self.subject.clone()),
            name: Some(self.label()),
        }
    }

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

    /// The AEAD key of the cookie that carries a login under way (derived from this key).
    fn login_key(&self) -> Option<aead::LessSafeKey> {
        let derived = hmac::sign(&self.0, b"goodhart login cookie");
        let key = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, derived.as_ref().get(..32)?).ok()?;
        Some(aead::LessSafeKey::new(key))
    }

    /// Encrypts and authenticates `plaintext` for a cookie (base64url of nonce, ciphertext, tag).
    pub fn seal_login(&self, plaintext: &[u8]) -> Option<String> {
        use base64::Engine as _;
        let key = self.login_key()?;
        let nonce: [u8; aead::NONCE_LEN] = rand::rng().random();
        let mut sealed = plaintext.to_vec();
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut sealed,
        )
        .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// The plaintext of a cookie [`SessionKey::seal_login`] made, if it is intact.
    pub fn open_login(&self, cookie: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let key = self.login_key()?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cookie).ok()?;
        let (nonce, sealed) = bytes.split_at_checked(aead::NONCE_LEN)?;
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = key.open_in_place(nonce, aead::Aad::empty(), &mut sealed).ok()?;
        Some(plain.to_vec())
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
    /// Starts a session for `identity` lasting `length`, keeping the sign-in's ID token (for
    /// the sign-out's `id_token_hint`); returns its secret (for the cookie) and the session.
    pub async fn start_session(
        &self,
        identity: &Identity,
        id_token: Option<&IdTokenHint>,
        length: Duration,
    ) -> Result<(String, Session), AppError> {
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
        if let Some(IdTokenHint(token)) = id_token {
            self.store.keep_session_id_token(&session.id, token).await?;
        }
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

    /// Revokes a live session for `origin` (the admin, over the API or the command line): its
    /// cookie stops working at once. Audited as `session.revoke`.
    pub async fn revoke_session(&self, origin: &Origin, id: &str) -> Result<(), AppError> {
        if !self.store.revoke_session(id, self.now()).await? {
            return Err(AppError::not_found(format!("live session {id}")));
        }
        self.audit(origin, Event::new("session.revoke").on("session", id.to_owned()))
            .await
    }

    /// Marks a sign-in's `state` used (in the store, so across instances); false when it already
    /// was. States used more than `keep` ago are forgotten on the way.
    pub async fn use_login_state(&self, state: &str, keep: Duration) -> Result<bool, AppError> {
        let now = self.now();
        let keep = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
        self.store
            .forget_login_states(Micros(now.0.saturating_sub(keep)))
            .await?;
        Ok(self.store.use_login_state(&hex::encode(hash_token(state)), now).await?)
    }

    /// The ID token kept for the live session of a secret (the sign-out's `id_token_hint`).
    pub async fn session_id_token(&self, secret: &str) -> Result<Option<IdTokenHint>, AppError> {
        if self.session(secret).await.is_err() {
            return Ok(None);
        }
        let token = self.store.session_id_token(&hex::encode(hash_token(secret))).await?;
        Ok(token.map(IdTokenHint))
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

    #[test]
    fn login_cookies_are_sealed_and_open_only_intact_with_their_key() {
        let key = SessionKey::new(b"key one");
        let cookie = key.seal_login(b"state, nonce and verifier").unwrap();
        assert!(!cookie.contains("verifier"), "encrypted");
        assert_eq!(key.open_login(&cookie).unwrap(), b"state, nonce and verifier");
        assert_ne!(key.seal_login(b"x"), key.seal_login(b"x"), "a fresh nonce each time");
        assert_eq!(SessionKey::new(b"key two").open_login(&cookie), None);
        let mut tampered = cookie.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open_login(&String::from_utf8(tampered).unwrap()), None);
        assert_eq!(key.open_login("not base64!"), None);
    }
}
