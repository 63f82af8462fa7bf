//! What is particular to one wire protocol, behind one trait: its routes, what its request
//! bodies and responses say (facts, prompt text, usage from a body and from the stream tap),
//! its error shapes, how its streams are framed, and how a provider speaking it is called
//! (path, key header, required headers). The phases in [`super`] are written against
//! [`Adapter`] only, so a new protocol (Bedrock, Vertex, Azure's deployments, or a translating
//! adapter) is a new implementation listed in [`ADAPTERS`], not an edit of the hot path.
//!
//! Adapters are zero-sized statics: choosing one is a match on [`Protocol`], never an
//! allocation.

use std::borrow::Cow;

use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use goodhart_core::providers::{ReportedUsage, StreamTap, usage_from_body};
use goodhart_core::requests::{self, Endpoint, PromptText, Protocol, RequestFacts};
use goodhart_core::sse::SseEvent;
use serde_json::Value;

use crate::config::ApiKey;
use crate::errors::GatewayError;

/// A `POST` route whose path names the model in its `{target}` segment: with a fixed
/// endpoint (`/model/{target}/converse`, `/openai/deployments/{target}/chat/completions`), or,
/// when `endpoint` is `None`, as the model followed by `:method` (`/v1beta/models/{target}`
/// with `target` = `gemini-2.5-pro:generateContent`; [`Adapter::method`] tells which endpoint
/// a method is).
pub struct ModelRoute {
    pub path: &'static str,
    pub endpoint: Option<Endpoint>,
}

/// How a streamed response is cut into events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events.
    Sse,
    /// One JSON array whose elements arrive one by one (Gemini without `alt=sse`).
    JsonArray,
    /// AWS event-stream binary frames (`application/vnd.amazon.eventstream`: Bedrock's streams).
    EventStream,
}

