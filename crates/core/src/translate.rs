//! Protocol translation between Anthropic's Messages and OpenAI's Chat Completions, both ways,
//! so a client of one API (Claude Code, the Anthropic SDK; the OpenAI SDK and the tools built
//! on it) can be routed to a model offered only through the other.
//!
//! Each way has three pure pieces: the request ([`messages_to_chat`], [`chat_to_messages`]:
//! system prompt, text and image blocks, `tool_use` / `tool_result` blocks as tool calls and
//! tool messages, tools and tool choice, output cap, stop sequences, sampling), the complete
//! response ([`chat_to_message`], [`message_to_chat`]), and the stream
//! ([`ChatToMessagesStream`]: each chat chunk as the Anthropic events it stands for,
//! `message_start`, one `content_block_*` run per text or tool call, `message_delta` with the
//! stop reason and usage, `message_stop`; [`MessagesToChatStream`]: each Anthropic event as
//! the chunks it stands for, the usage chunk when the client asked for it, `[DONE]`). Usage is
//! the provider's: OpenAI's prompt tokens include the cached ones, which Anthropic reports apart.
//!
//! What has no counterpart is dropped rather than guessed: Anthropic's `thinking` blocks and
//! cache-control marks, OpenAI's log probabilities.

use serde_json::{Map, Value, json};

/// The output cap a translated request asks for when the client named none (Anthropic
/// requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4_096;

/// An error the client's request cannot be translated for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TranslationError(pub String);

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An Anthropic content block as an OpenAI content part, where it has one.
fn content_part(block: &Value) -> Option<Value> {
    match block.get("type").and_then(Value::as_str)? {
        "text" => Some(json!({"type": "text", "text": block.get("text")?.as_str()?})),
        "image" => {
            let source = block.get("source")?;
            let url = match source.get("type").and_then(Value::as_str)? {
                "base64" => format!(
                    "data:{};base64,{}",
                    source.get("media_type")?.as_str()?,
                    source.get("data")?.as_str()?
                ),
                "url" => source.get("url")?.as_str()?.to_owned(),
                _ => return None,
            };
            Some(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        _ => None,
    }
}

/// One Anthropic message as the OpenAI messages it becomes: a user turn's tool results are
/// `tool` messages (before its other content), an assistant turn's tool uses its tool calls.
fn chat_messages(message: &Value, out: &mut Vec<Value>) -> Result<(), TranslationError> {
    let role = message.get("role").and_then(Value::as_str).unwrap_or("user");
    let content = message.get("content").cloned().unwrap_or(Value::Null);
    let blocks = match content {
        Value::String(text) => {
            out.push(json!({"role": role, "content": text}));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(TranslationError(format!(
                "messages[].content must be a string or an array of blocks (role {role})"
            )));
        }
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in &blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let content = block.get("content").map(text_of).unwrap_or_default();
                out.push(
                    json!({"role": "tool", "tool_call_id": block.get("tool_use_id").cloned().unwrap_or(Value::Null),
                                "content": content}),
                );
            }
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": block.get("input").unwrap_or(&json!({})).to_string(),
                },
            })),
            _ => parts.extend(content_part(block)),
        }
    }
    if role == "assistant" {
        let text: Vec<&str> = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        let mut message =
            json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { text.join("").into() }});
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        if !text.is_empty() || message.get("tool_calls").is_some() {
            out.push(message);
        }
    } else if !parts.is_empty() {
        out.push(json!({"role": role, "content": parts}));
    }
    Ok(())
}

