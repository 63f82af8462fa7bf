//! Outcomes end to end: signed GitHub deliveries in GitHub's own shapes (fixtures in
//! `tests/fixtures/github`), self-reported outcomes, and the leaderboard they produce.

use crate::common::{Reply, TestServer, start_with};
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

const SECRET: &str = "it's a secret to everybody";
const CONFIG: &str = "[outcomes]\ngithub_webhook_secret = \"it's a secret to everybody\"\nmin_team_members = 1\n";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/github/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(ring::hmac::sign(&key, body).as_ref()))
}

async fn deliver_signed(server: &TestServer, event: &str, delivery: &str, payload: &Value, signature: &str) -> Reply {
    let body = payload.to_string();
    let headers = [
        ("x-github-event", event),
        ("x-github-delivery", delivery),
        ("x-hub-signature-256", signature),
        ("content-type", "application/json"),
    ];
    server.send("POST", "/hooks/github", &headers, body).await
}

async fn deliver(server: &TestServer, event: &str, delivery: &str, payload: &Value) -> Reply {
    let signature = sign(SECRET, payload.to_string().as_bytes());
    let reply = deliver_signed(server, event, delivery, payload, &signature).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
}

/// A merged pull request by `author`, `lines` changed, merging `sha`.
fn merged(number: u64, author: &str, sha: &str, merged_at: &str, lines: u64) -> Value {
    let mut pr = fixture("pull_request.closed");
    pr["number"] = json!(number);
    pr["pull_request"]["number"] = json!(number);
    pr["pull_request"]["user"]["login"] = json!(author);
    pr["pull_request"]["merge_commit_sha"] = json!(sha);
    pr["pull_request"]["merged_at"] = json!(merged_at);
    pr["pull_request"]["additions"] = json!(lines);
    pr["pull_request"]["deletions"] = json!(0);
    pr
}

fn approved(number: u64, reviewer: &str, review_id: u64, at: &str) -> Value {
    let mut review = fixture("pull_request_review.submitted");
    review["pull_request"]["number"] = json!(number);
    review["review"]["user"]["login"] = json!(reviewer);
    review["review"]["id"] = json!(review_id);
    review["review"]["submitted_at"] = json!(at);
    review
}

fn deployed(deployment_id: u64, sha: &str, at: &str) -> Value {
    let mut status = fixture("deployment_status.success");
    status["deployment"]["id"] = json!(deployment_id);
    status["deployment"]["sha"] = json!(sha);
    status["deployment_status"]["created_at"] = json!(at);
    status
}

async fn board(server: &TestServer, query: &str) -> Reply {
    let reply = server
        .admin(
            "GET",
            &format!("/api/v1/leaderboard?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&{query}"),
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
}

fn row<'a>(reply: &'a Reply, subject: &str) -> &'a Value {
    reply.json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == subject)
        .unwrap_or_else(|| panic!("{subject} is not on the board: {}", reply.text))
}

/// Delivers the fixtures' story: alice's pull request approved by bob, merged, and (with
/// `deploy`) shipped to production by carol.
async fn alices_reviewed_pull_request(server: &TestServer, deploy: bool) {
    let review = fixture("pull_request_review.submitted");
    deliver(server, "pull_request_review", "d-review", &review).await;
    let merge = deliver(server, "pull_request", "d-merge", &fixture("pull_request.closed")).await;
    assert_eq!(merge.json["stored"], 1);
    if deploy {
        deliver(server, "push", "d-push", &fixture("push")).await;
        let status = fixture("deployment_status.success");
        deliver(server, "deployment_status", "d-deploy", &status).await;
    }
}

