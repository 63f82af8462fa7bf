//! Schemathesis (pinned, from PyPI, installed by `scripts/setup-clients.sh` under
//! `.cache/clients/schemathesis`) against a real server's `/openapi.json`: every operation of
//! the document, with the admin token (the gateway's with a virtual key), a bounded number of
//! examples each and a fixed seed. The document is the contract: no 5xx, no status, content
//! type, header or body the document does not describe, and nothing it calls invalid accepted.
//!
//! Run it alone with `cargo test -p goodhart-server --test it schemathesis`; a failure prints
//! schemathesis' report, with a `curl` line reproducing each case.

use std::process::Stdio;
use std::time::{Duration, Instant};

use goodhart_store::testing::TestDatabase;

use crate::clients::tool;
use crate::common::{ADMIN, start_with};

/// Examples per operation: enough to reach each one's edges, few enough for CI (about half a
/// minute for the whole document on one core).
const MAX_EXAMPLES: u32 = 20;
/// Hypothesis' seed: the same cases every run, so a failure reproduces.
const SEED: u32 = 22;
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,negative_data_rejection";

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_departure_from_openapi_json() {
    let server = start_with(
        TestDatabase::sqlite(),
        "[outcomes]\ngithub_webhook_secret = \"schemathesis\"\n",
    )
    .await;
    let (_, key) = server.create_key(r#"{"user": "schemathesis"}"#).await;
    let dir = server.db.dir().join("schemathesis");
    std::fs::create_dir_all(&dir).unwrap();
    // The gateway's operations (`/v1/…`) take a virtual key, the rest the admin token. The
    // example database is off: every run starts from the seed alone.
    let config = format!(
        "seed = {SEED}\nworkers = 1\nheaders = {{ Authorization = \"Bearer {ADMIN}\" }}\n\
         [generation]\nmax-examples = {MAX_EXAMPLES}\ndatabase = \"none\"\n\
         [[operations]]\ninclude-path-regex = \"^/v1/\"\nheaders = {{ Authorization = \"Bearer {key}\" }}\n"
    );
    std::fs::write(dir.join("schemathesis.toml"), config).unwrap();
    let mut command = tokio::process::Command::new(tool("schemathesis/bin/schemathesis"));
    command
        .current_dir(&dir)
        .args(["--config-file", "schemathesis.toml", "--no-color", "run"])
        .arg(format!("{}/openapi.json", server.url()))
        .args(["--checks", CHECKS, "--output-sanitize", "false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("schemathesis finished within 300 s")
        .expect("schemathesis started");
    let report = String::from_utf8_lossy(&output.stdout);
    let summary = report
        .lines()
        .filter(|line| line.contains("generated") || line.starts_with("====="))
        .collect::<Vec<_>>()
        .join("\n");
    println!(
        "schemathesis: {:.1} s, {MAX_EXAMPLES} examples per operation, seed {SEED}\n{summary}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "schemathesis found problems ({}):\n{report}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains(" generated, ") && report.contains(" passed"),
        "schemathesis ran no case:\n{report}"
    );
}
