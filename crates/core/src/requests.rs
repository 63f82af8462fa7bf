//! What the gateway reads from a client's request and a provider's complete response body:
//! the model, streaming, the output cap asked for, and the text that fingerprints and token
//! estimates are made from.

use serde_json::Value;

use crate::providers::WireProtocol;

crate::named_enum! {
    /// A provider API the gateway speaks: what a client's errors look like, which providers a
    /// call may be routed to, and how the provider's key is sent. One per wire protocol; the
    /// finer response shape within one is [`WireProtocol`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Protocol {
        /// OpenAI's API: chat completions, responses, embeddings, models.
        OpenAi = "openai",
        /// Anthropic's API: messages, count_tokens.
        Anthropic = "anthropic",
        /// Google's Gemini API (AI Studio): generateContent, streamGenerateContent, countTokens.
        Gemini = "gemini",
        /// Azure OpenAI: OpenAI's bodies under `/openai/deployments/{deployment}/…` and
        /// `/openai/v1/…`, the key in `api-key`.
        Azure = "azure",
        /// AWS Bedrock's runtime API: Converse, ConverseStream, InvokeModel (Anthropic bodies)
        /// and InvokeModelWithResponseStream, each at `/model/{modelId}/…`.
        Bedrock = "bedrock",
        /// Google Cloud's Vertex AI: Anthropic's Messages bodies (`rawPredict`,
        /// `streamRawPredict`) and Gemini's under a project's publisher models.
        Vertex = "vertex",
    }
}

