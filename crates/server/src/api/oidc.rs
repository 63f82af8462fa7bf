//! Single sign-on's routes — `GET /auth/sso`, `GET /auth/login`, `GET /auth/callback`, `POST /auth/logout`,
//! and the admin's `GET /api/v1/sessions` and `POST /api/v1/sessions/{id}/revoke` — and the
//! session cookie as a way to authenticate ([`cookie_access`]).
//!
//! The cookie (`goodhart_session`) is `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` when the
//! public URL is https, and lasts the session. Being ambient, it is not enough for a request
//! that changes something: a POST, PUT, PATCH or DELETE made with it must send the session's
//! CSRF token in `X-CSRF-Token` (the page reads it from `GET /api/v1/me`), and its `Origin`
//! (else `Referer`), when sent, must be the public URL's. Requests with a token are unaffected.
//!
//! `/auth/login` and `/auth/callback` are bounded per client address
//! ([`crate::app::sign_in_limit`]): past `max_sign_ins_per_minute`, 429 with `Retry-After`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use goodhart_store::directory::Member;
use serde::{Deserialize, Serialize};

use super::audit::{Caller, client_address};
use super::error::ApiError;
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::audit::{Actor, Event, Origin, Outcome};
use crate::app::sessions::{Identity, SessionView};
use crate::app::sign_in_limit::SignInStep;
use crate::app::tokens::{constant_time_eq, hash_token};
use crate::oidc::{PENDING_LOGIN_TTL, Role, Sso, SsoError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "goodhart_session";
/// The cookie binding a login under way to the browser that started it.
pub const LOGIN_COOKIE: &str = "goodhart_login";
/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token of the session a request came with (an extension next to its `Access`).
#[derive(Debug, Clone)]
pub struct SessionCsrf(pub String);

fn sso(state: &ApiState) -> Result<&Sso, ApiError> {
    state
        .sso
        .as_deref()
        .ok_or_else(|| ApiError::NotFound("single sign-on ([auth.oidc] is not configured)".into()))
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn set_cookie(sso: &Sso, name: &str, value: &str, path: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if sso.settings.secure_cookie { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}");
    // Names and values are ours: hex, and fixed words.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A small HTML page for the browser (sign-in happens in one, not in a script).
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{0}</title></head><body><h1>{0}</h1><p>{1}</p><p><a href=\"/\">Back to Goodhart</a></p></body></html>",
        escape(title),
        escape(message)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /auth/sso`: whether single sign-on is configured, what the sign-in button says, and
/// whether the request's session cookie is live (so the page can tell without a 401).
pub async fn status(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(sso) = state.sso.as_deref() else {
        return Ok(Json(serde_json::json!({ "enabled": false, "signed_in": false })));
    };
    let signed_in = match cookie(&headers, SESSION_COOKIE).and_then(|value| sso.key.open(value)) {
        Some(secret) => match state.app.session(secret).await {
            Ok(_) => true,
            Err(crate::app::AppError::Unauthorized) => false,
            Err(other) => return Err(other.into()),
        },
        None => false,
    };
    Ok(Json(serde_json::json!({
        "enabled": true,
        "signed_in": signed_in,
        "name": sso.settings.provider_name,
        "issuer": sso.settings.issuer.as_str(),
        "login": "/auth/login",
    })))
}

/// A sign-in attempt past `max_sign_ins_per_minute` from the request's client address (the
/// audit log's rule: `[audit] trust_forwarded_for`): the 429 page, with `Retry-After`.
fn too_many(
    state: &ApiState,
    sso: &Sso,
    step: SignInStep,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Option<Response> {
    let address = client_address(headers, extensions, state.trust_forwarded_for);
    let wait = sso.admit(step, address).err()?;
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-ins",
        &format!(
            "too many sign-in attempts from this address; try again in {} s",
            wait.as_secs()
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
    Some(response)
}

/// `GET /auth/login`: sends the browser to the identity provider.
pub async fn login(State(state): State<ApiState>, headers: HeaderMap, extensions: Extensions) -> Response {
    let sso = match sso(&state) {
        Ok(sso) => sso,
        Err(e) => return e.into_response(),
    };
    if let Some(refused) = too_many(&state, sso, SignInStep::Login, &headers, &extensions) {
        return refused;
    }
    match sso.login().await {
        Ok((url, login_cookie)) => {
            let mut response = (StatusCode::SEE_OTHER, [(header::CACHE_CONTROL, "no-store")]).into_response();
            let headers = response.headers_mut();
            if let Ok(location) = HeaderValue::from_str(&url) {
                headers.insert(header::LOCATION, location);
            }
            headers.insert(
                header::SET_COOKIE,
                set_cookie(sso, LOGIN_COOKIE, &login_cookie, "/auth", PENDING_LOGIN_TTL.as_secs()),
            );
            response
        }
        Err(e) => sso_failure(&e),
    }
}

fn sso_failure(error: &SsoError) -> Response {
    match error {
        SsoError::Refused(reason) => page(StatusCode::BAD_REQUEST, "Sign-in refused", reason),
        SsoError::Provider(reason) => {
            tracing::warn!(error = %reason, "single sign-on: the identity provider failed");
            page(StatusCode::BAD_GATEWAY, "The identity provider failed", reason)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// The provider's issuer, when it says (RFC 9207: a mix-up between providers shows here).
    pub iss: Option<String>,
}

/// Who, from where, for a sign-in's audit entry.
fn sign_in_origin(state: &ApiState, headers: &HeaderMap, extensions: &Extensions, actor: Actor) -> Origin {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    Origin::new(
        actor,
        client_address(headers, extensions, state.trust_forwarded_for),
        user_agent,
    )
}

/// `GET /auth/callback`: completes a login and starts a session. The audit log records the
/// session started (`session.create`, as the person), a person no group admits
/// (`sign_in.denied`) and a callback refused (`sign_in.failure`), the last two within the
/// log's failure bound.
pub async fn callback(
    State(state): State<ApiState>,
    headers: HeaderMap,
    extensions: Extensions,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let sso = match sso(&state) {
        Ok(sso) => sso,
        Err(e) => return e.into_response(),
    };
    if let Some(refused) = too_many(&state, sso, SignInStep::Callback, &headers, &extensions) {
        return refused;
    }
    if let Some(error) = query.error {
        let detail = query.error_description.map(|d| format!(": {d}")).unwrap_or_default();
        return page(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            &format!("the identity provider said {error}{detail}"),
        );
    }
    if query
        .iss
        .as_deref()
        .is_some_and(|iss| iss.trim_end_matches('/') != sso.settings.issuer.as_str().trim_end_matches('/'))
    {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "the callback names another identity provider",
        );
    }
    let (Some(login_state), Some(code)) = (query.state, query.code) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "the callback lacks its state or code",
        );
    };
    let login_cookie = cookie(&headers, LOGIN_COOKIE);
    let (identity, id_token) = match sso.callback(&state.app, login_cookie, &login_state, &code).await {
        Ok(signed_in) => signed_in,
        Err(e) => {
            if let SsoError::Refused(reason) = &e {
                let origin = sign_in_origin(&state, &headers, &extensions, Actor::anonymous());
                let event = Event::new("sign_in.failure").with(serde_json::json!({ "reason": reason }));
                state.app.audit_refusal(&origin, Outcome::Failure, event).await;
            }
            return sso_failure(&e);
        }
    };
    let person = sign_in_origin(&state, &headers, &extensions, identity.actor());
    match state.app.deactivated_by_scim(&sso.settings, &identity).await {
        Ok(false) => {}
        Ok(true) => {
            let event = Event::new("sign_in.denied").with(serde_json::json!({ "reason": "deactivated over SCIM" }));
            state.app.audit_refusal(&person, Outcome::Denied, event).await;
            return page(
                StatusCode::FORBIDDEN,
                "No access",
                &format!(
                    "{} was deactivated by the identity provider's provisioning; ask an administrator",
                    identity.label()
                ),
            );
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    let role = match state.app.person_role(&sso.settings, &identity).await {
        Ok(role) => role,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(role) = role else {
        let event = Event::new("sign_in.denied").with(serde_json::json!({ "groups": identity.groups }));
        state.app.audit_refusal(&person, Outcome::Denied, event).await;
        return page(
            StatusCode::FORBIDDEN,
            "No access",
            &format!(
                "{} is in no group that gives access to Goodhart; ask an administrator",
                identity.label()
            ),
        );
    };
    let (secret, session) = match state
        .app
        .start_session(&identity, Some(&id_token), sso.settings.session_length)
        .await
    {
        Ok(started) => started,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let member = Member {
        user: sso.settings.usage_user(identity.email.as_deref(), &identity.subject),
        team: sso.settings.home_team(&identity.groups),
        email: identity.email.clone(),
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        updated_at: state.app.now(),
    };
    if let Err(e) = state.app.record_member(&member).await {
        return ApiError::from(e).into_response();
    }
    let event = Event::new("session.create")
        .on("session", session.id.clone())
        .with(serde_json::json!({ "issuer": identity.issuer, "groups": identity.groups, "role": role.name(), "team": role.team(), "user": member.user, "home_team": member.team }));
    if let Err(e) = state.app.audit(&person, event).await {
        return ApiError::from(e).into_response();
    }
    tracing::info!(session = %session.id, issuer = %identity.issuer, subject = %identity.subject, "signed in");
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/"), (header::CACHE_CONTROL, "no-store")],
    )
        .into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            sso,
            SESSION_COOKIE,
            &sso.key.seal(&secret),
            "/",
            sso.settings.session_length.as_secs(),
        ),
    );
    headers.append(header::SET_COOKIE, set_cookie(sso, LOGIN_COOKIE, "", "/auth", 0));
    response
}

/// Whether a request changes something (and so needs more than an ambient cookie).
fn changes_state(method: &Method) -> bool {
    ![Method::GET, Method::HEAD, Method::OPTIONS].contains(method)
}

/// A state-changing request made with the cookie of the session `secret`: its CSRF token (in
/// `X-CSRF-Token`, else `form_token`: the sign-out form's field) and, when it says where it
/// comes from, its origin.
fn check_csrf(sso: &Sso, headers: &HeaderMap, secret: &str, form_token: Option<&str>) -> Result<(), ApiError> {
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(form_token)
        .unwrap_or("");
    if !constant_time_eq(&hash_token(sent), &hash_token(&sso.key.csrf_token(secret))) {
        return Err(ApiError::Forbidden(
            "a request that changes something with the session cookie must send X-CSRF-Token (its value is in GET /api/v1/me)".into(),
        ));
    }
    let origin = &sso.settings.origin;
    let same_origin = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
        (Some(sent), _) => sent.to_str().is_ok_and(|o| o == origin),
        (None, Some(referer)) => referer
            .to_str()
            .is_ok_and(|r| r == origin || r.starts_with(&format!("{origin}/"))),
        (None, None) => true,
    };
    if !same_origin {
        return Err(ApiError::Forbidden(format!(
            "a request that changes something with the session cookie must come from {origin}"
        )));
    }
    Ok(())
}

/// Who a request without a token is, by its session cookie: its `Access` (from the
/// person's groups), `Identity` and CSRF token. State-changing requests must pass
/// [`check_csrf`].
pub async fn cookie_access(
    state: &ApiState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(Access, Identity, SessionCsrf), ApiError> {
    let sso = state.sso.as_deref().ok_or(ApiError::Unauthorized)?;
    let secret = cookie(headers, SESSION_COOKIE)
        .and_then(|value| sso.key.open(value))
        .ok_or(ApiError::Unauthorized)?;
    let session = state.app.session(secret).await?;
    if changes_state(method) {
        check_csrf(sso, headers, secret, None)?;
    }
    let identity = Identity {
        issuer: session.issuer,
        subject: session.subject,
        email: session.email,
        name: session.name,
        groups: session.groups,
        session_id: Some(session.id.clone()),
    };
    let (id, name) = (session.id, Some(identity.label()));
    let access = match state.app.person_role(&sso.settings, &identity).await? {
        Some(Role::Admin) => Access::Admin,
        Some(Role::Finops) => Access::Finops { id, name },
        Some(Role::Viewer { team }) => Access::Viewer { id, name, team },
        Some(Role::Manager { team }) => Access::Manager { id, name, team },
        Some(Role::Engineer) => Access::Engineer {
            id,
            name,
            user: sso.settings.usage_user(identity.email.as_deref(), &identity.subject),
        },
        None => {
            return Err(ApiError::Forbidden(
                "your groups no longer give access to Goodhart; ask an administrator".into(),
            ));
        }
    };
    Ok((access, identity, SessionCsrf(sso.key.csrf_token(secret))))
}

/// The sign-out form's body: its CSRF token (a form cannot send `X-CSRF-Token`).
const LOGOUT_FORM_BYTES: usize = 4_096;

/// Whether a request is a browser's form post (a navigation), not a script's call.
fn is_form_post(headers: &HeaderMap) -> bool {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let navigation = headers
        .get("sec-fetch-mode")
        .is_some_and(|v| v.as_bytes() == b"navigate");
    form || navigation
}

/// The header of a script's sign-out naming where to send the browser to sign out at the
/// provider too (the dashboard follows it).
pub const END_SESSION_HEADER: &str = "x-end-session-url";

/// `POST /auth/logout`: ends the session of the cookie (with its CSRF token) and clears it,
/// then signs the person out at the provider too when its discovery lists an
/// `end_session_endpoint` (RP-initiated logout; the provider sends the browser back to
/// `post_logout_redirect_url`). A script's call (the token in `X-CSRF-Token`, as the
/// dashboard's `fetch`) gets 204, with that endpoint's URL in `X-End-Session-URL` when there
/// is one; a browser's form post (the token in the `csrf_token` field) is sent on with 303:
/// to that URL, else to the dashboard.
pub async fn logout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    extensions: Extensions,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let sso = sso(&state)?;
    let form_post = is_form_post(&headers);
    let form = if form_post {
        super::body::read_body(body, &headers, LOGOUT_FORM_BYTES).await?
    } else {
        bytes::Bytes::new()
    };
    let form_token = openidconnect::url::form_urlencoded::parse(&form)
        .find(|(key, _)| key == "csrf_token")
        .map(|(_, value)| value.into_owned());
    let mut id_token = None;
    if let Some(secret) = cookie(&headers, SESSION_COOKIE).and_then(|value| sso.key.open(value)) {
        check_csrf(sso, &headers, secret, form_token.as_deref())?;
        id_token = state.app.session_id_token(secret).await?;
        let live = state.app.session(secret).await.ok();
        state.app.end_session(secret).await?;
        if let Some(session) = live {
            let identity = Identity {
                issuer: session.issuer,
                subject: session.subject,
                email: session.email,
                name: session.name,
                groups: session.groups,
                session_id: Some(session.id.clone()),
            };
            let person = sign_in_origin(&state, &headers, &extensions, identity.actor());
            state
                .app
                .audit(&person, Event::new("session.end").on("session", session.id))
                .await?;
        }
    }
    let end_session = sso
        .end_session_url(id_token.as_ref())
        .await
        .and_then(|url| HeaderValue::from_str(&url).ok());
    let mut response = if form_post {
        let next = end_session.unwrap_or_else(|| HeaderValue::from_static("/"));
        (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, next),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response()
    } else {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Some(url) = end_session {
            response.headers_mut().insert(END_SESSION_HEADER, url);
        }
        response
    };
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(sso, SESSION_COOKIE, "", "/", 0));
    Ok(response)
}

#[derive(Debug, Serialize)]
pub struct SessionsDocument {
    pub sessions: Vec<SessionView>,
}

/// `GET /api/v1/sessions`: the live sessions, newest first.
pub async fn list_sessions(State(state): State<ApiState>) -> Result<Json<SessionsDocument>, ApiError> {
    let sessions = state.app.live_sessions().await?;
    Ok(Json(SessionsDocument {
        sessions: sessions.iter().map(SessionView::of).collect(),
    }))
}

/// `POST /api/v1/sessions/{id}/revoke`: the session's cookie stops working at once.
pub async fn revoke_session(
    State(state): State<ApiState>,
    Caller(origin): Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.app.revoke_session(&origin, &id).await?;
    Ok(Json(serde_json::json!({ "id": id, "status": "revoked" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; goodhart_session=abc.def".parse().unwrap());
        headers.append(header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc.def"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "goodhart"), None);
    }
}
