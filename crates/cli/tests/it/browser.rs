//! The dashboard in headless Chromium against `goodhart demo`: the Selenium suite in
//! `tests/browser/dashboard_suite.py` signs in, visits every page, checks the numbers against
//! the API, clicks confirm, dismiss and revoke, gives and takes back a person's role, and reads
//! as a team's viewer and on a phone.
//! Coding-agent activity is imported first (from the analytics mock), so a person's page shows
//! its labelled section.
//! Debian's `chromium` and `chromium-driver` and Selenium are installed by
//! `scripts/setup-clients.sh` (which `scripts/test.sh` runs); screenshots are left in
//! `<target>/tmp/browser-artifacts`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{BIN, Served, client_tool, required};

/// Starts `goodhart demo` (serving after its story) and waits for its dashboard line; the
/// returned `Served` kills it when dropped.
fn demo(dir: &Path) -> Served {
    let mut child = Command::new(BIN)
        .args(["demo", "--weeks", "2", "--live-secs", "12", "--listen", "127.0.0.1:0"])
        .args(["--database", "demo.db"])
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start goodhart demo");
    let stdout = child.stdout.take().unwrap();
    let (found, dashboard) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // "Dashboard: http://ADDR/  (sign in with the admin token: TOKEN)"
            if let Some(rest) = line.strip_prefix("Dashboard: http://") {
                let addr = rest.split('/').next().unwrap_or_default().to_owned();
                let token = rest.rsplit("admin token: ").next().unwrap_or_default();
                let _ = found.send((addr, token.trim_end_matches(')').to_owned()));
            }
        }
    });
    let (addr, token) = dashboard
        .recv_timeout(Duration::from_secs(300))
        .expect("the demo printed its dashboard URL within 5 minutes");
    Served {
        child,
        addr,
        token: Some(token),
    }
}

/// Imports Claude Code and Copilot activity for every person of the demo (from a mock of both
/// APIs, into its database while it serves), so their pages show the activity section; returns
/// the runtime serving the mock.
fn import_activity(dir: &Path) -> tokio::runtime::Runtime {
    use goodhart_core::time::MICROS_PER_DAY;
    use goodhart_sim::mock_analytics::{ADMIN_KEY, AnalyticsData, GITHUB_TOKEN, UserDay, spawn};
    let db = ["--database-url", "sqlite://demo.db"];
    let board = crate::common::goodhart_ok(
        dir,
        &[
            &db[..],
            &["leaderboard", "--from", "30d", "--metric", "volume", "--format", "json"],
        ]
        .concat(),
    );
    let board: serde_json::Value = serde_json::from_str(&board).unwrap();
    let people: Vec<String> = board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["subject"].as_str().map(str::to_owned))
        .collect();
    assert!(!people.is_empty(), "{board}");
    let first_day = goodhart_core::Micros(goodhart_store::now_micros().0 - 2 * MICROS_PER_DAY).floor_to(MICROS_PER_DAY);
    let user_day = |day: u32, user: String| UserDay {
        day,
        user,
        sessions: 3,
        lines_added: 120,
        accepted: 9,
        tokens: 20_000,
        cost_cents: 250,
    };
    let days = || 0..2u32;
    let data = AnalyticsData {
        first_day,
        days: 3,
        claude_code: people
            .iter()
            .flat_map(|p| days().map(move |d| user_day(d, format!("{p}@example.com"))))
            .collect(),
        copilot: people
            .iter()
            .flat_map(|p| days().map(move |d| user_day(d, p.clone())))
            .collect(),
        ..AnalyticsData::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = runtime.block_on(spawn(std::sync::Arc::new(data))).unwrap();
    let url = format!("http://{addr}");
    let from = first_day.utc_day();
    for (args, env, key) in [
        (
            vec!["import", "claude-code-analytics"],
            "ANTHROPIC_ADMIN_KEY",
            ADMIN_KEY,
        ),
        (
            vec!["import", "copilot-metrics", "--org", "demo"],
            "GITHUB_TOKEN",
            GITHUB_TOKEN,
        ),
    ] {
        let output = Command::new(BIN)
            .args(db)
            .args(args)
            .args(["--base-url", &url, "--from", &from])
            .env(env, key)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    runtime
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    required(PathBuf::from("/usr/bin/chromium"));
    required(PathBuf::from("/usr/bin/chromedriver"));
    let python = client_tool("venv/bin/python");
    let dir = tempfile::tempdir().unwrap();
    let served = demo(dir.path());
    let _mock = import_activity(dir.path());
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard_suite.py");
    let output = Command::new(python)
        .arg(suite)
        .args([&format!("http://{}", served.addr), served.token.as_deref().unwrap()])
        .arg(&artifacts)
        .env("SE_OFFLINE", "true")
        .env("GOODHART_DEMO_DB", dir.path().join("demo.db"))
        .output()
        .expect("run the browser suite");
    assert!(
        output.status.success(),
        "browser suite failed (screenshots and the page in {}):\n{}\n{}",
        artifacts.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
