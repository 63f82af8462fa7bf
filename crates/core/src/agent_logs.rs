//! Coding agents' local logs, read into usage: Claude Code's session logs
//! (`~/.claude/projects/<project>/<session>.jsonl`, subagents' logs beside them) and Codex's
//! rollouts (`~/.codex/sessions/**/rollout-*.jsonl`).
//!
//! A [`LogReader`] reads one file's lines in order and yields the model calls they record, each
//! with an id of its own that does not depend on the file: [`Calls`] then keeps one record per
//! call, the one with the most complete usage. Claude Code writes one line per content block of
//! an API response, each repeating the message's id and usage (older versions wrote placeholder
//! counts on the first lines); one response is one request id (its message id when an old line
//! has none) — the same [`call_id`] the gateway and the OTLP receiver give it. Codex writes a
//! `token_count` event after each call, with the session's running total; a forked or resumed
//! session's file replays its parent's lines, which keep their time and running total, so the
//! pair identifies the call. Lines that record no call are skipped; a line that is not JSON, or
//! a call's line with a missing or mistyped field, is an error naming the field — the caller
//! reports it with its file and line and goes on.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;

use sha2::{Digest, Sha256};

use crate::Micros;
use crate::providers::{anthropic_counts, openai_counts};
use crate::time::parse_rfc3339;
use crate::usage::{TokenCounts, call_id};

/// The model Claude Code names on messages it made up itself (no API call, no usage).
const SYNTHETIC_MODEL: &str = "<synthetic>";

/// One model call as an agent's log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedCall {
    /// The usage event id: the same whichever line or file the call was read from.
    pub id: String,
    pub timestamp: Micros,
    pub provider: &'static str,
    pub agent: &'static str,
    pub model: String,
    pub tokens: TokenCounts,
    pub session: Option<String>,
    /// The working directory the session ran in.
    pub cwd: Option<String>,
    pub stop_reason: Option<String>,
}

/// Reads one log file's lines, in order.
pub trait LogReader {
    /// `Ok(Some)` for a line that records a model call, `Ok(None)` for any other line, `Err`
    /// with the reason for a line that cannot be read.
    fn line(&mut self, line: &str) -> Result<Option<LoggedCall>, String>;
}

/// Claude Code's session logs: every line stands alone.
#[derive(Debug, Default)]
pub struct ClaudeCodeLog;

impl LogReader for ClaudeCodeLog {
    fn line(&mut self, line: &str) -> Result<Option<LoggedCall>, String> {
        parse_claude_line(line)
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssistantLine {
    timestamp: String,
    message: Message,
    request_id: Option<String>,
    session_id: Option<String>,
    cwd: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    id: String,
    model: String,
    usage: Usage,
    stop_reason: Option<String>,
}

/// Any line in one parse: every field an API response needs and none required, so that a
/// response's line is read in one pass however its keys are ordered (Claude Code writes
/// `message` before `type`). A line this cannot read, or an assistant line missing a field,
/// goes to [`parse_claude_line_strictly`], whose two passes say precisely what is wrong.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyLine<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    timestamp: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<AnyMessage<'a>>,
    #[serde(borrow)]
    request_id: Option<Text<'a>>,
    #[serde(borrow)]
    session_id: Option<Text<'a>>,
    #[serde(borrow)]
    cwd: Option<Text<'a>>,
}

/// [`Message`]'s fields in [`Message`]'s order, none required.
#[derive(Deserialize)]
struct AnyMessage<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    model: Option<Text<'a>>,
    usage: Option<Usage>,
    #[serde(borrow)]
    stop_reason: Option<Text<'a>>,
}

/// A JSON string, borrowed from the line unless it has escapes. (serde's own `Cow<str>`
/// inside an `Option` always copies.)
struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }

    fn owned(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Text<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    cache_creation: Option<CacheCreation>,
}

#[derive(Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

/// An assistant line's fields, however they were read.
struct Response<'a> {
    timestamp: &'a str,
    message_id: &'a str,
    model: String,
    usage: Usage,
    stop_reason: Option<String>,
    request_id: Option<&'a str>,
    session: Option<String>,
    cwd: Option<String>,
}

