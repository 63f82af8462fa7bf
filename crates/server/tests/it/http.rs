//! The server over real HTTP on a random loopback port: authentication, ingestion contract
//! (duplicates, line-and-field errors, limits, gzip) and the summary endpoint.

use std::io::Write;

use bytes::Bytes;
use goodhart_store::testing::TestDatabase;

use crate::common::{ADMIN, Reply, TestServer, start_with};

const BODY_LIMIT: usize = 64 * 1024;

async fn start(db: TestDatabase) -> TestServer {
    start_with(db, &format!("[limits]\nmax_body_bytes = {BODY_LIMIT}")).await
}

trait Ingest {
    async fn ingest(&self, content_type: &str, body: impl Into<Bytes>) -> Reply;
}

impl Ingest for TestServer {
    async fn ingest(&self, content_type: &str, body: impl Into<Bytes>) -> Reply {
        let auth = format!("Bearer {ADMIN}");
        self.send(
            "POST",
            "/api/v1/usage",
            &[("authorization", &auth), ("content-type", content_type)],
            body,
        )
        .await
    }
}

fn event(id: &str, user: &str, input: u64) -> String {
    format!(
        r#"{{"id": "{id}", "timestamp": "2026-11-02T09:14:03Z", "user": "{user}", "team": "payments", "model": "claude-sonnet-4-5", "input_tokens": {input}, "output_tokens": 100}}"#
    )
}

fn ndjson(events: &[String]) -> String {
    events.join("\n") + "\n"
}

const WINDOW: &str = "from=2026-11-01&to=2026-11-03";

