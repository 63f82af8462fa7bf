//! The `goodhart` binary end to end: first start prints an admin token once, ingestion over
//! HTTP, `report` reading the same database, and a clean exit on SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{BIN, Served, goodhart, goodhart_ok, http, serve, serve_with};

fn terminate(served: Served) {
    let mut served = served;
    let pid = served.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            assert!(status.success(), "SIGTERM must end the server cleanly, got {status}");
            return;
        }
        assert!(Instant::now() < deadline, "server did not stop within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_ingest_report_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve(dir.path());
    let token = first
        .token
        .clone()
        .expect("the first start prints a generated admin token");
    assert!(
        dir.path().join("goodhart.db").exists(),
        "SQLite file in the working directory by default"
    );

    let event = r#"{"id": "e1", "timestamp": "2026-11-02T09:14:03Z", "user": "alice", "team": "payments", "model": "gpt-4o-mini", "input_tokens": 1000000, "output_tokens": 0}"#;
    let (status, body) = http(&first.addr, "POST", "/api/v1/usage", &token, event);
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(&first.addr, "POST", "/api/v1/usage", "wrong", event);
    assert_eq!(status, 401);
    terminate(first);

    let second = serve(dir.path());
    assert!(second.token.is_none(), "the token is printed only on the first start");
    let (status, body) = http(&second.addr, "POST", "/api/v1/usage", &token, event);
    assert_eq!(status, 200);
    assert!(body.contains(r#""duplicates":1"#), "{body}");
    terminate(second);

    let report = Command::new(BIN)
        .args([
            "report",
            "--group-by",
            "team",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-03",
            "--format",
            "json",
        ])
        .current_dir(dir.path())
        .env_remove("GOODHART_DATABASE_URL")
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let json: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(json["rows"][0]["team"], "payments");
    assert_eq!(json["rows"][0]["requests"], 1);
    // gpt-4o-mini input is $0.15 per million tokens.
    assert_eq!(json["rows"][0]["cost_usd"].to_string(), "0.15");

    let csv = Command::new(BIN)
        .args([
            "report",
            "--group-by",
            "user",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-03",
            "--format",
            "csv",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(csv.starts_with("user,requests,input_tokens,"), "{csv}");
    assert!(csv.contains("\nalice,1,1000000,0,0,0,0,0,0.15,0,0\n"), "{csv}");
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("goodhart.toml");
    std::fs::write(&config, "[limits]\nmax_body = 10\n").unwrap();
    let output = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "prices"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("limits.max_body") && stderr.contains("unknown field"),
        "{stderr}"
    );
}

#[test]
fn prices_lists_the_shipped_table() {
    let output = Command::new(BIN).args(["prices", "--format", "json"]).output().unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let models = json["models"].as_array().unwrap();
    let sonnet = models
        .iter()
        .find(|m| m["model"] == "claude-sonnet-4-5")
        .expect("claude-sonnet-4-5 is listed");
    assert_eq!(sonnet["input"], "3");
    assert!(json["version"].as_str().unwrap().starts_with("2026-"));
}

#[test]
fn report_without_a_database_says_so_instead_of_creating_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["report"])
        .current_dir(dir.path())
        .env_remove("GOODHART_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no database at goodhart.db"));
    assert!(!dir.path().join("goodhart.db").exists());
}

#[test]
fn keys_create_list_rotate_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| goodhart_ok(dir.path(), args);
    let created = run(&[
        "keys",
        "create",
        "--user",
        "alice",
        "--team",
        "payments",
        "--expires",
        "30d",
    ]);
    let secret = created
        .split_whitespace()
        .find(|w| w.starts_with("gk-"))
        .expect("the secret is printed once")
        .to_owned();
    let listed: serde_json::Value = serde_json::from_str(&run(&["keys", "list", "--format", "json"])).unwrap();
    let id = listed["keys"][0]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("gk-{id}-")));
    assert_eq!(listed["keys"][0]["status"], "active");
    assert!(!listed.to_string().contains(&secret), "listing never shows secrets");

    let rotated = run(&["keys", "rotate", &id, "--format", "csv"]);
    assert!(rotated.lines().next().unwrap().starts_with("id,key,"), "{rotated}");
    assert!(rotated.contains(",gk-"), "CSV keeps the new secret: {rotated}");
    let listed: serde_json::Value = serde_json::from_str(&run(&["keys", "list", "--format", "json"])).unwrap();
    let statuses: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "revoked"]);
    let new_id = listed["keys"][0]["id"].as_str().unwrap().to_owned();
    assert!(run(&["keys", "revoke", &new_id]).contains("Revoked"));
    let again = Command::new(BIN)
        .args(["keys", "revoke", &new_id])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
}