/// One wire protocol as the gateway proxies it. Every method has the endpoint it is asked
/// about; an adapter answers only for the endpoints it lists in [`Adapter::routes`].
pub trait Adapter: Send + Sync + 'static {
    /// The protocol: routing picks providers speaking it, errors take its shape.
    fn protocol(&self) -> Protocol;

    /// The metered `POST` routes, as paths under the `/v1` prefix (each is also served
    /// without it, as some clients omit it), with the endpoint each one is.
    fn routes(&self) -> &'static [(&'static str, Endpoint)];

    /// `POST` routes whose path names the model, served as they are (see [`ModelRoute`]).
    fn model_routes(&self) -> &'static [ModelRoute] {
        &[]
    }

    /// The endpoint a method of a [`Adapter::model_routes`] path is.
    fn method(&self, _method: &str) -> Option<Endpoint> {
        None
    }

    /// The path of the provider's model list under its base URL, if its API has one.
    fn models_path(&self) -> Option<&'static str>;

    /// The path of `endpoint` under the provider's base URL; `path_model` is the provider's
    /// name of the model when the client's path named it (see [`Adapter::model_routes`]).
    fn upstream_path(&self, endpoint: Endpoint, _path_model: Option<&str>) -> Cow<'static, str> {
        Cow::Borrowed(endpoint.upstream_path())
    }

    /// The prefixes the fixed [`Adapter::routes`] are served under.
    fn route_prefixes(&self) -> &'static [&'static str] {
        &["/v1", ""]
    }

    /// What a request body says: model, streaming, output cap, metadata.
    fn facts(&self, _endpoint: Endpoint, body: &Value) -> RequestFacts {
        requests::request_facts(body)
    }

    /// How a response with `content_type` to `endpoint` is streamed, if it is.
    fn stream_framing(&self, _endpoint: Endpoint, content_type: &str) -> Option<Framing> {
        content_type.starts_with("text/event-stream").then_some(Framing::Sse)
    }

    /// The request's text, for fingerprints and estimates (read once, when the call is planned).
    fn prompt(&self, endpoint: Endpoint, body: &Value) -> PromptText {
        requests::prompt_text(endpoint, body)
    }

    /// Changes the body needs on its way up beyond the model name; returns whether the
    /// provider's stream will then carry events the client did not ask for (see
    /// [`Adapter::hidden`]).
    fn rewrite(&self, _endpoint: Endpoint, _facts: &RequestFacts, _body: &mut Value) -> bool {
        false
    }

    /// A stream event the gateway asked for on the client's behalf, dropped on the way down.
    fn hidden(&self, _event: &SseEvent) -> bool {
        false
    }

    /// Whether calls to `endpoint` cost anything (unmetered ones pass straight through).
    fn metered(&self, _endpoint: Endpoint) -> bool {
        true
    }

    /// The most output tokens a call may produce, for its worst-case cost.
    fn max_output(&self, _endpoint: Endpoint, facts: &RequestFacts, default: u64) -> u64 {
        facts.max_tokens.unwrap_or(default)
    }

    /// Usage a complete (non-streamed) response body reports.
    fn usage(&self, endpoint: Endpoint, body: &Value) -> Option<ReportedUsage> {
        usage_from_body(endpoint.wire(), body)
    }

    /// Usage the provider reported in a non-streamed response's headers, when its body has none
    /// the gateway can read.
    fn usage_from_headers(&self, _headers: &HeaderMap) -> Option<ReportedUsage> {
        None
    }

    /// The text a complete response body answered with.
    fn output_text(&self, endpoint: Endpoint, body: &Value) -> String {
        requests::output_text(endpoint, body)
    }

    /// The provider's id of a complete response.
    fn response_id(&self, body: &Value) -> Option<String> {
        requests::response_id(body)
    }

    /// The tap that reads usage (and the output's text) from `endpoint`'s stream.
    fn stream_tap(&self, endpoint: Endpoint) -> StreamTap {
        StreamTap::collecting_text(endpoint.wire())
    }

    /// An error as this protocol's response body.
    fn error_body(&self, error: &GatewayError) -> Value {
        error.body(self.protocol())
    }

    /// An error as this protocol's in-band stream event (after a 200 went out).
    fn error_event(&self, error: &GatewayError) -> Bytes {
        error.sse_event(self.protocol())
    }

    /// Where this protocol's SDKs look for a request id (one is minted if the provider sent none).
    fn request_id_header(&self) -> &'static str;

    /// The header carrying the provider's key.
    fn auth_header(&self, key: &ApiKey) -> Option<(HeaderName, HeaderValue)>;

    /// Headers the provider requires that a client may leave out.
    fn required_headers(&self, _headers: &mut HeaderMap) {}
}

/// OpenAI's API: chat completions, responses, embeddings.
pub struct OpenAi;

/// Anthropic's API: messages, count_tokens.
pub struct Anthropic;

/// Google's Gemini API: generateContent, streamGenerateContent, countTokens.
pub struct Gemini;

/// Azure OpenAI: OpenAI's bodies, under a deployment's path or the `v1` API.
pub struct Azure;

/// AWS Bedrock's runtime API: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream.
pub struct Bedrock;

/// Vertex AI's Anthropic publisher models: Anthropic's Messages under a project's path.
pub struct VertexAnthropic;

/// Vertex AI's Google publisher models: Gemini's API under a project's path.
pub struct VertexGemini;

/// Every adapter the gateway serves, in routing order.
pub static ADAPTERS: [&dyn Adapter; 7] = [
    &OpenAi,
    &Anthropic,
    &Gemini,
    &Azure,
    &Bedrock,
    &VertexAnthropic,
    &VertexGemini,
];

/// The adapter of `protocol` (for Vertex AI, its Anthropic models').
pub fn of(protocol: Protocol) -> &'static dyn Adapter {
    match protocol {
        Protocol::OpenAi => &OpenAi,
        Protocol::Anthropic => &Anthropic,
        Protocol::Gemini => &Gemini,
        Protocol::Azure => &Azure,
        Protocol::Bedrock => &Bedrock,
        Protocol::Vertex => &VertexAnthropic,
    }
}