/// An Anthropic Messages request body as an OpenAI Chat Completions request for `model`.
pub fn messages_to_chat(body: &Value, model: &str) -> Result<Value, TranslationError> {
    let mut messages = Vec::new();
    if let Some(system) = body.get("system") {
        let text = text_of(system);
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let turns = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslationError("`messages` is required and must be an array".into()))?;
    for message in turns {
        chat_messages(message, &mut messages)?;
    }
    let mut chat = Map::new();
    chat.insert("model".into(), model.into());
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(max) = body.get("max_tokens") {
        chat.insert("max_completion_tokens".into(), max.clone());
    }
    for field in ["temperature", "top_p"] {
        if let Some(value) = body.get(field) {
            chat.insert(field.into(), value.clone());
        }
    }
    if let Some(stop) = body.get("stop_sequences") {
        chat.insert("stop".into(), stop.clone());
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        chat.insert("stream".into(), true.into());
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let functions: Vec<Value> = tools
            .iter()
            .filter(|tool| tool.get("input_schema").is_some())
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.get("name").cloned().unwrap_or(Value::Null),
                    "description": tool.get("description").cloned().unwrap_or_else(|| "".into()),
                    "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
                }})
            })
            .collect();
        if !functions.is_empty() {
            chat.insert("tools".into(), Value::Array(functions));
        }
    }
    if let Some(choice) = body.get("tool_choice") {
        let translated = match choice.get("type").and_then(Value::as_str) {
            Some("any") => Some(json!("required")),
            Some("none") => Some(json!("none")),
            Some("tool") => Some(json!({"type": "function", "function": {"name": choice.get("name")}})),
            Some("auto") => Some(json!("auto")),
            _ => None,
        };
        if let Some(choice) = translated.filter(|_| chat.contains_key("tools")) {
            chat.insert("tool_choice".into(), choice);
        }
    }
    if let Some(user) = body.pointer("/metadata/user_id") {
        chat.insert("user".into(), user.clone());
    }
    Ok(Value::Object(chat))
}

/// OpenAI's finish reason as Anthropic's stop reason.
fn stop_reason(finish: Option<&str>) -> Value {
    match finish {
        Some("length") => "max_tokens".into(),
        Some("tool_calls" | "function_call") => "tool_use".into(),
        Some("content_filter") => "refusal".into(),
        Some(_) => "end_turn".into(),
        None => Value::Null,
    }
}

/// OpenAI's usage as Anthropic's: the cached prompt tokens apart from the rest.
fn anthropic_usage(usage: Option<&Value>) -> Value {
    let count = |path: &str| usage.and_then(|u| u.pointer(path)).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("/prompt_tokens_details/cached_tokens");
    json!({"input_tokens": count("/prompt_tokens").saturating_sub(cached),
           "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached,
           "output_tokens": count("/completion_tokens")})
}

fn tool_input(arguments: Option<&Value>) -> Value {
    arguments
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_else(|| json!({}))
}

/// A complete Chat Completions response as an Anthropic message, named `model` (the client's).
pub fn chat_to_message(chat: &Value, model: &str) -> Value {
    let choice = chat.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    if let Some(text) = message.and_then(|m| m.get("content")).and_then(Value::as_str)
        && !text.is_empty()
    {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        content.push(
            json!({"type": "tool_use", "id": call.get("id"), "name": call.pointer("/function/name"),
                            "input": tool_input(call.pointer("/function/arguments"))}),
        );
    }
    json!({"id": chat.get("id").cloned().unwrap_or(Value::Null), "type": "message", "role": "assistant",
           "model": model, "content": content,
           "stop_reason": stop_reason(choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str)),
           "stop_sequence": null, "usage": anthropic_usage(chat.get("usage"))})
}

/// An OpenAI error body as an Anthropic one (`status` picks the type, as Anthropic's API would).
pub fn chat_error_to_message_error(error: &Value, status: u16) -> Value {
    let kind = match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    let message = error
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("the provider refused the call");
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The open content block of a translated stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Text,
    /// A tool call, by its index in OpenAI's `tool_calls`.
    Tool(u64),
}

/// Turns a Chat Completions stream into the Anthropic Messages events it stands for, chunk by
/// chunk; [`ChatToMessagesStream::finish`] closes what the provider's stream left open.
#[derive(Debug)]
pub struct ChatToMessagesStream {
    model: String,
    started: bool,
    open: Option<Block>,
    /// Blocks started so far (each block's index).
    blocks: u64,
    finish_reason: Option<String>,
    usage: Option<Value>,
    stopped: bool,
}

