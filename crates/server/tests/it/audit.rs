//! The audit log end to end: every admin action through the API is recorded once, with who,
//! what, to what and from where; refused requests are recorded within the failure bound; the
//! log is read newest first, filtered and paged; an action whose entry cannot be written fails.

use bytes::Bytes;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::common::{ADMIN, TestServer, loop_calls, start_with};

const UA: &str = "audit-test/1.0";

async fn admin(server: &TestServer, method: &str, path: &str, body: impl Into<Bytes>) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("user-agent", UA),
    ];
    let reply = server.send(method, path, &headers, body).await;
    (reply.status, reply.json)
}

/// Every entry of the log matching `query`, newest first, read a page at a time.
pub(crate) async fn audit_log(server: &TestServer, query: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply = server
            .admin("GET", &format!("/api/v1/audit?limit=7&{query}{cursor}"), "")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        entries.extend(reply.json["entries"].as_array().unwrap().iter().cloned());
        match reply.json["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return entries,
        }
    }
}

async fn every_admin_action_is_recorded_once(db: TestDatabase) {
    let server = start_with(db, "[waste]\ndetect_every_secs = 0\n[outcomes]\nmin_team_members = 1\n").await;
    let mut secrets = Vec::new();
    let mut expected: Vec<(&str, Option<(&str, String)>)> = Vec::new();

    let (status, key) = admin(
        &server,
        "POST",
        "/api/v1/keys",
        r#"{"user": "alice", "team": "payments"}"#,
    )
    .await;
    assert_eq!(status, 201);
    let key_id = key["id"].as_str().unwrap().to_owned();
    secrets.push(key["key"].as_str().unwrap().to_owned());
    expected.push(("key.create", Some(("key", key_id.clone()))));
    let (status, rotated) = admin(&server, "POST", &format!("/api/v1/keys/{key_id}/rotate"), "").await;
    assert_eq!(status, 201);
    secrets.push(rotated["key"].as_str().unwrap().to_owned());
    let new_key = rotated["id"].as_str().unwrap().to_owned();
    expected.push(("key.rotate", Some(("key", key_id.clone()))));
    assert_eq!(
        admin(&server, "POST", &format!("/api/v1/keys/{new_key}/revoke"), "")
            .await
            .0,
        200
    );
    expected.push(("key.revoke", Some(("key", new_key.clone()))));

    let (status, budget) = admin(
        &server,
        "POST",
        "/api/v1/budgets",
        json!({"scope": "team", "name": "payments", "period": "month", "limit_usd": "250", "action": "block"})
            .to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let budget_id = budget["id"].as_str().unwrap().to_owned();
    expected.push(("budget.create", Some(("budget", budget_id.clone()))));
    assert_eq!(
        admin(&server, "DELETE", &format!("/api/v1/budgets/{budget_id}"), "")
            .await
            .0,
        204
    );
    expected.push(("budget.delete", Some(("budget", budget_id.clone()))));

    let (status, viewer) = admin(
        &server,
        "POST",
        "/api/v1/tokens",
        r#"{"name": "payments managers", "team": "payments"}"#,
    )
    .await;
    assert_eq!(status, 201);
    let viewer_id = viewer["id"].as_str().unwrap().to_owned();
    let viewer_secret = viewer["token"].as_str().unwrap().to_owned();
    secrets.push(viewer_secret.clone());
    expected.push(("viewer_token.create", Some(("viewer_token", viewer_id.clone()))));
    let (status, ingest) = admin(&server, "POST", "/api/v1/tokens", r#"{"role": "ingest"}"#).await;
    assert_eq!(status, 201);
    let ingest_id = ingest["id"].as_str().unwrap().to_owned();
    secrets.push(ingest["token"].as_str().unwrap().to_owned());
    expected.push(("ingest_token.create", Some(("ingest_token", ingest_id.clone()))));
    assert_eq!(
        admin(&server, "POST", &format!("/api/v1/tokens/{ingest_id}/revoke"), "")
            .await
            .0,
        200
    );
    expected.push(("ingest_token.revoke", Some(("ingest_token", ingest_id.clone()))));

    let (status, _) = admin(
        &server,
        "POST",
        "/api/v1/github/logins",
        r#"{"login": "bob-gh", "user": "bob"}"#,
    )
    .await;
    assert_eq!(status, 200);
    expected.push(("login_mapping.set", Some(("github_login", "bob-gh".to_owned()))));
    let outcomes =
        json!([{"id": "t-1", "timestamp": "2026-11-03T10:00:00Z", "kind": "ticket_resolved", "user": "alice"}]);
    assert_eq!(
        admin(&server, "POST", "/api/v1/outcomes", outcomes.to_string()).await.0,
        200
    );
    expected.push(("outcome.record", None));

    // Usage is not an admin action: it is not audited.
    let night: jiff::Timestamp = "2026-11-02T22:00:00Z".parse().unwrap();
    let calls = serde_json::to_string(&loop_calls("bob", "payments", night, 130)).unwrap();
    assert_eq!(admin(&server, "POST", "/api/v1/usage", calls).await.0, 200);
    let (status, pass) = admin(
        &server,
        "POST",
        "/api/v1/findings/detect?from=2026-11-02&to=2026-11-03",
        "",
    )
    .await;
    assert_eq!((status, pass["new"].as_u64()), (200, Some(1)), "{pass}");
    expected.push(("finding.detect", None));
    let listed = server
        .admin("GET", "/api/v1/findings?from=2026-11-01&to=2026-11-04", "")
        .await;
    let finding_id = listed.json["findings"][0]["id"].as_str().unwrap().to_owned();
    let confirm = format!("/api/v1/findings/{finding_id}/confirm");
    assert_eq!(
        admin(&server, "POST", &confirm, r#"{"note": "a runaway loop"}"#)
            .await
            .0,
        200
    );
    expected.push(("finding.confirm", Some(("finding", finding_id.clone()))));
    assert_eq!(
        admin(&server, "POST", &format!("/api/v1/findings/{finding_id}/dismiss"), "")
            .await
            .0,
        200
    );
    expected.push(("finding.dismiss", Some(("finding", finding_id.clone()))));

    // What did not happen is not recorded as done.
    assert_eq!(
        admin(&server, "POST", "/api/v1/keys/gk_missing/revoke", "").await.0,
        404
    );
    assert_eq!(
        admin(&server, "POST", &format!("/api/v1/keys/{new_key}/revoke"), "")
            .await
            .0,
        409
    );
    assert_eq!(
        admin(&server, "POST", "/api/v1/budgets", r#"{"scope": "org"}"#).await.0,
        400
    );
    assert_eq!(
        admin(&server, "DELETE", &format!("/api/v1/budgets/{budget_id}"), "")
            .await
            .0,
        404
    );
    assert_eq!(admin(&server, "POST", "/api/v1/findings/nope/confirm", "").await.0, 404);
    assert_eq!(
        admin(
            &server,
            "POST",
            "/api/v1/github/logins",
            r#"{"login": " x", "user": "bob"}"#
        )
        .await
        .0,
        400
    );

    let log = audit_log(&server, "").await;
    let recorded: Vec<(&str, Option<(&str, String)>)> = log
        .iter()
        .rev()
        .map(|e| {
            let target = e["target"]
                .as_object()
                .map(|t| (t["kind"].as_str().unwrap(), t["id"].as_str().unwrap().to_owned()));
            (e["action"].as_str().unwrap(), target)
        })
        .collect();
    assert_eq!(
        recorded, expected,
        "each action exactly once, in order, and nothing else"
    );
    for entry in &log {
        assert_eq!(entry["outcome"], "success", "{entry}");
        assert_eq!(entry["actor"], json!({"kind": "admin_token", "id": null, "name": null}));
        assert_eq!(entry["address"], "127.0.0.1", "{entry}");
        assert_eq!(entry["user_agent"], UA);
        assert_eq!(entry["count"], 1);
    }
    let seqs: Vec<i64> = log.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first: {seqs:?}");
    let by_action = |action: &str| log.iter().find(|e| e["action"] == action).unwrap().clone();
    assert_eq!(by_action("key.create")["details"]["user"], "alice");
    assert!(
        by_action("key.create")["details"].get("project").is_none(),
        "unset fields are left out"
    );
    assert_eq!(by_action("key.rotate")["details"]["replaced_by"], new_key.as_str());
    assert_eq!(by_action("budget.create")["details"]["limit_usd"].to_string(), "250");
    assert_eq!(by_action("viewer_token.create")["details"]["team"], "payments");
    assert_eq!(by_action("finding.confirm")["details"]["note"], "a runaway loop");
    assert_eq!(by_action("login_mapping.set")["details"]["user"], "bob");
    assert_eq!(by_action("outcome.record")["details"]["accepted"], 1);
    let text = serde_json::to_string(&log).unwrap();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the log");
    }

    // Filters: by action prefix, actor, outcome and window.
    let keys: Vec<Value> = audit_log(&server, "action=key.").await;
    assert_eq!(
        keys.iter().map(|e| e["action"].as_str().unwrap()).collect::<Vec<_>>(),
        ["key.revoke", "key.rotate", "key.create"]
    );
    assert_eq!(audit_log(&server, "actor=admin_token").await.len(), expected.len());
    assert!(audit_log(&server, "outcome=failure").await.is_empty());
    assert!(audit_log(&server, "to=2000-01-01").await.is_empty());
    assert_eq!(audit_log(&server, "from=1d").await.len(), expected.len());

    // The viewer may not read the log; the attempt itself is recorded, as the viewer's.
    let refused = server.with_token(&viewer_secret, "GET", "/api/v1/audit", "").await;
    assert_eq!(refused.status, 403);
    let denied = audit_log(&server, "outcome=denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["action"], "access.denied");
    assert_eq!(
        denied[0]["actor"],
        json!({"kind": "viewer_token", "id": viewer_id, "name": "payments managers"})
    );
    assert_eq!(denied[0]["target"], json!({"kind": "route", "id": "GET /api/v1/audit"}));
    assert_eq!(audit_log(&server, &format!("actor={viewer_id}")).await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn every_admin_action_is_recorded_once_on_sqlite() {
    every_admin_action_is_recorded_once(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn every_admin_action_is_recorded_once_on_postgres() {
    every_admin_action_is_recorded_once(TestDatabase::postgres().await).await;
}

#[tokio::test]
async fn bad_tokens_are_recorded_within_the_bound() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    // No token at all is not an attempt to sign in: nothing recorded.
    assert_eq!(server.send("GET", "/api/v1/keys", &[], "").await.status, 401);
    let attempts = 45;
    for i in 0..attempts {
        let reply = server
            .send(
                "POST",
                "/api/v1/keys",
                &[
                    ("authorization", &format!("Bearer wrong-{i}")),
                    ("x-forwarded-for", "203.0.113.9"),
                ],
                "{}",
            )
            .await;
        assert_eq!(reply.status, 401);
    }
    let failures = audit_log(&server, "action=auth.failure").await;
    // Within one clock minute 20 are written; a run straddling two minutes writes up to 40.
    assert!((20..=40).contains(&failures.len()), "{}", failures.len());
    let first = failures.last().unwrap();
    assert_eq!(first["outcome"], "failure");
    assert_eq!(first["actor"]["kind"], "anonymous");
    assert_eq!(
        first["address"], "127.0.0.1",
        "X-Forwarded-For is not trusted by default"
    );
    assert_eq!(first["target"]["id"], "POST /api/v1/keys");
    assert!(
        !serde_json::to_string(&failures).unwrap().contains("wrong-"),
        "the presented token is not kept"
    );

    // The rest are counted into a summary, written once the minute is over (or at shutdown).
    let db = std::sync::Arc::clone(&server.db);
    server.stop().await;
    let store = db.open().await.unwrap();
    let all = store
        .audit_entries(&goodhart_store::audit::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let counted: i64 = all.iter().map(|e| e.entry.count).sum();
    assert_eq!(counted, attempts, "every attempt is counted once");
    let summaries: Vec<_> = all.iter().filter(|e| e.entry.action == "audit.suppressed").collect();
    assert!(!summaries.is_empty());
    assert_eq!(summaries[0].entry.address.as_deref(), Some("127.0.0.1"));
    assert!(summaries[0].entry.details.contains("\"failures\""));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_recorded() {
    let server = start_with(TestDatabase::sqlite(), "[audit]\ntrust_forwarded_for = true\n").await;
    let headers = [
        ("authorization", "Bearer nope"),
        ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
    ];
    assert_eq!(server.send("GET", "/api/v1/keys", &headers, "").await.status, 401);
    let failures = audit_log(&server, "outcome=failure").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["address"], "203.0.113.9", "the address the proxy added");
    server.stop().await;
}

#[tokio::test]
async fn the_log_refuses_bad_reads() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("outcome=maybe", "outcome"),
        ("cursor=abc", "cursor"),
        ("action=KEY%25", "action"),
        ("actor=a%0Ab", "actor"),
        ("from=yesterday-ish", "from"),
        ("from=2026-12-02&to=2026-12-01", "from"),
    ] {
        let reply = server.admin("GET", &format!("/api/v1/audit?{query}"), "").await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert_eq!(reply.json["error"]["parameter"], parameter, "{query}: {}", reply.text);
    }
    server.stop().await;
}

#[tokio::test]
async fn an_action_whose_entry_cannot_be_written_fails() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let path = goodhart_store::sqlite_path(&server.db.url).unwrap().unwrap().to_owned();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER audit_log_broken BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'broken'); END;",
        )
        .unwrap();
    let reply = server.admin("POST", "/api/v1/tokens", r#"{"name": "unaudited"}"#).await;
    assert_eq!(reply.status, 503, "not told done: {}", reply.text);
    assert_eq!(reply.json["error"]["code"], "storage_unavailable");
    assert!(
        reply.json["token"].is_null(),
        "no secret handed out for an unaudited token"
    );
    server.stop().await;
}