fn sensitive(name: HeaderName, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

impl Adapter for OpenAi {
    fn protocol(&self) -> Protocol {
        Protocol::OpenAi
    }

    fn routes(&self) -> &'static [(&'static str, Endpoint)] {
        &[
            ("/chat/completions", Endpoint::ChatCompletions),
            ("/responses", Endpoint::Responses),
            ("/embeddings", Endpoint::Embeddings),
        ]
    }

    fn models_path(&self) -> Option<&'static str> {
        Some("/models")
    }

    /// A streamed chat completion reports usage only when asked: the gateway asks, and drops
    /// the usage chunk again if the client had not.
    fn rewrite(&self, endpoint: Endpoint, facts: &RequestFacts, body: &mut Value) -> bool {
        let ask = endpoint == Endpoint::ChatCompletions && facts.stream && !facts.include_usage;
        if ask && let Some(object) = body.as_object_mut() {
            let options = object
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Default::default()));
            if !options.is_object() {
                *options = Value::Object(Default::default());
            }
            options["include_usage"] = Value::Bool(true);
        }
        ask
    }

    fn hidden(&self, event: &SseEvent) -> bool {
        is_usage_only_chunk(&event.data)
    }

    fn max_output(&self, endpoint: Endpoint, facts: &RequestFacts, default: u64) -> u64 {
        match endpoint {
            Endpoint::Embeddings => 0,
            _ => facts.max_tokens.unwrap_or(default),
        }
    }

    fn request_id_header(&self) -> &'static str {
        "x-request-id"
    }

    fn auth_header(&self, key: &ApiKey) -> Option<(HeaderName, HeaderValue)> {
        sensitive(header::AUTHORIZATION, &format!("Bearer {}", key.expose()))
    }
}

impl Adapter for Anthropic {
    fn protocol(&self) -> Protocol {
        Protocol::Anthropic
    }

    fn routes(&self) -> &'static [(&'static str, Endpoint)] {
        &[
            ("/messages", Endpoint::Messages),
            ("/messages/count_tokens", Endpoint::CountTokens),
        ]
    }

    fn models_path(&self) -> Option<&'static str> {
        Some("/v1/models")
    }

    /// Counting tokens costs nothing: it passes through unmetered.
    fn metered(&self, endpoint: Endpoint) -> bool {
        endpoint != Endpoint::CountTokens
    }

    fn request_id_header(&self) -> &'static str {
        "request-id"
    }

    fn auth_header(&self, key: &ApiKey) -> Option<(HeaderName, HeaderValue)> {
        sensitive(HeaderName::from_static("x-api-key"), key.expose())
    }

    fn required_headers(&self, headers: &mut HeaderMap) {
        if !headers.contains_key("anthropic-version") {
            headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
    }
}

impl Adapter for Gemini {
    fn protocol(&self) -> Protocol {
        Protocol::Gemini
    }

    fn routes(&self) -> &'static [(&'static str, Endpoint)] {
        &[]
    }

    fn model_routes(&self) -> &'static [ModelRoute] {
        &[
            ModelRoute {
                path: "/v1beta/models/{target}",
                endpoint: None,
            },
            ModelRoute {
                path: "/v1/models/{target}",
                endpoint: None,
            },
        ]
    }

    fn method(&self, method: &str) -> Option<Endpoint> {
        Endpoint::gemini_method(method)
    }

    fn models_path(&self) -> Option<&'static str> {
        Some("/v1beta/models")
    }

    /// Always the `v1beta` API, a superset of `v1`, whichever the client called.
    fn upstream_path(&self, endpoint: Endpoint, path_model: Option<&str>) -> Cow<'static, str> {
        let model = path_model.unwrap_or_default();
        Cow::Owned(format!("/v1beta/models/{model}{}", endpoint.upstream_path()))
    }

    fn facts(&self, endpoint: Endpoint, body: &Value) -> RequestFacts {
        RequestFacts {
            stream: endpoint == Endpoint::StreamGenerateContent,
            ..requests::gemini_request_facts(body)
        }
    }

    /// `alt=sse` streams are SSE; without it the stream is one JSON array, sent element by
    /// element as `application/json`.
    fn stream_framing(&self, endpoint: Endpoint, content_type: &str) -> Option<Framing> {
        if content_type.starts_with("text/event-stream") {
            Some(Framing::Sse)
        } else {
            (endpoint == Endpoint::StreamGenerateContent).then_some(Framing::JsonArray)
        }
    }

    /// Counting tokens costs nothing: it passes through unmetered.
    fn metered(&self, endpoint: Endpoint) -> bool {
        endpoint != Endpoint::GeminiCountTokens
    }

    fn request_id_header(&self) -> &'static str {
        "x-request-id"
    }

    fn auth_header(&self, key: &ApiKey) -> Option<(HeaderName, HeaderValue)> {
        sensitive(HeaderName::from_static("x-goog-api-key"), key.expose())
    }
}

