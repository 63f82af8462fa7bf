//! The proxy handlers: authenticate, attribute, route, forward, meter.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use goodhart_core::attribution::{self, AttributionError, RequestLabels};
use goodhart_core::budgets;
use goodhart_core::limits::{Call, Refusal as LimitRefusal};
use goodhart_core::providers::usage_from_body;
use goodhart_core::requests::{self, Endpoint};
use goodhart_core::usage::request_call_id;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;

use crate::Gateway;
use crate::auth;
use crate::config::{Protocol, Provider};
use crate::errors::GatewayError;
use crate::limits::Denied;
use crate::meter::{CallContext, CallOutcome, MeteredStream};

/// The most of a non-streamed response body the gateway reads (to find its usage).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How long a client may take to send its request body.
const REQUEST_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Request headers that never go upstream: hop-by-hop ones, the client's credential (the
/// provider's key replaces it), Goodhart's own, and `accept-encoding` (the usage tap reads
/// the response, so it is asked for uncompressed).
fn forwardable_request_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    !(is_hop_by_hop(name)
        || matches!(
            name,
            "host" | "content-length" | "authorization" | "x-api-key" | "accept-encoding" | "proxy-authorization"
        )
        || name.starts_with("x-goodhart-"))
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    )
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

pub async fn chat_completions(State(gw): State<Gateway>, request: Request) -> Response {
    proxy(gw, Endpoint::ChatCompletions, request).await
}

pub async fn responses(State(gw): State<Gateway>, request: Request) -> Response {
    proxy(gw, Endpoint::Responses, request).await
}

pub async fn embeddings(State(gw): State<Gateway>, request: Request) -> Response {
    proxy(gw, Endpoint::Embeddings, request).await
}

pub async fn messages(State(gw): State<Gateway>, request: Request) -> Response {
    proxy(gw, Endpoint::Messages, request).await
}

pub async fn count_tokens(State(gw): State<Gateway>, request: Request) -> Response {
    proxy(gw, Endpoint::CountTokens, request).await
}

async fn proxy(gw: Gateway, endpoint: Endpoint, request: Request) -> Response {
    match forward(&gw, endpoint, request).await {
        Ok(response) => response,
        Err(error) => {
            gw.inner.metrics.error(error.kind());
            error.respond(endpoint.protocol())
        }
    }
}

async fn authenticate(gw: &Gateway, headers: &HeaderMap) -> Result<Arc<goodhart_core::keys::VirtualKey>, GatewayError> {
    let now = goodhart_store::now_micros();
    match gw.inner.keys.authenticate(auth::credential(headers), now).await {
        Ok(Ok(key)) => Ok(key),
        Ok(Err(refusal)) => Err(GatewayError::Unauthorized(refusal.to_string())),
        Err(e) => {
            // Handled here: the detail is logged once, and the client is told only that keys
            // cannot be checked (never the database's own words).
            tracing::error!("key lookup failed: {e}");
            Err(GatewayError::KeyStoreUnavailable)
        }
    }
}

