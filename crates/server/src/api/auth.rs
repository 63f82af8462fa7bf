//! The token check in front of every route table but the public one: the request's token
//! (`Authorization: Bearer …` or `x-api-key: …`) must be the admin's or a live token of the
//! kind the table is for. Who it is goes to the handlers as an `Extension<Access>`. A token
//! that matches nothing (401) and one refused here (403) are recorded in the audit log, within
//! its failure bound ([`crate::app::audit`]); a request with no token at all is not.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::audit::origin_of;
use super::error::ApiError;
use super::state::ApiState;
use crate::app::AppError;
use crate::app::access::Access;
use crate::app::audit::{Event, Origin, Outcome};

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
    let token = presented_token(request.headers()).ok_or(ApiError::Unauthorized)?;
    let access = match state.app.authenticate(token).await {
        Ok(access) => access,
        Err(AppError::Unauthorized) => {
            let (origin, event) = refused(&request, None, state.trust_forwarded_for);
            let event = Event {
                action: "auth.failure",
                ..event
            };
            state.app.audit_refusal(&origin, Outcome::Failure, event).await;
            return Err(ApiError::Unauthorized);
        }
        Err(e) => return Err(e.into()),
    };
    let refusal = match (&access, table) {
        (Access::Admin, _) | (Access::Viewer { .. }, Table::Viewer) | (Access::Ingest { .. }, Table::Ingest) => None,
        (Access::Viewer { .. }, _) => Some("a viewer token may only read; this needs the admin token"),
        (Access::Ingest { .. }, _) => Some("an ingest token may only send usage (/otlp/v1/* and POST /api/v1/usage)"),
    };
    if let Some(message) = refusal {
        let (origin, event) = refused(&request, Some(&access), state.trust_forwarded_for);
        let event = Event {
            action: "access.denied",
            ..event
        };
        state.app.audit_refusal(&origin, Outcome::Denied, event).await;
        return Err(ApiError::Forbidden(message.into()));
    }
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
}

/// A refused request's origin and the event it is recorded as (its action still to be named).
fn refused(request: &Request, access: Option<&Access>, trust_forwarded_for: bool) -> (Origin, Event) {
    let origin = origin_of(request.headers(), request.extensions(), access, trust_forwarded_for);
    let (method, path) = (request.method().as_str(), request.uri().path());
    let details = serde_json::json!({ "method": method, "path": path });
    let event = Event::new("").on("route", format!("{method} {path}")).with(details);
    (origin, event)
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
