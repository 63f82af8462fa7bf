//! What providers do wrong, through the gateway (issue 22, item 4): streams that hang after
//! their headers, break, turn to garbage or carry a gigantic event, and 5xx and 429 storms, on
//! each wire protocol. Every call must end for its client in a way its SDK understands (an
//! in-band error event where a 200 already went out), be recorded once with what was used,
//! and give back its reservation — with nothing left behind: no call holding a reservation, no
//! stream open, no task alive that was not there before.

use std::time::{Duration, Instant};

use bytes::Bytes;
use goodhart_store::testing::TestDatabase;
use serde_json::json;

use crate::common::{TestServer, metric_in, start_configured};

/// A fault and the model name that asks the mock for it.
const FAULTS: [(&str, &str); 7] = [
    ("hang after headers", "chaos-fault-hang"),
    ("reset mid-stream", "chaos-fault-reset"),
    ("malformed SSE", "chaos-fault-garbage"),
    ("20 MiB event", "chaos-fault-huge"),
    ("in-band error", "chaos-error-mid"),
    ("5xx answers", "chaos-error-before"),
    ("429 answers", "chaos-rate-limited"),
];

/// Each fault's model priced, so that the hard cap below reserves every call.
fn prices() -> String {
    FAULTS
        .iter()
        .map(|(_, model)| {
            format!("[[prices.model]]\nprovider = \"mock\"\nmodel = \"{model}\"\ninput = \"0.15\"\noutput = \"0.60\"\n")
        })
        .collect()
}

/// A streamed call on each protocol: (path, body).
fn calls(model: &str) -> [(&'static str, String); 3] {
    [
        (
            "/v1/chat/completions",
            json!({"model": model, "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 50,
                "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        ),
        (
            "/v1/responses",
            json!({"model": model, "stream": true, "max_output_tokens": 50, "input": "hi"}).to_string(),
        ),
        (
            "/v1/messages",
            json!({"model": model, "stream": true, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        ),
    ]
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Runs `during` while `/healthz` is asked every 20 ms on a fresh connection; returns its
/// result and the probes' 99th percentile latency.
async fn healthz_p99_during<T>(server: &TestServer, during: impl std::future::Future<Output = T>) -> (T, Duration) {
    let done = std::cell::Cell::new(false);
    let mut samples = Vec::new();
    let work = async {
        let result = during.await;
        done.set(true);
        result
    };
    let probe = async {
        while !done.get() {
            let started = Instant::now();
            let reply = server.send("GET", "/healthz", &[], Bytes::new()).await;
            assert_eq!(reply.status, 200);
            samples.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (result, ()) = tokio::join!(work, probe);
    samples.sort_unstable();
    let p99 = samples.get(samples.len() * 99 / 100).copied().unwrap_or_default();
    (result, p99)
}

#[tokio::test]
async fn chaos_upstream_faults_end_every_call_cleanly_record_it_once_and_leak_nothing() {
    let server = start_configured(TestDatabase::sqlite(), &prices(), |config| {
        config.gateway.upstream_timeout = Duration::from_secs(1);
    })
    .await;
    let key = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await.1;
    server
        .create_budget(json!({"scope": "org", "period": "month", "limit_usd": "1000", "action": "block"}))
        .await;
    // Warm up (the first call starts the recorder's and the pools' work), then take the baseline.
    let warm = calls("gpt-4o-mini");
    server.with_token(&key, "POST", warm[0].0, warm[0].1.clone()).await;
    server.flush().await;
    let before = server.send("GET", "/metrics", &[], Bytes::new()).await.text;
    let (tasks_before, rss_before) = (metric_in(&before, "goodhart_gateway_runtime_alive_tasks"), rss_mib());
    let mut attempted = 0;
    let mut rows = Vec::new();
    for (fault, model) in FAULTS {
        let started = Instant::now();
        let (replies, healthz_p99) = healthz_p99_during(&server, async {
            let mut replies = Vec::new();
            for round in 0..2 {
                for (path, body) in calls(model) {
                    let reply = server.with_token(&key, "POST", path, body).await;
                    replies.push((round, path, reply.status, reply.text));
                }
            }
            replies
        })
        .await;
        attempted += replies.len();
        for (round, path, status, text) in &replies {
            match *status {
                200 => {
                    let tail = &text[text.len().saturating_sub(2_000)..];
                    let whole = ["[DONE]", "response.completed", "message_stop"]
                        .iter()
                        .any(|t| tail.contains(t));
                    let in_band_error = tail.contains("error");
                    assert!(
                        whole || in_band_error,
                        "{fault} on {path}: a 200 ends whole or with an in-band error, not cut: …{}",
                        &tail[tail.len().saturating_sub(300)..]
                    );
                }
                // The provider's own error status, or its connection lost before any answer.
                429 | 500 | 502 | 529 => {}
                other => panic!("{fault} on {path}, round {round}: status {other}: {text}"),
            }
        }
        let whole = replies
            .iter()
            .filter(|r| {
                r.2 == 200
                    && ["[DONE]", "response.completed", "message_stop"]
                        .iter()
                        .any(|t| r.3.contains(t))
            })
            .count();
        rows.push((fault, model, replies.len(), whole, started.elapsed(), healthz_p99));
    }
    server.flush().await;
    let recorded = crate::common::recorded(&server).await;
    let after = server.send("GET", "/metrics", &[], Bytes::new()).await.text;
    assert_eq!(
        metric_in(&after, "goodhart_gateway_admissions_in_flight"),
        0,
        "reservations held"
    );
    assert_eq!(metric_in(&after, "goodhart_gateway_open_streams"), 0, "streams open");
    let tasks_after = metric_in(&after, "goodhart_gateway_runtime_alive_tasks");
    assert!(
        tasks_after <= tasks_before + 4,
        "tasks alive: {tasks_before} before, {tasks_after} after"
    );
    let budgets = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
    assert_eq!(budgets.json["budgets"][0]["reserved_usd"].to_string(), "0");
    // Every call answered by the provider is recorded once (+1: the warm-up call).
    assert_eq!(recorded.len(), attempted + 1, "{recorded:#?}");
    let huge: Vec<_> = recorded.iter().filter(|r| r.0 == "chaos-fault-huge").collect();
    assert!(
        huge.iter().all(|r| !r.3 && r.4[0] > 0),
        "a giant event does not cost the provider's usage: {huge:?}"
    );
    let rss_after = rss_mib();
    for (fault, model, calls, whole, took, healthz_p99) in rows {
        let stored = recorded.iter().filter(|r| r.0 == model).count();
        eprintln!(
            "chaos-row: | upstream: {fault} (3 protocols × 2) | {calls} | {whole} whole | {stored} | {} | {} | 0 | {:.1} s for its calls | {:.1} ms | {rss_before} → {rss_after} MiB (test process) |",
            calls.saturating_sub(stored),
            stored.saturating_sub(calls),
            took.as_secs_f64(),
            healthz_p99.as_secs_f64() * 1e3,
        );
        assert_eq!(stored, calls, "{fault}: each call recorded once");
    }
}
