//! The audit log over HTTP: who a request is from and where ([`Caller`], for the use cases
//! that record it) and `GET /api/v1/audit`.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use serde::Deserialize;

use super::error::ApiError;
use super::params::Params;
use super::state::ApiState;
use crate::app::access::Access;
use crate::app::audit::{Actor, AuditDocument, AuditRequest, Origin};
use crate::app::sessions::Identity;

/// The client's address: the connection's peer, or — only when `audit.trust_forwarded_for` says
/// a proxy stands in front — the last address of `X-Forwarded-For` (the one the proxy added;
/// earlier ones are whatever the client sent).
pub fn client_address(headers: &HeaderMap, extensions: &Extensions, trust_forwarded_for: bool) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_canonical());
    if !trust_forwarded_for {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    forwarded.or(peer)
}

/// Who and where a request is from, as the audit log records it.
pub fn origin_of(
    headers: &HeaderMap,
    extensions: &Extensions,
    access: Option<&Access>,
    trust_forwarded_for: bool,
) -> Origin {
    // A signed-in person acts as themselves, whatever role their groups gave them.
    let actor = match (extensions.get::<Identity>(), access) {
        (Some(identity), _) => identity.actor(),
        (None, access) => access.map_or_else(Actor::anonymous, Actor::of),
    };
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Origin::new(
        actor,
        client_address(headers, extensions, trust_forwarded_for),
        user_agent,
    )
}

/// The audit origin of an authenticated request (the token check put its `Access` there).
pub struct Caller(pub Origin);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, ApiError> {
        let access = parts.extensions.get::<Access>();
        Ok(Caller(origin_of(
            &parts.headers,
            &parts.extensions,
            access,
            state.trust_forwarded_for,
        )))
    }
}

/// `GET /api/v1/audit`'s query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/audit?actor=&action=&outcome=&from=&to=&cursor=&limit=`: newest first.
pub async fn get_audit(
    State(state): State<ApiState>,
    Params(params): Params<AuditParams>,
) -> Result<Json<AuditDocument>, ApiError> {
    let limit = params
        .limit
        .map(|l| {
            l.parse::<u32>().map_err(|_| {
                ApiError::from(crate::app::AppError::InvalidParameter {
                    parameter: "limit",
                    message: format!("`limit`: {l:?} is not a whole number"),
                })
            })
        })
        .transpose()?;
    let request = AuditRequest {
        actor: params.actor,
        action: params.action,
        outcome: params.outcome,
        from: params.from,
        to: params.to,
        cursor: params.cursor,
        limit,
    };
    Ok(Json(state.app.audit_log(request).await?))
}
