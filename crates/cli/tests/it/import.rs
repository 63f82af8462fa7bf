//! `goodhart import claude-code|codex` on real logs (`tests/fixtures/`, written by Claude Code
//! 2.1.197 and Codex CLI 0.169.0 against a mock server; copied from the project's shared
//! fixtures): one call counts once, unreadable lines are reported by file and line without
//! stopping the import, a second run adds nothing, and the cost equals what Claude Code itself
//! reported.

use std::path::{Path, PathBuf};

use crate::common::{client_tool, goodhart, goodhart_ok, http, serve};

fn fixture(name: &str) -> PathBuf {
    let folder = if name.starts_with("codex") {
        "codex"
    } else {
        "claude-code"
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder)
        .join(name)
}

/// A `~/.claude/projects`-shaped tree of the fixtures, with a subagent's log and two bad lines.
fn projects(root: &Path) -> PathBuf {
    let projects = root.join("projects");
    let shop = projects.join("-home-dev-src-demo-claude");
    std::fs::create_dir_all(shop.join("subagents")).unwrap();
    for (name, to) in [
        ("claude_code.session1.jsonl", shop.join("08fdce2f.jsonl")),
        ("claude_code.session2.jsonl", shop.join("b9301331.jsonl")),
        (
            "claude_code.session3.jsonl",
            shop.join("subagents/agent-74709db3.jsonl"),
        ),
        ("claude_code.session_multiblock.jsonl", projects.join("f845fe3b.jsonl")),
    ] {
        std::fs::copy(fixture(name), to).unwrap();
    }
    let mut damaged = std::fs::read_to_string(fixture("claude_code.session2.jsonl")).unwrap();
    damaged.push_str("{\"type\": \"assistant\", \"message\": \n");
    damaged.push_str(
        r#"{"type":"assistant","timestamp":"2026-11-23T18:55:30Z","message":{"id":"m","model":"claude-opus-4-8","usage":{"input_tokens":"many"}}}"#,
    );
    damaged.push('\n');
    std::fs::write(shop.join("b9301331.jsonl"), damaged).unwrap();
    projects
}

fn totals(dir: &Path) -> serde_json::Value {
    let report = goodhart_ok(dir, &["report", "--from", "2026-11-01", "--format", "json"]);
    serde_json::from_str::<serde_json::Value>(&report).unwrap()["totals"].clone()
}

#[test]
fn claude_code_logs_are_imported_once_with_problems_named() {
    let dir = tempfile::tempdir().unwrap();
    let logs = projects(dir.path());
    let logs = logs.to_str().unwrap();
    let first = goodhart_ok(
        dir.path(),
        &["import", "claude-code", logs, "--user", "ana", "--team", "payments"],
    );
    assert!(first.contains("Read 4 files"), "{first}");
    assert!(
        first.contains("6 model calls (1 repeated lines counted once)"),
        "{first}"
    );
    assert!(first.contains("6 new, 0 already there"), "{first}");
    assert!(first.contains("2 lines could not be read"), "{first}");
    assert!(first.contains("b9301331.jsonl:10: not a JSON object"), "{first}");
    assert!(
        first.contains("b9301331.jsonl:11: assistant line: invalid type"),
        "{first}"
    );

    let again = goodhart_ok(dir.path(), &["import", "claude-code", logs, "--user", "ana"]);
    assert!(
        again.contains("0 new, 6 already there"),
        "a second run adds nothing: {again}"
    );
    assert_eq!(totals(dir.path())["requests"], 6);

    let by_project = goodhart_ok(
        dir.path(),
        &[
            "report",
            "--from",
            "2026-11-01",
            "--group-by",
            "project,team,user",
            "--format",
            "json",
        ],
    );
    let by_project: serde_json::Value = serde_json::from_str(&by_project).unwrap();
    let projects: Vec<(String, u64)> = by_project["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(
                (r["team"].as_str(), r["user"].as_str()),
                (Some("payments"), Some("ana"))
            );
            (
                r["project"].as_str().unwrap().to_owned(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        projects,
        [("demo-claude".to_owned(), 4), ("demo-claude_mb".to_owned(), 2)],
        "the project is the session's working directory"
    );
}

#[test]
fn an_imported_session_costs_what_claude_code_reported() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::copy(fixture("claude_code.session1.jsonl"), logs.join("session.jsonl")).unwrap();
    goodhart_ok(
        dir.path(),
        &["import", "claude-code", logs.to_str().unwrap(), "--user", "ana"],
    );
    let reported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("claude_code.stdout.json")).unwrap()).unwrap();
    let totals = totals(dir.path());
    assert_eq!(totals["requests"], 1);
    assert_eq!(totals["input_tokens"], reported["usage"]["input_tokens"]);
    assert_eq!(totals["output_tokens"], reported["usage"]["output_tokens"]);
    assert_eq!(
        totals["cost_usd"].to_string(),
        reported["total_cost_usd"].to_string(),
        "exactly Claude Code's own total_cost_usd"
    );
}