/// The provider endpoints the gateway meters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Responses,
    Embeddings,
    Messages,
    CountTokens,
    /// Gemini `…/models/{model}:generateContent`.
    GenerateContent,
    /// Gemini `…/models/{model}:streamGenerateContent` (SSE with `alt=sse`, else a JSON array).
    StreamGenerateContent,
    /// Gemini `…/models/{model}:countTokens` (free).
    GeminiCountTokens,
    /// Bedrock `/model/{modelId}/converse`.
    Converse,
    /// Bedrock `/model/{modelId}/converse-stream` (AWS event-stream frames).
    ConverseStream,
    /// Bedrock `/model/{modelId}/invoke`, with the model's own body (Anthropic Messages for Claude).
    InvokeModel,
    /// Bedrock `/model/{modelId}/invoke-with-response-stream`: the model's own stream events,
    /// each wrapped in an event-stream `chunk` frame.
    InvokeModelStream,
    /// Vertex AI `…/publishers/anthropic/models/{model}:rawPredict`: an Anthropic message.
    RawPredict,
    /// Vertex AI `…/publishers/anthropic/models/{model}:streamRawPredict`: its stream.
    StreamRawPredict,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Responses => "responses",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::GenerateContent => "generate_content",
            Endpoint::StreamGenerateContent => "stream_generate_content",
            Endpoint::GeminiCountTokens => "gemini_count_tokens",
            Endpoint::Converse => "converse",
            Endpoint::ConverseStream => "converse_stream",
            Endpoint::InvokeModel => "invoke_model",
            Endpoint::InvokeModelStream => "invoke_model_stream",
            Endpoint::RawPredict => "raw_predict",
            Endpoint::StreamRawPredict => "stream_raw_predict",
        }
    }

    /// The API this endpoint belongs to: its errors, auth header and routes follow it.
    pub fn protocol(self) -> Protocol {
        match self {
            Endpoint::ChatCompletions | Endpoint::Responses | Endpoint::Embeddings => Protocol::OpenAi,
            Endpoint::Messages | Endpoint::CountTokens => Protocol::Anthropic,
            Endpoint::GenerateContent | Endpoint::StreamGenerateContent | Endpoint::GeminiCountTokens => {
                Protocol::Gemini
            }
            Endpoint::Converse | Endpoint::ConverseStream | Endpoint::InvokeModel | Endpoint::InvokeModelStream => {
                Protocol::Bedrock
            }
            Endpoint::RawPredict | Endpoint::StreamRawPredict => Protocol::Vertex,
        }
    }

    /// The shape of this endpoint's responses and usage (finer than [`Endpoint::protocol`]:
    /// OpenAI's chat and responses APIs report usage differently).
    pub fn wire(self) -> WireProtocol {
        match self {
            Endpoint::ChatCompletions | Endpoint::Embeddings => WireProtocol::OpenAiChat,
            Endpoint::Responses => WireProtocol::OpenAiResponses,
            Endpoint::Messages
            | Endpoint::CountTokens
            | Endpoint::InvokeModel
            | Endpoint::InvokeModelStream
            | Endpoint::RawPredict
            | Endpoint::StreamRawPredict => WireProtocol::Anthropic,
            Endpoint::Converse | Endpoint::ConverseStream => WireProtocol::Converse,
            Endpoint::GenerateContent | Endpoint::StreamGenerateContent | Endpoint::GeminiCountTokens => {
                WireProtocol::Gemini
            }
        }
    }

    /// The path under the provider's base URL (OpenAI bases end in `/v1`, Anthropic's and
    /// Gemini's do not); Gemini's and Bedrock's name the model, so it is what follows it
    /// (`/v1beta/models/{model}` + this, `/model/{modelId}` + this).
    pub fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Responses => "/responses",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Messages => "/v1/messages",
            Endpoint::CountTokens => "/v1/messages/count_tokens",
            Endpoint::GenerateContent => ":generateContent",
            Endpoint::StreamGenerateContent => ":streamGenerateContent",
            Endpoint::GeminiCountTokens => ":countTokens",
            Endpoint::Converse => "/converse",
            Endpoint::ConverseStream => "/converse-stream",
            Endpoint::InvokeModel => "/invoke",
            Endpoint::InvokeModelStream => "/invoke-with-response-stream",
            Endpoint::RawPredict => ":rawPredict",
            Endpoint::StreamRawPredict => ":streamRawPredict",
        }
    }

    /// The Gemini endpoint of a method name (`generateContent`…), as it follows the model in a path.
    pub fn gemini_method(method: &str) -> Option<Endpoint> {
        match method {
            "generateContent" => Some(Endpoint::GenerateContent),
            "streamGenerateContent" => Some(Endpoint::StreamGenerateContent),
            "countTokens" => Some(Endpoint::GeminiCountTokens),
            _ => None,
        }
    }

    /// The Vertex AI endpoint of an Anthropic publisher model's method (`rawPredict`…).
    pub fn vertex_anthropic_method(method: &str) -> Option<Endpoint> {
        match method {
            "rawPredict" => Some(Endpoint::RawPredict),
            "streamRawPredict" => Some(Endpoint::StreamRawPredict),
            _ => None,
        }
    }
}

/// What a request body says about the call it asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: Option<String>,
    pub stream: bool,
    /// `max_tokens`, `max_completion_tokens` or `max_output_tokens`, whichever is set.
    pub max_tokens: Option<u64>,
    /// OpenAI chat: the client asked for the usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `metadata.user_id` (Claude Code encodes its session there).
    pub metadata_user_id: Option<String>,
}

/// What a Gemini request body says: its output cap (`generationConfig.maxOutputTokens`); the
/// model is in the path and streaming is the method, which the caller knows.
pub fn gemini_request_facts(body: &Value) -> RequestFacts {
    RequestFacts {
        max_tokens: body
            .pointer("/generationConfig/maxOutputTokens")
            .and_then(Value::as_u64),
        ..RequestFacts::default()
    }
}

/// What a Bedrock Converse request body says: its output cap (`inferenceConfig.maxTokens`);
/// the model is in the path and streaming is the route.
pub fn converse_request_facts(body: &Value) -> RequestFacts {
    RequestFacts {
        max_tokens: body.pointer("/inferenceConfig/maxTokens").and_then(Value::as_u64),
        ..RequestFacts::default()
    }
}