/// One Anthropic SSE event: its name and data.
pub type MessagesEvent = (&'static str, Value);

impl ChatToMessagesStream {
    /// A stream whose message names `model` (the client's).
    pub fn new(model: &str) -> ChatToMessagesStream {
        ChatToMessagesStream {
            model: model.to_owned(),
            started: false,
            open: None,
            blocks: 0,
            finish_reason: None,
            usage: None,
            stopped: false,
        }
    }

    fn start(&mut self, id: Option<&Value>, out: &mut Vec<MessagesEvent>) {
        if !self.started {
            self.started = true;
            out.push((
                "message_start",
                json!({"type": "message_start", "message": {"id": id.cloned().unwrap_or(Value::Null), "type": "message",
                    "role": "assistant", "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            ));
        }
    }

    fn close_block(&mut self, out: &mut Vec<MessagesEvent>) {
        if self.open.take().is_some() {
            out.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.blocks - 1}),
            ));
        }
    }

    fn open_block(&mut self, block: Block, start: Value, out: &mut Vec<MessagesEvent>) {
        self.close_block(out);
        out.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": self.blocks, "content_block": start}),
        ));
        self.blocks += 1;
        self.open = Some(block);
    }

    /// The events one chat chunk (an SSE event's data) stands for.
    pub fn chunk(&mut self, data: &str, out: &mut Vec<MessagesEvent>) {
        if self.stopped || data == "[DONE]" {
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        self.start(chunk.get("id"), out);
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        for choice in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let delta = choice.get("delta");
            if let Some(text) = delta.and_then(|d| d.get("content")).and_then(Value::as_str)
                && !text.is_empty()
            {
                if self.open != Some(Block::Text) {
                    self.open_block(Block::Text, json!({"type": "text", "text": ""}), out);
                }
                out.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": self.blocks - 1,
                           "delta": {"type": "text_delta", "text": text}}),
                ));
            }
            for call in delta
                .and_then(|d| d.get("tool_calls"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                if self.open != Some(Block::Tool(index)) {
                    let start = json!({"type": "tool_use", "id": call.get("id").cloned().unwrap_or(Value::Null),
                                       "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
                                       "input": {}});
                    self.open_block(Block::Tool(index), start, out);
                }
                if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str)
                    && !arguments.is_empty()
                {
                    out.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": self.blocks - 1,
                               "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                    ));
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(reason.to_owned());
            }
        }
    }

    /// Ends the message: the open block, the stop reason and usage, `message_stop` — once the
    /// provider's stream ended (`complete`), else nothing more (a cut stream stays cut).
    pub fn finish(&mut self, complete: bool, out: &mut Vec<MessagesEvent>) {
        if self.stopped || !complete {
            return;
        }
        self.stopped = true;
        self.start(None, out);
        self.close_block(out);
        let usage = anthropic_usage(self.usage.as_ref());
        out.push((
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(self.finish_reason.as_deref()),
                   "stop_sequence": null}, "usage": usage}),
        ));
        out.push(("message_stop", json!({"type": "message_stop"})));
    }
}

