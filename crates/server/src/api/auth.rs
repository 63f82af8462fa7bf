//! The token check in front of every route table but the public one: the request's token
//! (`Authorization: Bearer …` or `x-api-key: …`) must be a live one whose role may do the
//! table's [`Duty`]. Who it is goes to the handlers as an `Extension<Access>`. A request
//! without a token may come with a single sign-on session cookie instead ([`super::oidc`]),
//! which adds an `Extension<Identity>` (and its CSRF token) next to the `Access`. A token that
//! matches nothing (401) and one refused here (403) are recorded in the audit log, within its
//! failure bound ([`crate::app::audit`]); a request with no token at all is not.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::audit::origin_of;
use super::error::ApiError;
use super::state::ApiState;
use crate::app::AppError;
use crate::app::access::{Access, Duty};
use crate::app::audit::{Event, Origin, Outcome};

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

/// Lets a request through when its token's role may do the table's duty; records who it is
/// from.
pub async fn authenticate(State((state, duty)): State<(ApiState, Duty)>, request: Request, next: Next) -> Response {
    match let_through(&state, duty, request, next).await {
        Ok(response) => response,
        // An identity provider reads SCIM's error schema.
        Err(error) if duty == Duty::Provision => super::scim::scim_error(error).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn let_through(state: &ApiState, duty: Duty, mut request: Request, next: Next) -> Result<Response, ApiError> {
    let access = match presented_token(request.headers()) {
        Some(token) => match state.app.authenticate(token).await {
            Ok(access) => access,
            Err(AppError::Unauthorized) => {
                let (origin, event) = refused("auth.failure", &request, None, state.trust_forwarded_for);
                state.app.audit_refusal(&origin, Outcome::Failure, event).await;
                return Err(ApiError::Unauthorized);
            }
            Err(e) => return Err(e.into()),
        },
        None => {
            let (access, identity, csrf) =
                super::oidc::cookie_access(state, request.method(), request.headers()).await?;
            request.extensions_mut().insert(identity);
            request.extensions_mut().insert(csrf);
            access
        }
    };
    if !access.may(duty) {
        let (origin, event) = refused("access.denied", &request, Some(&access), state.trust_forwarded_for);
        state.app.audit_refusal(&origin, Outcome::Denied, event).await;
        return Err(ApiError::Forbidden(refusal(&access, duty)));
    }
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
}

/// Why `access` may not do `duty`, and who may.
fn refusal(access: &Access, duty: Duty) -> String {
    let who = match duty {
        Duty::Read => "a viewer, manager, finops or admin token",
        Duty::Ingest => "an ingest or admin token",
        Duty::Spend => "a finops or admin token",
        Duty::Decide => "a manager or admin token",
        Duty::OwnKeys => "a person's own token (an engineer's)",
        Duty::Provision => "a SCIM token (`goodhart tokens create --role scim`)",
        Duty::Administer => "the admin token",
    };
    let role = access.role();
    match access {
        Access::Ingest { .. } => {
            format!("an ingest token may only send usage (/otlp/v1/* and POST /api/v1/usage); this needs {who}")
        }
        Access::Viewer { .. } => format!("a viewer token may only read; this needs {who}"),
        _ => format!("a {role} token may not do this; it needs {who}"),
    }
}

/// A refused request's origin and the event (`action`) it is recorded as.
fn refused(
    action: &'static str,
    request: &Request,
    access: Option<&Access>,
    trust_forwarded_for: bool,
) -> (Origin, Event) {
    let origin = origin_of(request.headers(), request.extensions(), access, trust_forwarded_for);
    let (method, path) = (request.method().as_str(), request.uri().path());
    let details = serde_json::json!({ "method": method, "path": path });
    let event = Event::new(action).on("route", format!("{method} {path}")).with(details);
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