impl Adapter for Azure {
    fn protocol(&self) -> Protocol {
        Protocol::Azure
    }

    /// The `v1` API (`/openai/v1/…`), the deployment named in the body's `model`.
    fn routes(&self) -> &'static [(&'static str, Endpoint)] {
        &[
            ("/chat/completions", Endpoint::ChatCompletions),
            ("/responses", Endpoint::Responses),
            ("/embeddings", Endpoint::Embeddings),
        ]
    }

    fn route_prefixes(&self) -> &'static [&'static str] {
        &["/openai/v1"]
    }

    /// The deployment API, the deployment named in the path (`?api-version=` passes through).
    fn model_routes(&self) -> &'static [ModelRoute] {
        &[
            ModelRoute {
                path: "/openai/deployments/{target}/chat/completions",
                endpoint: Some(Endpoint::ChatCompletions),
            },
            ModelRoute {
                path: "/openai/deployments/{target}/embeddings",
                endpoint: Some(Endpoint::Embeddings),
            },
        ]
    }

    fn models_path(&self) -> Option<&'static str> {
        Some("/openai/v1/models")
    }

    fn upstream_path(&self, endpoint: Endpoint, path_model: Option<&str>) -> Cow<'static, str> {
        let tail = endpoint.upstream_path();
        match path_model {
            Some(deployment) => Cow::Owned(format!("/openai/deployments/{deployment}{tail}")),
            None => Cow::Owned(format!("/openai/v1{tail}")),
        }
    }

    fn rewrite(&self, endpoint: Endpoint, facts: &RequestFacts, body: &mut Value) -> bool {
        OpenAi.rewrite(endpoint, facts, body)
    }

    fn hidden(&self, event: &SseEvent) -> bool {
        OpenAi.hidden(event)
    }

    fn max_output(&self, endpoint: Endpoint, facts: &RequestFacts, default: u64) -> u64 {
        OpenAi.max_output(endpoint, facts, default)
    }

    fn request_id_header(&self) -> &'static str {
        "x-request-id"
    }

    fn auth_header(&self, key: &ApiKey) -> Option<(HeaderName, HeaderValue)> {
        sensitive(HeaderName::from_static("api-key"), key.expose())
    }
}

impl Adapter for Bedrock {
    fn protocol(&self) -> Protocol {
        Protocol::Bedrock
    }

