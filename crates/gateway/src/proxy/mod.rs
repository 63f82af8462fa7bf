//! The proxy: each metered call runs as phases over one plan —
//! authenticate → [`plan`] → admit ([`context`]) → [`upstream`] → [`respond`] | [`stream`] → [`record`] —
//! with everything particular to a wire protocol behind its [`adapter`]. The Responses API's
//! WebSocket mode runs the same phases per `response.create` frame ([`socket`]).

pub mod adapter;
pub mod context;
pub mod plan;
pub mod record;
pub mod respond;
pub mod socket;
pub mod stream;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use goodhart_core::requests::{Endpoint, Protocol};
use goodhart_core::usage::request_call_id;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::errors::GatewayError;
use crate::metrics::{CallLabels, EndpointLabels, Metrics};
use adapter::Adapter;
pub use context::Proxy;
use context::{admit, authenticate, new_request_id};
use record::{AwaitingAnswer, Recording};
use respond::with_headers;
use stream::MeteredStream;

/// How long a client may take to send its request body.
const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Every adapter's routes, with and without the `/v1` prefix (some clients omit it), the
/// model listing and the base URL probe.
pub fn router(proxy: Arc<Proxy>) -> Router {
    let mut router = Router::new();
    for adapter in adapter::ADAPTERS {
        for prefix in adapter.route_prefixes() {
            for &(path, endpoint) in adapter.routes() {
                let handler =
                    move |State(proxy): State<Arc<Proxy>>, request: Request| call(proxy, adapter, endpoint, request);
                router = router.route(&format!("{prefix}{path}"), post(handler));
            }
        }
    }
    for prefix in ["/v1", ""] {
        router = router.route(&format!("{prefix}/responses"), get(socket::open));
        router = router.route(&format!("{prefix}/models"), get(models));
    }
    for adapter in adapter::ADAPTERS {
        for route in adapter.model_routes() {
            let endpoint = route.endpoint;
            let handler = move |State(proxy): State<Arc<Proxy>>,
                                Path(params): Path<HashMap<String, String>>,
                                request: Request| {
                let target = params.get("target").cloned().unwrap_or_default();
                call_model(proxy, adapter, target, endpoint, request)
            };
            router = router.route(route.path, post(handler));
        }
        if let (false, Some(path)) = (adapter.model_routes().is_empty(), adapter.models_path()) {
            let list = move |State(proxy): State<Arc<Proxy>>, request: Request| list(proxy, adapter, request);
            router = router.route(path, get(list));
        }
    }
    router.route("/", get(root).head(root)).with_state(proxy)
}

async fn call(proxy: Arc<Proxy>, adapter: &'static dyn Adapter, endpoint: Endpoint, request: Request) -> Response {
    answer(&proxy, adapter, forward(&proxy, adapter, endpoint, None, request).await)
}

/// A call to a path that names its model: `target` is the model of `endpoint`, or without one
/// the model and the method (`gemini-2.5-pro:generateContent`).
async fn call_model(
    proxy: Arc<Proxy>,
    adapter: &'static dyn Adapter,
    target: String,
    endpoint: Option<Endpoint>,
    request: Request,
) -> Response {
    let routed = match (endpoint, target.rsplit_once(':')) {
        (Some(endpoint), _) if !target.is_empty() => Ok((target.as_str(), endpoint)),
        (None, Some((model, method))) if !model.is_empty() => adapter
            .method(method)
            .map(|endpoint| (model, endpoint))
            .ok_or_else(|| GatewayError::NoMethod(method.to_owned())),
        _ => Err(GatewayError::BadRequest(format!(
            "`{target}` does not name a model and a method (`models/{{model}}:{{method}}`)"
        ))),
    };
    let result = match routed {
        Ok((model, endpoint)) => forward(&proxy, adapter, endpoint, Some(model), request).await,
        Err(error) => Err(error),
    };
    answer(&proxy, adapter, result)
}