/// Anthropic SSE text of `events`.
pub fn messages_sse(events: &[MessagesEvent]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// An OpenAI message's content as Anthropic content blocks.
fn message_blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(text) if !text.is_empty() => vec![json!({"type": "text", "text": text})],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| match part.get("type").and_then(Value::as_str)? {
                "text" => Some(json!({"type": "text", "text": part.get("text")?.as_str()?})),
                "image_url" => {
                    let url = part.pointer("/image_url/url")?.as_str()?;
                    let source = match url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
                        Some((media_type, data)) => json!({"type": "base64", "media_type": media_type, "data": data}),
                        None => json!({"type": "url", "url": url}),
                    };
                    Some(json!({"type": "image", "source": source}))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Appends `blocks` as a turn of `role`, merged into the last turn when it has the same role
/// (Anthropic's turns alternate; OpenAI's tool results are one message each).
fn push_turn(turns: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut()
        && last.get("role").and_then(Value::as_str) == Some(role)
        && let Some(Value::Array(content)) = last.get_mut("content")
    {
        content.extend(blocks);
        return;
    }
    turns.push(json!({"role": role, "content": blocks}));
}

/// An OpenAI Chat Completions request body as an Anthropic Messages request for `model`.
pub fn chat_to_messages(body: &Value, model: &str) -> Result<Value, TranslationError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslationError("`messages` is required and must be an array".into()))?;
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for message in messages {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = message.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system.push(text_of(content)),
            "tool" => push_turn(
                &mut turns,
                "user",
                vec![json!({"type": "tool_result",
                            "tool_use_id": message.get("tool_call_id").cloned().unwrap_or(Value::Null),
                            "content": text_of(content)})],
            ),
            "assistant" => {
                let mut blocks = message_blocks(content);
                for call in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    blocks.push(json!({"type": "tool_use", "id": call.get("id"),
                                       "name": call.pointer("/function/name"),
                                       "input": tool_input(call.pointer("/function/arguments"))}));
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            _ => push_turn(&mut turns, "user", message_blocks(content)),
        }
    }
    let mut messages_body = Map::new();
    messages_body.insert("model".into(), model.into());
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|field| body.get(*field).and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    messages_body.insert("max_tokens".into(), max_tokens.into());
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        messages_body.insert("system".into(), system.join("\n").into());
    }
    messages_body.insert("messages".into(), Value::Array(turns));
    for field in ["temperature", "top_p"] {
        if let Some(value) = body.get(field) {
            messages_body.insert(field.into(), value.clone());
        }
    }
    match body.get("stop") {
        Some(Value::String(stop)) => {
            messages_body.insert("stop_sequences".into(), json!([stop]));
        }
        Some(stops @ Value::Array(_)) => {
            messages_body.insert("stop_sequences".into(), stops.clone());
        }
        _ => {}
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        messages_body.insert("stream".into(), true.into());
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .filter_map(|tool| tool.get("function"))
            .map(|function| {
                json!({"name": function.get("name"), "description": function.get("description").cloned().unwrap_or_else(|| "".into()),
                       "input_schema": function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}))})
            })
            .collect();
        if !tools.is_empty() {
            messages_body.insert("tools".into(), Value::Array(tools));
        }
    }
    let choice = match body.get("tool_choice") {
        Some(Value::String(choice)) if choice == "required" => Some(json!({"type": "any"})),
        Some(Value::String(choice)) if choice == "none" => Some(json!({"type": "none"})),
        Some(Value::String(choice)) if choice == "auto" => Some(json!({"type": "auto"})),
        Some(choice @ Value::Object(_)) => choice
            .pointer("/function/name")
            .map(|name| json!({"type": "tool", "name": name})),
        _ => None,
    };
    if let Some(choice) = choice.filter(|_| messages_body.contains_key("tools")) {
        messages_body.insert("tool_choice".into(), choice);
    }
    if let Some(user) = body.get("user") {
        messages_body.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(Value::Object(messages_body))
}

/// Anthropic's stop reason as OpenAI's finish reason.
fn finish_reason(stop: Option<&str>) -> Value {
    match stop {
        Some("max_tokens") => "length".into(),
        Some("tool_use") => "tool_calls".into(),
        Some("refusal") => "content_filter".into(),
        Some(_) => "stop".into(),
        None => Value::Null,
    }
}

/// Anthropic's usage as OpenAI's: every input token inside the prompt, the cache reads named.
fn openai_usage(usage: Option<&Value>) -> Value {
    let count = |field: &str| usage.and_then(|u| u.get(field)).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("cache_read_input_tokens");
    let prompt = count("input_tokens") + cached + count("cache_creation_input_tokens");
    let completion = count("output_tokens");
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
           "prompt_tokens_details": {"cached_tokens": cached}})
}

