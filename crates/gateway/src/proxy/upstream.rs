//! The upstream phase: the request a provider is sent (the client's headers minus the ones
//! that must never go up, plus the provider's key — or, for Bedrock, the provider's SigV4
//! signature, made last over the exact bytes sent), sending it within the timeout, and the
//! headers of its answer that go back down. Metered calls and `GET /v1/models` share it, and
//! so does the opening of a WebSocket to a provider ([`connect_socket`]), made through the same
//! client (its TLS roots, timeouts and connector) as an HTTP/1.1 upgrade.

use std::time::Duration;

use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::config::Provider;
use crate::errors::GatewayError;
use crate::proxy::adapter::Adapter;
use crate::sigv4;
use crate::upstream::UpstreamClient;

/// Request headers that never go upstream: hop-by-hop ones, the client's credential (the
/// provider's key replaces it) and what its AWS signature consists of (the provider's
/// replaces it), Goodhart's own, and `accept-encoding` (the usage tap reads the response, so
/// it is asked for uncompressed).
fn forwardable_request_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    !(is_hop_by_hop(name)
        || matches!(
            name,
            "host"
                | "content-length"
                | "authorization"
                | "x-api-key"
                | "x-goog-api-key"
                | "api-key"
                | "accept-encoding"
                | "proxy-authorization"
                | "x-amz-date"
                | "x-amz-security-token"
                | "x-amz-content-sha256"
        )
        || name.starts_with("x-goodhart-"))
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name.starts_with("sec-websocket-")
}

/// The client's query as it goes up: without `key`, where Gemini clients may put the
/// credential (the provider's key travels in a header instead).
fn upstream_query(query: Option<&str>) -> String {
    let kept: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|pair| !pair.is_empty() && *pair != "key" && !pair.starts_with("key="))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
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
    let query = upstream_query(client_uri.query());
    let method = if body.is_some() { Method::POST } else { Method::GET };
    let has_body = body.is_some();
    let body = body.unwrap_or_default();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{path}{query}", provider.base_url))
        .body(Full::new(body.clone()))
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
    if let Some(aws) = &provider.aws {
        sigv4::sign_request(&mut request, &body, aws, std::time::SystemTime::now())
            .map_err(|e| GatewayError::UpstreamUnavailable(e.to_string()))?;
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

/// A WebSocket to a provider.
pub type UpstreamSocket = WebSocketStream<TokioIo<Upgraded>>;

/// Why a provider's WebSocket could not be opened.
pub enum SocketRefused {
    /// The provider answered the upgrade with this status instead of switching protocols.
    Status(u16),
    Failed(GatewayError),
}

/// Opens a WebSocket with `request` (a bodiless request from [`build`]: the client's headers
/// and the provider's key); returns it with the headers of the provider's `101` answer.
/// `max_message_bytes` bounds what one frame from the provider may hold.
pub async fn connect_socket(
    client: &UpstreamClient,
    provider: &Provider,
    mut request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
    max_message_bytes: usize,
) -> Result<(UpstreamSocket, HeaderMap), SocketRefused> {
    let key = generate_key();
    let headers = request.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    if let Ok(value) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, value);
    }
    let mut response = send(client, provider, request, timeout)
        .await
        .map_err(SocketRefused::Failed)?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(SocketRefused::Status(response.status().as_u16()));
    }
    let accepted = response
        .headers()
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .is_some_and(|accept| accept.as_bytes() == derive_accept_key(key.as_bytes()).as_bytes());
    if !accepted {
        return Err(SocketRefused::Failed(GatewayError::UpstreamUnavailable(
            "the provider's WebSocket handshake did not accept the key it was sent".into(),
        )));
    }
    let upgraded = match tokio::time::timeout(timeout, hyper::upgrade::on(&mut response)).await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(e)) => return Err(SocketRefused::Failed(GatewayError::UpstreamUnavailable(e.to_string()))),
        Err(_) => return Err(SocketRefused::Failed(GatewayError::UpstreamTimeout(timeout.as_secs()))),
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes));
    let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(config)).await;
    Ok((socket, client_headers(response.headers(), false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_in_the_query_never_goes_up() {
        assert_eq!(upstream_query(Some("alt=sse&key=gk-secret")), "?alt=sse");
        assert_eq!(upstream_query(Some("key=gk-secret")), "");
        assert_eq!(upstream_query(Some("beta=true&monkey=1")), "?beta=true&monkey=1");
        assert_eq!(upstream_query(None), "");
    }
}