#[test]
fn the_cli_records_its_admin_actions_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| goodhart_ok(dir.path(), args);
    run(&["keys", "create", "--user", "alice", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&run(&["keys", "list", "--format", "json"])).unwrap();
    let id = listed["keys"][0]["id"].as_str().unwrap().to_owned();
    run(&["keys", "revoke", &id]);
    assert!(!goodhart(dir.path(), &["keys", "revoke", &id]).status.success());
    run(&["budgets", "create", "--org", "--monthly", "100"]);
    let log: serde_json::Value = serde_json::from_str(&run(&["audit", "--json"])).unwrap();
    let entries = log["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        ["budget.create", "key.revoke", "key.create"],
        "once each, the failed revoke not at all"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["actor"]["kind"] == "cli" && e["outcome"] == "success")
    );
    assert_eq!(entries[1]["target"]["id"], id.as_str());
    let table = run(&["audit", "--action", "key.", "--limit", "1"]);
    assert!(table.lines().next().unwrap().contains("action"), "{table}");
    assert!(table.contains("key.revoke") && !table.contains("key.create"), "{table}");
    assert!(table.contains("More: --cursor"), "{table}");
}

#[test]
fn viewer_tokens_create_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| goodhart_ok(dir.path(), args);
    let created = run(&["tokens", "create", "--team", "payments", "--name", "payments leads"]);
    assert!(created.contains("team payments"), "{created}");
    let secret = created
        .split_whitespace()
        .find(|w| w.starts_with("gh_view_"))
        .expect("the secret is printed once")
        .to_owned();
    let csv = run(&["tokens", "create", "--format", "csv"]);
    assert!(csv.starts_with("id,token,name,team,"), "CSV keeps the secret: {csv}");
    let listed: serde_json::Value = serde_json::from_str(&run(&["tokens", "list", "--format", "json"])).unwrap();
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(!listed.to_string().contains(&secret), "listing never shows secrets");
    let payments = tokens.iter().find(|t| t["team"] == "payments").unwrap();
    let id = payments["id"].as_str().unwrap();
    assert!(run(&["tokens", "revoke", id]).contains("Revoked"));
    let again = goodhart(dir.path(), &["tokens", "revoke", id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
}

#[test]
fn an_identity_provider_gets_a_scim_token() {
    let dir = tempfile::tempdir().unwrap();
    let created = goodhart_ok(dir.path(), &["tokens", "create", "--role", "scim", "--name", "okta"]);
    assert!(created.contains("provisions people and groups over SCIM"), "{created}");
    assert!(
        created.contains("gh_scim_") && created.contains("/scim/v2"),
        "{created}"
    );
    let refused = goodhart(
        dir.path(),
        &["tokens", "create", "--role", "scim", "--team", "payments"],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("every team's people"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn roles_are_given_to_people_and_taken_back() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| goodhart_ok(dir.path(), args);
    let granted = run(&["people", "grant", "ana", "--role", "manager", "--team", "payments"]);
    assert!(granted.contains("ana is manager of payments"), "{granted}");
    let refused = goodhart(dir.path(), &["people", "grant", "ben", "--role", "manager"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs the team"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let table = run(&["people", "list"]);
    assert!(
        table.contains("manager of payments") && table.contains("never"),
        "{table}"
    );
    let listed: serde_json::Value = serde_json::from_str(&run(&["people", "list", "--format", "json"])).unwrap();
    assert_eq!(listed["grants"][0]["user"], "ana", "{listed}");
    assert_eq!(listed["people"], serde_json::json!([]), "nobody signed in yet");
    assert!(run(&["people", "ungrant", "ana"]).contains("their groups decide again"));
    let again = goodhart(dir.path(), &["people", "ungrant", "ana"]);
    assert!(!again.status.success());
    let audit: serde_json::Value = serde_json::from_str(&run(&["audit", "--action", "role.", "--json"])).unwrap();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["role.revoke", "role.grant"], "{audit}");
}

#[test]
fn budgets_are_created_listed_and_deleted_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = goodhart(dir.path(), args);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (
            output.status.success(),
            text,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&[
        "budgets",
        "create",
        "--team",
        "payments",
        "--monthly",
        "500",
        "--block",
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let budget = &created["budgets"][0];
    assert_eq!(
        (budget["scope"].as_str(), budget["name"].as_str()),
        (Some("team"), Some("payments"))
    );
    assert_eq!(
        (budget["period"].as_str(), budget["action"].as_str()),
        (Some("month"), Some("block"))
    );
    let id = budget["id"].as_str().unwrap().to_owned();
    let (ok, table, _) = run(&["budgets", "list"]);
    assert!(ok && table.contains("payments") && table.contains("$500"), "{table}");
    let (ok, _, err) = run(&["budgets", "create", "--org", "--team", "x", "--daily", "5"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, _, err) = run(&["budgets", "create", "--org", "--daily", "five"]);
    assert!(!ok && err.contains("limit_usd"), "{err}");
    let (ok, _, err) = run(&["alerts", "--since-typo"]);
    assert!(!ok && err.contains("--since-typo"), "{err}");
    let (ok, alerts_json, err) = run(&["alerts", "--from", "7d", "--format", "json"]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&alerts_json).unwrap()["alerts"],
        serde_json::json!([])
    );
    assert!(run(&["budgets", "delete", &id]).0);
    let (ok, _, err) = run(&["budgets", "delete", &id]);
    assert!(!ok && err.contains("no budget"), "{err}");
}

#[test]
fn leaderboard_ranks_outcomes_not_volume_and_labels_the_volume_view() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let token = served.token.clone().unwrap();
    let usage = r#"[
        {"id": "u1", "timestamp": "2026-11-02T09:00:00Z", "user": "burner", "team": "payments", "model": "gpt-4o-mini", "input_tokens": 90000000, "output_tokens": 0},
        {"id": "u2", "timestamp": "2026-11-02T09:00:00Z", "user": "shipper", "team": "payments", "model": "gpt-4o-mini", "input_tokens": 1000000, "output_tokens": 0}
    ]"#;
    assert_eq!(http(&served.addr, "POST", "/api/v1/usage", &token, usage).0, 200);
    let outcome = r#"[{"id": "o1", "timestamp": "2026-11-02T12:00:00Z", "kind": "deployment", "user": "shipper"}]"#;
    let (status, body) = http(&served.addr, "POST", "/api/v1/outcomes", &token, outcome);
    assert_eq!(status, 200, "{body}");
    terminate(served);

    let board = |metric: &str, format: &str| {
        let output = goodhart(
            dir.path(),
            &[
                "leaderboard",
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-08",
                "--metric",
                metric,
                "--format",
                format,
            ],
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let value: serde_json::Value = serde_json::from_str(&board("value", "json")).unwrap();
    assert_eq!(value["rows"][0]["subject"], "shipper");
    assert_eq!(
        value["rows"][0]["value"], 0.5,
        "a self-reported deployment at half, one person-week"
    );
    let volume = board("volume", "table");
    assert!(
        volume.starts_with("volume: tokens consumed — this measures consumption, not value"),
        "{volume}"
    );
    let first_row = volume.lines().nth(3).unwrap();
    assert!(first_row.contains("burner"), "{volume}");
    let csv = board("efficiency", "csv");
    assert!(csv.starts_with("rank,subject,value/pw,value/$,"), "{csv}");

    let roi = goodhart(
        dir.path(),
        &["report", "roi", "--from", "2026-11-01", "--to", "2026-11-08"],
    );
    let roi = String::from_utf8(roi.stdout).unwrap();
    let lines: Vec<&str> = roi.lines().collect();
    assert!(lines[0].starts_with("Return on AI spend"), "{roi}");
    // The organisation: 2 people, $13.65, one self-reported deployment at half its hour.
    let org: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(
        org[..8],
        ["ORGANISATION", "2", "$13.65", "$0.00", "0", "1", "0.500", "0.5"],
        "{roi}"
    );
    assert!(lines[4].starts_with("payments"), "{roi}");
    let json = goodhart(
        dir.path(),
        &[
            "report",
            "roi",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-08",
            "--format",
            "json",
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["org"]["cost_per_hour_saved_usd"].to_string(), "27.3");

    let mapped = goodhart(dir.path(), &["github", "map", "octo-shipper", "shipper"]);
    assert!(mapped.status.success(), "{}", String::from_utf8_lossy(&mapped.stderr));
    let logins = goodhart(dir.path(), &["github", "logins", "--format", "csv"]);
    assert_eq!(
        String::from_utf8(logins.stdout).unwrap(),
        "login,user\nocto-shipper,shipper\n"
    );
}

#[test]
fn findings_are_detected_listed_and_dismissed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path());
    let token = served.token.clone().unwrap();
    // An agent asking the same thing every 30 s for over an hour at night, outputs cut off.
    let calls: Vec<serde_json::Value> = (0..130)
        .map(|i| {
            serde_json::json!({
                "id": format!("loop-{i}"),
                "timestamp": format!("2026-11-02T{:02}:{:02}:{:02}Z", 22 + i / 120, (i / 2) % 60, (i % 2) * 30),
                "user": "bob", "agent": "loop-agent", "session": "s1",
                "model": "gpt-4o-mini", "input_tokens": 10000, "output_tokens": 1000,
                "prompt": format!("Check the deployment status again, attempt {i}"),
                "completion": "Still checking. Still checking. Still checking.",
                "finish_reason": "length",
            })
        })
        .collect();
    let (status, body) = http(
        &served.addr,
        "POST",
        "/api/v1/usage",
        &token,
        &serde_json::to_string(&calls).unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    terminate(served);

    let run = |args: &[&str]| {
        let output = goodhart(dir.path(), args);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let pass = run(&[
        "findings",
        "detect",
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-03",
        "--format",
        "json",
    ]);
    let pass: serde_json::Value = serde_json::from_str(&pass).unwrap();
    assert_eq!(
        (pass["calls"].as_u64(), pass["new"].as_u64()),
        (Some(130), Some(1)),
        "{pass}"
    );

    let table = run(&["findings", "--from", "2026-11-01", "--to", "2026-11-04"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("id "), "{table}");
    assert!(lines[0].contains("evidence"), "{table}");
    assert!(lines[2].contains("agent loop-agent (bob)"), "{table}");
    // 130 × (10,000 × $0.15/M + 1,000 × $0.60/M) = $0.273.
    assert!(lines[2].contains("$0.27"), "{table}");
    let json = run(&[
        "findings",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-04",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let id = json["findings"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(json["findings"][0]["wasted_usd"].to_string(), "0.273");

    let dismissed = run(&["findings", "dismiss", &id, "--note", "a load test"]);
    assert!(dismissed.starts_with(&format!("dismissed {id}")), "{dismissed}");
    let csv = run(&[
        "findings",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-04",
        "--status",
        "dismissed",
        "--format",
        "csv",
    ]);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{id},dismissed,2026-11-02,")),
        "{csv}"
    );

    let unknown = goodhart(dir.path(), &["findings", "confirm", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("finding nope"));
    let bad = goodhart(dir.path(), &["findings", "--status", "closed"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--status"));
}

#[test]
fn the_demo_tells_the_whole_story_and_exits_with_no_serve() {
    let dir = tempfile::tempdir().unwrap();
    let output = goodhart(
        dir.path(),
        &[
            "demo",
            "--no-serve",
            "--weeks",
            "2",
            "--live-secs",
            "15",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "demo.db",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("History loaded"), "{stdout}");
    assert!(stdout.contains("hard cap hit after"), "{stdout}");
    assert!(
        stdout.contains("read-only, limited to team "),
        "a team viewer token is printed: {stdout}"
    );
    // "The first token burner is #X by tokens and #Y of N by value."
    let line = stdout
        .lines()
        .find(|l| l.starts_with("The first token burner is #"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (by_tokens, by_value, people) = (numbers[0], numbers[1], numbers[2]);
    assert!(by_tokens <= 4, "burners top the token ranking: {line}");
    assert!(
        by_value * 4 > people * 3,
        "and sit in the value board's last quarter: {line}"
    );
    assert!(stdout.contains("Waste findings: "), "{stdout}");
    assert!(
        stdout.contains("agent loop-agent"),
        "burners' loops are found: {stdout}"
    );
    let bills = stdout
        .lines()
        .find(|l| l.starts_with("Provider bills imported"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        bills.contains("$100.00 by keys that bypass the gateway (research); 1 drift alert(s)"),
        "the notebook's key is found, attributed and alerted once: {bills}"
    );

    let alerts = goodhart(
        dir.path(),
        &[
            "alerts",
            "--database-url",
            "sqlite://demo.db",
            "--from",
            "30d",
            "--format",
            "json",
        ],
    );
    let alerts: serde_json::Value = serde_json::from_slice(&alerts.stdout).unwrap();
    let kinds: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"blocked"), "the cap raised an alert: {kinds:?}");
    assert!(kinds.contains(&"threshold"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "reconciliation").count(),
        1,
        "the bypassing key's day: {kinds:?}"
    );
}

#[test]
fn provider_reports_are_imported_with_the_admin_key_from_the_environment() {
    use goodhart_sim::mock_admin::{ADMIN_KEY, AdminData, DailyLine, spawn};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let line = |day: u32| DailyLine {
        day,
        model: "claude-sonnet-4-5".into(),
        api_key_id: "apikey_01".into(),
        workspace: None,
        input: 1_000,
        cache_read: 0,
        output: 100,
        cost_nanos: 4_500_000,
    };
    let data = std::sync::Arc::new(AdminData {
        first_day: goodhart_core::time::parse_rfc3339("2026-11-01T00:00:00Z").unwrap(),
        days: 3,
        lines: vec![line(0), line(2)],
        ..AdminData::default()
    });
    let addr = runtime.block_on(spawn(data)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}");
    let args = [
        "import",
        "anthropic-admin",
        "--base-url",
        url.as_str(),
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-04",
    ];
    let run = |key: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(dir.path())
            .env_remove("GOODHART_DATABASE_URL")
            .env_remove("ANTHROPIC_ADMIN_KEY");
        if let Some(key) = key {
            command.env("ANTHROPIC_ADMIN_KEY", key);
        }
        command.output().unwrap()
    };
    let missing = run(None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("set ANTHROPIC_ADMIN_KEY"));
    let wrong = run(Some("sk-ant-admin-wrong"));
    let refused = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        refused.contains("anthropic answered 401: invalid admin key"),
        "{refused}"
    );
    assert!(!refused.contains("sk-ant-admin-wrong"), "the key is never printed");
    let imported = run(Some(ADMIN_KEY));
    let out = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        out.contains("anthropic usage report from 2026-11-01T00:00:00Z: 1 pages, 3 daily buckets, 2 lines."),
        "{out}"
    );
    assert!(
        out.contains("anthropic cost report from 2026-11-01T00:00:00Z: 1 pages, 3 daily buckets, 2 lines."),
        "{out}"
    );
    // Nothing went through Goodhart: the whole bill is unmetered.
    let report = goodhart_ok(
        dir.path(),
        &[
            "report",
            "reconcile",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-04",
            "--format",
            "csv",
        ],
    );
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines,
        [
            "day,provider,model,metered_tokens,reported_tokens,token_drift,metered_usd,billed_usd,drift_usd,drift,metered_by,note",
            "2026-11-01,anthropic,claude-sonnet-4-5,0,1100,1100,0,0.0045,0.0045,100.0%,,unmetered",
            "2026-11-03,anthropic,claude-sonnet-4-5,0,1100,1100,0,0.0045,0.0045,100.0%,,unmetered",
        ]
    );
}

#[test]
fn coding_agent_analytics_are_imported_with_keys_from_the_environment_only() {
    use goodhart_sim::mock_analytics::{ADMIN_KEY, AnalyticsData, GITHUB_TOKEN, UserDay, spawn};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let user_day = |day: u32, user: &str| UserDay {
        day,
        user: user.into(),
        sessions: 2,
        lines_added: 40,
        accepted: 5,
        tokens: 1_000,
        cost_cents: 33,
    };
    let data = std::sync::Arc::new(AnalyticsData {
        first_day: goodhart_core::time::parse_rfc3339("2026-11-01T00:00:00Z").unwrap(),
        days: 3,
        claude_code: vec![
            user_day(0, "ann@example.com"),
            user_day(2, "ann@example.com"),
            user_day(2, "ci-bot"),
        ],
        copilot: vec![user_day(0, "ann-gh"), user_day(1, "ann-gh")],
        missing_days: vec![2],
        ..AnalyticsData::default()
    });
    let addr = runtime.block_on(spawn(data)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}");
    let window = ["--base-url", url.as_str(), "--from", "2026-11-01", "--to", "2026-11-04"];
    let run = |args: &[&str], env: &str, key: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .args(window)
            .current_dir(dir.path())
            .env_remove("GOODHART_DATABASE_URL")
            .env_remove(env);
        if let Some(key) = key {
            command.env(env, key);
        }
        command.output().unwrap()
    };
    let claude = ["import", "claude-code-analytics"];
    let missing = run(&claude, "ANTHROPIC_ADMIN_KEY", None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("set ANTHROPIC_ADMIN_KEY"));
    let wrong = run(&claude, "ANTHROPIC_ADMIN_KEY", Some("sk-ant-admin01-wrong"));
    let refused = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        refused.contains("anthropic answered 401: invalid admin key"),
        "{refused}"
    );
    assert!(!refused.contains("sk-ant-admin01-wrong"), "the key is never printed");

    let imported = run(&claude, "ANTHROPIC_ADMIN_KEY", Some(ADMIN_KEY));
    let out = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        out.contains("Claude Code activity from 2026-11-01: 3 days, 3 requests, 3 lines."),
        "{out}"
    );
    assert!(
        out.contains("Not matched to a Goodhart user (kept, shown under their own name): ann@example.com (email), ci-bot (API key)."),
        "{out}"
    );
    assert!(out.contains("never counted as value"), "{out}");
    assert!(!out.contains(ADMIN_KEY));

    let copilot = ["import", "copilot-metrics", "--org", "acme"];
    let imported = run(&copilot, "GITHUB_TOKEN", Some(GITHUB_TOKEN));
    let out = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        out.contains("Copilot (acme) activity from 2026-11-01: 2 days, 4 requests, 2 lines."),
        "{out}"
    );
    assert!(
        out.contains("No report yet for 2026-11-03 (asked again next time)."),
        "{out}"
    );
    // Run again: already there, nothing added.
    let again = run(&copilot, "GITHUB_TOKEN", Some(GITHUB_TOKEN));
    assert!(String::from_utf8_lossy(&again.stdout).contains("2 days, 4 requests, 2 lines."));
    let missing = run(&copilot, "GITHUB_TOKEN", None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("set GITHUB_TOKEN"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `goodhart sessions list` shows the live single sign-on sessions; `goodhart sessions revoke`
/// ends one: its cookie stops working at the running server at once, the revocation is in the
/// audit log as the command line's, and a second revocation fails.
#[test]
fn sessions_are_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    // The provider is never reached: a session cookie is checked against the database only.
    std::fs::write(
        dir.path().join("goodhart.toml"),
        "[auth.oidc]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"goodhart\"\n\
         public_url = \"http://127.0.0.1:9\"\nadmin_groups = [\"admins\"]\nviewer_groups = [\"finance\"]\n",
    )
    .unwrap();
    let served = serve_with(dir.path(), &[("GOODHART_CONFIG", "goodhart.toml")]);

    // Two people signed in (stored as the server stores a sign-in), with the cookie key the
    // server made at its first start.
    let db = rusqlite::Connection::open(dir.path().join("goodhart.db")).unwrap();
    let key: String = db
        .query_row(
            "SELECT value FROM settings WHERE key = 'session_cookie_key'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let key: Vec<u8> = (0..key.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&key[i..i + 2], 16).unwrap())
        .collect();
    let key = goodhart_server::app::sessions::SessionKey::new(&key);
    let now = jiff::Timestamp::now().as_microsecond();
    let hour = 3_600_000_000_i64;
    let mut cookies = Vec::new();
    for (i, (id, email, groups)) in [
        ("ses_0000000000000001", "ana@example.com", r#"["admins"]"#),
        ("ses_0000000000000002", "victor@example.com", r#"["finance"]"#),
    ]
    .into_iter()
    .enumerate()
    {
        let secret = format!("{i}").repeat(64);
        db.execute(
            "INSERT INTO sessions (id, secret_hash, issuer, subject, email, name, groups_json, created_at, expires_at) \
             VALUES (?1, ?2, 'http://127.0.0.1:9', ?3, ?4, NULL, ?5, ?6, ?7)",
            rusqlite::params![
                id,
                hex(&goodhart_server::app::tokens::hash_token(&secret)),
                format!("sub-{i}"),
                email,
                groups,
                now - hour + i64::try_from(i).unwrap(),
                now + 7 * hour,
            ],
        )
        .unwrap();
        cookies.push(format!("goodhart_session={}", key.seal(&secret)));
    }
    let me = |cookie: &str| {
        let response = crate::common::exchange(&served.addr, "GET", "/api/v1/me", &[("Cookie", cookie)], "").unwrap();
        response[9..12].parse::<u16>().unwrap()
    };
    assert_eq!(me(&cookies[0]), 200);
    assert_eq!(me(&cookies[1]), 200);

    let run = |args: &[&str]| goodhart_ok(dir.path(), args);
    let listed: serde_json::Value = serde_json::from_str(&run(&["sessions", "list", "--json"])).unwrap();
    let ids: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["ses_0000000000000002", "ses_0000000000000001"],
        "newest first: {listed}"
    );
    assert_eq!(listed["sessions"][0]["email"], "victor@example.com");
    assert_eq!(listed["sessions"][0]["groups"], serde_json::json!(["finance"]));
    assert!(!listed.to_string().contains(&"0".repeat(64)), "never a secret");
    let table = run(&["sessions", "list"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        ["id", "email", "groups", "created_at", "expires_at"]
            .iter()
            .all(|c| header.contains(c)),
        "{table}"
    );
    assert!(
        table.contains("ses_0000000000000001") && table.contains("ana@example.com"),
        "{table}"
    );

    let revoked = run(&["sessions", "revoke", "ses_0000000000000001"]);
    assert!(revoked.contains("Revoked session ses_0000000000000001"), "{revoked}");
    assert_eq!(me(&cookies[0]), 401, "the revoked session's cookie opens nothing");
    assert_eq!(me(&cookies[1]), 200, "the other session lives on");
    let listed: serde_json::Value = serde_json::from_str(&run(&["sessions", "list", "--format", "json"])).unwrap();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "{listed}");
    let again = goodhart(dir.path(), &["sessions", "revoke", "ses_0000000000000001"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("live session ses_0000000000000001"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let log: serde_json::Value = serde_json::from_str(&run(&["audit", "--action", "session.", "--json"])).unwrap();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "once, the failed revocation not at all: {log}");
    assert_eq!(entries[0]["action"], "session.revoke");
    assert_eq!(entries[0]["actor"]["kind"], "cli");
    assert_eq!(entries[0]["target"]["id"], "ses_0000000000000001");
    drop(served);
}
