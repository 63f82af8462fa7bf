//! Teams from the identity provider and personal ingest tokens, end to end: a sign-in records
//! the person's home team in the people directory, usage of theirs that names no team (gateway
//! calls with a key made without one, the ingest API) is attributed to it, a team's manager sees
//! them, and nobody is counted in two teams; an engineer's own ingest token sends only their
//! usage, whatever it names.

use bytes::Bytes;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::audit::audit_log;
use crate::common::{ADMIN, TestServer, start_with};
use crate::oidc::{Browser, TinyIdp, free_addr, server_with};
use crate::viewers::{create_viewer, get, subjects};

fn event(id: &str, user: &str, team: Option<&str>) -> Value {
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10);
    json!({"id": id, "timestamp": at.to_string(), "user": user, "team": team,
           "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 100})
}

/// Requests per (team, user) over everything stored, as the admin sees it.
pub(crate) async fn requests_by_team_and_user(server: &TestServer) -> Vec<(String, String, i64)> {
    let summary = get(
        server,
        ADMIN,
        "/api/v1/usage/summary?group_by=team,user&from=2026-01-01",
    )
    .await;
    let mut rows: Vec<(String, String, i64)> = summary["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["team"].as_str().unwrap_or("-").to_owned(),
                r["user"].as_str().unwrap().to_owned(),
                r["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn a_personal_ingest_token_sends_only_its_persons_usage() {
    let server = start_with(TestDatabase::sqlite(), "[self_service]\nmax_ingest_tokens = 2\n").await;
    let admin_made = create_viewer(&server, json!({"role": "ingest", "user": "ana", "name": "ana's CI"})).await;
    assert_eq!(
        (&admin_made["role"], &admin_made["user"]),
        (&json!("ingest"), &json!("ana"))
    );
    let ana = create_viewer(&server, json!({"role": "engineer", "user": "ana"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let ben = create_viewer(&server, json!({"role": "engineer", "user": "ben"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let made = server
        .with_token(&ana, "POST", "/api/v1/me/ingest-tokens", r#"{"name": "laptop"}"#)
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(
        (&made.json["role"], &made.json["user"], &made.json["team"]),
        (&json!("ingest"), &json!("ana"), &Value::Null)
    );
    let personal = made.json["token"].as_str().unwrap().to_owned();
    assert!(personal.starts_with("gh_ingest_"));
    let refused = server
        .with_token(&ana, "POST", "/api/v1/me/ingest-tokens", r#"{"user": "ben"}"#)
        .await;
    assert_eq!(refused.status, 400, "never someone else's: {}", refused.text);
    let third = server.with_token(&ana, "POST", "/api/v1/me/ingest-tokens", "{}").await;
    assert_eq!(third.status, 409, "the admin's and her own make two: {}", third.text);

    // What she sends is hers, whatever it names; a team it names is kept.
    let events = [
        event("laptop-1", "ana", None),
        event("laptop-2", "ubuntu", None),
        event("laptop-3", "ben", Some("search")),
    ];
    let send = |events: &[Value]| {
        server.with_token(
            &personal,
            "POST",
            "/api/v1/usage",
            serde_json::to_string(events).unwrap(),
        )
    };
    let sent = send(&events).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(
        (
            &sent.json["accepted"],
            &sent.json["attributed_to"],
            &sent.json["reattributed"]
        ),
        (&json!(3), &json!("ana"), &json!(2))
    );
    assert_eq!(
        requests_by_team_and_user(&server).await,
        [
            ("-".to_owned(), "ana".to_owned(), 2),
            ("search".to_owned(), "ana".to_owned(), 1)
        ]
    );
    // An admin's token names no person: nothing is reattributed, nothing said.
    let by_admin = server
        .admin(
            "POST",
            "/api/v1/usage",
            serde_json::to_string(&[event("a-1", "ben", None)]).unwrap(),
        )
        .await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.text);
    assert!(by_admin.json.get("attributed_to").is_none() && by_admin.json.get("reattributed").is_none());

    // It only sends.
    for path in ["/api/v1/usage/summary", "/api/v1/me/ingest-tokens", "/api/v1/me/keys"] {
        let reply = server.with_token(&personal, "GET", path, Bytes::new()).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.text);
    }

    // Each person lists and revokes their own only.
    let listed = get(&server, &ana, "/api/v1/me/ingest-tokens").await;
    assert_eq!(subjects(&listed["tokens"], "name"), ["ana's CI", "laptop"]);
    assert!(
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none())
    );
    assert_eq!(
        get(&server, &ben, "/api/v1/me/ingest-tokens").await["tokens"],
        json!([])
    );
    let id = made.json["id"].as_str().unwrap().to_owned();
    let theft = server
        .with_token(&ben, "POST", &format!("/api/v1/me/ingest-tokens/{id}/revoke"), "")
        .await;
    assert_eq!(theft.status, 404, "{}", theft.text);
    let revoked = server
        .with_token(&ana, "POST", &format!("/api/v1/me/ingest-tokens/{id}/revoke"), "")
        .await;
    assert_eq!(revoked.json["status"], "revoked", "{}", revoked.text);
    let after = send(&events).await;
    assert_eq!(after.status, 401, "revoked at once: {}", after.text);

    // Recorded once each, as the engineer who did it.
    let entries = audit_log(&server, "action=ingest_token.").await;
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"]["kind"].as_str().unwrap(),
                e["target"]["id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let admin_id = admin_made["id"].as_str().unwrap();
    assert_eq!(
        seen,
        [
            ("ingest_token.create", "admin_token", admin_id),
            ("ingest_token.create", "engineer_token", id.as_str()),
            ("ingest_token.revoke", "engineer_token", id.as_str()),
        ],
        "{entries:?}"
    );

    // Only engineers have their own; the admin can turn it off.
    let viewer = create_viewer(&server, json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in [viewer.as_str(), ADMIN] {
        let reply = server.with_token(token, "POST", "/api/v1/me/ingest-tokens", "{}").await;
        assert_eq!(reply.status, 403, "{}", reply.text);
    }
    let off = start_with(TestDatabase::sqlite(), "[self_service]\ningest_tokens = false\n").await;
    let token = create_viewer(&off, json!({"role": "engineer", "user": "ana"})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = off.with_token(&token, "POST", "/api/v1/me/ingest-tokens", "{}").await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert!(reply.text.contains("ingest_tokens = false"), "{}", reply.text);
}

/// Signs `browser` in at `server` and returns its CSRF token.
async fn signed_in(browser: &mut Browser, server: &TestServer) -> String {
    let reply = browser.sign_in(&server.url(), "pat").await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    let me = browser
        .request("GET", &format!("{}/api/v1/me", server.url()), &[], "")
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    me.json["csrf_token"].as_str().unwrap().to_owned()
}

/// A change made with the session cookie (and its CSRF token).
async fn as_person(browser: &mut Browser, server: &TestServer, csrf: &str, path: &str, body: &str) -> Value {
    let url = format!("{}{path}", server.url());
    let headers = [("content-type", "application/json"), ("x-csrf-token", csrf)];
    let reply = browser.request("POST", &url, &headers, body).await;
    assert_eq!(reply.status, 201, "{path}: {}", reply.text);
    reply.json
}

async fn chat(server: &TestServer, key: &str) {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let call = server
        .with_token(key, "POST", "/v1/chat/completions", body.to_string())
        .await;
    assert_eq!(call.status, 200, "{}", call.text);
    server.flush().await;
}

#[tokio::test]
async fn the_identity_providers_teams_attribute_usage_that_names_none() {
    let idp = TinyIdp::start().await;
    idp.state.lock().unwrap().groups = ["engineering", "org-search", "org-payments"].map(String::from).to_vec();
    let extra = "engineer_groups = [\"engineering\"]\n\
                 member_groups = { \"org-payments\" = \"payments\", \"org-search\" = \"search\" }\n\
                 user_domain = \"example.com\"\n";
    let server = server_with(free_addr(), &idp.issuer, None, extra).await;
    let mut browser = Browser::default();
    let csrf = signed_in(&mut browser, &server).await;

    let people = get(&server, ADMIN, "/api/v1/people").await["people"].clone();
    assert_eq!(people.as_array().unwrap().len(), 1, "{people}");
    assert_eq!(
        (&people[0]["user"], &people[0]["team"], &people[0]["email"]),
        (&json!("pat"), &json!("payments"), &json!("pat@example.com")),
        "of two teams, the alphabetically first is home"
    );
    let viewer = create_viewer(&server, json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = server.with_token(&viewer, "GET", "/api/v1/people", Bytes::new()).await;
    assert_eq!(reply.status, 403, "the directory is the admin's: {}", reply.text);

    // Her own key names no team; her call is her home team's. So is what her own ingest token
    // sends without a team; a team an event names is kept.
    let key = as_person(&mut browser, &server, &csrf, "/api/v1/me/keys", "{}").await;
    assert_eq!(key["team"], Value::Null);
    chat(&server, key["key"].as_str().unwrap()).await;
    let token = as_person(&mut browser, &server, &csrf, "/api/v1/me/ingest-tokens", "{}").await;
    let events = [event("i-1", "pat", None), event("i-2", "pat", Some("search"))];
    let sent = server
        .with_token(
            token["token"].as_str().unwrap(),
            "POST",
            "/api/v1/usage",
            serde_json::to_string(&events).unwrap(),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(
        requests_by_team_and_user(&server).await,
        [
            ("payments".to_owned(), "pat".to_owned(), 2),
            ("search".to_owned(), "pat".to_owned(), 1)
        ]
    );

    // The payments manager sees her; the search manager does not, though she spent with it.
    let manager = |team: &str| {
        let (server, team) = (&server, team.to_owned());
        async move {
            create_viewer(server, json!({"role": "manager", "team": team})).await["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (payments, search) = (manager("payments").await, manager("search").await);
    assert_eq!(
        get(&server, &payments, "/api/v1/subjects/user/pat").await["name"],
        "pat"
    );
    let hidden = server
        .with_token(&search, "GET", "/api/v1/subjects/user/pat", Bytes::new())
        .await;
    assert_eq!(hidden.status, 404, "{}", hidden.text);

    // Nobody counts twice: the teams add up to the organisation.
    let by_team = get(&server, ADMIN, "/api/v1/usage/summary?group_by=team&from=2026-01-01").await;
    let teams: i64 = by_team["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(teams, by_team["totals"]["requests"].as_i64().unwrap());
    assert_eq!(teams, 3);

    // She moves to search: her next sign-in says so, her next call is search's, her past stays.
    idp.state.lock().unwrap().groups = ["engineering", "org-search"].map(String::from).to_vec();
    let mut again = Browser::default();
    signed_in(&mut again, &server).await;
    assert_eq!(
        get(&server, ADMIN, "/api/v1/people").await["people"][0]["team"],
        "search"
    );
    // The gateway's key lookups are cached for two seconds.
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    chat(&server, key["key"].as_str().unwrap()).await;
    assert_eq!(
        requests_by_team_and_user(&server).await,
        [
            ("payments".to_owned(), "pat".to_owned(), 2),
            ("search".to_owned(), "pat".to_owned(), 2)
        ]
    );
    let now_search = server
        .with_token(&search, "GET", "/api/v1/subjects/user/pat", Bytes::new())
        .await;
    assert_eq!(now_search.status, 200, "{}", now_search.text);
    let sign_ins = audit_log(&server, "action=session.create").await;
    assert_eq!(sign_ins.len(), 2);
    assert_eq!(
        (&sign_ins[0]["details"]["user"], &sign_ins[0]["details"]["home_team"]),
        (&json!("pat"), &json!("search"))
    );
}

/// The admin gives `user` a role (`body`); returns the answer.
async fn grant(server: &TestServer, token: &str, user: &str, body: Value) -> crate::common::Reply {
    let path = format!("/api/v1/people/{user}/role");
    server.with_token(token, "PUT", &path, body.to_string()).await
}

#[tokio::test]
async fn an_admin_gives_a_person_a_role_in_place_of_their_groups() {
    let idp = TinyIdp::start().await;
    idp.state.lock().unwrap().groups = vec!["engineering".to_owned()];
    let extra = "engineer_groups = [\"engineering\"]\nuser_domain = \"example.com\"\n";
    let server = server_with(free_addr(), &idp.issuer, None, extra).await;
    let mut browser = Browser::default();
    signed_in(&mut browser, &server).await;
    let me = |browser: &mut Browser| {
        let url = format!("{}/api/v1/me", server.url());
        let mut browser = std::mem::take(browser);
        async move {
            let reply = browser.request("GET", &url, &[], "").await;
            (browser, reply)
        }
    };
    let (back, reply) = me(&mut browser).await;
    browser = back;
    assert_eq!(
        (&reply.json["role"], &reply.json["user"]),
        (&json!("engineer"), &json!("pat"))
    );

    for (body, field) in [
        (json!({"role": "manager"}), "team"),
        (json!({"role": "engineer", "team": "payments"}), "team"),
        (json!({"role": "boss"}), "role"),
        (json!({"role": "viewer", "scope": "all"}), "scope"),
    ] {
        let reply = grant(&server, ADMIN, "pat", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert!(reply.text.contains(field), "{body}: {}", reply.text);
    }
    let viewer = create_viewer(&server, json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = grant(&server, &viewer, "pat", json!({"role": "admin"})).await;
    assert_eq!(reply.status, 403, "{}", reply.text);

    // Raised to manager of payments: at once, in the session she has.
    let granted = grant(&server, ADMIN, "pat", json!({"role": "manager", "team": "payments"})).await;
    assert_eq!(granted.status, 200, "{}", granted.text);
    assert_eq!(
        (&granted.json["role"], &granted.json["team"]),
        (&json!("manager"), &json!("payments"))
    );
    let (back, reply) = me(&mut browser).await;
    browser = back;
    assert_eq!(
        (&reply.json["role"], &reply.json["team"]),
        (&json!("manager"), &json!("payments"))
    );
    let people = get(&server, ADMIN, "/api/v1/people").await;
    assert_eq!(people["grants"][0]["user"], "pat", "{people}");

    // Taken away: her groups decide again.
    let revoked = server.admin("DELETE", "/api/v1/people/pat/role", "").await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let (_, reply) = me(&mut browser).await;
    assert_eq!(reply.json["role"], "engineer");
    let again = server.admin("DELETE", "/api/v1/people/pat/role", "").await;
    assert_eq!(again.status, 404, "{}", again.text);

    // A person no group lets in is let in by a grant, and out again without it.
    idp.state.lock().unwrap().groups = vec!["contractors".to_owned()];
    let refused = Browser::default().sign_in(&server.url(), "pat").await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let reply = grant(&server, ADMIN, "pat", json!({"role": "viewer", "team": "search"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut contractor = Browser::default();
    signed_in(&mut contractor, &server).await;
    let (mut contractor, reply) = me(&mut contractor).await;
    assert_eq!(
        (&reply.json["role"], &reply.json["team"]),
        (&json!("viewer"), &json!("search"))
    );
    server.admin("DELETE", "/api/v1/people/pat/role", "").await;
    let (_, reply) = me(&mut contractor).await;
    assert_eq!(reply.status, 403, "{}", reply.text);

    // Each change recorded once, as the admin's.
    let changes: Vec<(String, String)> = audit_log(&server, "action=role.")
        .await
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["details"]["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("role.grant", "manager"),
        ("role.revoke", "manager"),
        ("role.grant", "viewer"),
        ("role.revoke", "viewer"),
    ];
    assert_eq!(changes, expected.map(|(a, r)| (a.to_owned(), r.to_owned())));
}