    fn routes(&self) -> &'static [(&'static str, Endpoint)] {
        &[]
    }

    fn model_routes(&self) -> &'static [ModelRoute] {
        &[
            ModelRoute {
                path: "/model/{target}/converse",
                endpoint: Some(Endpoint::Converse),
            },
            ModelRoute {
                path: "/model/{target}/converse-stream",
                endpoint: Some(Endpoint::ConverseStream),
            },
            ModelRoute {
                path: "/model/{target}/invoke",
                endpoint: Some(Endpoint::InvokeModel),
            },
            ModelRoute {
                path: "/model/{target}/invoke-with-response-stream",
                endpoint: Some(Endpoint::InvokeModelStream),
            },
        ]
    }

    /// The runtime API lists no models (that is the control plane's `bedrock` service).
    fn models_path(&self) -> Option<&'static str> {
        None
    }

    /// The model id percent-encoded as one path segment, as the AWS SDKs send it (`:` in
    /// `…-v1:0`, `/` in an inference profile's ARN) — and as the signature covers it.
    fn upstream_path(&self, endpoint: Endpoint, path_model: Option<&str>) -> Cow<'static, str> {
        let model = path_model.unwrap_or_default();
        Cow::Owned(format!("/model/{}{}", path_segment(model), endpoint.upstream_path()))
    }

    /// Converse caps output in `inferenceConfig.maxTokens`; InvokeModel's body is the model's
    /// own (Anthropic Messages for Claude, with `anthropic_version` and no `model`).
    fn facts(&self, endpoint: Endpoint, body: &Value) -> RequestFacts {
        let stream = matches!(endpoint, Endpoint::ConverseStream | Endpoint::InvokeModelStream);
        let facts = match endpoint {
            Endpoint::Converse | Endpoint::ConverseStream => requests::converse_request_facts(body),
            _ => requests::request_facts(body),
        };
        RequestFacts {
            model: None,
            stream,
            ..facts
        }
    }

    fn stream_framing(&self, _endpoint: Endpoint, content_type: &str) -> Option<Framing> {
        content_type
            .starts_with("application/vnd.amazon.eventstream")
            .then_some(Framing::EventStream)
    }

    fn error_event(&self, error: &GatewayError) -> Bytes {
        error.event_stream_exception()
    }

    /// InvokeModel answers in the model's own body, which for models other than Claude (Llama,
    /// Titan, Mistral…) the gateway does not read: Bedrock counts their tokens in headers.
    fn usage_from_headers(&self, headers: &HeaderMap) -> Option<ReportedUsage> {
        let count = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        let input = count("x-amzn-bedrock-input-token-count")?;
        let output = count("x-amzn-bedrock-output-token-count")?;
        Some(ReportedUsage {
            tokens: goodhart_core::usage::TokenCounts {
                input,
                output,
                ..Default::default()
            },
            model: None,
            finish_reason: None,
        })
    }

    fn request_id_header(&self) -> &'static str {
        "x-amzn-requestid"
    }

    /// A Bedrock API key; a provider with AWS credentials is signed instead (see `upstream`).
    fn auth_header(&self, key: &ApiKey) -> Option<(HeaderName, HeaderValue)> {
        sensitive(header::AUTHORIZATION, &format!("Bearer {}", key.expose()))
    }
}

/// A Vertex AI access token, sent as Google APIs take one.
fn bearer(key: &ApiKey) -> Option<(HeaderName, HeaderValue)> {
    sensitive(header::AUTHORIZATION, &format!("Bearer {}", key.expose()))
}

/// Vertex AI's paths are under the provider's base URL, which names the project and location
/// (`https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}`):
/// the client's own project and location are not the provider's to use.
impl Adapter for VertexAnthropic {
    fn protocol(&self) -> Protocol {
        Protocol::Vertex
    }