async fn forward(gw: &Gateway, endpoint: Endpoint, request: Request) -> Result<Response, GatewayError> {
    let started = Instant::now();
    let started_at = goodhart_store::now_micros();
    let inner = &gw.inner;
    let (parts, body) = request.into_parts();
    let key = authenticate(gw, &parts.headers).await?;
    if inner.recorder.is_failing() {
        return Err(GatewayError::SpoolUnavailable);
    }
    let limit = inner.config.max_body_bytes;
    let bytes = match tokio::time::timeout(REQUEST_BODY_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => return Err(GatewayError::PayloadTooLarge(limit)),
        Err(_) => {
            return Err(GatewayError::RequestTimeout(REQUEST_BODY_TIMEOUT.as_secs()));
        }
    };
    let mut json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| GatewayError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    if !json.is_object() {
        return Err(GatewayError::BadRequest("request body must be a JSON object".into()));
    }
    let facts = requests::request_facts(&json);
    let Some(model) = facts.model.clone() else {
        return Err(GatewayError::BadRequest(
            "`model` is required and must be a string".into(),
        ));
    };
    let headers = &parts.headers;
    let labels = RequestLabels {
        project: header_text(headers, "x-goodhart-project"),
        agent: header_text(headers, "x-goodhart-agent"),
        task: header_text(headers, "x-goodhart-task"),
        session: header_text(headers, "x-goodhart-session"),
        client_session: header_text(headers, "x-claude-code-session-id"),
        metadata_user_id: facts.metadata_user_id.clone(),
    };
    let attribution = attribution::attribute(&key.scope, labels).map_err(|e| match e {
        AttributionError::OutsideKeyScope { .. } => GatewayError::Forbidden(e.to_string()),
        AttributionError::InvalidLabel(_) => GatewayError::BadRequest(e.to_string()),
    })?;
    let route = inner
        .config
        .route(endpoint.protocol(), &model)
        .ok_or_else(|| GatewayError::NoRoute(model.clone()))?;
    let provider = route.provider;
    let upstream_model = route.upstream_model.to_owned();

    // Rewrite the body only when needed; otherwise the client's bytes go up unchanged.
    let mut rewritten = false;
    if upstream_model != model {
        json["model"] = Value::String(upstream_model.clone());
        rewritten = true;
    }
    let strip_usage_chunk = endpoint == Endpoint::ChatCompletions && facts.stream && !facts.include_usage;
    if strip_usage_chunk && let Some(object) = json.as_object_mut() {
        let options = object
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Default::default()));
        if !options.is_object() {
            *options = Value::Object(Default::default());
        }
        options["include_usage"] = Value::Bool(true);
        rewritten = true;
    }
    let upstream_body = if rewritten {
        Bytes::from(
            serde_json::to_vec(&json)
                .map_err(|e| GatewayError::BadRequest(format!("cannot write the request body: {e}")))?,
        )
    } else {
        bytes
    };

    let admission = if endpoint == Endpoint::CountTokens {
        None
    } else {
        let max_output = match endpoint {
            Endpoint::Embeddings => 0,
            _ => facts.max_tokens.unwrap_or(inner.config.default_max_tokens),
        };
        // The body's bytes bound its characters: a conservative input estimate without
        // tokenizing on the hot path.
        let input = budgets::estimate_input_tokens(upstream_body.len() as u64);
        let call = Call {
            key_id: &key.id,
            rates: key.limits,
            who: &attribution,
            cost: inner
                .prices
                .resolve(Some(&provider.name), &upstream_model)
                .map(|price| budgets::worst_case_cost(price, input, max_output)),
            tokens: input.saturating_add(max_output),
        };
        match inner.limits.admit(&call, started_at).await {
            Ok(admission) => Some(admission),
            Err(denied) => {
                // The first refusal of a budget's window is also an alert that its hard cap
                // was hit (the dispatcher raises it once per window, however many calls).
                match &denied {
                    Denied::Refused(LimitRefusal::Budget(refusal)) => {
                        inner.alerter.raise(goodhart_core::budgets::Alert::blocked(
                            &refusal.budget_id,
                            &refusal.scope,
                            refusal.window_start,
                            refusal.limit,
                            refusal.resets_at,
                            started_at,
                        ));
                    }
                    Denied::Store(e) => tracing::error!("shared budgets and rate limits unreachable: {e}"),
                    Denied::Refused(LimitRefusal::Rate(_)) => {}
                }
                return Err(refused(denied));
            }
        }
    };

    let upstream_request = upstream_request(provider, endpoint, &parts.uri, headers, upstream_body)?;
    let sent = Instant::now();
    let timeout = inner.config.upstream_timeout;
    let response = match tokio::time::timeout(timeout, inner.client.request(upstream_request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::warn!(provider = %provider.name, "upstream request failed: {e}");
            return Err(GatewayError::UpstreamUnavailable(e.to_string()));
        }
        Err(_) => return Err(GatewayError::UpstreamTimeout(timeout.as_secs())),
    };
    inner
        .metrics
        .upstream_latency
        .get_or_create(&crate::metrics::EndpointLabels {
            endpoint: endpoint.as_str(),
        })
        .observe(sent.elapsed().as_secs_f64());
    let status = response.status();
    inner
        .metrics
        .calls
        .get_or_create(&crate::metrics::CallLabels {
            endpoint: endpoint.as_str(),
            provider: provider.name.clone(),
            status: status.as_u16(),
        })
        .inc();
    let (upstream_parts, upstream_body) = response.into_parts();
    let upstream_request_id = header_text(&upstream_parts.headers, "request-id")
        .or_else(|| header_text(&upstream_parts.headers, "x-request-id"));
    let mut client_headers = HeaderMap::with_capacity(upstream_parts.headers.len() + 2);
    for (name, value) in &upstream_parts.headers {
        if !is_hop_by_hop(name.as_str()) && name != header::CONTENT_LENGTH {
            client_headers.append(name.clone(), value.clone());
        }
    }
    // The request id is how the same call, seen again in the agent's telemetry or logs, is
    // recognised: a provider that names none gets one of ours, returned where its SDKs look.
    let request_id = match upstream_request_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            let minted = new_request_id();
            let name = if endpoint.protocol() == Protocol::Anthropic {
                "request-id"
            } else {
                "x-request-id"
            };
            if let Ok(value) = HeaderValue::from_str(&minted) {
                client_headers.insert(name, value);
            }
            minted
        }
    };
    let call = CallContext {
        alerter: inner.alerter.clone(),
        admission,
        event_id: request_call_id(&request_id),
        key_id: key.id.clone(),
        attribution,
        provider: provider.name.clone(),
        endpoint,
        model: upstream_model,
        started,
        started_at,
        max_tokens: facts.max_tokens,
        stream: facts.stream,
        request: Arc::new(json),
        store_content: inner.config.store_content,
        prices: Arc::clone(&inner.prices),
        recorder: Arc::clone(&inner.recorder),
        metrics: Arc::clone(&inner.metrics),
    };

    if let Ok(id) = HeaderValue::from_str(&call.event_id) {
        client_headers.insert("x-goodhart-call-id", id);
    }
    let is_stream = upstream_parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));

    // count_tokens costs nothing: pass it through unmetered.
    if endpoint == Endpoint::CountTokens {
        return Ok(with_headers(status, client_headers, Body::new(upstream_body)));
    }
    if is_stream {
        let body = MeteredStream::new(
            upstream_body,
            call,
            status.as_u16(),
            upstream_request_id,
            strip_usage_chunk,
            timeout,
        );
        return Ok(with_headers(status, client_headers, Body::new(body)));
    }

    let first_byte;
    let body = match tokio::time::timeout(timeout, Limited::new(upstream_body, MAX_RESPONSE_BYTES).collect()).await {
        Ok(Ok(collected)) => {
            first_byte = Instant::now();
            collected.to_bytes()
        }
        Ok(Err(e)) => {
            call.record(CallOutcome {
                status: status.as_u16(),
                upstream_request_id,
                ..Default::default()
            });
            return Err(GatewayError::UpstreamUnavailable(e.to_string()));
        }
        Err(_) => return Err(GatewayError::UpstreamTimeout(timeout.as_secs())),
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let protocol = endpoint.wire();
    call.record(CallOutcome {
        status: status.as_u16(),
        reported: parsed.as_ref().and_then(|b| usage_from_body(protocol, b)),
        response_id: parsed.as_ref().and_then(requests::response_id),
        output_text: parsed
            .as_ref()
            .map(|b| requests::output_text(endpoint, b))
            .unwrap_or_default(),
        first_byte: Some(first_byte),
        upstream_request_id,
        complete: true,
        client_disconnected: false,
    });
    Ok(with_headers(status, client_headers, Body::from(body)))
}