#[tokio::test]
async fn healthz_is_public_and_everything_else_needs_the_admin_token() {
    let server = start(TestDatabase::sqlite()).await;
    assert_eq!(server.send("GET", "/healthz", &[], Bytes::new()).await.status, 200);
    let body = ndjson(&[event("a", "alice", 1)]);
    let missing = server.send("POST", "/api/v1/usage", &[], body.clone()).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json["error"]["code"], "unauthorized");
    let wrong = server
        .send(
            "POST",
            "/api/v1/usage",
            &[("authorization", "Bearer nope")],
            body.clone(),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let summary = server
        .send(
            "GET",
            "/api/v1/usage/summary",
            &[("authorization", "Bearer nope")],
            Bytes::new(),
        )
        .await;
    assert_eq!(summary.status, 401);
    let by_api_key = server
        .send("POST", "/api/v1/usage", &[("x-api-key", ADMIN)], body)
        .await;
    assert_eq!(by_api_key.status, 200, "{:?}", by_api_key.json);
    let unknown = server.send("GET", "/api/v1/nothing", &[], Bytes::new()).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn resent_events_are_counted_once() {
    let server = start(TestDatabase::sqlite()).await;
    let batch = ndjson(&[
        event("a", "alice", 1000),
        event("b", "bob", 2000),
        event("a", "alice", 1000),
    ]);
    let first = server.ingest("application/x-ndjson", batch.clone()).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        (first.json["accepted"].as_u64(), first.json["duplicates"].as_u64()),
        (Some(2), Some(1))
    );
    let again = server.ingest("application/x-ndjson", batch).await;
    assert_eq!(
        (again.json["accepted"].as_u64(), again.json["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    let summary = server.summary(WINDOW).await;
    assert_eq!(summary.json["totals"]["requests"], 2);
    assert_eq!(summary.json["totals"]["input_tokens"], 3000);
    // claude-sonnet-4-5 at $3/$15 per Mtok: 3000 input + 200 output tokens = $0.012.
    assert_eq!(summary.json["totals"]["cost_usd"].to_string(), "0.012");
}

#[tokio::test]
async fn one_bad_event_rejects_the_request_naming_line_and_field_and_stores_nothing() {
    let server = start(TestDatabase::sqlite()).await;
    let bad = event("c", "carol", 5).replace("\"input_tokens\": 5", "\"input_tokens\": -5");
    let array = format!(
        "[\n  {},\n  {},\n  {}\n]",
        event("a", "alice", 1),
        event("b", "bob", 2),
        bad
    );
    let reply = server.ingest("application/json", array).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json["error"]["code"], "invalid_event");
    assert_eq!(reply.json["error"]["line"], 4);
    assert_eq!(reply.json["error"]["field"], "input_tokens");

    let unknown = format!(
        "{}\n{}",
        event("a", "alice", 1),
        event("b", "bob", 2).replace("\"team\"", "\"squad\"")
    );
    let reply = server.ingest("application/x-ndjson", unknown).await;
    assert_eq!((reply.status, reply.json["error"]["line"].as_u64()), (400, Some(2)));
    assert_eq!(reply.json["error"]["field"], "squad");
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `squad`")
    );

    let summary = server.summary(WINDOW).await;
    assert_eq!(
        summary.json["totals"]["requests"], 0,
        "nothing of a rejected request is stored"
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_compressed_or_not() {
    let server = start(TestDatabase::sqlite()).await;
    let big: Vec<String> = (0..1000).map(|i| event(&format!("e{i}"), "alice", i)).collect();
    let body = ndjson(&big);
    assert!(body.len() > BODY_LIMIT);
    let reply = server.ingest("application/x-ndjson", body.clone()).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json["error"]["code"], "payload_too_large");

    // Compressed it fits the limit on the wire, but not once inflated: still 413.
    let gz = gzip(body.as_bytes());
    assert!(gz.len() < BODY_LIMIT);
    let auth = format!("Bearer {ADMIN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-ndjson"),
        ("content-encoding", "gzip"),
    ];
    let reply = server.send("POST", "/api/v1/usage", &headers, gz).await;
    assert_eq!(reply.status, 413);
    assert_eq!(server.summary(WINDOW).await.json["totals"]["requests"], 0);
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_other_encodings_refused() {
    let server = start(TestDatabase::sqlite()).await;
    let body = ndjson(&[event("a", "alice", 1), event("b", "bob", 2)]);
    let auth = format!("Bearer {ADMIN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-ndjson"),
        ("content-encoding", "gzip"),
    ];
    let reply = server
        .send("POST", "/api/v1/usage", &headers, gzip(body.as_bytes()))
        .await;
    assert_eq!((reply.status, reply.json["accepted"].as_u64()), (200, Some(2)));
    let brotli = [("authorization", auth.as_str()), ("content-encoding", "br")];
    assert_eq!(server.send("POST", "/api/v1/usage", &brotli, body).await.status, 415);
    let corrupt = server
        .send(
            "POST",
            "/api/v1/usage",
            &headers,
            Bytes::from_static(b"\x1f\x8bnot gzip"),
        )
        .await;
    assert_eq!(corrupt.status, 400);
}

#[tokio::test]
async fn unknown_models_are_stored_unpriced_and_reported() {
    let server = start(TestDatabase::sqlite()).await;
    let body = ndjson(&[event("a", "alice", 1).replace("claude-sonnet-4-5", "brand-new-model")]);
    let reply = server.ingest("application/x-ndjson", body).await;
    assert_eq!(reply.json["unpriced"], 1);
    let summary = server.summary(&format!("{WINDOW}&group_by=model")).await;
    assert_eq!(summary.json["rows"][0]["model"], "brand-new-model");
    assert_eq!(summary.json["rows"][0]["unpriced_requests"], 1);
}

#[tokio::test]
async fn summary_groups_and_rejects_bad_parameters() {
    let server = start(TestDatabase::sqlite()).await;
    let body = ndjson(&[event("a", "alice", 1000), event("b", "bob", 1), event("c", "alice", 1)]);
    server.ingest("application/x-ndjson", body).await;
    let summary = server.summary(&format!("{WINDOW}&group_by=user,day")).await;
    assert_eq!(summary.status, 200);
    let rows = summary.json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0]["user"].as_str(),
            rows[0]["day"].as_str(),
            rows[0]["requests"].as_u64()
        ),
        (Some("alice"), Some("2026-11-02"), Some(2))
    );
    let bad = server.summary("group_by=user,colour").await;
    assert_eq!(
        (bad.status, bad.json["error"]["parameter"].as_str()),
        (400, Some("group_by"))
    );
    let bad_time = server.summary("from=last%20tuesday").await;
    assert_eq!(
        (bad_time.status, bad_time.json["error"]["parameter"].as_str()),
        (400, Some("from"))
    );
    let unknown_param = server.summary("colour=red").await;
    assert_eq!(unknown_param.status, 400);
}

