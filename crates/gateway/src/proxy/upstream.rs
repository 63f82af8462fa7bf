//! The upstream phase: the request a provider is sent (the client's headers minus the ones
//! that must never go up, plus the provider's key), sending it within the timeout, and the
//! headers of its answer that go back down. Metered calls and `GET /v1/models` share it.

use std::time::Duration;

use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;

use crate::config::Provider;
use crate::errors::GatewayError;
use crate::proxy::adapter::Adapter;
use crate::upstream::UpstreamClient;

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

/// What goes up: a call's JSON body to `path`, or (`None`) a bodiless `GET` of `path`.
pub fn build(
    adapter: &dyn Adapter,
    provider: &Provider,
    path: &str,
    client_uri: &Uri,
    client_headers: &HeaderMap,
    body: Option<Bytes>,
) -> Result<hyper::Request<Full<Bytes>>, GatewayError> {
    let query = client_uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let method = if body.is_some() { Method::POST } else { Method::GET };
    let has_body = body.is_some();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{path}{query}", provider.base_url))
        .body(Full::new(body.unwrap_or_default()))
        .map_err(|e| GatewayError::BadRequest(format!("cannot build the upstream request: {e}")))?;
    let headers = request.headers_mut();
    for (name, value) in client_headers {
        if forwardable_request_header(name) && (has_body || name != header::CONTENT_TYPE) {
            headers.append(name.clone(), value.clone());
        }
    }
    if has_body {
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        if !headers.contains_key(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        adapter.required_headers(headers);
    }
    // Marked sensitive by the adapter, so it is never logged.
    if let Some((name, value)) = provider.api_key.as_ref().and_then(|key| adapter.auth_header(key)) {
        headers.insert(name, value);
    }
    Ok(request)
}

/// Sends `request`, waiting at most `timeout` for the response's head.
pub async fn send(
    client: &UpstreamClient,
    provider: &Provider,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<hyper::Response<Incoming>, GatewayError> {
    match tokio::time::timeout(timeout, client.request(request)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => {
            // Logged here, where it is handled; the client gets the error, not a log line.
            tracing::warn!(provider = %provider.name, "upstream request failed: {e}");
            Err(GatewayError::UpstreamUnavailable(e.to_string()))
        }
        Err(_) => Err(GatewayError::UpstreamTimeout(timeout.as_secs())),
    }
}

/// The provider's response headers that go down to the client: not the hop-by-hop ones, nor
/// (when the body is re-framed) the content length.
pub fn client_headers(upstream: &HeaderMap, keep_length: bool) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(upstream.len() + 2);
    for (name, value) in upstream {
        if !is_hop_by_hop(name.as_str()) && (keep_length || name != header::CONTENT_LENGTH) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

pub fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}
