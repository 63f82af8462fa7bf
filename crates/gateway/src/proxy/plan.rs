//! The plan of one call, made from its request before anything is reserved or sent: the
//! facts its record is made from, its attribution, its route and the body that goes up. The
//! prompt's text is read here, once; the parsed request is dropped with this phase, so it is
//! not held for the length of a stream.

use std::time::Instant;

use axum::http::HeaderMap;
use bytes::Bytes;
use goodhart_core::Micros;
use goodhart_core::attribution::{self, AttributionError, RequestLabels};
use goodhart_core::budgets;
use goodhart_core::calls::CallFacts;
use goodhart_core::keys::VirtualKey;
use goodhart_core::requests::{Endpoint, Protocol};
use goodhart_core::translate;
use serde_json::Value;

use crate::config::{GatewayConfig, Provider};
use crate::errors::GatewayError;
use crate::proxy::adapter::Adapter;

/// One call, as plain data.
pub struct CallPlan {
    pub adapter: &'static dyn Adapter,
    /// What the usage record is made from (its `id` is set once the provider has answered).
    pub facts: CallFacts,
    /// When the request arrived (for latency and time to first byte).
    pub started: Instant,
    /// The stream will carry a usage chunk the client did not ask for: drop it on the way down.
    pub strip_usage_chunk: bool,
    /// Whether the call is metered (and so admitted against limits and recorded).
    pub metered: bool,
    /// A conservative estimate of the input's tokens, from the body's size.
    pub input_estimate: u64,
    /// The most output the call may produce.
    pub max_output: u64,
    /// The provider's name of the model, when the client's path named it (and so the path
    /// that goes up does).
    pub path_model: Option<String>,
    /// The record names the model the configuration maps the deployment to, whatever name the
    /// provider echoes (Azure echoes a snapshot name the price table may not list).
    pub pinned_model: bool,
    /// The call is translated for a provider of another protocol (`facts.endpoint` is then the
    /// provider's endpoint, whose usage the record reads).
    pub translation: Option<Translation>,
}

/// How a translated call's answer goes back down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// The model the client asked for, which the answer names.
    pub model: String,
    /// The client's protocol, which the answer is in.
    pub client: Protocol,
    /// An OpenAI client asked for the stream's usage chunk.
    pub include_usage: bool,
}

impl CallPlan {
    pub fn endpoint(&self) -> Endpoint {
        self.facts.endpoint
    }
}

/// A plan with what the next phase sends: the provider and the body.
pub struct Planned<'a> {
    pub plan: CallPlan,
    pub provider: &'a Provider,
    pub body: Bytes,
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Plans the call `bytes` asks for: parses it, attributes it within `key`'s scope, routes it,
/// and rewrites the body only where needed (otherwise the client's bytes go up unchanged).
/// `path_model` is the model a path named (Gemini's), which the body then does not.
#[expect(clippy::too_many_arguments, reason = "one call's inputs, each used once")]
pub fn plan<'a>(
    adapter: &'static dyn Adapter,
    endpoint: Endpoint,
    path_model: Option<&str>,
    headers: &HeaderMap,
    bytes: Bytes,
    key: &VirtualKey,
    config: &'a GatewayConfig,
    (started, started_at): (Instant, Micros),
) -> Result<Planned<'a>, GatewayError> {
    let mut json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| GatewayError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    if !json.is_object() {
        return Err(GatewayError::BadRequest("request body must be a JSON object".into()));
    }
    let facts = adapter.facts(endpoint, &json);
    let Some(model) = path_model.map(str::to_owned).or_else(|| facts.model.clone()) else {
        return Err(GatewayError::BadRequest(
            "`model` is required and must be a string".into(),
        ));
    };
    // The model is recorded with the call: held to the rules of every label (an empty one went
    // to the default provider and was recorded as "").
    let model = goodhart_core::usage::required_label("model", model)
        .map_err(|e| GatewayError::BadRequest(format!("`model` {}", e.reason)))?;
    let labels = RequestLabels {
        project: header_text(headers, "x-goodhart-project"),
        agent: header_text(headers, "x-goodhart-agent"),
        task: header_text(headers, "x-goodhart-task"),
        session: header_text(headers, "x-goodhart-session"),
        client_session: ["x-claude-code-session-id", "session_id", "session-id"]
            .iter()
            .find_map(|name| header_text(headers, name)),
        metadata_user_id: facts.metadata_user_id.clone(),
    };
    let attribution = attribution::attribute(&key.scope, labels).map_err(|e| match e {
        AttributionError::OutsideKeyScope { .. } => GatewayError::Forbidden(e.to_string()),
        AttributionError::InvalidLabel(_) => GatewayError::BadRequest(e.to_string()),
    })?;
    let route = config
        .route(adapter.protocol(), &model)
        .ok_or_else(|| GatewayError::NoRoute(model.clone()))?;
    let upstream_model = route.upstream_model.to_owned();
    // A deployment the configuration maps to a model is recorded and priced as that model.
    let recorded_model = route.deployment_model.unwrap_or(&upstream_model).to_owned();

    // What the provider is asked: the client's body, or its translation to the provider's API.
    let (upstream_endpoint, translated) = match (route.translated, endpoint) {
        (false, _) => (endpoint, None),
        (true, Endpoint::Messages | Endpoint::CountTokens) => {
            let chat = translate::messages_to_chat(&json, &upstream_model)
                .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
            (Endpoint::ChatCompletions, Some(chat))
        }
        (true, Endpoint::ChatCompletions) => {
            let messages = translate::chat_to_messages(&json, &upstream_model)
                .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
            (Endpoint::Messages, Some(messages))
        }
        (true, _) => {
            return Err(GatewayError::NoRoute(model.clone()));
        }
    };
    let mut rewritten = translated.is_some() || (upstream_model != model && path_model.is_none());
    if let Some(chat) = translated {
        json = chat;
    } else if rewritten {
        json["model"] = Value::String(upstream_model.clone());
    }
    let strip_usage_chunk = !route.translated && adapter.rewrite(endpoint, &facts, &mut json);
    rewritten |= strip_usage_chunk;
    let body = if rewritten {
        Bytes::from(
            serde_json::to_vec(&json)
                .map_err(|e| GatewayError::BadRequest(format!("cannot write the request body: {e}")))?,
        )
    } else {
        bytes
    };
    let metered = adapter.metered(endpoint);
    let plan = CallPlan {
        adapter,
        strip_usage_chunk,
        metered,
        // The body's bytes bound its characters: a conservative input estimate without
        // tokenizing on the hot path.
        input_estimate: budgets::estimate_input_tokens(body.len() as u64),
        max_output: adapter.max_output(endpoint, &facts, config.default_max_tokens),
        path_model: path_model.is_some().then(|| upstream_model.clone()),
        pinned_model: route.deployment_model.is_some(),
        translation: route.translated.then(|| Translation {
            model: model.clone(),
            client: adapter.protocol(),
            include_usage: facts.include_usage,
        }),
        started,
        facts: CallFacts {
            id: String::new(),
            key_id: key.id.clone(),
            attribution,
            provider: route.provider.name.clone(),
            endpoint: upstream_endpoint,
            model: recorded_model,
            started_at,
            max_tokens: facts.max_tokens,
            stream: facts.stream,
            prompt: if metered {
                adapter.prompt(upstream_endpoint, &json)
            } else {
                Default::default()
            },
            store_content: config.store_content,
        },
    };
    Ok(Planned {
        plan,
        provider: route.provider,
        body,
    })
}
