//! The usage record of one call through the gateway, made from what was known before the
//! provider answered ([`CallFacts`]) and what its answer said ([`CallResult`]): which token
//! counts to believe (reported, or estimated and marked so), the fingerprints, the content
//! policy. Pure: the gateway prices, settles and spools the event it returns.

use crate::Micros;
use crate::fingerprint::Fingerprints;
use crate::providers::ReportedUsage;
use crate::requests::{Endpoint, PromptText};
use crate::usage::{Attribution, CallMeta, Content, Source, TokenCounts, UsageEvent};

/// What the gateway knows of a call before its response arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    /// The event id (from the provider's request id, known once the response's headers are).
    pub id: String,
    pub key_id: String,
    pub attribution: Attribution,
    /// The provider the call was routed to.
    pub provider: String,
    pub endpoint: Endpoint,
    /// The model name sent upstream (used when the provider does not echo one).
    pub model: String,
    pub started_at: Micros,
    pub max_tokens: Option<u64>,
    pub stream: bool,
    /// The request's text, read once from its body (which is then dropped).
    pub prompt: PromptText,
    /// Keep prompt and completion text in the record (an explicit opt-in).
    pub store_content: bool,
}

/// What the provider's answer told the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallResult {
    pub status: u16,
    pub reported: Option<ReportedUsage>,
    pub response_id: Option<String>,
    pub output_text: String,
    /// From the request arriving to the response's end.
    pub latency_micros: u64,
    /// From the request arriving to the response body's first byte.
    pub ttft_micros: Option<u64>,
    pub upstream_request_id: Option<String>,
    /// The response ended as the protocol says a response ends.
    pub complete: bool,
    pub client_disconnected: bool,
    /// The provider had the call but its answer never came (the client left first, or the
    /// wait for its headers timed out): it may bill the call, so the input is estimated.
    pub unanswered: bool,
}

