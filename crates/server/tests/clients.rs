//! Real clients through the gateway against the mock provider: the official `openai` and
//! `anthropic` Python SDKs and Claude Code from npm. Each test asserts that what was recorded
//! — tokens and cost — is exactly what the provider reported to the client.
//!
//! The clients are installed by `scripts/setup-clients.sh` (run by `scripts/test.sh`) under
//! `.cache/clients`, or wherever `GOODHART_CLIENTS_DIR` points.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use goodhart_core::pricing::PriceTable;
use goodhart_core::usage::TokenCounts;
use goodhart_store::testing::TestDatabase;
use serde_json::Value;

mod common;
use common::{TestServer, start_with};

fn clients_dir() -> PathBuf {
    std::env::var_os("GOODHART_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/clients"))
}

fn tool(relative: &str) -> PathBuf {
    let path = clients_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/setup-clients.sh` (scripts/test.sh does) to install the real clients",
        path.display()
    );
    path
}

async fn run(mut command: tokio::process::Command) -> String {
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the client finished within 180 s")
        .expect("the client started");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success(),
        "client failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    stdout
}

/// Recorded totals per model: tokens and cost in nano-dollars, and how many were estimated.
async fn recorded(server: &TestServer, group_by: &str) -> Vec<Value> {
    server.flush().await;
    let reply = server
        .summary(&format!(
            "from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&group_by={group_by}"
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["rows"].as_array().unwrap().clone()
}

fn tokens_of(row: &Value) -> TokenCounts {
    let n = |f: &str| row[f].as_u64().unwrap();
    TokenCounts {
        input: n("input_tokens"),
        output: n("output_tokens"),
        cache_read: n("cache_read_tokens"),
        cache_write_5m: n("cache_write_tokens"),
        cache_write_1h: n("cache_write_1h_tokens"),
        reasoning: n("reasoning_tokens"),
    }
}

fn cost_nanos(row: &Value) -> i64 {
    (row["cost_usd"].as_f64().unwrap() * 1e9).round() as i64
}

fn row_for<'a>(rows: &'a [Value], model: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no usage recorded for {model}: {rows:?}"))
}

#[tokio::test]
async fn official_python_sdks_through_the_gateway_are_metered_exactly() {
    let python = tool("venv/bin/python");
    let server = start_with(TestDatabase::sqlite(), "").await;
    let (_, key) = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await;
    let mut command = tokio::process::Command::new(python);
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/sdk_calls.py"))
        .env("GOODHART_URL", server.url())
        .env("GOODHART_KEY", &key)
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY");
    let calls: Vec<Value> = serde_json::from_str(&run(command).await).unwrap();
    let call = |kind: &str| calls.iter().find(|c| c["kind"] == kind).unwrap().clone();
    let rows = recorded(&server, "model").await;
    let prices = PriceTable::builtin();

    // OpenAI: prompt tokens include cached ones, completion tokens include reasoning.
    for kind in ["chat", "chat_stream", "responses", "responses_stream"] {
        let c = call(kind);
        let usage = &c["usage"];
        let field = |a: &str, b: &str| usage[a].as_u64().or_else(|| usage[b].as_u64()).unwrap();
        let detail = |a: &str, b: &str, f: &str| usage[a][f].as_u64().or_else(|| usage[b][f].as_u64()).unwrap_or(0);
        let (prompt, completion) = (
            field("prompt_tokens", "input_tokens"),
            field("completion_tokens", "output_tokens"),
        );
        let cached = detail("prompt_tokens_details", "input_tokens_details", "cached_tokens");
        let reasoning = detail("completion_tokens_details", "output_tokens_details", "reasoning_tokens");
        let expected = TokenCounts {
            input: prompt - cached,
            output: completion - reasoning,
            cache_read: cached,
            reasoning,
            ..Default::default()
        };
        let model = c["model"].as_str().unwrap();
        let row = row_for(&rows, model);
        assert_eq!(tokens_of(row), expected, "{kind}: recorded {row} vs the SDK's {usage}");
        assert_eq!(row["requests"], 1, "{kind}");
        assert_eq!(row["estimated_requests"], 0, "{kind}");
        let cost = prices.cost_of(None, model, &expected).unwrap().total().0;
        assert_eq!(cost_nanos(row), cost, "{kind}: cost");
    }

    // A stream the client did not ask usage for: the client saw none, the gateway still knows.
    let plain = call("chat_stream_plain");
    assert_eq!(plain["usage"]["saw_usage"], false);
    assert!(!plain["text"].as_str().unwrap().is_empty());
    let row = row_for(&rows, "gpt-4.1");
    assert_eq!(row["estimated_requests"], 0);
    assert_eq!(row["output_tokens"], 16, "the mock's reply is 16 tokens");

    // Anthropic: non-overlapping kinds already.
    for kind in ["messages", "messages_stream"] {
        let c = call(kind);
        let usage = &c["usage"];
        let n = |f: &str| usage[f].as_u64().unwrap_or(0);
        let expected = TokenCounts {
            input: n("input_tokens"),
            output: n("output_tokens"),
            cache_read: n("cache_read_input_tokens"),
            cache_write_5m: n("cache_creation_input_tokens"),
            ..Default::default()
        };
        let model = c["model"].as_str().unwrap();
        let row = row_for(&rows, model);
        assert_eq!(tokens_of(row), expected, "{kind}: recorded {row} vs the SDK's {usage}");
        let cost = prices.cost_of(None, model, &expected).unwrap().total().0;
        assert_eq!(cost_nanos(row), cost, "{kind}: cost");
    }
    assert!(
        call("messages_stream")["usage"]["cache_read_input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    // count_tokens answers and costs nothing; a bad key is the SDK's own AuthenticationError.
    assert!(call("count_tokens")["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(call("bad_key")["usage"]["error"], 401);
    let total: u64 = rows.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!(total, 7, "every metered call once, count_tokens not at all: {rows:?}");
}

#[tokio::test]
async fn claude_code_through_the_gateway_is_metered_exactly_and_attributed() {
    let claude = tool("node_modules/.bin/claude");
    let server = start_with(TestDatabase::sqlite(), "").await;
    let (_, key) = server.create_key(r#"{"user": "alice", "team": "payments"}"#).await;
    let home = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(claude);
    command
        .args(["-p", "say hi", "--output-format", "json"])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", server.url())
        .env("ANTHROPIC_API_KEY", &key)
        .env("ANTHROPIC_CUSTOM_HEADERS", "x-goodhart-project: checkout")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("CLAUDE_CODE_USE_BEDROCK")
        .env_remove("CLAUDE_CODE_USE_VERTEX");
    let stdout = run(command).await;
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(result["is_error"], false, "{result}");

    // Claude Code's own per-model usage is what the provider streamed to it.
    let rows = recorded(&server, "model").await;
    let model_usage = result["modelUsage"].as_object().unwrap();
    assert!(!model_usage.is_empty());
    for (model, usage) in model_usage {
        let recorded_model = model.trim_end_matches("[1m]");
        let row = row_for(&rows, recorded_model);
        let n = |f: &str| usage[f].as_u64().unwrap();
        let tokens = tokens_of(row);
        assert_eq!(tokens.input, n("inputTokens"), "{model}: {row}");
        assert_eq!(tokens.output, n("outputTokens"), "{model}: {row}");
        assert_eq!(tokens.cache_read, n("cacheReadInputTokens"), "{model}: {row}");
        assert_eq!(
            tokens.cache_write_5m + tokens.cache_write_1h,
            n("cacheCreationInputTokens"),
            "{model}: {row}"
        );
        assert_eq!(row["estimated_requests"], 0);
        let cost = PriceTable::builtin()
            .cost_of(None, recorded_model, &tokens)
            .unwrap()
            .total()
            .0;
        assert_eq!(cost_nanos(row), cost, "{model}: cost");
    }
    // Attribution: the key's user and team, the project from Claude Code's custom headers.
    let by_project = recorded(&server, "user,team,project").await;
    assert_eq!(by_project.len(), 1, "{by_project:?}");
    assert_eq!(by_project[0]["user"], "alice");
    assert_eq!(by_project[0]["team"], "payments");
    assert_eq!(by_project[0]["project"], "checkout");
    // And the session Claude Code reported is the one recorded.
    let session = result["session_id"].as_str().unwrap();
    let path = server.db.url.strip_prefix("sqlite://").unwrap();
    let sessions: Vec<String> = rusqlite::Connection::open(path)
        .unwrap()
        .prepare("SELECT DISTINCT session FROM usage_events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sessions, vec![session.to_owned()]);
}
