//! What providers report about a call, in their own wire formats, turned into Goodhart's
//! non-overlapping token counts.
//!
//! OpenAI counts cached input inside `prompt_tokens`/`input_tokens` and reasoning inside
//! `completion_tokens`/`output_tokens`; Anthropic reports uncached input, cache reads and cache
//! writes separately (and, in newer versions, the 5-minute and 1-hour writes apart); Gemini's
//! `usageMetadata` counts cached content inside `promptTokenCount` and thoughts and tool-use
//! prompts beside it; Bedrock's Converse API counts like Anthropic (`inputTokens` without the
//! cache reads and writes it reports beside it). All are converted so that no token is
//! counted under two kinds.

use serde_json::Value;

use crate::sse::SseEvent;
use crate::usage::TokenCounts;

/// The wire protocol of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireProtocol {
    /// OpenAI `POST /v1/chat/completions` (and `/v1/embeddings`, whose usage has the same shape).
    OpenAiChat,
    /// OpenAI `POST /v1/responses`.
    OpenAiResponses,
    /// Anthropic `POST /v1/messages`.
    Anthropic,
    /// Gemini `POST /v1beta/models/{model}:generateContent` (and its stream, SSE or JSON array).
    Gemini,
    /// Bedrock `POST /model/{modelId}/converse` (and `converse-stream`, whose events the gateway
    /// reads from event-stream frames, each named by its `:event-type`).
    Converse,
}

/// Usage and metadata a provider reported for one call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportedUsage {
    pub tokens: TokenCounts,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
}