/// Reads one Claude Code log line (see [`LogReader::line`]).
pub fn parse_claude_line(line: &str) -> Result<Option<LoggedCall>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    // Half of a log's bytes are prompts, tool results and attachments. A line that never says
    // "assistant" is not a response, so it holds no usage; if it also ends as an object ends,
    // it needs no parse. (A line cut short still goes to the parser, to be reported.)
    if line.ends_with('}') && !line.contains("assistant") {
        return Ok(None);
    }
    // Only an object: serde would also read a struct from an array, by position, and the two
    // paths' structs have different positions.
    if !line.starts_with('{') {
        return parse_claude_line_strictly(line);
    }
    let Ok(entry) = serde_json::from_str::<AnyLine>(line) else {
        return parse_claude_line_strictly(line);
    };
    if entry.kind.as_ref().map(Text::as_str) != Some("assistant") {
        return Ok(None);
    }
    let (Some(timestamp), Some(message)) = (entry.timestamp, entry.message) else {
        return parse_claude_line_strictly(line);
    };
    let (Some(message_id), Some(model), Some(usage)) = (message.id, message.model, message.usage) else {
        return parse_claude_line_strictly(line);
    };
    call_of(Response {
        timestamp: timestamp.as_str(),
        message_id: message_id.as_str(),
        model: model.owned(),
        usage,
        stop_reason: message.stop_reason.map(Text::owned),
        request_id: entry.request_id.as_ref().map(Text::as_str),
        session: entry.session_id.map(Text::owned),
        cwd: entry.cwd.map(Text::owned),
    })
}

/// The reading of [`parse_claude_line`] in two strict passes (its type, then an assistant
/// line's fields), for the lines the one-pass reading cannot take: the same answer, and for a
/// line that cannot be read, the field and column at fault.
fn parse_claude_line_strictly(line: &str) -> Result<Option<LoggedCall>, String> {
    let kind: Line = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if kind.kind.as_deref() != Some("assistant") {
        return Ok(None);
    }
    let entry: AssistantLine = serde_json::from_str(line).map_err(|e| format!("assistant line: {e}"))?;
    call_of(Response {
        timestamp: &entry.timestamp,
        message_id: &entry.message.id,
        model: entry.message.model,
        usage: entry.message.usage,
        stop_reason: entry.message.stop_reason,
        request_id: entry.request_id.as_deref(),
        session: entry.session_id,
        cwd: entry.cwd,
    })
}

/// The call an assistant line records (none for a message Claude Code made up itself).
fn call_of(response: Response<'_>) -> Result<Option<LoggedCall>, String> {
    if response.model == SYNTHETIC_MODEL {
        return Ok(None);
    }
    let timestamp = parse_rfc3339(response.timestamp).map_err(|e| format!("timestamp: {e}"))?;
    let usage = response.usage;
    let split = usage.cache_creation.unwrap_or(CacheCreation {
        ephemeral_5m_input_tokens: 0,
        ephemeral_1h_input_tokens: 0,
    });
    let tokens = anthropic_counts(
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens,
        [
            usage.cache_creation_input_tokens,
            split.ephemeral_5m_input_tokens,
            split.ephemeral_1h_input_tokens,
        ],
    );
    let id = call_id(response.request_id, Some(response.message_id))
        .ok_or_else(|| "message.id is empty and there is no requestId".to_owned())?;
    Ok(Some(LoggedCall {
        id,
        timestamp,
        provider: "anthropic",
        agent: "claude-code",
        model: response.model,
        tokens,
        session: response.session,
        cwd: response.cwd,
        stop_reason: response.stop_reason,
    }))
}

/// The calls seen so far, one per call: a call written as several lines, or seen again in
/// another file (a resumed session's copy), counts once, with its most complete usage and the
/// time it began.
#[derive(Debug, Default)]
pub struct Calls {
    /// Keyed with foldhash: every assistant line is looked up here, and SipHash was a tenth of
    /// an import's reading.
    by_id: HashMap<String, LoggedCall, foldhash::fast::RandomState>,
    /// Lines that repeated a call already seen.
    pub repeated: u64,
}

impl Calls {
    pub fn add(&mut self, response: LoggedCall) {
        let Some(kept) = self.by_id.get_mut(&response.id) else {
            self.by_id.insert(response.id.clone(), response);
            return;
        };
        self.repeated += 1;
        let completeness = |r: &LoggedCall| (r.tokens.output, r.tokens.total());
        if completeness(&response) > completeness(kept) {
            let first_seen = kept.timestamp.min(response.timestamp);
            *kept = LoggedCall {
                timestamp: first_seen,
                ..response
            };
        } else {
            kept.timestamp = kept.timestamp.min(response.timestamp);
        }
    }

