//! Viewer tokens end to end: created by the admin, read-only everywhere, and a token limited to
//! one team sees that team's usage, people, findings, budgets and alerts — nothing else.

use crate::common::{TestServer, loop_calls, start_with};
use bytes::Bytes;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

fn calls(user: &str, team: &str, count: i64, start: jiff::Timestamp) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({
                "id": format!("{user}-{i}"),
                "timestamp": (start + jiff::SignedDuration::from_mins(7 * i)).to_string(),
                "user": user, "team": team, "agent": "claude-code",
                "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 200,
            })
        })
        .collect()
}

pub(crate) async fn create_viewer(server: &TestServer, body: Value) -> Value {
    let reply = server.admin("POST", "/api/v1/tokens", body.to_string()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json
}

pub(crate) async fn get(server: &TestServer, token: &str, path: &str) -> Value {
    let reply = server.with_token(token, "GET", path, Bytes::new()).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    reply.json
}

pub(crate) fn subjects(rows: &Value, field: &str) -> Vec<String> {
    let mut names: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_str().unwrap_or("").to_owned())
        .collect();
    names.sort();
    names
}

/// Three people in two teams, a loop in `search` that detection finds (and alerts about), and
/// a budget per team and one for the organisation.
async fn organisation() -> TestServer {
    let server = start_with(
        TestDatabase::sqlite(),
        "[waste]\ndetect_every_secs = 0\n[outcomes]\nmin_team_members = 1\n",
    )
    .await;
    let day = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(30);
    let loop_start = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(3);
    for events in [
        calls("ana", "payments", 10, day),
        calls("ben", "payments", 5, day),
        loop_calls("cy", "search", loop_start, 130),
    ] {
        let reply = server
            .admin("POST", "/api/v1/usage", serde_json::to_string(&events).unwrap())
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let pass = server.admin("POST", "/api/v1/findings/detect", Bytes::new()).await;
    assert_eq!(pass.json["new"], 1, "{}", pass.text);
    for (scope, name) in [("team", Some("payments")), ("team", Some("search")), ("org", None)] {
        let body = json!({"scope": scope, "name": name, "period": "month", "limit_usd": "100"});
        let reply = server.admin("POST", "/api/v1/budgets", body.to_string()).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    // The waste alert is delivered in the background.
    for _ in 0..100 {
        if !get(&server, crate::common::ADMIN, "/api/v1/alerts").await["alerts"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server
}

#[tokio::test]
async fn viewers_read_but_never_administer() {
    let server = organisation().await;
    let created = create_viewer(&server, json!({"name": "finance"})).await;
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gh_view_"), "{created}");
    assert_eq!(created["team"], Value::Null);

    let me = get(&server, &token, "/api/v1/me").await;
    assert_eq!(
        me,
        json!({"role": "viewer", "may": ["read"], "id": created["id"], "name": "finance", "team": null})
    );
    assert_eq!(
        get(&server, crate::common::ADMIN, "/api/v1/me").await,
        json!({"role": "admin", "may": ["read", "ingest", "spend", "decide", "own_keys", "provision", "administer"]})
    );

    for path in [
        "/api/v1/usage/summary?group_by=team",
        "/api/v1/reports/roi",
        "/api/v1/leaderboard",
        "/api/v1/findings",
        "/api/v1/alerts",
        "/api/v1/subjects/user/cy",
    ] {
        // The window's bounds default to "now", which moves between the two requests.
        let without_window = |mut document: Value| {
            document
                .as_object_mut()
                .unwrap()
                .retain(|k, _| k != "from" && k != "to");
            document
        };
        let as_viewer = without_window(get(&server, &token, path).await);
        let as_admin = without_window(get(&server, crate::common::ADMIN, path).await);
        assert_eq!(
            as_viewer, as_admin,
            "a viewer of every team reads what the admin reads: {path}"
        );
    }

    // Budgets' forecasts move with the clock: the same budgets, then.
    let budget_ids = |document: Value| subjects(&document["budgets"], "id");
    assert_eq!(
        budget_ids(get(&server, &token, "/api/v1/budgets").await),
        budget_ids(get(&server, crate::common::ADMIN, "/api/v1/budgets").await)
    );

    let finding = get(&server, &token, "/api/v1/findings").await["findings"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let budget = get(&server, &token, "/api/v1/budgets").await["budgets"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path, body) in [
        ("GET", "/api/v1/keys".to_owned(), ""),
        ("POST", "/api/v1/keys".to_owned(), r#"{"user": "mallory"}"#),
        ("GET", "/api/v1/tokens".to_owned(), ""),
        ("POST", "/api/v1/tokens".to_owned(), "{}"),
        ("POST", format!("/api/v1/findings/{finding}/dismiss"), "{}"),
        ("POST", "/api/v1/findings/detect".to_owned(), ""),
        ("POST", "/api/v1/budgets".to_owned(), "{}"),
        ("DELETE", format!("/api/v1/budgets/{budget}"), ""),
        ("POST", "/api/v1/usage".to_owned(), "[]"),
        ("POST", "/api/v1/outcomes".to_owned(), "[]"),
        ("GET", "/api/v1/github/logins".to_owned(), ""),
    ] {
        let reply = server.with_token(&token, method, &path, body.to_owned()).await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text);
        assert_eq!(reply.json["error"]["code"], "forbidden");
    }
    let findings = get(&server, crate::common::ADMIN, "/api/v1/findings").await;
    assert_eq!(
        findings["findings"][0]["status"], "open",
        "the refused dismissal changed nothing"
    );

    let listed = get(&server, crate::common::ADMIN, "/api/v1/tokens").await;
    assert_eq!(listed["tokens"][0]["id"], created["id"]);
    assert!(listed["tokens"][0].get("token").is_none(), "the secret is shown once");

    let id = created["id"].as_str().unwrap();
    let revoked = server
        .admin("POST", &format!("/api/v1/tokens/{id}/revoke"), Bytes::new())
        .await;
    assert_eq!(revoked.json["status"], "revoked", "{}", revoked.text);
    let again = server
        .admin("POST", &format!("/api/v1/tokens/{id}/revoke"), Bytes::new())
        .await;
    assert_eq!(again.status, 409);
    let refused = server.with_token(&token, "GET", "/api/v1/me", Bytes::new()).await;
    assert_eq!(refused.status, 401, "a revoked token opens nothing");
    let wrong = server
        .with_token("gh_view_not-a-token", "GET", "/api/v1/me", Bytes::new())
        .await;
    assert_eq!(wrong.status, 401);

    let bad = server
        .admin("POST", "/api/v1/tokens", r#"{"team": "payments", "role": "admin"}"#)
        .await;
    assert_eq!(bad.status, 400, "unknown fields are refused: {}", bad.text);
}

/// Every route that is not a read, with a body each accepts or refuses only after the role
/// check: `{finding}` and `{budget}` stand for a finding's and a budget's id.
const WRITES: [(&str, &str, &str); 13] = [
    ("GET", "/api/v1/keys", ""),
    ("POST", "/api/v1/keys", r#"{"user": "mallory"}"#),
    ("GET", "/api/v1/reconciliation", ""),
    (
        "POST",
        "/api/v1/budgets",
        r#"{"scope": "user", "name": "mallory", "period": "day", "limit_usd": "1"}"#,
    ),
    ("DELETE", "/api/v1/budgets/{budget}", ""),
    ("POST", "/api/v1/findings/{finding}/dismiss", "{}"),
    ("GET", "/api/v1/tokens", ""),
    ("POST", "/api/v1/tokens", "{}"),
    ("POST", "/api/v1/findings/detect", ""),
    ("POST", "/api/v1/usage", "[]"),
    ("POST", "/api/v1/outcomes", "[]"),
    ("GET", "/api/v1/github/logins", ""),
    ("POST", "/api/v1/github/logins", "{}"),
];

/// The statuses `token` gets on [`WRITES`], by path, after substituting ids.
async fn writes_as(server: &TestServer, token: &str, finding: &str, budget: &str) -> Vec<(String, u16)> {
    let mut statuses = Vec::new();
    for (method, path, body) in WRITES {
        let path = path.replace("{finding}", finding).replace("{budget}", budget);
        let reply = server.with_token(token, method, &path, body.to_owned()).await;
        statuses.push((
            format!("{method} {}", path.replace(finding, "F").replace(budget, "B")),
            reply.status,
        ));
    }
    statuses
}

/// Finops manage spend and read everything; a manager reads the team and decides its people's
/// findings, and nothing of another team's; each is refused the rest, and nothing refused
/// changes anything.
#[tokio::test]
async fn roles_reach_what_their_duty_allows_and_no_more() {
    let server = organisation().await;
    let finops = create_viewer(&server, json!({"name": "finance", "role": "finops"})).await;
    let search = create_viewer(
        &server,
        json!({"name": "search lead", "role": "manager", "team": "search"}),
    )
    .await;
    let payments = create_viewer(&server, json!({"role": "manager", "team": "payments"})).await;
    let token = |created: &Value| created["token"].as_str().unwrap().to_owned();
    let (finops, search, payments) = (token(&finops), token(&search), token(&payments));
    assert!(finops.starts_with("gh_finops_") && search.starts_with("gh_manager_"));
    assert_eq!(
        get(&server, &finops, "/api/v1/me").await["may"],
        json!(["read", "spend"])
    );
    let me = get(&server, &search, "/api/v1/me").await;
    assert_eq!(
        (&me["role"], &me["team"], &me["may"]),
        (&json!("manager"), &json!("search"), &json!(["read", "decide"]))
    );

    for (body, field) in [
        (json!({"role": "manager"}), "team"),
        (json!({"role": "finops", "team": "search"}), "team"),
        (json!({"role": "owner"}), "role"),
    ] {
        let reply = server.admin("POST", "/api/v1/tokens", body.to_string()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert!(reply.text.contains(field), "{body}: {}", reply.text);
    }

    let finding = get(&server, crate::common::ADMIN, "/api/v1/findings").await["findings"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let budget = get(&server, crate::common::ADMIN, "/api/v1/budgets").await["budgets"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The manager of another team: the finding (cy's, in search) is not theirs to see or decide.
    let listed = get(&server, &payments, "/api/v1/findings").await;
    assert_eq!(listed["findings"], json!([]), "{listed}");
    let statuses = writes_as(&server, &payments, &finding, "no-such-budget").await;
    let allowed: Vec<_> = statuses.iter().filter(|(_, status)| *status != 403).collect();
    assert_eq!(
        allowed,
        [&("POST /api/v1/findings/F/dismiss".to_owned(), 404)],
        "another team's finding answers as if it did not exist"
    );

    // Finops: spend routes only (the key, the budget made and the one deleted are real).
    let statuses = writes_as(&server, &finops, &finding, &budget).await;
    let expected: Vec<(String, u16)> = [
        ("GET /api/v1/keys", 200),
        ("POST /api/v1/keys", 201),
        ("GET /api/v1/reconciliation", 200),
        ("POST /api/v1/budgets", 201),
        ("DELETE /api/v1/budgets/B", 204),
        ("POST /api/v1/findings/F/dismiss", 403),
        ("GET /api/v1/tokens", 403),
        ("POST /api/v1/tokens", 403),
        ("POST /api/v1/findings/detect", 403),
        ("POST /api/v1/usage", 403),
        ("POST /api/v1/outcomes", 403),
        ("GET /api/v1/github/logins", 403),
        ("POST /api/v1/github/logins", 403),
    ]
    .into_iter()
    .map(|(route, status)| (route.to_owned(), status))
    .collect();
    assert_eq!(statuses, expected);
    let findings = get(&server, crate::common::ADMIN, "/api/v1/findings").await;
    assert_eq!(findings["findings"][0]["status"], "open", "finops decide nothing");

    // The search manager: decides cy's finding, and is refused the rest.
    let statuses = writes_as(&server, &search, &finding, "no-such-budget").await;
    let allowed: Vec<_> = statuses.iter().filter(|(_, status)| *status != 403).collect();
    assert_eq!(allowed, [&("POST /api/v1/findings/F/dismiss".to_owned(), 200)]);
    let decided = get(&server, crate::common::ADMIN, "/api/v1/findings").await["findings"][0].clone();
    assert_eq!(
        (&decided["status"], &decided["decided_by"]),
        (&json!("dismissed"), &json!("manager")),
        "{decided}"
    );
    let summary = get(&server, &search, "/api/v1/usage/summary?group_by=team").await;
    assert_eq!(
        subjects(&summary["rows"], "team"),
        ["search"],
        "a manager reads the team only"
    );
}

/// An engineer's token reads their own usage, findings and budgets, and nothing of anyone
/// else's; it changes nothing.
#[tokio::test]
async fn an_engineer_reads_their_own_and_nothing_else() {
    let server = organisation().await;
    for (body, field) in [
        (json!({"role": "engineer"}), "user"),
        (json!({"role": "engineer", "user": "ana", "team": "payments"}), "team"),
        (json!({"role": "viewer", "user": "ana"}), "user"),
    ] {
        let reply = server.admin("POST", "/api/v1/tokens", body.to_string()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert!(reply.text.contains(field), "{body}: {}", reply.text);
    }
    for user in ["ana", "ben"] {
        server
            .create_budget(json!({"scope": "user", "name": user, "period": "month", "limit_usd": "10"}))
            .await;
    }
    let created = create_viewer(&server, json!({"role": "engineer", "user": "ana"})).await;
    assert_eq!(created["user"], "ana");
    let ana = created["token"].as_str().unwrap().to_owned();
    assert!(ana.starts_with("gh_engineer_"));
    let me = get(&server, &ana, "/api/v1/me").await;
    assert_eq!(
        (&me["role"], &me["user"], &me["may"]),
        (&json!("engineer"), &json!("ana"), &json!(["read", "own_keys"]))
    );

    let summary = get(&server, &ana, "/api/v1/usage/summary?group_by=user").await;
    assert_eq!(subjects(&summary["rows"], "user"), ["ana"]);
    let by_team = get(&server, &ana, "/api/v1/usage/summary?group_by=team").await;
    let admin_ana = get(&server, crate::common::ADMIN, "/api/v1/usage/summary?group_by=user").await["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"] == "ana")
        .unwrap()["cost_usd"]
        .clone();
    assert_eq!(
        by_team["rows"][0]["cost_usd"], admin_ana,
        "only ana's spend, whatever the grouping"
    );
    assert_eq!(
        get(&server, &ana, "/api/v1/findings").await["findings"],
        json!([]),
        "cy's loop is not hers"
    );
    let budgets = get(&server, &ana, "/api/v1/budgets").await;
    assert_eq!(subjects(&budgets["budgets"], "name"), ["ana"], "{budgets}");
    let board = get(&server, &ana, "/api/v1/leaderboard?by=user&metric=value").await;
    assert_eq!(subjects(&board["rows"], "subject"), ["ana"]);
    assert_eq!(get(&server, &ana, "/api/v1/subjects/user/ana").await["name"], "ana");
    for path in [
        "/api/v1/subjects/user/cy",
        "/api/v1/subjects/team/payments",
        "/api/v1/subjects/agent/claude-code",
    ] {
        let reply = server.with_token(&ana, "GET", path, Bytes::new()).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
    }
    let finding = get(&server, crate::common::ADMIN, "/api/v1/findings").await["findings"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let statuses = writes_as(&server, &ana, &finding, "no-such-budget").await;
    assert!(statuses.iter().all(|(_, status)| *status == 403), "{statuses:?}");
}

/// An engineer makes and revokes their own keys within `[self_service]`: always theirs,
/// never past the admin's bounds, never anyone else's; and the gateway meters a call with one
/// to them.
#[tokio::test]
async fn an_engineer_makes_their_own_keys_within_the_bounds_set() {
    let server = start_with(
        TestDatabase::sqlite(),
        "[self_service]\nmax_keys = 2\nmax_key_days = 30\nmax_requests_per_minute = 60\n",
    )
    .await;
    let ana = create_viewer(&server, json!({"role": "engineer", "user": "ana"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (bens_key, _) = server.create_key(r#"{"user": "ben"}"#).await;
    let own = |method: &'static str, path: &str, body: Value| {
        let (server, ana, path) = (&server, ana.clone(), path.to_owned());
        async move { server.with_token(&ana, method, &path, body.to_string()).await }
    };

    let made = own(
        "POST",
        "/api/v1/me/keys",
        json!({"name": "laptop", "agent": "claude-code"}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!((&made.json["user"], &made.json["team"]), (&json!("ana"), &Value::Null));
    assert_eq!(made.json["requests_per_minute"], 60, "the cap is the default");
    let expires = made.json["expires_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let days = (expires - jiff::Timestamp::now()).get_seconds() / 86_400;
    assert!(
        (29..=30).contains(&days),
        "the longest life is the default: {days} days"
    );

    for (body, field) in [
        (json!({"expires_in": "31d"}), "expires_in"),
        (json!({"requests_per_minute": 61}), "requests_per_minute"),
        (json!({"user": "ben"}), "user"),
        (json!({"team": "payments"}), "team"),
    ] {
        let refused = own("POST", "/api/v1/me/keys", body.clone()).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.text);
        assert!(refused.text.contains(field), "{body}: {}", refused.text);
    }
    assert_eq!(own("POST", "/api/v1/me/keys", json!({})).await.status, 201);
    let third = own("POST", "/api/v1/me/keys", json!({})).await;
    assert_eq!(third.status, 409, "two active keys at most: {}", third.text);

    let listed = own("GET", "/api/v1/me/keys", Value::Null).await;
    let ids = subjects(&listed.json["keys"], "id");
    assert_eq!(ids.len(), 2, "hers only: {}", listed.text);
    assert!(!ids.contains(&bens_key));
    assert_eq!(
        listed.json["limits"],
        json!({"max_keys": 2, "max_key_days": 30, "max_requests_per_minute": 60, "max_tokens_per_minute": null}),
        "the bounds are stated beside the keys"
    );
    let theft = own("POST", &format!("/api/v1/me/keys/{bens_key}/revoke"), Value::Null).await;
    assert_eq!(theft.status, 404, "ben's key is not hers to see: {}", theft.text);
    let id = made.json["id"].as_str().unwrap();
    let revoked = own("POST", &format!("/api/v1/me/keys/{id}/revoke"), Value::Null).await;
    assert_eq!(revoked.json["status"], "revoked", "{}", revoked.text);
    let again = own("POST", "/api/v1/me/keys", json!({})).await;
    assert_eq!(again.status, 201, "room again: {}", again.text);
    let listed = own("GET", "/api/v1/me/keys", Value::Null).await;
    assert!(
        listed.json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("key").is_none()),
        "no secrets listed"
    );

    // Her key is hers at the gateway.
    let key = again.json["key"].as_str().unwrap();
    let call = server
        .with_token(
            key,
            "POST",
            "/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        )
        .await;
    assert_eq!(call.status, 200, "{}", call.text);
    server.flush().await;
    let by_user = get(&server, &ana, "/api/v1/usage/summary?group_by=user").await;
    assert_eq!(subjects(&by_user["rows"], "user"), ["ana"], "{by_user}");
    assert_eq!(by_user["rows"][0]["requests"], 1);

    // Nobody else has own keys, and the admin can turn self-service off.
    let viewer = create_viewer(&server, json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in [viewer.as_str(), crate::common::ADMIN] {
        let reply = server.with_token(token, "POST", "/api/v1/me/keys", "{}").await;
        assert_eq!(reply.status, 403, "{}", reply.text);
    }
    let off = start_with(TestDatabase::sqlite(), "[self_service]\nkeys = false\n").await;
    let token = create_viewer(&off, json!({"role": "engineer", "user": "ana"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = off.with_token(&token, "POST", "/api/v1/me/keys", "{}").await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert!(reply.text.contains("self_service"), "{}", reply.text);
}

#[tokio::test]
async fn a_team_viewer_sees_only_its_team() {
    let server = organisation().await;
    let payments = create_viewer(&server, json!({"name": "payments leads", "team": "payments"})).await;
    let token = payments["token"].as_str().unwrap().to_owned();

    let summary = get(&server, &token, "/api/v1/usage/summary?group_by=team").await;
    assert_eq!(subjects(&summary["rows"], "team"), ["payments"]);
    let by_user = get(&server, &token, "/api/v1/usage/summary?group_by=user").await;
    assert_eq!(subjects(&by_user["rows"], "user"), ["ana", "ben"]);
    assert!(by_user["rows"][0].get("team").is_none(), "only the asked-for keys");
    assert_eq!(by_user["totals"]["requests"], 15);
    let everything = get(&server, &token, "/api/v1/usage/summary").await;
    assert_eq!(
        everything["totals"]["requests"], 15,
        "cy's 130 calls are not the team's"
    );

    let board = get(&server, &token, "/api/v1/leaderboard?by=user&metric=volume").await;
    assert_eq!(subjects(&board["rows"], "subject"), ["ana", "ben"]);
    assert_eq!(board["rows"][0]["rank"], 1);
    let teams = get(&server, &token, "/api/v1/leaderboard?by=team").await;
    assert_eq!(subjects(&teams["rows"], "subject"), ["payments"]);
    let admin_teams = get(&server, crate::common::ADMIN, "/api/v1/leaderboard?by=team").await;
    assert_eq!(subjects(&admin_teams["rows"], "subject"), ["payments", "search"]);

    let roi = get(&server, &token, "/api/v1/reports/roi").await;
    assert_eq!(subjects(&roi["teams"], "team"), ["payments"]);
    assert_eq!(roi["org"]["people"], 2, "the report covers the team's people only");
    assert_eq!(roi["org"]["cost_usd"], roi["teams"][0]["cost_usd"]);
    assert_eq!(roi["org"]["waste_usd"].to_string(), "0");

    let findings = get(&server, &token, "/api/v1/findings").await;
    assert_eq!(findings["findings"], json!([]), "cy's loop belongs to search");
    assert_eq!(findings["totals"]["wasted_usd"].to_string(), "0");
    let all_findings = get(&server, crate::common::ADMIN, "/api/v1/findings").await;
    assert_eq!(all_findings["findings"][0]["user"], "cy");

    let budgets = get(&server, &token, "/api/v1/budgets").await;
    assert_eq!(subjects(&budgets["budgets"], "name"), ["payments"]);
    let all_budgets = get(&server, crate::common::ADMIN, "/api/v1/budgets").await;
    for budget in all_budgets["budgets"].as_array().unwrap() {
        let path = format!("/api/v1/budgets/{}", budget["id"].as_str().unwrap());
        let reply = server.with_token(&token, "GET", &path, Bytes::new()).await;
        let expected = if budget["name"] == "payments" { 200 } else { 404 };
        assert_eq!(reply.status, expected, "{budget}");
    }

    let alerts = get(&server, crate::common::ADMIN, "/api/v1/alerts").await;
    assert_eq!(
        subjects(&alerts["alerts"], "kind"),
        ["waste"],
        "the loop raised an alert"
    );
    assert_eq!(get(&server, &token, "/api/v1/alerts").await["alerts"], json!([]));

    for path in [
        "/api/v1/subjects/user/cy",
        "/api/v1/subjects/team/search",
        "/api/v1/subjects/agent/loop-agent",
        "/api/v1/subjects/planet/earth",
    ] {
        let reply = server.with_token(&token, "GET", path, Bytes::new()).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
    }
    let team = get(&server, &token, "/api/v1/subjects/team/payments").await;
    assert_eq!(team["usage"]["requests"], 15);
    assert_eq!(subjects(&team["related"], "name"), ["ana", "ben"]);

    let search = create_viewer(&server, json!({"team": "search"})).await;
    let search_token = search["token"].as_str().unwrap();
    let findings = get(&server, search_token, "/api/v1/findings").await;
    assert_eq!(
        findings["findings"].as_array().unwrap().len(),
        1,
        "search sees its own loop"
    );
    let alerts = get(&server, search_token, "/api/v1/alerts").await;
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_subject_page_adds_up() {
    let server = organisation().await;
    let page = get(&server, crate::common::ADMIN, "/api/v1/subjects/user/cy?from=7d").await;
    assert_eq!(page["by"], "user");
    assert_eq!(page["usage"]["requests"], 130);
    assert_eq!(page["usage"]["cost_usd"].to_string(), "0.78", "130 calls at $0.006");
    let days = page["daily"].as_array().unwrap();
    assert!((7..=8).contains(&days.len()), "every day of the window: {}", days.len());
    let daily_requests: u64 = days.iter().map(|d| d["requests"].as_u64().unwrap()).sum();
    assert_eq!(daily_requests, 130);
    assert_eq!(page["models"][0]["name"], "claude-sonnet-4-5");
    assert_eq!(page["related_by"], "agent");
    assert_eq!(subjects(&page["related"], "name"), ["loop-agent"]);
    assert_eq!(page["board"]["subject"], "cy");
    assert_eq!(page["board"]["waste_usd"].to_string(), "0.78");
    assert_eq!(page["board_size"], 3);
    assert_eq!(page["findings"][0]["user"], "cy");

    let agent = get(
        &server,
        crate::common::ADMIN,
        "/api/v1/subjects/agent/loop-agent?from=7d",
    )
    .await;
    assert_eq!(agent["findings"].as_array().unwrap().len(), 1);
    assert_eq!(subjects(&agent["related"], "name"), ["cy"]);
    let team = get(&server, crate::common::ADMIN, "/api/v1/subjects/team/payments?from=7d").await;
    assert_eq!(
        team["findings"],
        json!([]),
        "the team page shows its people's findings only"
    );
    assert_eq!(team["board"]["subject"], "payments");
    assert_eq!(team["board_size"], 2);
}