fn count(value: &Value, path: &[&str]) -> u64 {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// An OpenAI `usage` object (chat completions, embeddings or responses).
pub fn openai_tokens(usage: &Value) -> TokenCounts {
    let prompt = count(usage, &["prompt_tokens"]).max(count(usage, &["input_tokens"]));
    let cached = count(usage, &["prompt_tokens_details", "cached_tokens"])
        .max(count(usage, &["input_tokens_details", "cached_tokens"]));
    let completion = count(usage, &["completion_tokens"]).max(count(usage, &["output_tokens"]));
    let reasoning = count(usage, &["completion_tokens_details", "reasoning_tokens"])
        .max(count(usage, &["output_tokens_details", "reasoning_tokens"]));
    openai_counts(prompt, cached, completion, reasoning)
}

/// OpenAI's counts — input that includes its cached part, output that includes its reasoning —
/// as [`TokenCounts`], whose kinds never overlap.
pub fn openai_counts(input: u64, cached: u64, output: u64, reasoning: u64) -> TokenCounts {
    TokenCounts {
        input: input.saturating_sub(cached),
        cache_read: cached.min(input),
        output: output.saturating_sub(reasoning),
        reasoning: reasoning.min(output),
        ..TokenCounts::default()
    }
}

/// A Gemini `usageMetadata` object.
pub fn gemini_tokens(usage: &Value) -> TokenCounts {
    gemini_counts(
        count(usage, &["promptTokenCount"]),
        count(usage, &["cachedContentTokenCount"]),
        count(usage, &["candidatesTokenCount"]),
        count(usage, &["thoughtsTokenCount"]),
        count(usage, &["toolUsePromptTokenCount"]),
    )
}

/// Gemini's counts as [`TokenCounts`]: the prompt includes its cached content; tool-use prompt
/// tokens are input on top of it; thoughts are billed as output, kept apart as reasoning
/// (`total = prompt + candidates + tool use + thoughts`).
pub fn gemini_counts(prompt: u64, cached: u64, candidates: u64, thoughts: u64, tool_use: u64) -> TokenCounts {
    TokenCounts {
        input: prompt.saturating_sub(cached).saturating_add(tool_use),
        cache_read: cached.min(prompt),
        output: candidates,
        reasoning: thoughts,
        ..TokenCounts::default()
    }
}

/// A Bedrock Converse `usage` object (the body's, or the stream's `metadata` event's):
/// `inputTokens` excludes the cache reads and writes reported beside it
/// (`totalTokens = inputTokens + outputTokens + cacheReadInputTokens + cacheWriteInputTokens`).
pub fn converse_tokens(usage: &Value) -> TokenCounts {
    anthropic_counts(
        count(usage, &["inputTokens"]),
        count(usage, &["outputTokens"]),
        count(usage, &["cacheReadInputTokens"]),
        [count(usage, &["cacheWriteInputTokens"]), 0, 0],
    )
}

/// An Anthropic `usage` object.
pub fn anthropic_tokens(usage: &Value) -> TokenCounts {
    anthropic_counts(
        count(usage, &["input_tokens"]),
        count(usage, &["output_tokens"]),
        count(usage, &["cache_read_input_tokens"]),
        [
            count(usage, &["cache_creation_input_tokens"]),
            count(usage, &["cache_creation", "ephemeral_5m_input_tokens"]),
            count(usage, &["cache_creation", "ephemeral_1h_input_tokens"]),
        ],
    )
}

/// Anthropic's counts as [`TokenCounts`]; `cache_writes` is the total of cache writes, then the
/// 5-minute and 1-hour writes of the `cache_creation` breakdown (zero when absent).
pub fn anthropic_counts(input: u64, output: u64, cache_read: u64, cache_writes: [u64; 3]) -> TokenCounts {
    let [total, five_minutes, one_hour] = cache_writes;
    // Without the breakdown every write is a 5-minute write (the default TTL).
    let (cache_write_5m, cache_write_1h) = if five_minutes + one_hour > 0 {
        (five_minutes, one_hour)
    } else {
        (total, 0)
    };
    TokenCounts {
        input,
        output,
        cache_read,
        cache_write_5m,
        cache_write_1h,
        reasoning: 0,
    }
}

/// The usage in a complete (non-streamed) response body, if it reports any.
pub fn usage_from_body(protocol: WireProtocol, body: &Value) -> Option<ReportedUsage> {
    if protocol == WireProtocol::Gemini {
        let usage = body.get("usageMetadata").filter(|u| u.is_object())?;
        return Some(ReportedUsage {
            tokens: gemini_tokens(usage),
            model: text(body, &["modelVersion"]),
            finish_reason: gemini_finish_reason(body),
        });
    }
    let usage = body.get("usage").filter(|u| u.is_object())?;
    Some(match protocol {
        // The model is the path's: a Converse body does not name it.
        WireProtocol::Converse => ReportedUsage {
            tokens: converse_tokens(usage),
            model: None,
            finish_reason: text(body, &["stopReason"]),
        },
        WireProtocol::OpenAiChat => ReportedUsage {
            tokens: openai_tokens(usage),
            model: text(body, &["model"]),
            finish_reason: body
                .get("choices")
                .and_then(|c| c.get(0))
                .and_then(|c| c.get("finish_reason"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        WireProtocol::OpenAiResponses => ReportedUsage {
            tokens: openai_tokens(usage),
            model: text(body, &["model"]),
            finish_reason: text(body, &["incomplete_details", "reason"]).or_else(|| text(body, &["status"])),
        },
        WireProtocol::Anthropic => ReportedUsage {
            tokens: anthropic_tokens(usage),
            model: text(body, &["model"]),
            finish_reason: text(body, &["stop_reason"]),
        },
        WireProtocol::Gemini => return None,
    })
}

/// Whether an event is a provider's error, in any protocol: named `error` (Responses,
/// Anthropic) or as an AWS exception (Bedrock), or whose data is an error object (OpenAI chat,
/// Gemini, Anthropic).
fn is_error_event(event: &SseEvent) -> bool {
    let named = event.event.as_deref().unwrap_or_default();
    if named == "error" || named.ends_with("Exception") {
        return true;
    }
    let Some(object) = event.data.trim_start().strip_prefix('{') else {
        return false;
    };
    let object = object.trim_start();
    let type_error = || {
        let value = object.strip_prefix("\"type\"")?.trim_start().strip_prefix(':')?;
        Some(value.trim_start().starts_with("\"error\""))
    };
    object.starts_with("\"error\"") || type_error().unwrap_or(false)
}

/// The first candidate's `finishReason` of a Gemini response (or stream chunk).
fn gemini_finish_reason(body: &Value) -> Option<String> {
    body.get("candidates")?
        .as_array()?
        .iter()
        .find_map(|candidate| candidate.get("finishReason")?.as_str())
        .map(str::to_owned)
}

/// The most output text a tap keeps (for fingerprints and estimates); the rest is counted
/// in characters only.
pub const MAX_COLLECTED_TEXT_BYTES: usize = 1 << 20;

/// Collects usage from the events of a streamed response, whatever their order and chunking.
#[derive(Debug)]
pub struct StreamTap {
    protocol: WireProtocol,
    usage: Option<Value>,
    model: Option<String>,
    finish_reason: Option<String>,
    response_id: Option<String>,
    /// The output text so far, when the tap was asked to collect it.
    output: Option<String>,
    /// The stream's terminal event arrived (`[DONE]`, `message_stop`, `response.completed`…).
    ended: bool,
    /// The provider sent an error event of its own (it ends the stream in its protocol).
    failed: bool,
}

impl StreamTap {
    pub fn new(protocol: WireProtocol) -> StreamTap {
        StreamTap {
            protocol,
            usage: None,
            model: None,
            finish_reason: None,
            response_id: None,
            output: None,
            ended: false,
            failed: false,
        }
    }

    /// A tap that also collects the output text (up to [`MAX_COLLECTED_TEXT_BYTES`]).
    pub fn collecting_text(protocol: WireProtocol) -> StreamTap {
        StreamTap {
            output: Some(String::new()),
            ..StreamTap::new(protocol)
        }
    }

    /// The output text collected so far (empty unless the tap collects text).
    pub fn output_text(&self) -> &str {
        self.output.as_deref().unwrap_or_default()
    }

    /// The provider's id of the response, once seen.
    pub fn response_id(&self) -> Option<&str> {
        self.response_id.as_deref()
    }

    /// Whether the stream's terminal event has arrived.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether the provider sent an error event: an `error` event, an AWS `…Exception`
    /// frame, or data that is an error object (`{"error": …}`, `{"type": "error", …}`).
    pub fn failed(&self) -> bool {
        self.failed
    }

    fn collect(&mut self, text: Option<&str>) {
        if let (Some(out), Some(text)) = (self.output.as_mut(), text) {
            let room = MAX_COLLECTED_TEXT_BYTES.saturating_sub(out.len());
            let mut cut = text.len().min(room);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&text[..cut]);
        }
    }

    /// Whether an event can carry anything the tap needs. Most events of a stream are text
    /// deltas; skipping them without parsing their JSON keeps metering cheap.
    fn may_matter(&self, event: &SseEvent) -> bool {
        let named = |names: &[&str]| event.event.as_deref().is_none_or(|name| names.contains(&name));
        let text = self.output.is_some();
        match self.protocol {
            WireProtocol::Anthropic => {
                named(&["message_start", "message_delta", "message_stop"]) || (text && named(&["content_block_delta"]))
            }
            WireProtocol::OpenAiResponses => {
                named(&[
                    "response.completed",
                    "response.incomplete",
                    "response.failed",
                    "response.created",
                ]) || (text
                    && named(&[
                        "response.output_text.delta",
                        "response.function_call_arguments.delta",
                        "response.reasoning_summary_text.delta",
                    ]))
            }
            // Every chunk carries text, and may carry the usage so far or the finish reason.
            WireProtocol::Gemini => true,
            WireProtocol::Converse => named(&["messageStop", "metadata"]) || (text && named(&["contentBlockDelta"])),
            WireProtocol::OpenAiChat if event.data == "[DONE]" => true,
            WireProtocol::OpenAiChat if text => true,
            WireProtocol::OpenAiChat => {
                let data = event.data.as_str();
                self.model.is_none()
                    || data.contains("\"usage\":{")
                    || data.contains("\"usage\": {")
                    || data.contains("\"finish_reason\":\"")
                    || data.contains("\"finish_reason\": \"")
            }
        }
    }

    /// Looks at one SSE event; events that are not JSON (e.g. `[DONE]`) are ignored.
    pub fn observe(&mut self, event: &SseEvent) {
        if is_error_event(event) {
            self.failed = true;
        }
        if !self.may_matter(event) {
            return;
        }
        if self.protocol == WireProtocol::OpenAiChat && event.data == "[DONE]" {
            self.ended = true;
            return;
        }
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            return;
        };
        match self.protocol {
            WireProtocol::OpenAiChat => {
                self.model = self.model.take().or_else(|| text(&data, &["model"]));
                self.response_id = self.response_id.take().or_else(|| text(&data, &["id"]));
                if self.output.is_some()
                    && let Some(choices) = data.get("choices").and_then(Value::as_array)
                {
                    for delta in choices.iter().filter_map(|c| c.get("delta")) {
                        self.collect(delta.get("content").and_then(Value::as_str));
                        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                            self.collect(
                                call.get("function")
                                    .and_then(|f| f.get("arguments"))
                                    .and_then(Value::as_str),
                            );
                        }
                    }
                }
                if let Some(reason) = data
                    .get("choices")
                    .and_then(Value::as_array)
                    .and_then(|choices| choices.iter().find_map(|c| c.get("finish_reason")?.as_str()))
                {
                    self.finish_reason = Some(reason.to_owned());
                }
                if let Some(usage) = data.get("usage").filter(|u| u.is_object()) {
                    self.usage = Some(usage.clone());
                }
            }
            WireProtocol::OpenAiResponses => {
                let kind = data.get("type").and_then(Value::as_str).unwrap_or_default();
                if kind.ends_with(".delta") {
                    self.collect(data.get("delta").and_then(Value::as_str));
                } else if kind == "response.created" {
                    self.response_id = text(&data, &["response", "id"]);
                    self.model = text(&data, &["response", "model"]);
                } else if matches!(kind, "response.completed" | "response.incomplete" | "response.failed") {
                    self.ended = true;
                    let response = data.get("response").cloned().unwrap_or_default();
                    self.response_id = text(&response, &["id"]).or(self.response_id.take());
                    self.model = text(&response, &["model"]).or(self.model.take());
                    self.finish_reason =
                        text(&response, &["incomplete_details", "reason"]).or_else(|| text(&response, &["status"]));
                    self.usage = response.get("usage").filter(|u| u.is_object()).cloned();
                }
            }
            WireProtocol::Gemini => {
                if self.output.is_some() {
                    let parts = data.pointer("/candidates/0/content/parts").and_then(Value::as_array);
                    for part in parts.into_iter().flatten() {
                        self.collect(part.get("text").and_then(Value::as_str));
                    }
                }
                self.model = text(&data, &["modelVersion"]).or(self.model.take());
                self.response_id = text(&data, &["responseId"]).or(self.response_id.take());
                // Each chunk's usage is the response's so far: the last one is the whole.
                if let Some(usage) = data.get("usageMetadata").filter(|u| u.is_object()) {
                    self.usage = Some(usage.clone());
                }
                // The stream has no end event: the chunk with a finish reason is the last.
                if let Some(reason) = gemini_finish_reason(&data) {
                    self.finish_reason = Some(reason);
                    self.ended = true;
                }
            }
            WireProtocol::Converse => match event.event.as_deref().unwrap_or_default() {
                "contentBlockDelta" => {
                    let delta = data.get("delta");
                    let piece = delta
                        .and_then(|d| d.get("text"))
                        .or_else(|| delta.and_then(|d| d.pointer("/toolUse/input")))
                        .or_else(|| delta.and_then(|d| d.pointer("/reasoningContent/text")))
                        .and_then(Value::as_str);
                    self.collect(piece);
                }
                "messageStop" => self.finish_reason = text(&data, &["stopReason"]),
                // The stream's last event: usage and metrics, after `messageStop`.
                "metadata" => {
                    self.ended = true;
                    self.usage = data.get("usage").filter(|u| u.is_object()).cloned();
                }
                _ => {}
            },
            WireProtocol::Anthropic => match data.get("type").and_then(Value::as_str).unwrap_or_default() {
                "content_block_delta" => {
                    let delta = data.get("delta");
                    let piece = ["text", "partial_json", "thinking"]
                        .iter()
                        .find_map(|field| delta.and_then(|d| d.get(field)).and_then(Value::as_str));
                    self.collect(piece);
                }
                "message_stop" => self.ended = true,
                "message_start" => {
                    self.model = text(&data, &["message", "model"]);
                    self.response_id = text(&data, &["message", "id"]);
                    self.usage = data
                        .get("message")
                        .and_then(|m| m.get("usage"))
                        .filter(|u| u.is_object())
                        .cloned();
                }
                "message_delta" => {
                    if let Some(reason) = text(&data, &["delta", "stop_reason"]) {
                        self.finish_reason = Some(reason);
                    }
                    // Delta usage is cumulative and may repeat or update any field.
                    if let Some(Value::Object(delta)) = data.get("usage") {
                        let merged = self.usage.get_or_insert_with(|| Value::Object(Default::default()));
                        if let Value::Object(fields) = merged {
                            for (key, value) in delta {
                                if !value.is_null() {
                                    fields.insert(key.clone(), value.clone());
                                }
                            }
                        }
                    }
                }
                _ => {}
            },
        }
    }

    /// The usage the stream reported, or `None` if it ended before reporting any.
    pub fn finish(self) -> Option<ReportedUsage> {
        let usage = self.usage.filter(Value::is_object)?;
        let tokens = match self.protocol {
            WireProtocol::Anthropic => anthropic_tokens(&usage),
            WireProtocol::Gemini => gemini_tokens(&usage),
            WireProtocol::Converse => converse_tokens(&usage),
            WireProtocol::OpenAiChat | WireProtocol::OpenAiResponses => openai_tokens(&usage),
        };
        Some(ReportedUsage {
            tokens,
            model: self.model,
            finish_reason: self.finish_reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;
    use serde_json::json;

    /// Streams in the providers' shapes (as the official SDKs receive them).
    const OPENAI_CHAT_STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":300,\"total_tokens\":1500,\"prompt_tokens_details\":{\"cached_tokens\":1000},\"completion_tokens_details\":{\"reasoning_tokens\":100}}}\n\n",
        "data: [DONE]\n\n",
    );

    const ANTHROPIC_STREAM: &str = concat!(
        "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":19,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":8000,\"cache_creation\":{\"ephemeral_5m_input_tokens\":100,\"ephemeral_1h_input_tokens\":200},\"output_tokens\":1}}}\r\n\r\n",
        "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n",
        "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n",
        "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\r\n\r\n",
        "event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n",
        "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\r\n\r\n",
        "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
    );

    const RESPONSES_STREAM: &str = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"model\":\"gpt-5\",\"usage\":null}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"model\":\"gpt-5-2025-08-07\",\"usage\":{\"input_tokens\":500,\"input_tokens_details\":{\"cached_tokens\":200},\"output_tokens\":90,\"output_tokens_details\":{\"reasoning_tokens\":64},\"total_tokens\":590}}}\n\n",
    );

    /// Gemini's `alt=sse` stream: usage so far on every chunk, the finish reason on the last.
    const GEMINI_STREAM: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9000,\"totalTokenCount\": 9000,\"cachedContentTokenCount\": 8000},\"modelVersion\": \"gemini-2.5-pro\",\"responseId\": \"r-1\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9000,\"candidatesTokenCount\": 40,\"totalTokenCount\": 9170,\"cachedContentTokenCount\": 8000,\"thoughtsTokenCount\": 120,\"toolUsePromptTokenCount\": 10},\"modelVersion\": \"gemini-2.5-pro\",\"responseId\": \"r-1\"}\r\n\r\n",
    );

    fn tap(protocol: WireProtocol, chunks: &[&[u8]]) -> Option<ReportedUsage> {
        let (mut parser, mut tap, mut events) = (SseParser::new(), StreamTap::new(protocol), Vec::new());
        for chunk in chunks {
            parser.push(chunk, &mut events);
        }
        parser.finish(&mut events);
        events.iter().for_each(|e| tap.observe(e));
        tap.finish()
    }

    fn expected(protocol: WireProtocol) -> ReportedUsage {
        match protocol {
            WireProtocol::OpenAiChat => ReportedUsage {
                tokens: TokenCounts {
                    input: 200,
                    cache_read: 1000,
                    output: 200,
                    reasoning: 100,
                    ..Default::default()
                },
                model: Some("gpt-4o-mini-2024-07-18".into()),
                finish_reason: Some("length".into()),
            },
            WireProtocol::Anthropic => ReportedUsage {
                tokens: TokenCounts {
                    input: 19,
                    output: 42,
                    cache_read: 8000,
                    cache_write_5m: 100,
                    cache_write_1h: 200,
                    reasoning: 0,
                },
                model: Some("claude-sonnet-4-5-20250929".into()),
                finish_reason: Some("end_turn".into()),
            },
            WireProtocol::OpenAiResponses => ReportedUsage {
                tokens: TokenCounts {
                    input: 300,
                    cache_read: 200,
                    output: 26,
                    reasoning: 64,
                    ..Default::default()
                },
                model: Some("gpt-5-2025-08-07".into()),
                finish_reason: Some("completed".into()),
            },
            WireProtocol::Converse => ReportedUsage {
                tokens: TokenCounts {
                    input: 25,
                    output: 9,
                    cache_read: 4000,
                    cache_write_5m: 300,
                    ..Default::default()
                },
                model: None,
                finish_reason: Some("end_turn".into()),
            },
            WireProtocol::Gemini => ReportedUsage {
                tokens: TokenCounts {
                    input: 1010,
                    cache_read: 8000,
                    output: 40,
                    reasoning: 120,
                    ..Default::default()
                },
                model: Some("gemini-2.5-pro".into()),
                finish_reason: Some("STOP".into()),
            },
        }
    }

    /// Every stream, split at every byte boundary, reports the same usage.
    #[test]
    fn a_providers_own_error_event_is_noticed_in_every_protocol_and_nothing_else_is() {
        let sse = |name: Option<&str>, data: &str| SseEvent {
            event: name.map(str::to_owned),
            data: data.to_owned(),
        };
        let errors = [
            sse(None, r#"{"error": {"message": "overloaded", "type": "server_error"}}"#),
            sse(Some("error"), r#"{"type":"error","error":{"type":"overloaded_error"}}"#),
            sse(None, r#"{ "type" : "error", "error": {}}"#),
            sse(Some("error"), r#"{"type":"error","code":"server_error","message":"x"}"#),
            sse(Some("throttlingException"), r#"{"message":"slow down"}"#),
        ];
        for event in errors {
            let mut tap = StreamTap::new(WireProtocol::Anthropic);
            tap.observe(&event);
            assert!(tap.failed(), "{event:?}");
        }
        let fine = [
            sse(None, r#"{"type":"content_block_delta","delta":{"text":"error"}}"#),
            sse(None, r#"{"choices":[{"delta":{"content":"{\"error\": 1}"}}]}"#),
            sse(None, "[DONE]"),
            sse(
                Some("response.output_text.delta"),
                r#"{"type":"response.output_text.delta","delta":"error"}"#,
            ),
        ];
        for event in fine {
            let mut tap = StreamTap::new(WireProtocol::OpenAiChat);
            tap.observe(&event);
            assert!(!tap.failed(), "{event:?}");
        }
    }

    #[test]
    fn streams_split_at_every_byte_report_the_same_usage() {
        for (protocol, stream) in [
            (WireProtocol::OpenAiChat, OPENAI_CHAT_STREAM),
            (WireProtocol::Anthropic, ANTHROPIC_STREAM),
            (WireProtocol::OpenAiResponses, RESPONSES_STREAM),
            (WireProtocol::Gemini, GEMINI_STREAM),
        ] {
            let bytes = stream.as_bytes();
            assert_eq!(tap(protocol, &[bytes]), Some(expected(protocol)), "{protocol:?} whole");
            for cut in 0..=bytes.len() {
                assert_eq!(
                    tap(protocol, &[&bytes[..cut], &bytes[cut..]]),
                    Some(expected(protocol)),
                    "{protocol:?} cut at {cut}"
                );
            }
            let one_byte_chunks: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(
                tap(protocol, &one_byte_chunks),
                Some(expected(protocol)),
                "{protocol:?} byte by byte"
            );
        }
    }

    #[test]
    fn a_stream_cut_before_usage_reports_none() {
        let cut = OPENAI_CHAT_STREAM.find("\"choices\":[],").unwrap();
        assert_eq!(
            tap(WireProtocol::OpenAiChat, &[&OPENAI_CHAT_STREAM.as_bytes()[..cut]]),
            None
        );
        let cut = ANTHROPIC_STREAM.find("event: message_start").unwrap() + 5;
        assert_eq!(
            tap(WireProtocol::Anthropic, &[&ANTHROPIC_STREAM.as_bytes()[..cut]]),
            None
        );
    }

    /// Gemini's stream has no end event: the chunk with a finish reason ends it, and the last
    /// usage seen (each chunk's is the response's so far) is the call's; the same elements as
    /// one JSON array (Gemini's default framing) read the same.
    #[test]
    fn a_gemini_stream_ends_at_its_finish_reason_in_either_framing() {
        let mut tap = StreamTap::collecting_text(WireProtocol::Gemini);
        let (mut parser, mut events) = (SseParser::new(), Vec::new());
        let first_chunk = GEMINI_STREAM.split_inclusive("\r\n\r\n").next().unwrap();
        parser.push(first_chunk.as_bytes(), &mut events);
        events.drain(..).for_each(|e| tap.observe(&e));
        assert!(!tap.ended(), "no finish reason yet");
        assert_eq!(tap.response_id(), Some("r-1"));
        parser.push(&GEMINI_STREAM.as_bytes()[first_chunk.len()..], &mut events);
        events.drain(..).for_each(|e| tap.observe(&e));
        assert!(tap.ended());
        assert_eq!(tap.output_text(), "Hello");
        assert_eq!(tap.finish(), Some(expected(WireProtocol::Gemini)));

        let elements: Vec<&str> = GEMINI_STREAM
            .split("\r\n\r\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .collect();
        let array = format!("[{}]", elements.join("\r\n,"));
        let (mut parser, mut tap) = (
            crate::json_stream::JsonArrayParser::new(),
            StreamTap::new(WireProtocol::Gemini),
        );
        parser.push(array.as_bytes(), &mut events);
        events.iter().for_each(|e| tap.observe(e));
        assert_eq!(tap.finish(), Some(expected(WireProtocol::Gemini)));
    }

    /// ConverseStream's events as the gateway's event-stream decoder yields them: named by
    /// their `:event-type`, the usage in the last one (`metadata`, after `messageStop`).
    #[test]
    fn a_converse_stream_reports_its_metadata_usage_and_ends_there() {
        let event = |name: &str, data: Value| SseEvent {
            event: Some(name.into()),
            data: data.to_string(),
        };
        let usage = json!({"inputTokens": 25, "outputTokens": 9, "totalTokens": 4334,
            "cacheReadInputTokens": 4000, "cacheWriteInputTokens": 300});
        let events = [
            event("messageStart", json!({"role": "assistant"})),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "lo"}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 0})),
            event("messageStop", json!({"stopReason": "end_turn"})),
            event("metadata", json!({"usage": usage, "metrics": {"latencyMs": 120}})),
        ];
        let mut tap = StreamTap::collecting_text(WireProtocol::Converse);
        for e in &events[..5] {
            tap.observe(e);
        }
        assert!(!tap.ended(), "the usage is still to come");
        tap.observe(&events[5]);
        assert!(tap.ended());
        assert_eq!(tap.output_text(), "Hello");
        assert_eq!(tap.finish(), Some(expected(WireProtocol::Converse)));

        let body = json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hello"}]}},
            "stopReason": "end_turn", "usage": usage, "metrics": {"latencyMs": 120}});
        assert_eq!(
            usage_from_body(WireProtocol::Converse, &body),
            Some(expected(WireProtocol::Converse))
        );
    }

    #[test]
    fn gemini_bodies_count_cached_content_inside_the_prompt() {
        let body = json!({"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 5,
                              "thoughtsTokenCount": 7}, "modelVersion": "gemini-2.5-flash"});
        let reported = usage_from_body(WireProtocol::Gemini, &body).unwrap();
        assert_eq!(
            reported.tokens,
            TokenCounts {
                input: 40,
                cache_read: 60,
                output: 5,
                reasoning: 7,
                ..Default::default()
            }
        );
        assert_eq!(reported.finish_reason.as_deref(), Some("MAX_TOKENS"));
        assert_eq!(
            usage_from_body(WireProtocol::Gemini, &json!({"error": {"code": 429}})),
            None
        );
    }

    /// Regression: a `message_start` with `"usage": null` was reported as zero tokens, which
    /// would have recorded a free call instead of estimating it.
    #[test]
    fn null_usage_is_no_usage() {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":null}}\n\n\
                      event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n";
        assert_eq!(tap(WireProtocol::Anthropic, &[stream.as_bytes()]), None);
    }

    #[test]
    fn bodies_convert_to_non_overlapping_kinds() {
        let chat = json!({"model": "gpt-4o-mini", "choices": [{"finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 60}}});
        let reported = usage_from_body(WireProtocol::OpenAiChat, &chat).unwrap();
        assert_eq!(
            reported.tokens,
            TokenCounts {
                input: 40,
                cache_read: 60,
                output: 20,
                ..Default::default()
            }
        );
        assert_eq!(reported.finish_reason.as_deref(), Some("stop"));

        let embeddings = json!({"model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}});
        assert_eq!(
            usage_from_body(WireProtocol::OpenAiChat, &embeddings)
                .unwrap()
                .tokens
                .input,
            8
        );

        // The Claude Code fixture's usage: no breakdown of cache writes means 5-minute writes.
        let message = json!({"model": "claude-opus-4-8", "stop_reason": "end_turn",
            "usage": {"input_tokens": 19448, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 7, "output_tokens": 5}});
        let tokens = usage_from_body(WireProtocol::Anthropic, &message).unwrap().tokens;
        assert_eq!(
            tokens,
            TokenCounts {
                input: 19448,
                output: 5,
                cache_read: 7,
                cache_write_5m: 3,
                ..Default::default()
            }
        );

        assert_eq!(
            usage_from_body(WireProtocol::Anthropic, &json!({"type": "error"})),
            None
        );
    }

    #[test]
    fn inconsistent_counts_never_underflow() {
        let odd = json!({"prompt_tokens": 5, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 9}, "completion_tokens_details": {"reasoning_tokens": 4}});
        let tokens = openai_tokens(&odd);
        assert_eq!(tokens.input + tokens.cache_read, 5);
        assert_eq!(tokens.output + tokens.reasoning, 1);
    }
}