    /// Adds every call another reader found (a line repeated across the two counts as one).
    pub fn merge(&mut self, other: Calls) {
        self.repeated += other.repeated;
        self.by_id.reserve(other.by_id.len());
        for call in other.by_id.into_values() {
            self.add(call);
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every call, oldest first (ties by id, so the order does not depend on the files').
    pub fn into_sorted(self) -> Vec<LoggedCall> {
        let mut calls: Vec<LoggedCall> = self.by_id.into_values().collect();
        // Ids are unique, so an unstable sort gives the one order.
        calls.sort_unstable_by(|a, b| a.timestamp.cmp(&b.timestamp).then_with(|| a.id.cmp(&b.id)));
        calls
    }
}

/// A Codex rollout: lines of `{"timestamp", "type", "payload"}`. The session's id and working
/// directory come from `session_meta`, the model from the latest `turn_context`, each call's
/// usage from a `token_count` event (`last_token_usage`, or the growth of the running total).
#[derive(Debug, Default)]
pub struct CodexLog {
    session: Option<String>,
    cwd: Option<String>,
    model: Option<String>,
    total: Option<CodexUsage>,
}

/// The model named when a rollout never says which (its calls are then unpriced, not guessed).
pub const CODEX_UNKNOWN_MODEL: &str = "unknown";

#[derive(Deserialize)]
struct CodexLine {
    timestamp: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    payload: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct CodexContext {
    id: Option<String>,
    cwd: Option<String>,
    model: Option<String>,
}

#[derive(Deserialize)]
struct TokenCountInfo {
    total_token_usage: CodexUsage,
    last_token_usage: Option<CodexUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
struct CodexUsage {
    input_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    reasoning_output_tokens: u64,
}

impl CodexUsage {
    const ZERO: CodexUsage = CodexUsage {
        input_tokens: 0,
        cached_input_tokens: 0,
        output_tokens: 0,
        reasoning_output_tokens: 0,
    };

    fn minus(self, earlier: CodexUsage) -> CodexUsage {
        CodexUsage {
            input_tokens: self.input_tokens.saturating_sub(earlier.input_tokens),
            cached_input_tokens: self.cached_input_tokens.saturating_sub(earlier.cached_input_tokens),
            output_tokens: self.output_tokens.saturating_sub(earlier.output_tokens),
            reasoning_output_tokens: self
                .reasoning_output_tokens
                .saturating_sub(earlier.reasoning_output_tokens),
        }
    }
}

impl LogReader for CodexLog {
    fn line(&mut self, line: &str) -> Result<Option<LoggedCall>, String> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        let entry: CodexLine = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
        let payload = entry.payload.unwrap_or_default();
        match entry.kind.as_deref() {
            Some("session_meta") | Some("turn_context") => {
                let context: CodexContext =
                    serde_json::from_value(payload).map_err(|e| format!("{}: {e}", entry.kind.unwrap_or_default()))?;
                self.session = context.id.or(self.session.take());
                self.cwd = context.cwd.or(self.cwd.take());
                self.model = context.model.or(self.model.take());
                Ok(None)
            }
            Some("event_msg") if payload.get("type").and_then(|t| t.as_str()) == Some("token_count") => {
                let Some(info) = payload.get("info").filter(|info| !info.is_null()) else {
                    return Ok(None); // rate-limit news only
                };
                let info: TokenCountInfo =
                    serde_json::from_value(info.clone()).map_err(|e| format!("token_count info: {e}"))?;
                let timestamp = entry.timestamp.ok_or("token_count without a timestamp")?;
                let at = parse_rfc3339(&timestamp).map_err(|e| format!("timestamp: {e}"))?;
                let previous = self.total.replace(info.total_token_usage);
                if previous == Some(info.total_token_usage) {
                    return Ok(None); // the same total again: no new call
                }
                let usage = info
                    .last_token_usage
                    .unwrap_or_else(|| info.total_token_usage.minus(previous.unwrap_or(CodexUsage::ZERO)));
                let t = info.total_token_usage;
                let mut hasher = Sha256::new();
                hasher.update(timestamp.as_bytes());
                for count in [
                    t.input_tokens,
                    t.cached_input_tokens,
                    t.output_tokens,
                    t.reasoning_output_tokens,
                ] {
                    hasher.update(count.to_le_bytes());
                }
                Ok(Some(LoggedCall {
                    id: format!("codex:{}", hex::encode(&hasher.finalize()[..16])),
                    timestamp: at,
                    provider: "openai",
                    agent: "codex",
                    model: self.model.clone().unwrap_or_else(|| CODEX_UNKNOWN_MODEL.to_owned()),
                    tokens: openai_counts(
                        usage.input_tokens,
                        usage.cached_input_tokens,
                        usage.output_tokens,
                        usage.reasoning_output_tokens,
                    ),
                    session: self.session.clone(),
                    cwd: self.cwd.clone(),
                    stop_reason: None,
                }))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assistant(message: &str, request: &str, at: &str, output: u64) -> String {
        format!(
            r#"{{"type":"assistant","timestamp":"{at}","requestId":"{request}","sessionId":"s1","cwd":"/home/dev/src/shop","isSidechain":false,"message":{{"id":"{message}","model":"claude-sonnet-4-5","stop_reason":"end_turn","usage":{{"input_tokens":100,"output_tokens":{output},"cache_read_input_tokens":7,"cache_creation_input_tokens":3,"cache_creation":{{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":0}}}}}}}}"#
        )
    }

    #[test]
    fn an_assistant_line_is_one_response_with_its_usage_and_context() {
        let response = parse_claude_line(&assistant("msg_1", "req_1", "2026-11-23T18:55:21.186Z", 40))
            .unwrap()
            .unwrap();
        assert_eq!(response.id, "req:req_1");
        assert_eq!(response.model, "claude-sonnet-4-5");
        assert_eq!(
            response.tokens,
            TokenCounts {
                input: 100,
                output: 40,
                cache_read: 7,
                cache_write_5m: 3,
                cache_write_1h: 0,
                reasoning: 0
            }
        );
        assert_eq!(response.cwd.as_deref(), Some("/home/dev/src/shop"));
        assert_eq!(response.session.as_deref(), Some("s1"));
        assert_eq!(response.timestamp.rfc3339(), "2026-11-23T18:55:21.186Z");
    }

    #[test]
    fn other_lines_are_skipped_and_bad_ones_say_why() {
        for skipped in [
            r#"{"type":"user","message":{"role":"user","content":"hi"}}"#,
            r#"{"type":"queue-operation","operation":"enqueue"}"#,
            r#"{"type":"summary","summary":"x"}"#,
            r#"{"type":"assistant","timestamp":"2026-11-23T18:55:21Z","message":{"id":"m","model":"<synthetic>","usage":{"input_tokens":0,"output_tokens":0}}}"#,
            "   ",
        ] {
            assert_eq!(parse_claude_line(skipped), Ok(None), "{skipped}");
        }
        let not_json = parse_claude_line("{\"type\": \"assistant\", ").unwrap_err();
        assert!(not_json.starts_with("not a JSON object"), "{not_json}");
        let no_usage = parse_claude_line(
            r#"{"type":"assistant","timestamp":"2026-11-23T18:55:21Z","message":{"id":"m","model":"x"}}"#,
        )
        .unwrap_err();
        assert!(no_usage.contains("usage"), "{no_usage}");
        let wrong_type = parse_claude_line(
            r#"{"type":"assistant","timestamp":"2026-11-23T18:55:21Z","message":{"id":"m","model":"x","usage":{"input_tokens":"12"}}}"#,
        )
        .unwrap_err();
        assert!(wrong_type.contains("invalid type"), "{wrong_type}");
        let bad_time = parse_claude_line(&assistant("m", "r", "yesterday", 1)).unwrap_err();
        assert!(bad_time.starts_with("timestamp"), "{bad_time}");
    }

    #[test]
    fn a_response_written_as_several_lines_counts_once_with_its_final_usage() {
        let mut responses = Calls::default();
        for (at, output) in [
            ("2026-11-23T18:55:23.748Z", 1),
            ("2026-11-23T18:55:23.782Z", 8),
            ("2026-11-23T18:55:23.790Z", 8),
        ] {
            responses.add(
                parse_claude_line(&assistant("msg_1", "req_1", at, output))
                    .unwrap()
                    .unwrap(),
            );
        }
        responses.add(
            parse_claude_line(&assistant("msg_2", "req_2", "2026-11-23T18:55:24Z", 3))
                .unwrap()
                .unwrap(),
        );
        assert_eq!((responses.len(), responses.repeated), (2, 2));
        let kept = responses.into_sorted();
        assert_eq!(
            kept[0].tokens.output, 8,
            "the placeholder count is replaced by the final one"
        );
        assert_eq!(
            kept[0].timestamp.rfc3339(),
            "2026-11-23T18:55:23.748Z",
            "when the response began"
        );
    }

    fn codex_count(at: &str, total: [u64; 4], last: Option<[u64; 4]>) -> String {
        let usage = |[input, cached, output, reasoning]: [u64; 4]| {
            format!(
                r#"{{"input_tokens":{input},"cached_input_tokens":{cached},"cache_write_input_tokens":0,"output_tokens":{output},"reasoning_output_tokens":{reasoning},"total_tokens":{}}}"#,
                input + output
            )
        };
        let last = last.map_or("null".to_owned(), usage);
        format!(
            r#"{{"timestamp":"{at}","type":"event_msg","payload":{{"type":"token_count","info":{{"total_token_usage":{},"last_token_usage":{last},"model_context_window":258400}},"rate_limits":{{}}}}}}"#,
            usage(total)
        )
    }

    const CODEX_START: [&str; 3] = [
        r#"{"timestamp":"2026-11-23T18:55:26.085Z","type":"session_meta","payload":{"id":"s-1","cwd":"/home/dev/src/demo-codex","cli_version":"0.169.0"}}"#,
        r#"{"timestamp":"2026-11-23T18:55:26.169Z","type":"turn_context","payload":{"turn_id":"t1","cwd":"/home/dev/src/demo-codex","model":"gpt-5-codex"}}"#,
        r#"{"timestamp":"2026-11-23T18:55:26.200Z","type":"event_msg","payload":{"type":"token_count","info":null,"rate_limits":{}}}"#,
    ];

    fn read(reader: &mut impl LogReader, lines: &[String]) -> Vec<LoggedCall> {
        lines.iter().filter_map(|l| reader.line(l).unwrap()).collect()
    }

    #[test]
    fn codex_calls_come_from_token_counts_with_openai_conventions_undone() {
        let mut lines: Vec<String> = CODEX_START.iter().map(|l| (*l).to_owned()).collect();
        lines.push(codex_count(
            "2026-11-23T18:55:26.352Z",
            [5284, 0, 5, 0],
            Some([5284, 0, 5, 0]),
        ));
        lines.push(codex_count(
            "2026-11-23T18:55:26.360Z",
            [5284, 0, 5, 0],
            Some([5284, 0, 5, 0]),
        ));
        lines.push(codex_count("2026-11-23T18:56:00Z", [7284, 1500, 105, 40], None));
        let calls = read(&mut CodexLog::default(), &lines);
        assert_eq!(calls.len(), 2, "a repeated total is not a new call");
        assert_eq!(calls[0].model, "gpt-5-codex");
        assert_eq!((calls[0].provider, calls[0].agent), ("openai", "codex"));
        assert_eq!(calls[0].session.as_deref(), Some("s-1"));
        assert_eq!(calls[0].tokens.input, 5284);
        assert_eq!(
            calls[1].tokens,
            TokenCounts {
                input: 500,
                cache_read: 1500,
                output: 60,
                reasoning: 40,
                ..TokenCounts::default()
            },
            "without last_token_usage, the growth of the total; cached input and reasoning taken out"
        );
    }

    #[test]
    fn a_forked_codex_session_replays_its_parent_once() {
        let mut parent: Vec<String> = CODEX_START.iter().map(|l| (*l).to_owned()).collect();
        parent.push(codex_count(
            "2026-11-23T18:55:30Z",
            [1000, 0, 10, 0],
            Some([1000, 0, 10, 0]),
        ));
        parent.push(codex_count(
            "2026-11-23T18:56:30Z",
            [2500, 900, 30, 0],
            Some([1500, 900, 20, 0]),
        ));
        let mut fork = parent.clone();
        fork[0] = fork[0].replace("s-1", "s-2");
        fork.push(codex_count(
            "2026-11-23T19:10:00Z",
            [4000, 900, 50, 0],
            Some([1500, 0, 20, 0]),
        ));
        let mut calls = Calls::default();
        for file in [&parent, &fork] {
            for call in read(&mut CodexLog::default(), file) {
                calls.add(call);
            }
        }
        assert_eq!((calls.len(), calls.repeated), (3, 2));
        let output: u64 = calls.into_sorted().iter().map(|c| c.tokens.output).sum();
        assert_eq!(output, 50, "the session's own total, not the parent's twice");
    }

    #[test]
    fn codex_lines_that_cannot_be_read_say_why() {
        let mut log = CodexLog::default();
        assert!(
            log.line("{\"timestamp\": ")
                .unwrap_err()
                .starts_with("not a JSON object")
        );
        let wrong = codex_count("2026-11-23T18:55:30Z", [1, 0, 1, 0], None)
            .replace("\"output_tokens\":1", "\"output_tokens\":\"1\"");
        assert!(log.line(&wrong).unwrap_err().starts_with("token_count info"));
        let call = log
            .line(&codex_count("2026-11-23T18:55:31Z", [2, 0, 2, 0], None))
            .unwrap()
            .unwrap();
        assert_eq!(
            call.model, CODEX_UNKNOWN_MODEL,
            "no turn_context: unpriced, not guessed"
        );
        assert_eq!(log.line(r#"{"type":"response_item","payload":{}}"#), Ok(None));
    }

    /// `parse_claude_line` as it was before the one-pass reading: the fast skip, then the two
    /// strict passes for every other line.
    fn as_before(line: &str) -> Result<Option<LoggedCall>, String> {
        let line = line.trim();
        if line.is_empty() || (line.ends_with('}') && !line.contains("assistant")) {
            return Ok(None);
        }
        parse_claude_line_strictly(line)
    }

    /// `line` cut at byte `at` (or the nearest character boundary before it).
    fn cut_short(line: &str, at: usize) -> String {
        let mut at = at.min(line.len());
        while !line.is_char_boundary(at) {
            at -= 1;
        }
        line[..at].to_owned()
    }

    /// Whitespace JSON allows between tokens.
    fn whitespace() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop::sample::select(vec!["", "", " ", "  ", "\t", "\r"]), 8)
            .prop_map(|parts| parts.concat())
    }

    /// `{"key":value,…}` with `pad` around every token.
    fn object(fields: &[(String, String)], pad: &str) -> String {
        let body: Vec<String> = fields
            .iter()
            .map(|(key, value)| format!("{pad}\"{key}\"{pad}:{pad}{value}{pad}"))
            .collect();
        format!("{pad}{{{}}}{pad}", body.join(","))
    }

    /// An API response's fields in any order, among fields Claude Code writes beside them.
    fn response_fields() -> impl Strategy<Value = Vec<(String, String)>> {
        let usage = r#"{"input_tokens":100,"output_tokens":40,"cache_read_input_tokens":7,"cache_creation_input_tokens":3,"cache_creation":{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":0}}"#;
        let message = [
            ("id", r#""msg_1""#),
            ("type", r#""message""#),
            ("role", r#""assistant""#),
            ("model", r#""claude-sonnet-4-5""#),
            ("content", r#"[{"type":"text","text":"} {\"type\":\"user\"} \u00e9"}]"#),
            ("stop_reason", r#""end_turn""#),
            ("usage", usage),
        ];
        let top = [
            ("parentUuid", r#"null"#),
            ("isSidechain", "false"),
            ("requestId", r#""req_1""#),
            ("type", r#""assistant""#),
            ("timestamp", r#""2026-11-23T18:55:21.186Z""#),
            ("sessionId", r#""s1""#),
            ("cwd", r#""/home/dev/src/shop""#),
            ("gitBranch", r#""main""#),
        ];
        let pairs = |fields: &[(&str, &str)]| -> Vec<(String, String)> {
            fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        (
            Just(pairs(&message)).prop_shuffle(),
            Just(pairs(&top)).prop_shuffle(),
            0..=top.len(),
            whitespace(),
        )
            .prop_map(|(message, mut top, at, pad)| {
                top.insert(at, ("message".to_owned(), object(&message, &pad)));
                top
            })
    }

    /// Lines of every shape: responses, other lines, and either with fields missing,
    /// mistyped, repeated or out of place.
    fn claude_line() -> impl Strategy<Value = String> {
        let value = prop::sample::select(vec![
            r#""assistant""#,
            r#""user""#,
            r#""2026-11-23T18:55:21Z""#,
            r#""yesterday""#,
            r#""""#,
            r#""<synthetic>""#,
            "null",
            "12",
            "-1",
            "1.5",
            "true",
            "[]",
            r#"["assistant"]"#,
            "{}",
            r#"{"input_tokens":"12"}"#,
            r#"{"input_tokens":5,"output_tokens":9}"#,
            r#"{"ephemeral_1h_input_tokens":4}"#,
            r#""assist\u0061nt""#,
            r#""C:\\src\\shop""#,
            r#""2026-11-23T18:55:21\u002e5Z""#,
        ]);
        let key = prop::sample::select(vec![
            "type",
            "timestamp",
            "message",
            "requestId",
            "sessionId",
            "cwd",
            "id",
            "model",
            "usage",
            "stop_reason",
            "cache_creation",
            "input_tokens",
            "role",
            "other",
        ]);
        let field = (key, value).prop_map(|(k, v)| (k.to_owned(), v.to_owned()));
        let message = proptest::collection::vec(field.clone(), 0..6).prop_map(|fields| object(&fields, ""));
        let top = proptest::collection::vec(
            prop_oneof![
                3 => field,
                1 => message.prop_map(|m| ("message".to_owned(), m)),
            ],
            0..7,
        );
        prop_oneof![
            2 => (response_fields(), whitespace()).prop_map(|(f, pad)| object(&f, &pad)),
            3 => (top, whitespace()).prop_map(|(f, pad)| object(&f, &pad)),
            1 => (response_fields(), any::<prop::sample::Index>(), field_edit()).prop_map(|(mut f, i, (k, v))| {
                let at = i.index(f.len());
                f[at] = (k, v);
                object(&f, "")
            }),
        ]
    }

    /// A field to put in place of one of a response's.
    fn field_edit() -> impl Strategy<Value = (String, String)> {
        (
            prop::sample::select(vec!["type", "timestamp", "message", "requestId", "cwd", "requestId"]),
            prop::sample::select(vec![
                "null",
                "7",
                r#""""#,
                r#""x""#,
                "{}",
                r#"{"id":"m","model":"x","usage":{}}"#,
            ]),
        )
            .prop_map(|(k, v)| (k.to_owned(), v.to_owned()))
    }

    #[test]
    fn a_response_line_cut_short_is_reported() {
        let fixture = include_str!("../../cli/tests/fixtures/claude-code/claude_code.session1.jsonl");
        let responses: Vec<&str> = fixture
            .lines()
            .filter(|l| matches!(parse_claude_line(l), Ok(Some(_))))
            .collect();
        assert!(!responses.is_empty());
        for line in responses {
            for at in 1..line.trim_end().len() {
                let cut = cut_short(line, at);
                if cut.trim().is_empty() {
                    continue;
                }
                assert!(parse_claude_line(&cut).is_err(), "{cut}");
            }
        }
    }

    proptest! {
        #[test]
        fn the_kept_responses_do_not_depend_on_line_order(
            outputs in proptest::collection::vec((0u8..4, 0u64..50), 1..30),
            seed in any::<u64>(),
        ) {
            let lines: Vec<String> = outputs
                .iter()
                .enumerate()
                .map(|(i, (message, output))| {
                    assistant(&format!("msg_{message}"), &format!("req_{message}"), &format!("2026-11-23T18:55:{:02}Z", i % 60), *output)
                })
                .collect();
            let collect = |order: &[String]| {
                let mut responses = Calls::default();
                for line in order {
                    responses.add(parse_claude_line(line).unwrap().unwrap());
                }
                responses.into_sorted()
            };
            let mut shuffled = lines.clone();
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(collect(&lines), collect(&shuffled));
        }

        #[test]
        fn no_line_makes_the_parser_panic(line in ".{0,300}") {
            let _ = parse_claude_line(&line);
        }

        #[test]
        fn one_pass_answers_as_the_two_strict_passes_did(line in claude_line(), cut in any::<prop::sample::Index>(), cut_it in any::<bool>()) {
            let line = if cut_it { cut_short(&line, cut.index(line.len() + 1)) } else { line };
            prop_assert_eq!(parse_claude_line(&line), as_before(&line), "{}", line);
        }

        #[test]
        fn a_response_line_is_never_skipped(fields in response_fields(), pad in whitespace()) {
            let line = object(&fields, &pad);
            let call = parse_claude_line(&line);
            prop_assert!(matches!(&call, Ok(Some(c)) if c.id == "req:req_1" && c.tokens.output == 40), "{:?} {}", call, line);
        }
    }
}