fn with_headers(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn upstream_request(
    provider: &Provider,
    endpoint: Endpoint,
    client_uri: &Uri,
    client_headers: &HeaderMap,
    body: Bytes,
) -> Result<hyper::Request<Full<Bytes>>, GatewayError> {
    let query = client_uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let uri = format!("{}{}{query}", provider.base_url, endpoint.upstream_path());
    let mut request = hyper::Request::builder()
        .method(Method::POST)
        .uri(&uri)
        .body(Full::new(body))
        .map_err(|e| GatewayError::BadRequest(format!("cannot build the upstream request: {e}")))?;
    let headers = request.headers_mut();
    for (name, value) in client_headers {
        if forwardable_request_header(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if endpoint.protocol() == Protocol::Anthropic && !headers.contains_key("anthropic-version") {
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    }
    if let Some((name, value)) = provider_auth(provider) {
        headers.insert(name, value);
    }
    Ok(request)
}

/// The header carrying the provider's own key, marked sensitive so it is never logged.
fn provider_auth(provider: &Provider) -> Option<(HeaderName, HeaderValue)> {
    let key = provider.api_key.as_ref()?;
    let (name, value) = match provider.protocol {
        Protocol::OpenAi => (header::AUTHORIZATION, format!("Bearer {}", key.expose())),
        Protocol::Anthropic => (HeaderName::from_static("x-api-key"), key.expose().to_owned()),
    };
    let mut value = HeaderValue::from_str(&value).ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

/// Why a call was not admitted, as the client is told.
fn refused(denied: Denied) -> GatewayError {
    match denied {
        Denied::Refused(LimitRefusal::Rate(refusal)) => GatewayError::RateLimited(refusal),
        Denied::Refused(LimitRefusal::Budget(refusal)) => GatewayError::BudgetExceeded(Box::new(refusal)),
        Denied::Store(_) => GatewayError::LimitsUnavailable,
    }
}

/// A request id for a provider that sent none.
fn new_request_id() -> String {
    format!("req_gh{:032x}", rand::random::<u128>())
}

/// `GET /v1/models`: the default provider's list, for the protocol the client speaks.
pub async fn models(State(gw): State<Gateway>, request: Request) -> Response {
    let protocol = if request.headers().contains_key("anthropic-version") {
        Protocol::Anthropic
    } else {
        Protocol::OpenAi
    };
    if let Err(error) = authenticate(&gw, request.headers()).await {
        gw.inner.metrics.error(error.kind());
        return error.respond(protocol);
    }
    let Some(provider) = gw.inner.config.listing_provider(protocol) else {
        return GatewayError::NoRoute("(model listing)".into()).respond(protocol);
    };
    let path = if protocol == Protocol::Anthropic {
        "/v1/models"
    } else {
        "/models"
    };
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let mut upstream = match hyper::Request::builder()
        .method(Method::GET)
        .uri(format!("{}{path}{query}", provider.base_url))
        .body(Full::new(Bytes::new()))
    {
        Ok(r) => r,
        Err(e) => return GatewayError::BadRequest(e.to_string()).respond(protocol),
    };
    for (name, value) in request.headers() {
        if forwardable_request_header(name) && name != header::CONTENT_TYPE {
            upstream.headers_mut().append(name.clone(), value.clone());
        }
    }
    if let Some((name, value)) = provider_auth(provider) {
        upstream.headers_mut().insert(name, value);
    }
    match tokio::time::timeout(gw.inner.config.upstream_timeout, gw.inner.client.request(upstream)).await {
        Ok(Ok(response)) => {
            let (parts, body) = response.into_parts();
            let mut headers = HeaderMap::new();
            for (name, value) in &parts.headers {
                if !is_hop_by_hop(name.as_str()) {
                    headers.append(name.clone(), value.clone());
                }
            }
            with_headers(parts.status, headers, Body::new(body))
        }
        Ok(Err(e)) => GatewayError::UpstreamUnavailable(e.to_string()).respond(protocol),
        Err(_) => GatewayError::UpstreamTimeout(gw.inner.config.upstream_timeout.as_secs()).respond(protocol),
    }
}

/// `HEAD /` and `GET /`: clients (Claude Code among them) probe the base URL before calling.
pub async fn root() -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "name": "goodhart",
        "gateway": {
            "openai_base_url": "/v1",
            "anthropic_base_url": "/",
        },
        "docs": "/openapi.json"
    }))
}