pub fn request_facts(body: &Value) -> RequestFacts {
    let max_tokens = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|field| body.get(field).and_then(Value::as_u64));
    RequestFacts {
        model: body.get("model").and_then(Value::as_str).map(str::to_owned),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        max_tokens,
        include_usage: body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        metadata_user_id: body
            .get("metadata")
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// The text of a request: all of it (for token estimates) and the newest turn (for the
/// prompt fingerprint — a conversation's shared prefix would make every turn of a long,
/// productive session look like a repeat).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptText {
    pub full: String,
    pub last_turn: String,
}

pub fn prompt_text(endpoint: Endpoint, body: &Value) -> PromptText {
    let mut prompt = PromptText::default();
    match endpoint {
        // Converse's turns are Anthropic's with blocks keyed by kind (`{"text": …}`,
        // `{"toolResult": {"content": […]}}`), and its system prompt a list of blocks.
        Endpoint::ChatCompletions
        | Endpoint::Messages
        | Endpoint::CountTokens
        | Endpoint::InvokeModel
        | Endpoint::InvokeModelStream
        | Endpoint::Converse
        | Endpoint::ConverseStream
        | Endpoint::RawPredict
        | Endpoint::StreamRawPredict => {
            if let Some(system) = body.get("system") {
                push_text(&mut prompt.full, system);
            }
            let messages = body.get("messages").and_then(Value::as_array);
            for message in messages.into_iter().flatten() {
                if let Some(content) = message.get("content") {
                    push_text(&mut prompt.full, content);
                }
            }
            let last_user = messages.and_then(|m| {
                m.iter()
                    .rev()
                    .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            });
            if let Some(content) = last_user.and_then(|m| m.get("content")) {
                push_text(&mut prompt.last_turn, content);
            }
        }
        Endpoint::Responses => {
            if let Some(instructions) = body.get("instructions") {
                push_text(&mut prompt.full, instructions);
            }
            match body.get("input") {
                Some(Value::Array(items)) => {
                    for item in items {
                        push_text(&mut prompt.full, item.get("content").unwrap_or(item));
                    }
                    if let Some(last) = items.last() {
                        push_text(&mut prompt.last_turn, last.get("content").unwrap_or(last));
                    }
                }
                Some(input) => {
                    push_text(&mut prompt.full, input);
                    push_text(&mut prompt.last_turn, input);
                }
                None => {}
            }
        }
        Endpoint::Embeddings => {
            if let Some(input) = body.get("input") {
                push_text(&mut prompt.full, input);
                push_text(&mut prompt.last_turn, input);
            }
        }
        Endpoint::GenerateContent | Endpoint::StreamGenerateContent | Endpoint::GeminiCountTokens => {
            // countTokens may wrap the request: `{"generateContentRequest": {…}}`.
            let request = body.get("generateContentRequest").unwrap_or(body);
            for system in ["systemInstruction", "system_instruction"] {
                if let Some(parts) = request.get(system).and_then(|s| s.get("parts")) {
                    push_text(&mut prompt.full, parts);
                }
            }
            let contents = request.get("contents").and_then(Value::as_array);
            for content in contents.into_iter().flatten() {
                push_text(&mut prompt.full, content.get("parts").unwrap_or(content));
            }
            let last_user = contents.and_then(|c| {
                c.iter()
                    .rev()
                    .find(|c| c.get("role").and_then(Value::as_str).is_none_or(|role| role == "user"))
            });
            if let Some(parts) = last_user.and_then(|c| c.get("parts")) {
                push_text(&mut prompt.last_turn, parts);
            }
        }
    }
    prompt
}