/// The usage event of one gateway call. `count_tokens` estimates a text's tokens; it is called
/// only when the provider's own counts are missing or cut short.
pub fn gateway_event(facts: &CallFacts, result: CallResult, count_tokens: impl Fn(&str) -> u64) -> UsageEvent {
    let success = (200..300).contains(&result.status);
    let (tokens, estimated) = match &result.reported {
        // A stream cut short reports its input but only part of its output.
        Some(reported) if !result.complete && success => {
            let mut tokens = reported.tokens;
            tokens.output = tokens.output.max(count_tokens(&result.output_text));
            (tokens, true)
        }
        Some(reported) => (reported.tokens, false),
        None if success || result.unanswered => {
            let mut tokens = TokenCounts {
                input: count_tokens(&facts.prompt.full),
                ..Default::default()
            };
            if facts.endpoint != Endpoint::Embeddings {
                tokens.output = count_tokens(&result.output_text);
            }
            (tokens, true)
        }
        // An error the provider answered before doing any work: nothing was consumed.
        None => (TokenCounts::default(), false),
    };
    let (model, finish_reason) = match result.reported {
        Some(reported) => (reported.model, reported.finish_reason),
        None => (None, None),
    };
    let prompt = (!facts.prompt.last_turn.is_empty()).then_some(facts.prompt.last_turn.as_str());
    let output = (!result.output_text.is_empty()).then_some(result.output_text.as_str());
    let fingerprints = Fingerprints::of(prompt, output);
    let content = (facts.store_content && (prompt.is_some() || output.is_some())).then(|| Content {
        prompt: Some(facts.prompt.full.clone()),
        completion: output.map(str::to_owned),
    });
    UsageEvent {
        id: facts.id.clone(),
        timestamp: facts.started_at,
        attribution: facts.attribution.clone(),
        provider: Some(facts.provider.clone()),
        model: model.unwrap_or_else(|| facts.model.clone()),
        tokens,
        finish_reason,
        fingerprints,
        content,
        source: Source::Gateway,
        estimated,
        call: Some(CallMeta {
            key_id: facts.key_id.clone(),
            endpoint: facts.endpoint.as_str().to_owned(),
            status: result.status,
            stream: facts.stream,
            latency_micros: result.latency_micros,
            ttft_micros: result.ttft_micros,
            max_tokens: facts.max_tokens,
            upstream_request_id: result.upstream_request_id,
            response_id: result.response_id,
            client_disconnected: result.client_disconnected,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per word: enough to see which text was estimated.
    fn words(text: &str) -> u64 {
        text.split_whitespace().count() as u64
    }

    fn facts(endpoint: Endpoint) -> CallFacts {
        CallFacts {
            id: "gw-1".into(),
            key_id: "k1".into(),
            attribution: Attribution {
                user: "alice".into(),
                ..Default::default()
            },
            provider: "openai".into(),
            endpoint,
            model: "gpt-4o-mini".into(),
            started_at: Micros(1_000),
            max_tokens: Some(32),
            stream: true,
            prompt: PromptText {
                full: "system words then the question".into(),
                last_turn: "the question".into(),
            },
            store_content: false,
        }
    }

    fn reported(input: u64, output: u64) -> Option<ReportedUsage> {
        Some(ReportedUsage {
            tokens: TokenCounts {
                input,
                output,
                ..Default::default()
            },
            model: Some("gpt-4o-mini-2024".into()),
            finish_reason: Some("stop".into()),
        })
    }

    #[test]
    fn reported_usage_is_believed_and_the_reported_model_wins() {
        let result = CallResult {
            status: 200,
            reported: reported(10, 2),
            output_text: "two words".into(),
            latency_micros: 50,
            ttft_micros: Some(20),
            complete: true,
            ..Default::default()
        };
        let event = gateway_event(&facts(Endpoint::ChatCompletions), result, words);
        assert!(!event.estimated);
        assert_eq!((event.tokens.input, event.tokens.output), (10, 2));
        assert_eq!(event.model, "gpt-4o-mini-2024");
        assert_eq!(event.finish_reason.as_deref(), Some("stop"));
        assert_eq!(event.source, Source::Gateway);
        assert_eq!(event.content, None, "content is an opt-in");
        assert!(event.fingerprints.prompt_simhash.is_some());
        let call = event.call.unwrap();
        assert_eq!(
            (call.endpoint.as_str(), call.status, call.latency_micros),
            ("chat_completions", 200, 50)
        );
    }

    #[test]
    fn a_stream_cut_short_keeps_the_reported_input_and_estimates_the_output() {
        let result = CallResult {
            status: 200,
            reported: reported(10, 1),
            output_text: "one two three".into(),
            complete: false,
            ..Default::default()
        };
        let event = gateway_event(&facts(Endpoint::Messages), result, words);
        assert!(event.estimated);
        assert_eq!((event.tokens.input, event.tokens.output), (10, 3));
    }

    #[test]
    fn missing_usage_is_estimated_from_the_prompt_read_at_the_start() {
        let result = CallResult {
            status: 200,
            output_text: "a b".into(),
            complete: true,
            ..Default::default()
        };
        let event = gateway_event(&facts(Endpoint::ChatCompletions), result.clone(), words);
        assert!(event.estimated);
        assert_eq!((event.tokens.input, event.tokens.output), (5, 2));
        assert_eq!(event.model, "gpt-4o-mini", "the model sent upstream");
        let embedded = gateway_event(&facts(Endpoint::Embeddings), result, words);
        assert_eq!(embedded.tokens.output, 0, "embeddings have no output");
    }

    #[test]
    fn a_call_the_provider_had_but_never_answered_is_billed_its_input() {
        let result = CallResult {
            status: 499,
            client_disconnected: true,
            unanswered: true,
            ..Default::default()
        };
        let event = gateway_event(&facts(Endpoint::ChatCompletions), result, words);
        assert!(event.estimated);
        assert_eq!((event.tokens.input, event.tokens.output), (5, 0));
        assert_eq!(event.call.unwrap().status, 499);
    }

    #[test]
    fn an_error_before_any_work_consumed_nothing_and_content_is_kept_only_when_asked() {
        let refused = gateway_event(
            &facts(Endpoint::ChatCompletions),
            CallResult {
                status: 429,
                ..Default::default()
            },
            words,
        );
        assert!(!refused.estimated);
        assert_eq!(refused.tokens, TokenCounts::default());
        let mut storing = facts(Endpoint::ChatCompletions);
        storing.store_content = true;
        let result = CallResult {
            status: 200,
            reported: reported(1, 1),
            output_text: "hi".into(),
            complete: true,
            ..Default::default()
        };
        let kept = gateway_event(&storing, result, words).content.unwrap();
        assert_eq!(kept.prompt.as_deref(), Some("system words then the question"));
        assert_eq!(kept.completion.as_deref(), Some("hi"));
    }
}
