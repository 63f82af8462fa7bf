//! Coding agents' local logs, read into usage: Claude Code's session logs
//! (`~/.claude/projects/<project>/<session>.jsonl`, subagents' logs beside them).
//!
//! Claude Code writes one line per content block of an API response, each repeating the
//! message's id and usage, and older versions wrote placeholder counts on the first lines of
//! a streamed message. One API response is one `(message id, request id)`; [`Responses`] keeps
//! one record per response, the one with the most complete usage. Lines that are not API
//! responses (prompts, tool results, attachments, queue operations) are skipped; a line that
//! is not JSON, or an assistant line with a missing or mistyped field, is an error naming the
//! field — the caller reports it with its file and line and goes on.

use std::collections::HashMap;

use serde::Deserialize;

use crate::Micros;
use crate::time::parse_rfc3339;
use crate::usage::TokenCounts;

/// The model Claude Code names on messages it made up itself (no API call, no usage).
const SYNTHETIC_MODEL: &str = "<synthetic>";

/// One API response as a Claude Code log line records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaudeResponse {
    pub message_id: String,
    pub request_id: Option<String>,
    pub timestamp: Micros,
    pub model: String,
    pub tokens: TokenCounts,
    pub session: Option<String>,
    /// The working directory the session ran in.
    pub cwd: Option<String>,
    /// Written by a subagent (a sidechain of the main conversation).
    pub subagent: bool,
    pub stop_reason: Option<String>,
}

impl ClaudeResponse {
    /// The usage event id of this response, the same whichever log line or file it came from.
    pub fn event_id(&self) -> String {
        match &self.request_id {
            Some(request) => format!("claude-code:{}:{request}", self.message_id),
            None => format!("claude-code:{}", self.message_id),
        }
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
    #[serde(default)]
    is_sidechain: bool,
}

#[derive(Deserialize)]
struct Message {
    id: String,
    model: String,
    usage: Usage,
    stop_reason: Option<String>,
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

/// Reads one log line: `Ok(Some)` for an API response, `Ok(None)` for any other line, `Err`
/// with the reason for a line that cannot be read.
pub fn parse_claude_line(line: &str) -> Result<Option<ClaudeResponse>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let kind: Line = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if kind.kind.as_deref() != Some("assistant") {
        return Ok(None);
    }
    let entry: AssistantLine = serde_json::from_str(line).map_err(|e| format!("assistant line: {e}"))?;
    if entry.message.model == SYNTHETIC_MODEL {
        return Ok(None);
    }
    let timestamp = parse_rfc3339(&entry.timestamp).map_err(|e| format!("timestamp: {e}"))?;
    let usage = entry.message.usage;
    // `cache_creation` splits the writes by lifetime; older lines only have the total.
    let (cache_write_5m, cache_write_1h) = match usage.cache_creation {
        Some(split) if split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens > 0 => {
            (split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens)
        }
        _ => (usage.cache_creation_input_tokens, 0),
    };
    Ok(Some(ClaudeResponse {
        message_id: entry.message.id,
        request_id: entry.request_id,
        timestamp,
        model: entry.message.model,
        tokens: TokenCounts {
            input: usage.input_tokens,
            output: usage.output_tokens,
            cache_read: usage.cache_read_input_tokens,
            cache_write_5m,
            cache_write_1h,
            reasoning: 0,
        },
        session: entry.session_id,
        cwd: entry.cwd,
        subagent: entry.is_sidechain,
        stop_reason: entry.message.stop_reason,
    }))
}

/// API responses seen so far, one per response: a response written as several lines, or seen
/// again in another file (a resumed session's copy), counts once, with its most complete usage.
#[derive(Debug, Default)]
pub struct Responses {
    by_id: HashMap<String, ClaudeResponse>,
    /// Lines that repeated a response already seen.
    pub repeated: u64,
}

impl Responses {
    pub fn add(&mut self, response: ClaudeResponse) {
        use std::collections::hash_map::Entry;
        match self.by_id.entry(response.event_id()) {
            Entry::Vacant(slot) => {
                slot.insert(response);
            }
            Entry::Occupied(mut kept) => {
                self.repeated += 1;
                let completeness = |r: &ClaudeResponse| (r.tokens.output, r.tokens.total());
                let kept = kept.get_mut();
                if completeness(&response) > completeness(kept) {
                    let first_seen = kept.timestamp.min(response.timestamp);
                    *kept = ClaudeResponse {
                        timestamp: first_seen,
                        ..response
                    };
                } else {
                    kept.timestamp = kept.timestamp.min(response.timestamp);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every response, oldest first (ties by id, so the order does not depend on the files').
    pub fn into_sorted(self) -> Vec<ClaudeResponse> {
        let mut responses: Vec<ClaudeResponse> = self.by_id.into_values().collect();
        responses.sort_by(|a, b| {
            a.timestamp
                .cmp(&b.timestamp)
                .then_with(|| a.message_id.cmp(&b.message_id))
        });
        responses
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
        assert_eq!(response.event_id(), "claude-code:msg_1:req_1");
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
        let mut responses = Responses::default();
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
                let mut responses = Responses::default();
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
    }
}