/// Appends the text of a content value: a string, an array of strings or of content blocks
/// (`{"type":"text","text":…}`, `input_text`, `tool_result` with nested content…).
fn push_text(out: &mut String, value: &Value) {
    match value {
        Value::String(text) => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(text);
        }
        Value::Array(items) => items.iter().for_each(|item| push_text(out, item)),
        Value::Object(block) => {
            for field in [
                "text",
                "content",
                "input",
                "arguments",
                "output",
                "toolResult",
                "toolUse",
            ] {
                if let Some(inner) = block.get(field) {
                    push_text(out, inner);
                }
            }
        }
        _ => {}
    }
}

/// The output text of a complete (non-streamed) response.
pub fn output_text(endpoint: Endpoint, body: &Value) -> String {
    let mut out = String::new();
    match endpoint {
        Endpoint::ChatCompletions => {
            for choice in body.get("choices").and_then(Value::as_array).into_iter().flatten() {
                if let Some(message) = choice.get("message") {
                    if let Some(content) = message.get("content") {
                        push_text(&mut out, content);
                    }
                    let calls = message.get("tool_calls").and_then(Value::as_array);
                    for function in calls.into_iter().flatten().filter_map(|c| c.get("function")) {
                        push_text(&mut out, function);
                    }
                }
            }
        }
        Endpoint::Responses => {
            for item in body.get("output").and_then(Value::as_array).into_iter().flatten() {
                push_text(&mut out, item);
            }
        }
        Endpoint::Converse | Endpoint::ConverseStream => {
            if let Some(content) = body.pointer("/output/message/content") {
                push_text(&mut out, content);
            }
        }
        Endpoint::Messages
        | Endpoint::InvokeModel
        | Endpoint::InvokeModelStream
        | Endpoint::RawPredict
        | Endpoint::StreamRawPredict => {
            if let Some(content) = body.get("content") {
                push_text(&mut out, content);
            }
        }
        Endpoint::GenerateContent | Endpoint::StreamGenerateContent => {
            for candidate in body.get("candidates").and_then(Value::as_array).into_iter().flatten() {
                if let Some(parts) = candidate.get("content").and_then(|c| c.get("parts")) {
                    push_text(&mut out, parts);
                }
            }
        }
        Endpoint::Embeddings | Endpoint::CountTokens | Endpoint::GeminiCountTokens => {}
    }
    out
}

