//! The HTTP API: one function builds the router from one route table per role, and adds auth,
//! timeouts and tracing. Handlers are thin: parse the request into the application layer's
//! types, call [`App`](crate::app::App), encode the answer.
//!
//! Authentication is default-deny. Only [`PUBLIC_ROUTES`] skip the token check; each other
//! table serves one [`Duty`], and lets in the roles that may do it ([`Access::may`]): the
//! reads in [`READ_ROUTES`] (every role but ingest, limited to a team where the role is), the
//! senders of usage in [`INGEST_ROUTES`], budgets, keys and bills in [`SPEND_ROUTES`] (finops),
//! finding decisions in [`DECISION_ROUTES`] (managers, for their team's findings), a person's
//! own keys in [`OWN_KEY_ROUTES`] (engineers, within `[self_service]`), SCIM provisioning
//! in [`SCIM_ROUTES`] (an identity provider's SCIM token), and
//! everything else in [`ADMIN_ROUTES`], the admin's alone. The tables are the policy: adding a
//! route to one is deciding who may call it.
//!
//! [`Access::may`]: crate::app::access::Access::may

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod board;
pub mod body;
pub mod budgets;
pub mod dashboard;
pub mod error;
pub mod findings;
pub mod hooks;
pub mod ingest;
pub mod keys;
pub mod oidc;
pub mod otlp;
pub mod params;
pub mod reports;
pub mod scim;
pub mod state;
pub mod subjects;
pub mod viewers;

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use error::{ApiError, LoggedError};
pub use state::ApiState;

use crate::app::access::Duty;