    fn routes(&self) -> &'static [(&'static str, Endpoint)] {
        &[]
    }

    fn model_routes(&self) -> &'static [ModelRoute] {
        &[ModelRoute {
            path: "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{target}",
            endpoint: None,
        }]
    }

    fn method(&self, method: &str) -> Option<Endpoint> {
        Endpoint::vertex_anthropic_method(method)
    }

    /// Vertex AI lists no publisher models through the prediction API.
    fn models_path(&self) -> Option<&'static str> {
        None
    }

    fn upstream_path(&self, endpoint: Endpoint, path_model: Option<&str>) -> Cow<'static, str> {
        let model = path_model.unwrap_or_default();
        Cow::Owned(format!(
            "/publishers/anthropic/models/{model}{}",
            endpoint.upstream_path()
        ))
    }

    fn facts(&self, endpoint: Endpoint, body: &Value) -> RequestFacts {
        let facts = requests::request_facts(body);
        RequestFacts {
            stream: facts.stream || endpoint == Endpoint::StreamRawPredict,
            ..facts
        }
    }

    /// Claude Code and the Anthropic SDKs read Anthropic's error shapes from these routes.
    fn error_body(&self, error: &GatewayError) -> Value {
        error.body(Protocol::Anthropic)
    }

    fn error_event(&self, error: &GatewayError) -> Bytes {
        error.sse_event(Protocol::Anthropic)
    }

    fn request_id_header(&self) -> &'static str {
        "request-id"
    }

    fn auth_header(&self, key: &ApiKey) -> Option<(HeaderName, HeaderValue)> {
        bearer(key)
    }
}

impl Adapter for VertexGemini {
    fn protocol(&self) -> Protocol {
        Protocol::Vertex
    }

    fn routes(&self) -> &'static [(&'static str, Endpoint)] {
        &[]
    }

    fn model_routes(&self) -> &'static [ModelRoute] {
        &[ModelRoute {
            path: "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}",
            endpoint: None,
        }]
    }

    fn method(&self, method: &str) -> Option<Endpoint> {
        Gemini.method(method)
    }

    fn models_path(&self) -> Option<&'static str> {
        None
    }

    fn upstream_path(&self, endpoint: Endpoint, path_model: Option<&str>) -> Cow<'static, str> {
        let model = path_model.unwrap_or_default();
        Cow::Owned(format!("/publishers/google/models/{model}{}", endpoint.upstream_path()))
    }

    fn facts(&self, endpoint: Endpoint, body: &Value) -> RequestFacts {
        Gemini.facts(endpoint, body)
    }

    fn stream_framing(&self, endpoint: Endpoint, content_type: &str) -> Option<Framing> {
        Gemini.stream_framing(endpoint, content_type)
    }

    fn metered(&self, endpoint: Endpoint) -> bool {
        Gemini.metered(endpoint)
    }

    fn error_body(&self, error: &GatewayError) -> Value {
        error.body(Protocol::Gemini)
    }

    fn request_id_header(&self) -> &'static str {
        "x-request-id"
    }

    fn auth_header(&self, key: &ApiKey) -> Option<(HeaderName, HeaderValue)> {
        bearer(key)
    }
}