#[tokio::test]
async fn a_reviewed_pull_request_that_reaches_production_is_one_normalised_deployment() {
    let server = start_with(TestDatabase::sqlite(), CONFIG).await;
    alices_reviewed_pull_request(&server, true).await;

    let users = board(&server, "by=user").await;
    let alice = row(&users, "alice");
    assert_eq!(
        (alice["rank"].as_u64(), alice["value_total"].as_f64()),
        (Some(1), Some(1.0))
    );
    assert_eq!(alice["outcomes"], 2, "the merge and the deployment");
    assert!(
        users.json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["subject"] != "carol"),
        "deploying someone else's work earns the deployer nothing"
    );
    let agents = board(&server, "by=agent").await;
    assert_eq!(
        row(&agents, "claude")["value_total"],
        1.0,
        "the co-authoring agent from the PR body"
    );
    assert_eq!(
        users.json["label"],
        "value: verified outcomes per active person-week (normalised deployments)"
    );
    let volume = board(&server, "metric=volume").await;
    assert!(
        volume.json["label"]
            .as_str()
            .unwrap()
            .contains("consumption, not value")
    );
}

#[tokio::test]
async fn unsigned_badly_signed_and_replayed_deliveries_change_nothing() {
    let server = start_with(TestDatabase::sqlite(), CONFIG).await;
    let review = fixture("pull_request_review.submitted");
    let forged = deliver_signed(&server, "pull_request_review", "d-1", &review, &sign("guess", b"x")).await;
    assert_eq!(
        (forged.status, forged.json["error"]["code"].as_str()),
        (401, Some("bad_signature"))
    );
    let headers = [("x-github-event", "pull_request_review"), ("x-github-delivery", "d-1")];
    let unsigned = server.send("POST", "/hooks/github", &headers, review.to_string()).await;
    assert_eq!(unsigned.status, 401);
    let first = deliver(&server, "pull_request_review", "d-1", &review).await;
    assert_eq!(
        (first.json["stored"].as_u64(), first.json["replay"].as_bool()),
        (Some(1), Some(false))
    );
    let replay = deliver(&server, "pull_request_review", "d-1", &review).await;
    assert_eq!(
        (replay.json["stored"].as_u64(), replay.json["replay"].as_bool()),
        (Some(0), Some(true))
    );
    // The same review redelivered under a new id is the same fact.
    let again = deliver(&server, "pull_request_review", "d-2", &review).await;
    assert_eq!(
        (again.json["stored"].as_u64(), again.json["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let ping = deliver(&server, "ping", "d-3", &json!({"zen": "Keep it logically awesome."})).await;
    assert_eq!(ping.json["ignored"], "ping");
    let broken = deliver_signed(
        &server,
        "pull_request",
        "d-4",
        &json!({"action": "closed", "pull_request": {"merged": true}}),
        &sign(
            SECRET,
            json!({"action": "closed", "pull_request": {"merged": true}})
                .to_string()
                .as_bytes(),
        ),
    )
    .await;
    assert_eq!(broken.status, 400);
    assert!(broken.text.contains("repository.full_name"), "{}", broken.text);
}

#[tokio::test]
async fn self_merges_redeploys_and_reverts_earn_nothing() {
    let server = start_with(TestDatabase::sqlite(), CONFIG).await;
    // PR 1: approved only by its author. PR 2: approved by bob, deployed twice, then reverted.
    let deliveries = [
        (
            "pull_request_review",
            "d-1",
            approved(1, "alice", 1, "2026-11-03T09:00:00Z"),
        ),
        (
            "pull_request",
            "d-2",
            merged(1, "alice", "sha-1", "2026-11-03T10:00:00Z", 300),
        ),
        (
            "pull_request_review",
            "d-3",
            approved(2, "bob", 2, "2026-11-03T09:00:00Z"),
        ),
        (
            "pull_request",
            "d-4",
            merged(2, "dave", "sha-2", "2026-11-03T10:30:00Z", 300),
        ),
        ("deployment_status", "d-5", deployed(1, "sha-2", "2026-11-03T12:00:00Z")),
        ("deployment_status", "d-6", deployed(2, "sha-2", "2026-11-04T12:00:00Z")),
    ];
    for (event, delivery, payload) in &deliveries {
        deliver(&server, event, delivery, payload).await;
    }
    let before = board(&server, "by=user").await;
    assert_eq!(row(&before, "dave")["value_total"], 1.0, "a re-deploy adds nothing");
    assert_eq!(row(&before, "alice")["value_total"], 0.0, "self-approved");
    assert!(
        row(&before, "alice")["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("unverified_outcomes"))
    );

    let mut revert = merged(3, "erin", "sha-3", "2026-11-05T10:00:00Z", 300);
    revert["pull_request"]["title"] = json!("Revert \"Refund partial captures (PAY-123)\"");
    revert["pull_request"]["body"] = json!("Reverts acme/shop#2");
    deliver(
        &server,
        "pull_request_review",
        "d-7",
        &approved(3, "bob", 3, "2026-11-05T09:00:00Z"),
    )
    .await;
    deliver(&server, "pull_request", "d-8", &revert).await;
    let after = board(&server, "by=user").await;
    assert_eq!(
        row(&after, "dave")["value_total"],
        0.0,
        "reverted: merge and deployment credit gone"
    );
    assert_eq!(row(&after, "erin")["value_total"], 0.0);
}

#[tokio::test]
async fn github_logins_map_to_users() {
    let server = start_with(TestDatabase::sqlite(), CONFIG).await;
    let mapped = server
        .admin(
            "POST",
            "/api/v1/github/logins",
            r#"{"login": "alice", "user": "alice.smith"}"#,
        )
        .await;
    assert_eq!(mapped.status, 200, "{}", mapped.text);
    alices_reviewed_pull_request(&server, false).await;
    let users = board(&server, "by=user").await;
    assert_eq!(row(&users, "alice.smith")["value_total"], 0.5);
    let listed = server.admin("GET", "/api/v1/github/logins", "").await;
    assert_eq!(listed.json["logins"][0]["user"], "alice.smith");
}

#[tokio::test]
async fn reported_outcomes_are_validated_deduplicated_discounted_and_capped() {
    let server = start_with(TestDatabase::sqlite(), CONFIG).await;
    let batch = json!([
        {"id": "t-1", "timestamp": "2026-11-03T10:00:00Z", "kind": "ticket_resolved", "user": "alice", "ref": "PAY-9"},
        {"id": "t-2", "timestamp": "2026-11-03T11:00:00Z", "kind": "incident", "user": "alice", "weight": 50},
        {"id": "t-1", "timestamp": "2026-11-03T10:00:00Z", "kind": "ticket_resolved", "user": "alice"}
    ]);
    let posted = server.admin("POST", "/api/v1/outcomes", batch.to_string()).await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    assert_eq!(
        (posted.json["accepted"].as_u64(), posted.json["duplicates"].as_u64()),
        (Some(2), Some(1))
    );
    let users = board(&server, "by=user").await;
    let alice = row(&users, "alice");
    assert_eq!(alice["value_total"], 0.5, "0.25 + 25 claimed, capped at ½ a week");
    assert!(alice["flags"].as_array().unwrap().contains(&json!("self_reported")));
    for (body, field) in [
        (
            json!([{"id": "x", "timestamp": "2026-11-03T10:00:00Z", "kind": "vibes", "user": "a"}]),
            "kind",
        ),
        (
            json!([{"id": "x", "timestamp": "2026-11-03T10:00:00Z", "kind": "custom", "user": "a", "weight": 0}]),
            "weight",
        ),
        (
            json!([{"id": "x", "timestamp": "yesterday", "kind": "custom", "user": "a"}]),
            "timestamp",
        ),
        (
            json!([{"id": "x", "timestamp": "2026-11-03T10:00:00Z", "kind": "custom", "user": "a", "points": 3}]),
            "points",
        ),
        (
            json!([{"timestamp": "2026-11-03T10:00:00Z", "kind": "custom", "user": "a"}]),
            "id",
        ),
    ] {
        let refused = server.admin("POST", "/api/v1/outcomes", body.to_string()).await;
        assert_eq!(refused.status, 400, "{}", refused.text);
        assert_eq!(refused.json["error"]["field"], field, "{}", refused.text);
    }
    let bad = server.admin("GET", "/api/v1/leaderboard?by=planet", "").await;
    assert_eq!((bad.status, bad.json["error"]["parameter"].as_str()), (400, Some("by")));
}

#[tokio::test]
async fn the_roi_report_puts_spend_against_outcomes_and_hours_saved() {
    let config = format!("{CONFIG}[outcomes.kinds.ticket_resolved]\nhours_saved = 3\n");
    let server = start_with(TestDatabase::sqlite(), &config).await;
    let usage = [
        json!({"id": "u-1", "timestamp": "2026-11-02T09:30:00Z", "user": "alice", "team": "payments",
               "model": "claude-sonnet-4-5", "input_tokens": 0, "output_tokens": 200_000}),
        json!({"id": "u-2", "timestamp": "2026-11-03T09:30:00Z", "user": "bob", "team": "search",
               "model": "claude-sonnet-4-5", "input_tokens": 0, "output_tokens": 100_000}),
    ];
    let stored = server.admin("POST", "/api/v1/usage", json!(usage).to_string()).await;
    assert_eq!(stored.status, 200, "{}", stored.text);
    // alice's reviewed pull request reaches production; bob reports a resolved ticket.
    alices_reviewed_pull_request(&server, true).await;
    let ticket = json!([{"id": "t-1", "timestamp": "2026-11-03T10:00:00Z", "kind": "ticket_resolved", "user": "bob"}]);
    assert_eq!(
        server
            .admin("POST", "/api/v1/outcomes", ticket.to_string())
            .await
            .status,
        200
    );

    let reply = server
        .admin(
            "GET",
            "/api/v1/reports/roi?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z",
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let roi = &reply.json;
    let org = &roi["org"];
    assert!(org.get("team").is_none(), "{org}");
    assert_eq!(org["cost_usd"].to_string(), "4.5", "$3 and $1.50 of output");
    assert_eq!(org["outcomes"], 3);
    assert_eq!(org["verified_outcomes"], json!({"deployment": 1, "pr_merged": 1}));
    assert_eq!(org["self_reported_outcomes"], json!({"ticket_resolved": 1}));
    // 3 h for the merge, 1 h for the deployment, and half the ticket's configured 3 h.
    assert_eq!(org["hours_saved"], 5.5);
    assert_eq!(org["cost_per_outcome_usd"].to_string(), "1.5");
    assert_eq!(org["cost_per_hour_saved_usd"].to_string(), "0.818181818");
    assert_eq!(roi["hours_saved_per_outcome"]["ticket_resolved"], 3.0);

    let teams = roi["teams"].as_array().unwrap();
    assert_eq!(teams[0]["team"], "payments", "largest spend first: {teams:?}");
    assert_eq!(
        (teams[0]["value"].as_f64(), teams[0]["hours_saved"].as_f64()),
        (Some(1.0), Some(4.0))
    );
    assert_eq!(teams[0]["cost_per_normalised_deployment_usd"].to_string(), "3");
    assert_eq!(teams[1]["team"], "search");
    assert_eq!(teams[1]["cost_usd"].to_string(), "1.5");
    assert_eq!(teams[1]["value"], 0.25, "a ticket's ½ at the self-report discount (½)");

    let open = server
        .admin("GET", "/api/v1/reports/roi?from=1d&to=2099-01-01", "")
        .await;
    assert_eq!(open.status, 200, "{}", open.text);
    assert!(open.json["forecast_usd"].is_number(), "an open window is forecast");
    let bad = server
        .admin("GET", "/api/v1/reports/roi?from=2026-12-01&to=2026-11-01", "")
        .await;
    assert_eq!(
        (bad.status, bad.json["error"]["parameter"].as_str()),
        (400, Some("from"))
    );
    let unknown = server.admin("GET", "/api/v1/reports/roi?team=payments", "").await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
}
