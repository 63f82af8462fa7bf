//! The HTTP application: one function builds the router, adds auth, limits, timeouts and
//! tracing. Authentication is default-deny: only the routes in `public` skip the token check,
//! and viewer tokens reach only the reads in [`auth::VIEWER_ROUTES`].

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, LoggedError};
use crate::state::AppState;
use crate::{alerts, auth, budgets, dashboard, ingest, keys, otlp, outcomes, reports, subjects, viewers, waste};

pub fn app(state: AppState, request_timeout: std::time::Duration) -> Router {
    let public = Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/dashboard/app.js", get(dashboard::app_js))
        .route("/dashboard/app.css", get(dashboard::app_css))
        .route("/dashboard/vendor/chart.umd.min.js", get(dashboard::chart_js))
        // Authenticated by its HMAC signature, not the admin token.
        .route("/hooks/github", post(outcomes::post_github));
    let admin = Router::new()
        .route("/api/v1/usage", post(ingest::post_usage))
        .route("/otlp/v1/logs", post(otlp::post_logs))
        .route("/otlp/v1/metrics", post(otlp::post_metrics))
        .route("/otlp/v1/traces", post(otlp::post_traces))
        .route("/api/v1/reconciliation", get(otlp::get_reconciliation))
        .route("/api/v1/usage/summary", get(reports::get_summary))
        .route("/api/v1/reports/roi", get(reports::get_roi))
        .route("/api/v1/keys", get(keys::list_keys).post(keys::post_key))
        .route("/api/v1/keys/{id}/revoke", post(keys::revoke_key))
        .route("/api/v1/keys/{id}/rotate", post(keys::rotate_key))
        .route("/api/v1/budgets", get(budgets::list_budgets).post(budgets::post_budget))
        .route(
            "/api/v1/budgets/{id}",
            get(budgets::get_budget).delete(budgets::delete_budget),
        )
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route("/api/v1/outcomes", post(outcomes::post_outcomes))
        .route("/api/v1/leaderboard", get(outcomes::get_leaderboard))
        .route("/api/v1/findings", get(waste::get_findings))
        .route("/api/v1/findings/detect", post(waste::post_detect))
        .route("/api/v1/findings/{id}/confirm", post(waste::post_confirm))
        .route("/api/v1/findings/{id}/dismiss", post(waste::post_dismiss))
        .route(
            "/api/v1/github/logins",
            get(outcomes::list_logins).post(outcomes::post_login),
        )
        .route("/api/v1/me", get(viewers::me))
        .route("/api/v1/tokens", get(viewers::list).post(viewers::create))
        .route("/api/v1/tokens/{id}/revoke", post(viewers::revoke))
        .route("/api/v1/subjects/{by}/{name}", get(subjects::get_subject))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate));
    // The gateway's routes keep their own upstream timeouts (LLM calls outlive API requests)
    // and their own metrics instead of per-request trace spans on the hot path.
    let gateway = state.gateway.router();
    public
        .merge(admin)
        .fallback(not_found)
        .layer(middleware::from_fn(log_server_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
        .merge(gateway)
        .layer(middleware::from_fn(dashboard::index_for_browsers))
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    Json(
        serde_json::json!({ "status": "ok", "database": state.store.backend(), "price_version": state.prices.version() }),
    )
}

/// The OpenAPI document of every route (`crates/server/openapi.json`; a test keeps it in step
/// with the router).
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
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
