//! The gateway's own work per call, apart from the network: reading the request, and making
//! and spooling the usage record of a typical non-streamed chat completion (prompt text,
//! fingerprints, price, JSON, one `write` to the spool), plus the same for a streamed one
//! tapped with text collection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a benchmark stops at the first broken step of its setup, and spawns what it drives freely"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use goodhart_core::Micros;
use goodhart_core::calls::CallFacts;
use goodhart_core::pricing::PriceTable;
use goodhart_core::providers::{StreamTap, WireProtocol, usage_from_body};
use goodhart_core::requests::{self, Endpoint};
use goodhart_core::sse::SseParser;
use goodhart_core::usage::Attribution;
use goodhart_gateway::limits::Limiter;
use goodhart_gateway::metrics::Metrics;
use goodhart_gateway::proxy::adapter;
use goodhart_gateway::proxy::plan::CallPlan;
use goodhart_gateway::proxy::record::{Outcome as CallOutcome, Recording};
use goodhart_gateway::recorder::Recorder;
use goodhart_gateway::services::Services;
use goodhart_store::spool::Spool;
use serde_json::Value;

const REQUEST: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence, please."}],"max_tokens":32}"#;
const RESPONSE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1790000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock LLM. lorem ipsum dolor sit amet lorem ipsum dolor sit amet lorem"},"finish_reason":"stop"}],"usage":{"prompt_tokens":22,"completion_tokens":16,"total_tokens":38,"prompt_tokens_details":{"cached_tokens":0}}}"#;

fn stream_body() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..16 {
        s.push_str(&format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    s.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":22,\"completion_tokens\":16}}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

/// A planned call, as the plan phase leaves it (the prompt read from `request` there).
fn context(services: &Arc<Services>, request: Value) -> Recording {
    let openai = adapter::of(goodhart_core::requests::Protocol::OpenAi);
    Recording {
        services: Arc::clone(services),
        admission: None,
        plan: CallPlan {
            adapter: openai,
            started: Instant::now(),
            strip_usage_chunk: false,
            metered: true,
            input_estimate: 64,
            max_output: 32,
            path_model: None,
            pinned_model: false,
            translation: None,
            facts: CallFacts {
                id: "gw-0123456789abcdef0123456789abcdef".into(),
                key_id: "0123456789ab".into(),
                attribution: Attribution {
                    user: "alice".into(),
                    team: Some("payments".into()),
                    ..Default::default()
                },
                provider: "openai".into(),
                endpoint: Endpoint::ChatCompletions,
                model: "gpt-4o-mini".into(),
                started_at: Micros(1_790_000_000_000_000),
                max_tokens: Some(32),
                stream: false,
                prompt: openai.prompt(Endpoint::ChatCompletions, &request),
                store_content: false,
            },
        },
    }
}

fn record(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let recorder = Arc::new(Recorder::new(
        Spool::open(dir.path()).unwrap(),
        false,
        Arc::clone(&metrics),
    ));
    let prices = Arc::new(PriceTable::builtin());
    // The record path never asks the limiter (no admission to settle), but services hold one.
    let sqlite = goodhart_store::testing::TestDatabase::sqlite();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(sqlite.open()).unwrap();
    let services = Arc::new(Services {
        prices: Arc::clone(&prices),
        recorder: Arc::clone(&recorder),
        metrics: Arc::clone(&metrics),
        limits: Limiter::new(
            store,
            "bench".into(),
            goodhart_core::budgets::WhenUnreachable::FailClosed,
        ),
        alerts: goodhart_gateway::alerts::AlertSink::disconnected(),
        end_streams: tokio_util::sync::CancellationToken::new(),
    });
    let mut group = c.benchmark_group("gateway call");
    group.bench_function("read request (parse, facts)", |b| {
        b.iter(|| {
            let json: Value = serde_json::from_slice(black_box(REQUEST.as_bytes())).unwrap();
            black_box(requests::request_facts(&json))
        })
    });
    group.bench_function(
        "record non-streamed chat (parse response, fingerprint, price, spool)",
        |b| {
            b.iter(|| {
                let call = context(&services, serde_json::from_str(REQUEST).unwrap());
                let parsed: Value = serde_json::from_slice(black_box(RESPONSE.as_bytes())).unwrap();
                call.record(CallOutcome {
                    status: 200,
                    reported: usage_from_body(WireProtocol::OpenAiChat, &parsed),
                    response_id: requests::response_id(&parsed),
                    output_text: requests::output_text(Endpoint::ChatCompletions, &parsed),
                    first_byte: Some(Instant::now()),
                    upstream_request_id: Some("req_1".into()),
                    complete: true,
                    client_disconnected: false,
                    unanswered: false,
                });
            })
        },
    );
    let stream = stream_body();
    group.bench_function("tap and record streamed chat (16 chunks)", |b| {
        b.iter(|| {
            let call = context(&services, serde_json::from_str(REQUEST).unwrap());
            let (mut parser, mut tap, mut events) = (
                SseParser::new(),
                StreamTap::collecting_text(WireProtocol::OpenAiChat),
                Vec::new(),
            );
            for chunk in black_box(&stream).split_inclusive(|&b| b == b'\n') {
                parser.push(chunk, &mut events);
                events.drain(..).for_each(|e| tap.observe(&e));
            }
            let (text, id) = (tap.output_text().to_owned(), tap.response_id().map(str::to_owned));
            call.record(CallOutcome {
                status: 200,
                reported: tap.finish(),
                response_id: id,
                output_text: text,
                first_byte: Some(Instant::now()),
                upstream_request_id: None,
                complete: true,
                client_disconnected: false,
                unanswered: false,
            });
        })
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