fn answer(proxy: &Proxy, adapter: &dyn Adapter, result: Result<Response, GatewayError>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => {
            proxy.services.metrics.error(error.kind());
            error.respond_with(adapter.protocol(), adapter.error_body(&error))
        }
    }
}

async fn forward(
    proxy: &Proxy,
    adapter: &'static dyn Adapter,
    endpoint: Endpoint,
    path_model: Option<&str>,
    request: Request,
) -> Result<Response, GatewayError> {
    let started = (Instant::now(), goodhart_store::now_micros());
    let phases = &proxy.services.metrics.phases;
    let (parts, body) = request.into_parts();
    let key = authenticate(proxy, &parts.headers, parts.uri.query()).await?;
    Metrics::observe_since(&phases.authenticate, started.0);
    if proxy.services.recorder.is_failing() {
        return Err(GatewayError::SpoolUnavailable);
    }
    let limit = proxy.config.max_body_bytes;
    let reading = Instant::now();
    let bytes = match tokio::time::timeout(REQUEST_BODY_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(GatewayError::PayloadTooLarge(limit)),
        // Cut short: the client went away, or the server's body timeout ended a trickle.
        Ok(Err(e)) => {
            return Err(GatewayError::BadRequest(format!(
                "could not read the request body: {e}"
            )));
        }
        Err(_) => return Err(GatewayError::RequestTimeout(REQUEST_BODY_TIMEOUT.as_secs())),
    };
    Metrics::observe_since(&phases.read_body, reading);
    let planning = Instant::now();
    let planned = plan::plan(
        adapter,
        endpoint,
        path_model,
        &parts.headers,
        bytes,
        &key,
        &proxy.config,
        started,
    )?;
    let plan = planned.plan;
    if plan.translation.is_some() && !plan.metered {
        // Counting tokens for a model served by translation: the provider has no such
        // endpoint, so the gateway counts them itself.
        let body: serde_json::Value = serde_json::from_slice(&planned.body).unwrap_or_default();
        let prompt = goodhart_core::requests::prompt_text(plan.endpoint(), &body);
        let input_tokens = crate::estimate::count_tokens(&prompt.full);
        return Ok(axum::Json(serde_json::json!({ "input_tokens": input_tokens })).into_response());
    }
    Metrics::observe_since(&phases.plan, planning);
    let admitting = Instant::now();
    let admission = admit(&proxy.services, &plan, &key).await?;
    Metrics::observe_since(&phases.admit, admitting);

    // The provider's own adapter says how it is called: the client's, unless translated.
    let upstream_adapter = match plan.translation {
        Some(_) => adapter::of(planned.provider.protocol),
        None => adapter,
    };
    let upstream_endpoint = plan.endpoint();
    let path = upstream_adapter.upstream_path(upstream_endpoint, plan.path_model.as_deref());
    let mut request = upstream::build(
        upstream_adapter,
        planned.provider,
        &path,
        &parts.uri,
        &parts.headers,
        Some(planned.body),
    )?;
    let timeout = proxy.config.upstream_timeout;
    if let Some(account) = &planned.provider.google {
        let token = account.token(&proxy.client, timeout).await?;
        let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| GatewayError::UpstreamUnavailable("the Google access token is not a header value".into()))?;
        bearer.set_sensitive(true);
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
    }
    let sent = Instant::now();
    let awaiting = AwaitingAnswer::new(Recording {
        services: Arc::clone(&proxy.services),
        plan,
        admission,
    });
    let response = match upstream::send(&proxy.client, planned.provider, request, timeout).await {
        Ok(response) => response,
        Err(error) => {
            let recording = awaiting.answered();
            // Timed out waiting for the headers, the provider has the call; a connection that
            // failed may never have delivered it, and is not billed.
            if matches!(error, GatewayError::UpstreamTimeout(_)) {
                recording.record_unanswered(StatusCode::GATEWAY_TIMEOUT.as_u16(), false);
            }
            return Err(error);
        }
    };
    let mut recording = awaiting.answered();
    let metrics = &proxy.services.metrics;
    let endpoint_label = EndpointLabels {
        endpoint: endpoint.as_str(),
    };
    metrics
        .upstream_latency
        .get_or_create(&endpoint_label)
        .observe(sent.elapsed().as_secs_f64());
    let status = response.status();
    metrics
        .calls
        .get_or_create(&CallLabels {
            endpoint: endpoint.as_str(),
            provider: planned.provider.name.clone(),
            status: status.as_u16(),
        })
        .inc();
    let (upstream_parts, upstream_body) = response.into_parts();
    let upstream_request_id = upstream::header_text(&upstream_parts.headers, "request-id")
        .or_else(|| upstream::header_text(&upstream_parts.headers, "x-request-id"))
        .or_else(|| upstream::header_text(&upstream_parts.headers, adapter.request_id_header()));
    let mut headers = upstream::client_headers(&upstream_parts.headers, false);
    // The request id is how the same call, seen again in the agent's telemetry or logs, is
    // recognised: a provider that names none gets one of ours, returned where its SDKs look.
    let request_id = match upstream_request_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let minted = new_request_id();
            if let Ok(value) = HeaderValue::from_str(&minted) {
                headers.insert(adapter.request_id_header(), value);
            }
            minted
        }
    };
    recording.plan.facts.id = request_call_id(&request_id);
    if let Ok(id) = HeaderValue::from_str(&recording.plan.facts.id) {
        headers.insert("x-goodhart-call-id", id);
    }
    if !recording.plan.metered {
        return Ok(with_headers(status, headers, Body::new(upstream_body)));
    }
    let content_type = upstream_parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let framing = upstream_adapter.stream_framing(upstream_endpoint, content_type);
    if let Some(framing) = framing {
        let body = MeteredStream::new(
            upstream_body,
            framing,
            recording,
            status.as_u16(),
            upstream_request_id,
            timeout,
        );
        return Ok(with_headers(status, headers, Body::new(body)));
    }
    respond::respond(recording, status, headers, upstream_body, upstream_request_id, timeout).await
}