#[tokio::test]
async fn ingestion_and_summary_work_on_postgres() {
    let server = start(TestDatabase::postgres().await).await;
    let batch = ndjson(&[
        event("a", "alice", 1000),
        event("b", "bob", 2000),
        event("a", "alice", 1000),
    ]);
    let reply = server.ingest("application/x-ndjson", batch).await;
    assert_eq!(
        (reply.json["accepted"].as_u64(), reply.json["duplicates"].as_u64()),
        (Some(2), Some(1))
    );
    let summary = server.summary(&format!("{WINDOW}&group_by=team")).await;
    assert_eq!(summary.json["rows"][0]["team"], "payments");
    assert_eq!(summary.json["rows"][0]["requests"], 2);
}

fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    Bytes::from(encoder.finish().unwrap())
}

#[tokio::test]
async fn every_documented_route_exists_and_protected_ones_need_the_token() {
    let server = start(TestDatabase::sqlite()).await;
    let reply = server.send("GET", "/openapi.json", &[], Bytes::new()).await;
    assert_eq!(reply.status, 200);
    let paths = reply.json["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 57);
    // The document says which roles besides the admin may call each operation.
    let documented = |marker: &str| {
        let mut documented: Vec<&str> = paths
            .iter()
            .filter(|(_, operations)| {
                operations
                    .as_object()
                    .unwrap()
                    .values()
                    .any(|operation| operation["description"].as_str().is_some_and(|d| d.contains(marker)))
            })
            .map(|(path, _)| path.as_str())
            .collect();
        documented.sort_unstable();
        documented
    };
    let table = |routes: &[&'static str]| {
        let mut routes = routes.to_vec();
        routes.sort_unstable();
        routes
    };
    use goodhart_server::api::{DECISION_ROUTES, OWN_KEY_ROUTES, READ_ROUTES, SCIM_ROUTES, SPEND_ROUTES};
    assert_eq!(documented("Viewer tokens may read"), table(READ_ROUTES));
    assert_eq!(documented("Finops tokens may call"), table(SPEND_ROUTES));
    assert_eq!(documented("Manager tokens may call"), table(DECISION_ROUTES));
    assert_eq!(documented("Engineer tokens call this"), table(OWN_KEY_ROUTES));
    assert_eq!(documented("SCIM tokens call this"), table(SCIM_ROUTES));
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let public = operation["security"].as_array().is_some_and(|s| s.is_empty());
            let path = path.replace("{id}", "0123456789ab");
            let status = server
                .send(&method.to_uppercase(), &path, &[], Bytes::new())
                .await
                .status;
            // Without `[auth.oidc]`, single sign-on's own routes do not exist (but /auth/sso says so).
            let sso_off = path.starts_with("/auth/") && path != "/auth/sso";
            let expected = match (public, sso_off) {
                (true, true) => 404,
                (true, false) => 200,
                (false, _) => 401,
            };
            assert_eq!(status, expected, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn keys_are_created_once_listed_without_secrets_rotated_and_revoked() {
    let server = start(TestDatabase::sqlite()).await;
    let auth = format!("Bearer {ADMIN}");
    let json = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let created = server
        .send(
            "POST",
            "/api/v1/keys",
            &json,
            r#"{"user": "alice", "team": "payments", "agent": "bot", "expires_in": "30d"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let secret = created.json["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("gk-{id}-")));
    assert_eq!(created.json["status"], "active");
    assert!(created.json["expires_at"].is_string());

    let listed = server.send("GET", "/api/v1/keys", &json, Bytes::new()).await;
    assert_eq!(listed.json["keys"][0]["id"], id.as_str());
    assert!(listed.json["keys"][0].get("key").is_none(), "secrets are never listed");
    assert!(!listed.json.to_string().contains(&secret));

    let rotated = server
        .send("POST", &format!("/api/v1/keys/{id}/rotate"), &json, Bytes::new())
        .await;
    assert_eq!(rotated.status, 201);
    let new_id = rotated.json["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(
        (rotated.json["user"].as_str(), rotated.json["agent"].as_str()),
        (Some("alice"), Some("bot"))
    );
    let again = server
        .send("POST", &format!("/api/v1/keys/{id}/rotate"), &json, Bytes::new())
        .await;
    assert_eq!(
        (again.status, again.json["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    let revoked = server
        .send("POST", &format!("/api/v1/keys/{new_id}/revoke"), &json, Bytes::new())
        .await;
    assert_eq!(
        (revoked.status, revoked.json["status"].as_str()),
        (200, Some("revoked"))
    );
    let missing = server
        .send("POST", "/api/v1/keys/ffffffffffff/revoke", &json, Bytes::new())
        .await;
    assert_eq!(missing.status, 404);

    let no_user = server
        .send("POST", "/api/v1/keys", &json, r#"{"team": "payments"}"#)
        .await;
    assert_eq!(no_user.status, 400);
    let bad_expiry = server
        .send(
            "POST",
            "/api/v1/keys",
            &json,
            r#"{"user": "bob", "expires_in": "soon"}"#,
        )
        .await;
    assert_eq!(
        (bad_expiry.status, bad_expiry.json["error"]["field"].as_str()),
        (400, Some("expires_in"))
    );
    let unknown = server
        .send("POST", "/api/v1/keys", &json, r#"{"user": "bob", "budget": 5}"#)
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.json["error"]["message"].as_str().unwrap().contains("budget"));
}

#[tokio::test]
async fn budgets_are_created_listed_with_their_window_and_deleted() {
    let server = start(TestDatabase::sqlite()).await;
    let now = goodhart_core::Micros::from_timestamp(jiff::Timestamp::now()).rfc3339();
    let event = format!(
        r#"{{"id": "b1", "timestamp": "{now}", "user": "alice", "team": "payments", "model": "claude-sonnet-4-5", "input_tokens": 100000, "output_tokens": 0}}"#
    );
    assert_eq!(server.ingest("application/x-ndjson", event).await.status, 200);
    let created = server
        .admin(
            "POST",
            "/api/v1/budgets",
            r#"{"scope": "team", "name": "payments", "period": "month", "limit_usd": "500", "action": "block", "timezone": "Europe/Paris"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let budget = &created.json;
    assert_eq!(budget["scope"], "team");
    assert_eq!(budget["limit_usd"].to_string(), "500");
    assert_eq!(
        budget["spent_usd"].to_string(),
        "0.3",
        "100k Sonnet input tokens at $3/Mtok"
    );
    assert_eq!(budget["requests"], 1);
    assert!(budget["forecast_usd"].as_f64().unwrap() >= 0.3);
    assert!(budget["resets_at"].as_str().unwrap() > budget["window_start"].as_str().unwrap());
    let id = budget["id"].as_str().unwrap();
    let listed = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
    assert_eq!(listed.json["budgets"].as_array().unwrap().len(), 1);
    assert_eq!(
        server
            .admin("GET", &format!("/api/v1/budgets/{id}"), Bytes::new())
            .await
            .json["id"],
        id
    );
    let bad = server
        .admin(
            "POST",
            "/api/v1/budgets",
            r#"{"scope": "team", "period": "month", "limit_usd": "5"}"#,
        )
        .await;
    assert_eq!((bad.status, bad.json["error"]["field"].as_str()), (400, Some("name")));
    assert_eq!(
        server
            .admin("DELETE", &format!("/api/v1/budgets/{id}"), Bytes::new())
            .await
            .status,
        204
    );
    assert_eq!(
        server
            .admin("DELETE", &format!("/api/v1/budgets/{id}"), Bytes::new())
            .await
            .status,
        404
    );
    let listed = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
    assert!(listed.json["budgets"].as_array().unwrap().is_empty());
}