/// A complete Anthropic message as a Chat Completions response, named `model` (the client's).
pub fn message_to_chat(message: &Value, model: &str) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in message.get("content").and_then(Value::as_array).into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => calls.push(json!({"id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": block.get("input").unwrap_or(&json!({})).to_string()}})),
            _ => {}
        }
    }
    let mut reply = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
    if !calls.is_empty() {
        reply["tool_calls"] = Value::Array(calls);
    }
    json!({"id": message.get("id").cloned().unwrap_or(Value::Null), "object": "chat.completion", "created": 0,
           "model": model, "choices": [{"index": 0, "message": reply,
           "finish_reason": finish_reason(message.get("stop_reason").and_then(Value::as_str))}],
           "usage": openai_usage(message.get("usage"))})
}

/// An Anthropic error body as an OpenAI one.
pub fn message_error_to_chat_error(error: &Value) -> Value {
    let kind = error
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or("api_error");
    let message = error
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("the provider refused the call");
    json!({"error": {"message": message, "type": kind, "param": null, "code": kind}})
}

/// Turns an Anthropic Messages stream into Chat Completions chunks, event by event.
#[derive(Debug)]
pub struct MessagesToChatStream {
    model: String,
    include_usage: bool,
    id: Value,
    /// Content block index → the tool call's index among the message's tool calls.
    tools: Vec<(u64, u64)>,
    usage: Map<String, Value>,
    stop_reason: Option<String>,
    stopped: bool,
}