/// `text` percent-encoded as one URI path segment (RFC 3986 unreserved characters kept).
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// OpenAI's final usage chunk: no choices, only usage.
fn is_usage_only_chunk(data: &str) -> bool {
    data.contains("\"usage\"")
        && serde_json::from_str::<Value>(data).is_ok_and(|chunk| {
            chunk
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
                && chunk.get("usage").is_some_and(Value::is_object)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_usage_chunk_is_stripped() {
        assert!(is_usage_only_chunk(
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#
        ));
        assert!(!is_usage_only_chunk(
            r#"{"id":"c","choices":[{"delta":{"content":"usage"}}],"usage":null}"#
        ));
        assert!(!is_usage_only_chunk("[DONE]"));
    }

    #[test]
    fn every_endpoint_has_one_adapter_of_its_own_protocol() {
        for adapter in ADAPTERS {
            assert_eq!(of(adapter.protocol()).protocol(), adapter.protocol());
            // Azure serves OpenAI's endpoints under its own paths and key header (Vertex AI
            // and Bedrock route only by model paths).
            let own = if adapter.protocol() == Protocol::Azure {
                Protocol::OpenAi
            } else {
                adapter.protocol()
            };
            for (_, endpoint) in adapter.routes() {
                assert_eq!(endpoint.protocol(), own, "{endpoint:?}");
            }
        }
        let routed: usize = ADAPTERS.iter().map(|a| a.routes().len()).sum();
        assert_eq!(routed, 8);
        for method in ["generateContent", "streamGenerateContent", "countTokens"] {
            assert_eq!(Gemini.method(method).unwrap().protocol(), Protocol::Gemini);
        }
        assert_eq!(Gemini.method("embedContent"), None);
        for route in Bedrock.model_routes() {
            assert_eq!(route.endpoint.unwrap().protocol(), Protocol::Bedrock, "{}", route.path);
        }
    }

    #[test]
    fn bedrock_model_ids_go_up_as_one_encoded_segment() {
        assert_eq!(
            Bedrock.upstream_path(
                Endpoint::ConverseStream,
                Some("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
            ),
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
        );
        assert_eq!(
            Bedrock.upstream_path(
                Endpoint::InvokeModel,
                Some("arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-opus-4-5")
            ),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fglobal.anthropic.claude-opus-4-5/invoke"
        );
        let invoke = serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 300, "messages": []});
        let facts = Bedrock.facts(Endpoint::InvokeModelStream, &invoke);
        assert_eq!((facts.model, facts.stream, facts.max_tokens), (None, true, Some(300)));
        let converse = serde_json::json!({"messages": [], "inferenceConfig": {"maxTokens": 42}});
        let facts = Bedrock.facts(Endpoint::Converse, &converse);
        assert_eq!((facts.stream, facts.max_tokens), (false, Some(42)));
        assert_eq!(
            Bedrock.stream_framing(Endpoint::ConverseStream, "application/vnd.amazon.eventstream"),
            Some(Framing::EventStream)
        );
        assert_eq!(
            Bedrock.stream_framing(Endpoint::ConverseStream, "application/json"),
            None
        );
    }

    /// What a client of each protocol reads when a key's rate limit refuses its call: the
    /// snapshot of every adapter's 429 (the shapes are the protocols' own, and part of the API).
    #[test]
    fn a_rate_limit_refusal_takes_each_protocols_own_shape() {
        let refusal = GatewayError::RateLimited(goodhart_core::limits::RateRefusal {
            resource: goodhart_core::limits::Resource::Tokens,
            limit: 1000,
            retry_after: Some(2_000_000),
        });
        assert_eq!(refusal.status().as_u16(), 429);
        let message = "rate limit of this key reached: 1000 tokens per minute";
        let openai = serde_json::json!({"error": {"message": message, "type": "tokens", "param": null,
                                                  "code": "rate_limit_exceeded"}});
        let anthropic = serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": message}});
        let google = serde_json::json!({"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}});
        let shapes: Vec<(&str, Value)> = ADAPTERS
            .iter()
            .map(|adapter| (adapter.protocol().as_str(), adapter.error_body(&refusal)))
            .collect();
        assert_eq!(
            shapes,
            [
                ("openai", openai.clone()),
                ("anthropic", anthropic.clone()),
                ("gemini", google.clone()),
                ("azure", openai),
                ("bedrock", serde_json::json!({"message": message})),
                ("vertex", anthropic),
                ("vertex", google),
            ]
        );
        assert_eq!(refusal.bedrock_code(), "ThrottlingException");
    }

    #[test]
    fn chat_streams_are_asked_for_usage_only_when_the_client_did_not() {
        let mut body = serde_json::json!({"model": "m", "stream": true});
        let facts = OpenAi.facts(Endpoint::ChatCompletions, &body);
        assert!(OpenAi.rewrite(Endpoint::ChatCompletions, &facts, &mut body));
        assert_eq!(body["stream_options"]["include_usage"], true);
        let facts = OpenAi.facts(Endpoint::ChatCompletions, &body);
        assert!(!OpenAi.rewrite(Endpoint::ChatCompletions, &facts, &mut body));
        assert!(!Anthropic.rewrite(Endpoint::Messages, &facts, &mut body));
        let mut azure = serde_json::json!({"stream": true});
        let facts = Azure.facts(Endpoint::ChatCompletions, &azure);
        assert!(Azure.rewrite(Endpoint::ChatCompletions, &facts, &mut azure));
    }
}
