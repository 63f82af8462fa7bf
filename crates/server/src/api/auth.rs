//! The token check in front of every route table but the public one: the request's token
//! (`Authorization: Bearer …` or `x-api-key: …`) must be the admin's or a live token of the
//! kind the table is for. Who it is goes to the handlers as an `Extension<Access>`. A request
//! without a token may come with a single sign-on session cookie instead ([`super::oidc`]),
//! which adds an `Extension<Identity>` (and its CSRF token) next to the `Access`.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::state::ApiState;
use crate::app::access::Access;

/// Which route table a request reached, and so which tokens besides the admin's it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Admin,
    Viewer,
    Ingest,
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

/// Lets a request through with the admin token or a live token of the table's kind; records
/// who it is from.
pub async fn authenticate(
    State((state, table)): State<(ApiState, Table)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let access = match presented_token(request.headers()) {
        Some(token) => state.app.authenticate(token).await?,
        None => {
            let (access, identity, csrf) =
                super::oidc::cookie_access(&state, request.method(), request.headers()).await?;
            request.extensions_mut().insert(identity);
            request.extensions_mut().insert(csrf);
            access
        }
    };
    match (&access, table) {
        (Access::Admin, _) | (Access::Viewer { .. }, Table::Viewer) | (Access::Ingest { .. }, Table::Ingest) => {}
        (Access::Viewer { .. }, _) => {
            return Err(ApiError::Forbidden(
                "a viewer token may only read; this needs the admin token".into(),
            ));
        }
        (Access::Ingest { .. }, _) => {
            return Err(ApiError::Forbidden(
                "an ingest token may only send usage (/otlp/v1/* and POST /api/v1/usage)".into(),
            ));
        }
    }
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
}