impl MessagesToChatStream {
    /// A stream whose chunks name `model` (the client's), with a usage chunk at the end when
    /// the client asked for one (`stream_options.include_usage`).
    pub fn new(model: &str, include_usage: bool) -> MessagesToChatStream {
        MessagesToChatStream {
            model: model.to_owned(),
            include_usage,
            id: Value::Null,
            tools: Vec::new(),
            usage: Map::new(),
            stop_reason: None,
            stopped: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    /// The chunks one Anthropic event (an SSE event's data) stands for.
    pub fn event(&mut self, data: &str, out: &mut Vec<Value>) {
        if self.stopped {
            return;
        }
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                self.id = event.pointer("/message/id").cloned().unwrap_or(Value::Null);
                if let Some(Value::Object(usage)) = event.pointer("/message/usage") {
                    self.usage.extend(usage.clone());
                }
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            }
            Some("content_block_start") => {
                let block = event.get("content_block");
                if block.and_then(|b| b.get("type")).and_then(Value::as_str) == Some("tool_use") {
                    let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let call = self.tools.len() as u64;
                    self.tools.push((index, call));
                    let block = block.cloned().unwrap_or_default();
                    out.push(self.chunk(
                        json!({"tool_calls": [{"index": call, "id": block.get("id"), "type": "function",
                                               "function": {"name": block.get("name"), "arguments": ""}}]}),
                        Value::Null,
                    ));
                }
            }
            Some("content_block_delta") => {
                let delta = event.get("delta").cloned().unwrap_or_default();
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => out.push(self.chunk(json!({"content": delta.get("text")}), Value::Null)),
                    Some("input_json_delta") => {
                        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                        if let Some((_, call)) = self.tools.iter().find(|(block, _)| *block == index) {
                            out.push(self.chunk(
                                json!({"tool_calls": [{"index": call, "function": {"arguments": delta.get("partial_json")}}]}),
                                Value::Null,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(reason) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(Value::Object(usage)) = event.get("usage") {
                    self.usage.extend(
                        usage
                            .iter()
                            .filter(|(_, v)| !v.is_null())
                            .map(|(k, v)| (k.clone(), v.clone())),
                    );
                }
            }
            Some("message_stop") => {
                self.stopped = true;
                out.push(self.chunk(json!({}), finish_reason(self.stop_reason.as_deref())));
                if self.include_usage {
                    let usage = openai_usage(Some(&Value::Object(self.usage.clone())));
                    out.push(json!({"id": self.id, "object": "chat.completion.chunk", "created": 0,
                                    "model": self.model, "choices": [], "usage": usage}));
                }
            }
            _ => {}
        }
    }

    /// Whether the Anthropic stream reached its `message_stop` (then `[DONE]` follows).
    pub fn stopped(&self) -> bool {
        self.stopped
    }
}

/// OpenAI SSE text of `chunks`, and `[DONE]` when the stream `ended`.
pub fn chat_sse(chunks: &[Value], ended: bool) -> String {
    let mut text: String = chunks.iter().map(|chunk| format!("data: {chunk}\n\n")).collect();
    if ended {
        text.push_str("data: [DONE]\n\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claude_code_turn_with_tools_becomes_a_chat_request() {
        let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true, "temperature": 0.2,
        "system": [{"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": "Be brief."}],
        "metadata": {"user_id": "user_abc_session_1"},
        "tools": [{"name": "Read", "description": "read a file", "input_schema": {"type": "object",
                   "properties": {"path": {"type": "string"}}}}],
        "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": "read main.rs"},
            {"role": "assistant", "content": [{"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "main.rs"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                "content": [{"type": "text", "text": "fn main() {}"}]}, {"type": "text", "text": "explain"}]},
        ]});
        let chat = messages_to_chat(&body, "gpt-4o").unwrap();
        assert_eq!(
            chat,
            json!({"model": "gpt-4o", "max_completion_tokens": 1024, "temperature": 0.2, "stream": true,
            "stream_options": {"include_usage": true}, "user": "user_abc_session_1", "tool_choice": "auto",
            "tools": [{"type": "function", "function": {"name": "Read", "description": "read a file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}],
            "messages": [
                {"role": "system", "content": "You are Claude Code.\nBe brief."},
                {"role": "user", "content": "read main.rs"},
                {"role": "assistant", "content": "Reading.", "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "Read", "arguments": "{\"path\":\"main.rs\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "fn main() {}"},
                {"role": "user", "content": [{"type": "text", "text": "explain"}]},
            ]})
        );
        let bad = messages_to_chat(&json!({"messages": 3}), "gpt-4o").unwrap_err();
        assert!(bad.0.contains("`messages`"));
    }

    #[test]
    fn a_chat_completion_becomes_a_message_with_anthropics_usage() {
        let chat = json!({"id": "chatcmpl-1", "model": "gpt-4o-2024-08-06", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "Let me look.", "tool_calls": [{"id": "call_1",
                "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"a.rs\"}"}}]},
            "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 1024}}});
        assert_eq!(
            chat_to_message(&chat, "claude-sonnet-4-5"),
            json!({"id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": "Let me look."},
                            {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a.rs"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 176, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024,
                          "output_tokens": 30}})
        );
    }

    fn translate(chunks: &[&str], complete: bool) -> Vec<MessagesEvent> {
        let mut stream = ChatToMessagesStream::new("claude-sonnet-4-5");
        let mut out = Vec::new();
        chunks.iter().for_each(|chunk| stream.chunk(chunk, &mut out));
        stream.finish(complete, &mut out);
        out
    }

    #[test]
    fn a_chat_stream_becomes_messages_events_block_by_block() {
        let events = translate(
            &[
                r#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
                r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
                r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"Read","arguments":""}}]}}]}"#,
                r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]}}]}"#,
                r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"a\"}"}}]}}]}"#,
                r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
                r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":9}}"#,
                "[DONE]",
            ],
            true,
        );
        let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0].1["message"]["model"], "claude-sonnet-4-5");
        assert_eq!(events[4].1["content_block"]["name"], "Read");
        assert_eq!(events[4].1["index"], 1);
        assert_eq!(events[6].1["delta"]["partial_json"], "\"a\"}");
        let delta = &events[8].1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["input_tokens"], 50);
        assert_eq!(delta["usage"]["output_tokens"], 9);
        // What the Anthropic tap reads from the translated stream is the provider's usage.
        let mut tap = crate::providers::StreamTap::new(crate::providers::WireProtocol::Anthropic);
        let mut parser = crate::sse::SseParser::new();
        let mut parsed = Vec::new();
        parser.push(messages_sse(&events).as_bytes(), &mut parsed);
        parsed.iter().for_each(|e| tap.observe(e));
        assert!(tap.ended());
        let usage = tap.finish().unwrap();
        assert_eq!((usage.tokens.input, usage.tokens.output), (50, 9));
    }

    #[test]
    fn a_cut_stream_is_not_closed_as_if_it_had_ended() {
        let events = translate(
            &[r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#],
            false,
        );
        let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["message_start", "content_block_start", "content_block_delta"]);
    }

    #[test]
    fn provider_errors_take_anthropics_shape() {
        let error =
            json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}});
        assert_eq!(
            chat_error_to_message_error(&error, 429),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}})
        );
    }

    #[test]
    fn an_openai_chat_request_with_tools_becomes_a_messages_request() {
        let body = json!({"model": "gpt-4o", "stream": true, "max_completion_tokens": 300, "stop": "END", "user": "u1",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "what is in a.rs?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "read", "arguments": "{\"path\":\"a.rs\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "fn a() {}"},
                {"role": "user", "content": "explain"},
            ],
            "tools": [{"type": "function", "function": {"name": "read", "description": "read a file",
                "parameters": {"type": "object"}}}],
            "tool_choice": "required"});
        assert_eq!(
            chat_to_messages(&body, "claude-sonnet-4-5").unwrap(),
            json!({"model": "claude-sonnet-4-5", "max_tokens": 300, "system": "Be brief.", "stream": true,
            "stop_sequences": ["END"], "metadata": {"user_id": "u1"}, "tool_choice": {"type": "any"},
            "tools": [{"name": "read", "description": "read a file", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "what is in a.rs?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "read",
                    "input": {"path": "a.rs"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "fn a() {}"},
                    {"type": "text", "text": "explain"}]},
            ]})
        );
        let capless = chat_to_messages(&json!({"messages": []}), "claude-haiku-4-5").unwrap();
        assert_eq!(capless["max_tokens"], DEFAULT_MAX_TOKENS, "Anthropic requires a cap");
    }

    #[test]
    fn a_message_becomes_a_chat_completion_with_openais_usage() {
        let message = json!({"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "Let me read."},
            {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.rs"}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 20, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 5, "output_tokens": 9}});
        assert_eq!(
            message_to_chat(&message, "gpt-4o"),
            json!({"id": "msg_1", "object": "chat.completion", "created": 0, "model": "gpt-4o",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                    "content": "Let me read.", "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "read", "arguments": "{\"path\":\"a.rs\"}"}}]}}],
                "usage": {"prompt_tokens": 1025, "completion_tokens": 9, "total_tokens": 1034,
                          "prompt_tokens_details": {"cached_tokens": 1000}}})
        );
    }

    #[test]
    fn a_messages_stream_becomes_chat_chunks_whose_usage_the_chat_tap_reads() {
        let events = [
            r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":30,"cache_read_input_tokens":100,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"read","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"p\":1}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":12}}"#,
            r#"{"type":"message_stop"}"#,
        ];
        let mut stream = MessagesToChatStream::new("gpt-4o", true);
        let mut chunks = Vec::new();
        events.iter().for_each(|e| stream.event(e, &mut chunks));
        assert!(stream.stopped());
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "read"
        );
        assert_eq!(
            chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"p\":1}"
        );
        assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
        let text = chat_sse(&chunks, stream.stopped());
        assert!(text.ends_with("data: [DONE]\n\n"));
        let mut parser = crate::sse::SseParser::new();
        let mut parsed = Vec::new();
        parser.push(text.as_bytes(), &mut parsed);
        let mut tap = crate::providers::StreamTap::new(crate::providers::WireProtocol::OpenAiChat);
        parsed.iter().for_each(|e| tap.observe(e));
        assert!(tap.ended());
        let usage = tap.finish().unwrap().tokens;
        assert_eq!((usage.input, usage.cache_read, usage.output), (30, 100, 12));
        // Without the client asking, no usage chunk.
        let mut quiet = MessagesToChatStream::new("gpt-4o", false);
        let mut chunks = Vec::new();
        events.iter().for_each(|e| quiet.event(e, &mut chunks));
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn anthropic_errors_take_openais_shape() {
        let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        assert_eq!(
            message_error_to_chat_error(&error),
            json!({"error": {"message": "Overloaded", "type": "overloaded_error", "param": null, "code": "overloaded_error"}})
        );
    }
}