/// `GET /v1/models`: the default provider's list, for the protocol the client speaks.
pub async fn models(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let protocol = if request.headers().contains_key("anthropic-version") {
        Protocol::Anthropic
    } else {
        Protocol::OpenAi
    };
    list(proxy, adapter::of(protocol), request).await
}

/// A model list in `adapter`'s protocol, from its default provider.
async fn list(proxy: Arc<Proxy>, adapter: &'static dyn Adapter, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    answer(&proxy, adapter, list_models(&proxy, adapter, &parts).await)
}

async fn list_models(
    proxy: &Proxy,
    adapter: &dyn Adapter,
    request: &axum::http::request::Parts,
) -> Result<Response, GatewayError> {
    authenticate(proxy, &request.headers, request.uri.query()).await?;
    let provider = proxy
        .config
        .listing_provider(adapter.protocol())
        .ok_or_else(|| GatewayError::NoRoute("(model listing)".into()))?;
    let path = adapter
        .models_path()
        .ok_or_else(|| GatewayError::NoRoute("(model listing)".into()))?;
    let upstream = upstream::build(adapter, provider, path, &request.uri, &request.headers, None)?;
    let response = upstream::send(&proxy.client, provider, upstream, proxy.config.upstream_timeout).await?;
    let (parts, body) = response.into_parts();
    let headers = upstream::client_headers(&parts.headers, true);
    Ok(with_headers(parts.status, headers, Body::new(body)))
}

/// `HEAD /` and `GET /`: clients (Claude Code among them) probe the base URL before calling.
pub async fn root() -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "name": "goodhart",
        "gateway": {
            "openai_base_url": "/v1",
            "anthropic_base_url": "/",
            "gemini_base_url": "/",
            "bedrock_base_url": "/",
        },
        "docs": "/openapi.json"
    }))
}