/// The provider's id of a complete response (`chatcmpl-…`, `resp_…`, `msg_…`, Gemini's
/// `responseId`).
pub fn response_id(body: &Value) -> Option<String> {
    ["id", "responseId"]
        .iter()
        .find_map(|field| body.get(*field).and_then(Value::as_str))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gemini_requests_name_their_cap_in_the_config_and_their_turns_in_parts() {
        let body = json!({"systemInstruction": {"parts": [{"text": "Be terse."}]},
            "contents": [{"role": "user", "parts": [{"text": "first"}]},
                         {"role": "model", "parts": [{"text": "answer"}]},
                         {"role": "user", "parts": [{"text": "second"}, {"text": "part"}]}],
            "generationConfig": {"maxOutputTokens": 77}});
        assert_eq!(gemini_request_facts(&body).max_tokens, Some(77));
        let prompt = prompt_text(Endpoint::StreamGenerateContent, &body);
        assert_eq!(prompt.full, "Be terse.\nfirst\nanswer\nsecond\npart");
        assert_eq!(prompt.last_turn, "second\npart");
        let counted = prompt_text(Endpoint::GeminiCountTokens, &json!({"generateContentRequest": body}));
        assert_eq!(counted, prompt);
        let reply = json!({"candidates": [{"content": {"parts": [{"text": "Hi"}, {"text": " there"}]}}],
            "responseId": "r-9"});
        assert_eq!(output_text(Endpoint::GenerateContent, &reply), "Hi\n there");
        assert_eq!(response_id(&reply).as_deref(), Some("r-9"));
        assert_eq!(
            Endpoint::gemini_method("streamGenerateContent"),
            Some(Endpoint::StreamGenerateContent)
        );
    }

    #[test]
    fn converse_requests_cap_output_in_their_inference_config_and_key_blocks_by_kind() {
        let body = json!({"system": [{"text": "Be terse."}],
            "messages": [{"role": "user", "content": [{"text": "first"}]},
                         {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "ls", "input": {}}}]},
                         {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "a.rs"}]}},
                                                      {"text": "and now?"}]}],
            "inferenceConfig": {"maxTokens": 64}});
        assert_eq!(converse_request_facts(&body).max_tokens, Some(64));
        let prompt = prompt_text(Endpoint::Converse, &body);
        assert_eq!(prompt.full, "Be terse.\nfirst\na.rs\nand now?");
        assert_eq!(prompt.last_turn, "a.rs\nand now?");
        let reply = json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}});
        assert_eq!(output_text(Endpoint::Converse, &reply), "Hi");
        for endpoint in [
            Endpoint::Converse,
            Endpoint::ConverseStream,
            Endpoint::InvokeModel,
            Endpoint::InvokeModelStream,
        ] {
            assert_eq!(endpoint.protocol(), Protocol::Bedrock);
        }
        assert_eq!(Endpoint::InvokeModelStream.wire(), WireProtocol::Anthropic);
    }

    #[test]
    fn facts_read_every_spelling_of_the_output_cap() {
        let chat = json!({"model": "gpt-4o", "stream": true, "max_completion_tokens": 300,
            "stream_options": {"include_usage": true}});
        let facts = request_facts(&chat);
        assert_eq!(facts.model.as_deref(), Some("gpt-4o"));
        assert!(facts.stream && facts.include_usage);
        assert_eq!(facts.max_tokens, Some(300));
        assert_eq!(request_facts(&json!({"max_output_tokens": 9})).max_tokens, Some(9));
        let claude = json!({"model": "claude-sonnet-4-5", "max_tokens": 32000,
            "metadata": {"user_id": "{\"session_id\":\"s1\"}"}});
        let facts = request_facts(&claude);
        assert_eq!(facts.max_tokens, Some(32000));
        assert!(!facts.stream && !facts.include_usage);
        assert_eq!(facts.metadata_user_id.as_deref(), Some("{\"session_id\":\"s1\"}"));
    }

    #[test]
    fn prompt_text_keeps_the_newest_turn_apart() {
        let body = json!({"system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "user", "content": "fix the bug"},
            {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
            {"role": "user", "content": [{"type": "tool_result", "content": [{"type": "text", "text": "ok"}]},
                                         {"type": "text", "text": "now add a test"}]}
        ]});
        let prompt = prompt_text(Endpoint::Messages, &body);
        assert_eq!(
            prompt.full,
            "You are Claude Code.\nfix the bug\nDone.\nok\nnow add a test"
        );
        assert_eq!(prompt.last_turn, "ok\nnow add a test");
        let responses = json!({"instructions": "be brief", "input": "hello"});
        let prompt = prompt_text(Endpoint::Responses, &responses);
        assert_eq!(
            (prompt.full.as_str(), prompt.last_turn.as_str()),
            ("be brief\nhello", "hello")
        );
        let embeddings = json!({"input": ["a", "b"]});
        assert_eq!(prompt_text(Endpoint::Embeddings, &embeddings).full, "a\nb");
    }

    #[test]
    fn output_text_of_each_response_shape() {
        let chat = json!({"choices": [{"message": {"content": "Hi there"}}]});
        assert_eq!(output_text(Endpoint::ChatCompletions, &chat), "Hi there");
        let responses = json!({"output": [{"type": "message", "content": [{"type": "output_text", "text": "Hey"}]}]});
        assert_eq!(output_text(Endpoint::Responses, &responses), "Hey");
        let messages = json!({"id": "msg_1", "content": [{"type": "text", "text": "Hello"}]});
        assert_eq!(output_text(Endpoint::Messages, &messages), "Hello");
        assert_eq!(response_id(&messages).as_deref(), Some("msg_1"));
    }
}
