//! Authentication of the API and the dashboard: the admin token, a read-only viewer token, or a
//! send-only ingest token.
//!
//! The admin token comes from `GOODHART_ADMIN_TOKEN`, or is generated on first start, printed
//! once and stored only as a hash; comparison is constant-time over the digests. Viewer tokens
//! (`POST /api/v1/tokens`) are stored hashed too and may only read: a GET of a route in
//! [`VIEWER_ROUTES`]; ingest tokens may only POST to [`INGEST_ROUTES`]. A viewer token limited to a team sees only that team's data; each read
//! handler applies that through [`crate::scope`].

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use sha2::{Digest, Sha256};

use goodhart_store::viewers::TokenRole;

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

/// Who a request is from; handlers read it as an `Extension<Access>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Admin,
    Viewer {
        id: String,
        name: Option<String>,
        /// The one team it may see; every team when absent.
        team: Option<String>,
    },
    /// An ingest token: may only send usage.
    Ingest {
        id: String,
        /// The team of usage that names none.
        team: Option<String>,
    },
}

impl Access {
    /// The team the request is limited to (a viewer's) or speaks for (an ingest token's).
    pub fn team(&self) -> Option<&str> {
        match self {
            Access::Viewer { team, .. } | Access::Ingest { team, .. } => team.as_deref(),
            Access::Admin => None,
        }
    }
}

/// The routes a viewer token may GET: the read API the dashboard shows. Everything else is
/// the admin's alone.
pub const VIEWER_ROUTES: [&str; 9] = [
    "/api/v1/me",
    "/api/v1/usage/summary",
    "/api/v1/reports/roi",
    "/api/v1/leaderboard",
    "/api/v1/findings",
    "/api/v1/budgets",
    "/api/v1/budgets/{id}",
    "/api/v1/alerts",
    "/api/v1/subjects/{by}/{name}",
];

/// The routes an ingest token may POST to: the OTLP receiver and the ingest API.
pub const INGEST_ROUTES: [&str; 4] = ["/otlp/v1/logs", "/otlp/v1/metrics", "/otlp/v1/traces", "/api/v1/usage"];

/// Lets a request through with the admin token, with a live viewer token when it reads a
/// viewer route, or with a live ingest token when it sends usage; records who it is from.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let hash = presented_token(request.headers())
        .map(hash_token)
        .ok_or(ApiError::Unauthorized)?;
    let access = if constant_time_eq(&hash, &state.admin_token_hash) {
        Access::Admin
    } else {
        let viewer = state.store.viewer_by_hash(&hex::encode(hash)).await?;
        let viewer = viewer
            .filter(|v| v.revoked_at.is_none())
            .ok_or(ApiError::Unauthorized)?;
        let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
        let allowed =
            |method: Method, routes: &[&str]| request.method() == method && route.is_some_and(|r| routes.contains(&r));
        match viewer.role {
            TokenRole::Viewer if allowed(Method::GET, &VIEWER_ROUTES) => Access::Viewer {
                id: viewer.id,
                name: viewer.name,
                team: viewer.team,
            },
            TokenRole::Viewer => {
                return Err(ApiError::Forbidden(
                    "a viewer token may only read; this needs the admin token".into(),
                ));
            }
            TokenRole::Ingest if allowed(Method::POST, &INGEST_ROUTES) => Access::Ingest {
                id: viewer.id,
                team: viewer.team,
            },
            TokenRole::Ingest => {
                return Err(ApiError::Forbidden(
                    "an ingest token may only send usage (/otlp/v1/* and POST /api/v1/usage)".into(),
                ));
            }
        }
    };
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
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