/// With a personal ingest token, what is imported is the token's person's, whatever `--user`
/// (by default the machine's `$USER`) says, and the command says so.
#[test]
fn a_personal_ingest_token_imports_as_its_person() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let admin = served.token.clone().unwrap();
    let (status, body) = http(
        &served.addr,
        "POST",
        "/api/v1/tokens",
        &admin,
        r#"{"role": "ingest", "user": "ben", "name": "ben's laptop"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let personal = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let logs = projects(dir.path());
    let server = format!("http://{}", served.addr);
    let args = [
        "import",
        "claude-code",
        logs.to_str().unwrap(),
        "--user",
        "ubuntu",
        "--server",
        &server,
        "--token",
        &personal,
    ];
    let output = goodhart(dir.path(), &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("The server attributes all of it to ben"), "{stdout}");
    assert!(stdout.contains("6 new"), "{stdout}");
    let (status, body) = http(
        &served.addr,
        "GET",
        "/api/v1/usage/summary?from=2026-11-01&group_by=user",
        &admin,
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""user":"ben","requests":6"#), "{body}");
    assert!(!body.contains("ubuntu"), "{body}");
}

#[test]
fn claude_code_logs_can_go_to_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let token = served.token.clone().unwrap();
    let logs = projects(dir.path());
    let server = format!("http://{}", served.addr);
    let logs = logs.to_str().unwrap();
    let import = |token: &str| {
        let args = [
            "import",
            "claude-code",
            logs,
            "--user",
            "ana",
            "--server",
            &server,
            "--token",
            token,
        ];
        goodhart(dir.path(), &args)
    };
    let stdout = |output: std::process::Output| {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let first = stdout(import(&token));
    assert!(first.contains(&format!("Imported into {server}: 6 new")), "{first}");
    let again = stdout(import(&token));
    assert!(again.contains("0 new, 6 already there"), "{again}");
    let (status, body) = http(
        &served.addr,
        "GET",
        "/api/v1/usage/summary?from=2026-11-01&group_by=agent",
        &token,
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""agent":"claude-code","requests":6"#), "{body}");

    let refused = import("wrong");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let missing = goodhart(
        dir.path(),
        &["import", "claude-code", "/nonexistent/logs", "--user", "ana"],
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no Claude Code logs at /nonexistent/logs"));
}

#[test]
fn codex_rollouts_are_imported_with_forks_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let day = dir.path().join("sessions/2026/11/23");
    std::fs::create_dir_all(&day).unwrap();
    let rollout = std::fs::read_to_string(fixture("codex_rollout.jsonl")).unwrap();
    std::fs::write(day.join("rollout-2026-11-23T18-55-25-01a209c3.jsonl"), &rollout).unwrap();
    // A forked session: the parent's lines replayed under a new session id, then a call of its own.
    let mut fork = rollout.replace(
        "01a209c3-54a3-70b1-9b72-e354e4dce56a",
        "01a209c4-0000-7000-8000-000000000001",
    );
    fork.push_str(concat!(
        r#"{"timestamp":"2026-11-23T19:02:00.000Z","type":"event_msg","payload":{"type":"token_count","#,
        r#""info":{"total_token_usage":{"input_tokens":12284,"cached_input_tokens":5000,"output_tokens":105,"#,
        r#""reasoning_output_tokens":20,"total_tokens":12389},"last_token_usage":null},"rate_limits":null}}"#,
        "\n"
    ));
    std::fs::write(day.join("rollout-2026-11-23T19-01-00-01a209c4.jsonl"), fork).unwrap();
    let sessions = dir.path().join("sessions");
    let out = goodhart_ok(
        dir.path(),
        &["import", "codex", sessions.to_str().unwrap(), "--user", "bo"],
    );
    assert!(out.contains("2 model calls (1 repeated lines counted once)"), "{out}");
    assert!(out.contains("2 new, 0 already there"), "{out}");
    assert!(!out.contains("could not be read"), "{out}");
    let again = goodhart_ok(
        dir.path(),
        &["import", "codex", sessions.to_str().unwrap(), "--user", "bo"],
    );
    assert!(again.contains("0 new, 2 already there"), "{again}");

    let report = goodhart_ok(
        dir.path(),
        &[
            "report",
            "--from",
            "2026-11-01",
            "--group-by",
            "agent,model,project",
            "--format",
            "json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let row = &report["rows"][0];
    assert_eq!(
        (row["agent"].as_str(), row["model"].as_str(), row["project"].as_str()),
        (Some("codex"), Some("gpt-5-codex"), Some("demo-codex"))
    );
    // 5,284 + 7,000 input of which 5,000 cached; 5 + 100 output of which 20 reasoning.
    assert_eq!(row["input_tokens"], 5284 + 2000);
    assert_eq!(row["cache_read_tokens"], 5000);
    assert_eq!(row["output_tokens"], 5 + 80);
    assert_eq!(row["reasoning_tokens"], 20);
    assert_eq!(row["unpriced_requests"], 0, "gpt-5-codex is priced");
}

/// ccusage, the community's reference for Claude Code usage, on the same logs: the same tokens
/// of every kind, day by day.
#[test]
fn claude_code_totals_equal_ccusage() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let logs = projects(&home.join(".claude"));
    goodhart_ok(
        dir.path(),
        &["import", "claude-code", logs.to_str().unwrap(), "--user", "ana"],
    );
    let ccusage = std::process::Command::new(client_tool("node_modules/.bin/ccusage"))
        .args(["daily", "--json", "--offline"])
        .env("HOME", &home)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(ccusage.status.success(), "{}", String::from_utf8_lossy(&ccusage.stderr));
    let theirs: serde_json::Value = serde_json::from_slice(&ccusage.stdout).unwrap();
    let ours = goodhart_ok(
        dir.path(),
        &[
            "report",
            "--from",
            "2026-11-01",
            "--group-by",
            "day",
            "--format",
            "json",
        ],
    );
    let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
    let days = |rows: &serde_json::Value, fields: [&str; 6]| -> Vec<Vec<serde_json::Value>> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|row| fields.iter().map(|f| row[*f].clone()).collect())
            .collect()
    };
    let theirs = days(
        &theirs["daily"],
        [
            "date",
            "inputTokens",
            "outputTokens",
            "cacheCreationTokens",
            "cacheReadTokens",
            "totalTokens",
        ],
    );
    let ours = days(
        &ours["rows"],
        [
            "day",
            "input_tokens",
            "output_tokens",
            "cache_write_tokens",
            "cache_read_tokens",
            "total_tokens",
        ],
    );
    assert!(!ours.is_empty());
    assert_eq!(ours, theirs);
}

#[test]
fn claude_code_logs_of_calls_through_the_gateway_add_nothing() {
    let claude = client_tool("node_modules/.bin/claude");
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let token = served.token.clone().unwrap();
    let created = goodhart_ok(dir.path(), &["keys", "create", "--user", "alice", "--format", "json"]);
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let key = created["keys"][0]["key"].as_str().unwrap().to_owned();
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(claude)
        .args(["-p", "say hi", "--output-format", "json"])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", format!("http://{}", served.addr))
        .env("ANTHROPIC_API_KEY", &key)
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // Claude Code logged the calls the gateway metered, under the same request ids.
    let logs = home.path().join(".claude/projects");
    let server = format!("http://{}", served.addr);
    let args = [
        "import",
        "claude-code",
        logs.to_str().unwrap(),
        "--user",
        "bob",
        "--server",
        &server,
        "--token",
        &token,
    ];
    let summary = || {
        let (status, body) = http(
            &served.addr,
            "GET",
            "/api/v1/usage/summary?from=2026-01-01&group_by=user",
            &token,
            "",
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    // The gateway writes its records from a spool a moment after each call.
    let metered = (0..100)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            summary()
        })
        .find(|s| s["totals"]["requests"].as_u64() > Some(0))
        .expect("the gateway recorded the calls within 5 s");
    let imported = goodhart_ok(dir.path(), &args);
    assert!(imported.contains(": 0 new, "), "nothing new: {imported}");
    assert_eq!(
        summary()["rows"],
        metered["rows"],
        "only the key's user, not the importer's"
    );
    assert!(
        imported.contains(&format!("0 new, {} already there", metered["totals"]["requests"])),
        "every logged response was a metered call: {imported}"
    );
}
