//! Protocol translation: an Anthropic Messages call served by a provider that speaks OpenAI's
//! Chat Completions, so a client of one API (Claude Code, the Anthropic SDK) can be routed to
//! a model offered only through the other.
//!
//! Three pure pieces: the request ([`messages_to_chat`]: system prompt, text and image blocks,
//! `tool_use` / `tool_result` blocks as tool calls and tool messages, tools and tool choice,
//! output cap, stop sequences, sampling), the complete response ([`chat_to_message`]), and
//! the stream ([`ChatToMessagesStream`], which turns each chat chunk into the Anthropic events
//! it stands for: `message_start`, one `content_block_*` run per text or tool call,
//! `message_delta` with the stop reason and usage, `message_stop`). Usage is the provider's:
//! OpenAI's prompt tokens include the cached ones, which Anthropic reports apart.
//!
//! What has no counterpart is dropped rather than guessed: Anthropic's `thinking` blocks and
//! cache-control marks, OpenAI's log probabilities.

use serde_json::{Map, Value, json};

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
}