/// A route table: the paths it serves as a constant (documented and tested against the
/// OpenAPI document) and a function building its router, from one list.
macro_rules! route_table {
    ($(#[$doc:meta])* $paths:ident, $router:ident { $($path:literal => $method:expr),+ $(,)? }) => {
        $(#[$doc])*
        pub const $paths: &[&str] = &[$($path),+];

        fn $router() -> Router<ApiState> {
            Router::new()$(.route($path, $method))+
        }
    };
}

route_table! {
    /// Open to anyone: health, the API's document, the dashboard's assets, GitHub's
    /// deliveries (authenticated by their HMAC signature, not a token), and single sign-on
    /// (its callback checks the provider's ID token; logout needs the session's CSRF token).
    PUBLIC_ROUTES, public_routes {
        "/healthz" => get(healthz),
        "/readyz" => get(readyz),
        "/openapi.json" => get(openapi),
        "/dashboard/app.js" => get(dashboard::app_js),
        "/dashboard/app.css" => get(dashboard::app_css),
        "/dashboard/vendor/chart.umd.min.js" => get(dashboard::chart_js),
        "/hooks/github" => post(hooks::post_github),
        "/auth/sso" => get(oidc::status),
        "/auth/login" => get(oidc::login),
        "/auth/callback" => get(oidc::callback),
        "/auth/logout" => post(oidc::logout),
    }
}

route_table! {
    /// The read API the dashboard shows.
    READ_ROUTES, read_routes {
        "/api/v1/me" => get(viewers::me),
        "/api/v1/usage/summary" => get(reports::get_summary),
        "/api/v1/reports/roi" => get(reports::get_roi),
        "/api/v1/leaderboard" => get(board::get_leaderboard),
        "/api/v1/findings" => get(findings::get_findings),
        "/api/v1/budgets" => get(budgets::list_budgets),
        "/api/v1/budgets/{id}" => get(budgets::get_budget),
        "/api/v1/alerts" => get(alerts::list_alerts),
        "/api/v1/subjects/{by}/{name}" => get(subjects::get_subject),
    }
}

route_table! {
    /// The OTLP receiver and the ingest API.
    INGEST_ROUTES, ingest_routes {
        "/otlp/v1/logs" => post(otlp::post_logs),
        "/otlp/v1/metrics" => post(otlp::post_metrics),
        "/otlp/v1/traces" => post(otlp::post_traces),
        "/api/v1/usage" => post(ingest::post_usage),
    }
}

route_table! {
    /// Spend control: budgets, virtual keys and the providers' bills.
    SPEND_ROUTES, spend_routes {
        "/api/v1/reconciliation" => get(reports::get_reconciliation),
        "/api/v1/reports/reconciliation" => get(reports::get_bill_reconciliation),
        "/api/v1/keys" => get(keys::list_keys).post(keys::post_key),
        "/api/v1/keys/{id}/revoke" => post(keys::revoke_key),
        "/api/v1/keys/{id}/rotate" => post(keys::rotate_key),
        "/api/v1/budgets" => post(budgets::post_budget),
        "/api/v1/budgets/{id}" => axum::routing::delete(budgets::delete_budget),
    }
}

route_table! {
    /// Decisions on findings (a manager's only for the findings of the team's people).
    DECISION_ROUTES, decision_routes {
        "/api/v1/findings/{id}/confirm" => post(findings::post_confirm),
        "/api/v1/findings/{id}/dismiss" => post(findings::post_dismiss),
    }
}

route_table! {
    /// A person's own virtual keys and ingest tokens.
    OWN_KEY_ROUTES, own_key_routes {
        "/api/v1/me/keys" => get(keys::list_own_keys).post(keys::post_own_key),
        "/api/v1/me/keys/{id}/revoke" => post(keys::revoke_own_key),
        "/api/v1/me/ingest-tokens" => get(viewers::list_own).post(viewers::create_own),
        "/api/v1/me/ingest-tokens/{id}/revoke" => post(viewers::revoke_own),
    }
}

route_table! {
    /// SCIM 2.0 provisioning, for an identity provider's SCIM token.
    SCIM_ROUTES, scim_routes {
        "/scim/v2/ServiceProviderConfig" => get(scim::service_provider_config),
        "/scim/v2/ResourceTypes" => get(scim::resource_types),
        "/scim/v2/Schemas" => get(scim::schemas),
        "/scim/v2/Users" => get(scim::list_users).post(scim::post_user),
        "/scim/v2/Users/{id}" => get(scim::get_user).put(scim::put_user).patch(scim::patch_user).delete(scim::delete_user),
        "/scim/v2/Groups" => get(scim::list_groups).post(scim::post_group),
        "/scim/v2/Groups/{id}" => get(scim::get_group).put(scim::put_group).patch(scim::patch_group).delete(scim::delete_group),
    }
}

route_table! {
    /// The admin's alone.
    ADMIN_ROUTES, admin_routes {
        "/api/v1/outcomes" => post(hooks::post_outcomes),
        "/api/v1/findings/detect" => post(findings::post_detect),
        "/api/v1/github/logins" => get(hooks::list_logins).post(hooks::post_login),
        "/api/v1/tokens" => get(viewers::list).post(viewers::create),
        "/api/v1/tokens/{id}/revoke" => post(viewers::revoke),
        "/api/v1/audit" => get(audit::get_audit),
        "/api/v1/sessions" => get(oidc::list_sessions),
        "/api/v1/sessions/{id}/revoke" => post(oidc::revoke_session),
        "/api/v1/people" => get(viewers::list_people),
        "/api/v1/people/{user}/role" => axum::routing::put(viewers::put_role).delete(viewers::delete_role),
    }
}

/// The whole HTTP surface: the API, the dashboard and (when the app has one) the gateway.
pub fn router(state: ApiState, request_timeout: std::time::Duration) -> Router {
    let guarded = |routes: Router<ApiState>, duty: Duty| {
        routes.route_layer(middleware::from_fn_with_state(
            (state.clone(), duty),
            auth::authenticate,
        ))
    };
    let api = public_routes()
        .merge(guarded(read_routes(), Duty::Read))
        .merge(guarded(ingest_routes(), Duty::Ingest))
        .merge(guarded(spend_routes(), Duty::Spend))
        .merge(guarded(decision_routes(), Duty::Decide))
        .merge(guarded(own_key_routes(), Duty::OwnKeys))
        .merge(guarded(scim_routes(), Duty::Provision))
        .merge(guarded(admin_routes(), Duty::Administer));
    // The gateway's routes keep their own upstream timeouts (LLM calls outlive API requests)
    // and their own metrics instead of per-request trace spans on the hot path.
    let gateway = state.app.gateway().map(goodhart_gateway::Gateway::router);
    let router = api
        .fallback(not_found)
        .layer(middleware::from_fn(log_server_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    let router = match gateway {
        Some(gateway) => router.merge(gateway),
        None => router,
    };
    router.layer(middleware::from_fn(dashboard::index_for_browsers))
}

async fn healthz(State(state): State<ApiState>) -> impl IntoResponse {
    let app = &state.app;
    Json(
        serde_json::json!({ "status": "ok", "database": app.store().backend(), "price_version": app.prices().version() }),
    )
}

/// Whether this instance can do its job (see [`goodhart_gateway::readiness`]): 200 with the
/// details when ready, 503 naming each problem when not. Without a gateway, only the store is
/// probed (uncached: one cheap query per request).
async fn readyz(State(state): State<ApiState>) -> Response {
    use goodhart_gateway::readiness::{self, Readiness};
    let readiness = match state.app.gateway() {
        Some(gateway) => gateway.readiness().await,
        None => Readiness::new(readiness::probe(state.app.store()).await, None),
    };
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// The OpenAPI document of every route (`crates/server/openapi.json`; a test keeps it in step
/// with the router).
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("route for {}", uri.path()))
}

/// Logs server-side failures once, here, with their detail (never request bodies or headers).
async fn log_server_errors(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    if let Some(LoggedError(detail)) = response.extensions().get::<LoggedError>() {
        tracing::error!(%method, %path, status = response.status().as_u16(), error = %detail, "request failed");
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every API path of the OpenAPI document is in a route table, and every table's path is
    /// documented (the gateway's routes and the dashboard's assets aside).
    #[test]
    fn the_route_tables_serve_what_the_document_lists() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let documented: BTreeSet<&str> = document["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|path| !path.starts_with("/v1/") && !["/", "/metrics"].contains(path))
            .collect();
        let served: BTreeSet<&str> = [
            PUBLIC_ROUTES,
            READ_ROUTES,
            INGEST_ROUTES,
            SPEND_ROUTES,
            DECISION_ROUTES,
            OWN_KEY_ROUTES,
            SCIM_ROUTES,
            ADMIN_ROUTES,
        ]
        .concat()
        .into_iter()
        .filter(|path| !path.starts_with("/dashboard/"))
        .collect();
        assert_eq!(documented, served);
    }
}
