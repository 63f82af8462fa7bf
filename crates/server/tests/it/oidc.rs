//! Single sign-on end to end. A real, certified OpenID Connect provider (npm's `oidc-provider`,
//! started from `tests/oidc/provider.mjs` on a random loopback port) signs people in through its
//! login and consent forms, and their groups decide what the session cookie may do. A tiny
//! provider of the test's own (ES256 keys it generates) serves the ID tokens a real one never
//! would: expired, forged, `alg=none`, HS256 keyed with the public key, for another audience,
//! with the wrong nonce, signed by a rotated or unknown key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use goodhart_store::sessions::Session;
use goodhart_store::testing::TestDatabase;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::AsyncBufReadExt;

use crate::common::{Reply, TestServer, serve_upstream, start_configured};

// ---------------------------------------------------------------------------------------------
// A browser: one request at a time, no redirect followed, cookies kept per host.

#[derive(Default)]
pub(crate) struct Browser {
    cookies: HashMap<String, HashMap<String, String>>,
}

fn authority(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

impl Browser {
    pub(crate) async fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let host = authority(url);
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = hyper::Request::builder().method(method).uri(url);
        let jar = self.cookies.entry(host).or_default();
        if !jar.is_empty() {
            let cookie = jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = client
            .request(request.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let text = set.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") || attributes.contains("expires=Thu, 01 Jan 1970") {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes,
        }
    }

    pub(crate) fn cookie(&self, host_url: &str, name: &str) -> Option<String> {
        self.cookies.get(&authority(host_url))?.get(name).cloned()
    }

    /// Signs in at `server` as `login` (for the real provider's login form): follows redirects,
    /// fills and posts the provider's forms; returns the answer to Goodhart's callback.
    pub(crate) async fn sign_in(&mut self, server: &str, login: &str) -> Reply {
        let mut next = (format!("{server}/auth/login"), "GET", String::new());
        for _ in 0..20 {
            let (url, method, body) = next.clone();
            let headers: &[(&str, &str)] = if method == "POST" {
                &[("content-type", "application/x-www-form-urlencoded")]
            } else {
                &[]
            };
            let reply = self.request(method, &url, headers, &body).await;
            if url.starts_with(&format!("{server}/auth/callback")) {
                return reply;
            }
            next = match reply.status {
                302 | 303 => (absolute(&url, location(&reply)), "GET", String::new()),
                200 if reply.text.contains("<form") => {
                    let action = reply.text.split("action=\"").nth(1).unwrap().split('"').next().unwrap();
                    let form = if reply.text.contains("name=\"login\"") {
                        format!("prompt=login&login={login}&password=anything")
                    } else {
                        "prompt=consent".to_owned()
                    };
                    (absolute(&url, action), "POST", form)
                }
                _ => return reply,
            };
        }
        panic!("the sign-in did not come back to {server}");
    }
}

fn location(reply: &Reply) -> &str {
    reply.headers.get("location").unwrap().to_str().unwrap()
}

fn absolute(base: &str, target: &str) -> String {
    if target.starts_with("http") {
        target.to_owned()
    } else {
        format!("http://{}{target}", authority(base))
    }
}

pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A server with single sign-on through `issuer`, listening at `addr` (its public URL).
pub(crate) async fn server_with(addr: SocketAddr, issuer: &str, secret: Option<&str>, extra: &str) -> TestServer {
    server_on(TestDatabase::sqlite(), addr, issuer, secret, extra).await
}

async fn server_on(db: TestDatabase, addr: SocketAddr, issuer: &str, secret: Option<&str>, extra: &str) -> TestServer {
    let config = format!(
        "[auth.oidc]\nissuer = \"{issuer}\"\nclient_id = \"goodhart\"\npublic_url = \"http://{addr}\"\n\
         scopes = [\"email\", \"profile\", \"groups\"]\nadmin_groups = [\"goodhart-admins\"]\n\
         viewer_groups = [\"finance\"]\nteam_groups = {{ \"team-payments\" = \"payments\", \"team-search\" = \"search\" }}\n{extra}"
    );
    let secret = secret.map(|s| openidconnect::ClientSecret::new(s.to_owned()));
    start_configured(db, &config, move |config| {
        config.listen = addr;
        config.oidc.as_mut().unwrap().client_secret = secret;
    })
    .await
}

/// A request with the session cookie of `browser` at `server`, with the CSRF token and Origin
/// when given.
async fn with_session(
    browser: &mut Browser,
    server: &TestServer,
    method: &str,
    path: &str,
    csrf: Option<&str>,
    origin: Option<&str>,
    body: &str,
) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(csrf) = csrf {
        headers.push(("x-csrf-token", csrf));
    }
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    browser
        .request(method, &format!("{}{path}", server.url()), &headers, body)
        .await
}

// ---------------------------------------------------------------------------------------------
// The real provider.

struct RealProvider {
    issuer: String,
    _child: tokio::process::Child,
}

async fn real_provider(redirect: &str, secret: &str) -> RealProvider {
    let modules = crate::clients::tool("node_modules/oidc-provider")
        .parent()
        .unwrap()
        .to_path_buf();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .arg(redirect)
        .arg(secret)
        .arg(modules)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("oidc-provider started within 30 s")
        .unwrap()
        .unwrap();
    let port = line.strip_prefix("listening ").unwrap().to_owned();
    // The provider writes more (its development interactions log); keep reading it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    RealProvider {
        issuer: format!("http://127.0.0.1:{port}"),
        _child: child,
    }
}

/// Usage of two teams, so that what a team-limited person sees can be told apart.
async fn usage_of_two_teams(server: &TestServer) {
    let now = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30);
    let events: Vec<Value> = [("ana", "payments"), ("cy", "search")]
        .iter()
        .enumerate()
        .map(|(i, (user, team))| {
            json!({"id": format!("e{i}"), "timestamp": now.to_string(), "user": user, "team": team,
                   "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 100})
        })
        .collect();
    let reply = server
        .admin("POST", "/api/v1/usage", serde_json::to_string(&events).unwrap())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn teams_seen(summary: &Value) -> Vec<String> {
    let mut teams: Vec<String> = summary["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["team"].as_str().unwrap_or("").to_owned())
        .collect();
    teams.sort();
    teams
}

#[tokio::test]
async fn people_sign_in_through_a_real_provider_and_their_groups_decide_what_they_may_do() {
    let addr = free_addr();
    let secret = "goodhart-test-client-secret";
    let provider = real_provider(&format!("http://{addr}/auth/callback"), secret).await;
    let server = server_with(addr, &provider.issuer, Some(secret), "").await;
    usage_of_two_teams(&server).await;
    let origin = server.url();

    // An admin: reads who they are, and creates a key with the CSRF token, never without.
    let mut alice = Browser::default();
    let signed_in = alice.sign_in(&server.url(), "alice").await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    assert_eq!(location(&signed_in), "/");
    let me = with_session(&mut alice, &server, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["role"], "admin");
    assert_eq!(me.json["identity"]["email"], "alice@example.com");
    assert_eq!(me.json["identity"]["issuer"], provider.issuer.as_str());
    assert_eq!(me.json["identity"]["subject"], "alice");
    assert_eq!(
        me.json["identity"]["groups"],
        json!(["goodhart-admins", "team-payments"])
    );
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();
    let key = r#"{"user": "alice", "name": "alice's key"}"#;
    let refused = with_session(&mut alice, &server, "POST", "/api/v1/keys", None, Some(&origin), key).await;
    assert_eq!(refused.status, 403, "no CSRF token: {}", refused.text);
    let created = with_session(
        &mut alice,
        &server,
        "POST",
        "/api/v1/keys",
        Some(&csrf),
        Some(&origin),
        key,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);

    // A viewer of every team: reads everything, changes nothing.
    let mut victor = Browser::default();
    assert_eq!(victor.sign_in(&server.url(), "victor").await.status, 303);
    let me = with_session(&mut victor, &server, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(
        (me.json["role"].as_str(), me.json["team"].as_str()),
        (Some("viewer"), None)
    );
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();
    let path = "/api/v1/usage/summary?group_by=team";
    let summary = with_session(&mut victor, &server, "GET", path, None, None, "").await;
    assert_eq!(teams_seen(&summary.json), ["payments", "search"], "{}", summary.text);
    let write = with_session(
        &mut victor,
        &server,
        "POST",
        "/api/v1/keys",
        Some(&csrf),
        Some(&origin),
        key,
    )
    .await;
    assert_eq!(write.status, 403, "{}", write.text);

    // In two team groups: the alphabetically first team is home, and the only one seen.
    let mut tess = Browser::default();
    assert_eq!(tess.sign_in(&server.url(), "tess").await.status, 303);
    let me = with_session(&mut tess, &server, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(me.json["team"], "payments", "{}", me.text);
    let summary = with_session(&mut tess, &server, "GET", path, None, None, "").await;
    assert_eq!(teams_seen(&summary.json), ["payments"], "{}", summary.text);

    // In no mapped group: refused, and no session.
    let mut mallory = Browser::default();
    let refused = mallory.sign_in(&server.url(), "mallory").await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(
        refused.text.contains("mallory@example.com is in no group"),
        "{}",
        refused.text
    );
    assert_eq!(mallory.cookie(&server.url(), "goodhart_session"), None);
    let me = with_session(&mut mallory, &server, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(me.status, 401);

    // Scripts' tokens keep working beside it.
    assert_eq!(
        server.admin("GET", "/api/v1/me", Bytes::new()).await.json["role"],
        "admin"
    );
    let sessions = server.admin("GET", "/api/v1/sessions", Bytes::new()).await;
    assert_eq!(
        sessions.json["sessions"].as_array().unwrap().len(),
        3,
        "{}",
        sessions.text
    );

    // Each sign-in is in the audit log once, as the person; the refused one as refused.
    let created = crate::audit::audit_log(&server, "action=session.create").await;
    let people: Vec<&str> = created.iter().map(|e| e["actor"]["name"].as_str().unwrap()).collect();
    assert_eq!(people.len(), 3, "{created:?}");
    assert!(
        created
            .iter()
            .all(|e| e["actor"]["kind"] == "user" && e["outcome"] == "success"),
        "{created:?}"
    );
    let denied = crate::audit::audit_log(&server, "action=sign_in.denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["actor"]["name"], "mallory@example.com");
    assert_eq!(denied[0]["outcome"], "denied");
    // What the admin did with the session is the admin's.
    let keys = crate::audit::audit_log(&server, "action=key.create").await;
    assert_eq!(keys.len(), 1, "one key made with the CSRF token: {keys:?}");
    assert_eq!(keys[0]["actor"]["kind"], "user");
}

/// What a manager signed in through the real provider gets on one request of another team's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 200, naming nothing of the other team's (which the admin's answer does name).
    Hidden,
    /// 404, as if it did not exist (the admin's answer is 200).
    Missing,
    /// 403: the role may not do the route's duty at all.
    Forbidden,
}

/// Every operation of the route tables a manager's session must be checked on, as
/// `METHOD path`: the operations the OpenAPI document lists for each table's paths (in a path
/// two tables share, the ones the table's role marker names).
fn guarded_operations() -> std::collections::BTreeSet<String> {
    use goodhart_server::api::{
        ADMIN_ROUTES, DECISION_ROUTES, OPENAPI_JSON, OWN_KEY_ROUTES, READ_ROUTES, SPEND_ROUTES,
    };
    let document: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
    let markers = [
        "Viewer tokens may read",
        "Finops tokens may call",
        "Manager tokens may call",
        "Engineer tokens call this",
    ];
    let mut operations = std::collections::BTreeSet::new();
    for (table, marker) in [
        (READ_ROUTES, Some(markers[0])),
        (SPEND_ROUTES, Some(markers[1])),
        (DECISION_ROUTES, Some(markers[2])),
        (OWN_KEY_ROUTES, Some(markers[3])),
        (ADMIN_ROUTES, None),
    ] {
        for path in table {
            let listed = document["paths"][*path]
                .as_object()
                .unwrap_or_else(|| panic!("{path} is documented"));
            for (method, operation) in listed {
                let description = operation["description"].as_str().unwrap_or("");
                let ours = match marker {
                    Some(marker) => description.contains(marker),
                    None => !markers.iter().any(|m| description.contains(m)),
                };
                if ours {
                    operations.insert(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
    }
    operations
}

/// Two teams' people with usage, a loop each (so a finding each, and its alert), budgets of
/// both teams and of a search person, a key and a viewer token: another team's things for a
/// manager to be refused.
async fn two_teams_with_findings(server: &TestServer) {
    let day = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(30);
    let calls = |user: &str, team: &str, count: i64| -> Vec<Value> {
        (0..count)
            .map(|i| {
                json!({"id": format!("{user}-{i}"), "timestamp": (day + jiff::SignedDuration::from_mins(7 * i)).to_string(),
                       "user": user, "team": team, "agent": format!("{team}-agent"),
                       "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 200})
            })
            .collect()
    };
    let hours_ago = |h: i64| jiff::Timestamp::now() - jiff::SignedDuration::from_hours(h);
    for events in [
        calls("ana", "payments", 10),
        calls("ben", "payments", 5),
        calls("quentin", "search", 8),
        crate::common::loop_calls("ana", "payments", hours_ago(4), 130),
        crate::common::loop_calls("quentin", "search", hours_ago(2), 130),
    ] {
        let reply = server
            .admin("POST", "/api/v1/usage", serde_json::to_string(&events).unwrap())
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let pass = server.admin("POST", "/api/v1/findings/detect", Bytes::new()).await;
    assert_eq!(pass.json["new"], 2, "{}", pass.text);
    for (scope, name) in [
        ("team", Some("payments")),
        ("team", Some("search")),
        ("user", Some("quentin")),
        ("org", None),
    ] {
        server
            .create_budget(json!({"scope": scope, "name": name, "period": "month", "limit_usd": "100"}))
            .await;
    }
    // The waste alerts are delivered in the background.
    for _ in 0..100 {
        let alerts = server.admin("GET", "/api/v1/alerts", Bytes::new()).await;
        if alerts.text.contains("quentin") && alerts.text.contains("ana") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no waste alert about both loops");
}

fn id_where(list: &Value, field: &str, value: &str) -> String {
    list.as_array()
        .unwrap()
        .iter()
        .find(|item| item[field] == value)
        .unwrap_or_else(|| panic!("no {field} = {value} in {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A manager and an engineer sign in through the real provider's forms. The manager reads the
/// team and decides its people's findings, and gets nothing of another team's on any route of
/// the tables (each operation of READ, DECISION, SPEND, OWN_KEY and ADMIN routes is walked, and
/// the test fails if one is not); the engineer makes, uses and revokes an own key. The audit
/// log has each of their actions once, as the person.
#[tokio::test]
async fn a_manager_and_an_engineer_signed_in_through_a_real_provider_reach_their_own_only() {
    let addr = free_addr();
    let secret = "goodhart-test-client-secret";
    let provider = real_provider(&format!("http://{addr}/auth/callback"), secret).await;
    let server = server_with(
        addr,
        &provider.issuer,
        Some(secret),
        "manager_groups = { \"leads-payments\" = \"payments\" }\nengineer_groups = [\"engineers\"]\n\
         user_domain = \"example.com\"\n[waste]\ndetect_every_secs = 0\n[outcomes]\nmin_team_members = 1\n",
    )
    .await;
    two_teams_with_findings(&server).await;
    let origin = server.url();
    let admin_get = |path: String| {
        let server = &server;
        async move { server.admin("GET", &path, Bytes::new()).await }
    };
    let findings = admin_get("/api/v1/findings".into()).await.json["findings"].clone();
    let (anas_finding, quentins_finding) = (
        id_where(&findings, "user", "ana"),
        id_where(&findings, "user", "quentin"),
    );
    let budgets = admin_get("/api/v1/budgets".into()).await.json["budgets"].clone();
    let search_budget = id_where(&budgets, "name", "search");
    let quentins_budget = id_where(&budgets, "name", "quentin");
    let (quentins_key, _) = server.create_key(r#"{"user": "quentin", "team": "search"}"#).await;
    let token = server
        .admin(
            "POST",
            "/api/v1/tokens",
            r#"{"name": "search board", "team": "search"}"#,
        )
        .await;
    assert_eq!(token.status, 201, "{}", token.text);
    let token_id = token.json["id"].as_str().unwrap().to_owned();

    // The manager: payments' manager, by the provider's group.
    let mut mona = Browser::default();
    let signed_in = mona.sign_in(&server.url(), "mona").await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    let me = with_session(&mut mona, &server, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(
        (&me.json["role"], &me.json["team"], &me.json["may"]),
        (&json!("manager"), &json!("payments"), &json!(["read", "decide"])),
        "{}",
        me.text
    );
    assert_eq!(me.json["identity"]["email"], "mona@example.com");
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();
    let session_id = me.json["identity"]["session_id"].as_str().unwrap().to_owned();
    let summary = with_session(
        &mut mona,
        &server,
        "GET",
        "/api/v1/usage/summary?group_by=team",
        None,
        None,
        "",
    )
    .await;
    assert_eq!(teams_seen(&summary.json), ["payments"], "{}", summary.text);

    // Every operation of the guarded tables, with search's people, budgets, findings and keys.
    let needles = [
        "quentin",
        "\"search\"",
        "search-agent",
        search_budget.as_str(),
        quentins_budget.as_str(),
    ];
    let cases: Vec<(&str, String, &str, Expect)> = vec![
        (
            "GET /api/v1/usage/summary",
            "/api/v1/usage/summary?group_by=team".into(),
            "",
            Expect::Hidden,
        ),
        (
            "GET /api/v1/usage/summary",
            "/api/v1/usage/summary?group_by=user".into(),
            "",
            Expect::Hidden,
        ),
        (
            "GET /api/v1/usage/summary",
            "/api/v1/usage/summary?group_by=agent".into(),
            "",
            Expect::Hidden,
        ),
        (
            "GET /api/v1/reports/roi",
            "/api/v1/reports/roi".into(),
            "",
            Expect::Hidden,
        ),
        (
            "GET /api/v1/leaderboard",
            "/api/v1/leaderboard?by=team".into(),
            "",
            Expect::Hidden,
        ),
        (
            "GET /api/v1/leaderboard",
            "/api/v1/leaderboard?by=user".into(),
            "",
            Expect::Hidden,
        ),
        ("GET /api/v1/findings", "/api/v1/findings".into(), "", Expect::Hidden),
        (
            "GET /api/v1/findings",
            "/api/v1/findings?user=quentin".into(),
            "",
            Expect::Hidden,
        ),
        ("GET /api/v1/budgets", "/api/v1/budgets".into(), "", Expect::Hidden),
        ("GET /api/v1/alerts", "/api/v1/alerts".into(), "", Expect::Hidden),
        (
            "GET /api/v1/budgets/{id}",
            format!("/api/v1/budgets/{search_budget}"),
            "",
            Expect::Missing,
        ),
        (
            "GET /api/v1/budgets/{id}",
            format!("/api/v1/budgets/{quentins_budget}"),
            "",
            Expect::Missing,
        ),
        (
            "GET /api/v1/subjects/{by}/{name}",
            "/api/v1/subjects/team/search".into(),
            "",
            Expect::Missing,
        ),
        (
            "GET /api/v1/subjects/{by}/{name}",
            "/api/v1/subjects/user/quentin".into(),
            "",
            Expect::Missing,
        ),
        (
            "GET /api/v1/subjects/{by}/{name}",
            "/api/v1/subjects/agent/search-agent".into(),
            "",
            Expect::Missing,
        ),
        (
            "POST /api/v1/findings/{id}/confirm",
            format!("/api/v1/findings/{quentins_finding}/confirm"),
            "{}",
            Expect::Missing,
        ),
        (
            "POST /api/v1/findings/{id}/dismiss",
            format!("/api/v1/findings/{quentins_finding}/dismiss"),
            "{}",
            Expect::Missing,
        ),
        (
            "GET /api/v1/reconciliation",
            "/api/v1/reconciliation".into(),
            "",
            Expect::Forbidden,
        ),
        (
            "GET /api/v1/reports/reconciliation",
            "/api/v1/reports/reconciliation".into(),
            "",
            Expect::Forbidden,
        ),
        ("GET /api/v1/keys", "/api/v1/keys".into(), "", Expect::Forbidden),
        (
            "POST /api/v1/keys",
            "/api/v1/keys".into(),
            r#"{"user": "quentin", "team": "search"}"#,
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/keys/{id}/revoke",
            format!("/api/v1/keys/{quentins_key}/revoke"),
            "",
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/keys/{id}/rotate",
            format!("/api/v1/keys/{quentins_key}/rotate"),
            "",
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/budgets",
            "/api/v1/budgets".into(),
            r#"{"scope": "team", "name": "search", "period": "day", "limit_usd": "1"}"#,
            Expect::Forbidden,
        ),
        (
            "DELETE /api/v1/budgets/{id}",
            format!("/api/v1/budgets/{search_budget}"),
            "",
            Expect::Forbidden,
        ),
        ("GET /api/v1/me/keys", "/api/v1/me/keys".into(), "", Expect::Forbidden),
        (
            "POST /api/v1/me/keys",
            "/api/v1/me/keys".into(),
            "{}",
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/me/keys/{id}/revoke",
            format!("/api/v1/me/keys/{quentins_key}/revoke"),
            "",
            Expect::Forbidden,
        ),
        (
            "GET /api/v1/me/ingest-tokens",
            "/api/v1/me/ingest-tokens".into(),
            "",
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/me/ingest-tokens",
            "/api/v1/me/ingest-tokens".into(),
            "{}",
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/me/ingest-tokens/{id}/revoke",
            format!("/api/v1/me/ingest-tokens/{token_id}/revoke"),
            "",
            Expect::Forbidden,
        ),
        ("GET /api/v1/people", "/api/v1/people".into(), "", Expect::Forbidden),
        (
            "PUT /api/v1/people/{user}/role",
            "/api/v1/people/mona/role".into(),
            r#"{"role": "admin"}"#,
            Expect::Forbidden,
        ),
        (
            "DELETE /api/v1/people/{user}/role",
            "/api/v1/people/quentin/role".into(),
            "",
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/outcomes",
            "/api/v1/outcomes".into(),
            "[]",
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/findings/detect",
            "/api/v1/findings/detect".into(),
            "",
            Expect::Forbidden,
        ),
        (
            "GET /api/v1/github/logins",
            "/api/v1/github/logins".into(),
            "",
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/github/logins",
            "/api/v1/github/logins".into(),
            r#"{"login": "quentin-gh", "user": "quentin"}"#,
            Expect::Forbidden,
        ),
        ("GET /api/v1/tokens", "/api/v1/tokens".into(), "", Expect::Forbidden),
        (
            "POST /api/v1/tokens",
            "/api/v1/tokens".into(),
            r#"{"team": "search"}"#,
            Expect::Forbidden,
        ),
        (
            "POST /api/v1/tokens/{id}/revoke",
            format!("/api/v1/tokens/{token_id}/revoke"),
            "",
            Expect::Forbidden,
        ),
        ("GET /api/v1/audit", "/api/v1/audit".into(), "", Expect::Forbidden),
        ("GET /api/v1/sessions", "/api/v1/sessions".into(), "", Expect::Forbidden),
        (
            "POST /api/v1/sessions/{id}/revoke",
            format!("/api/v1/sessions/{session_id}/revoke"),
            "",
            Expect::Forbidden,
        ),
    ];
    let mut covered: std::collections::BTreeSet<String> = cases.iter().map(|(op, ..)| (*op).to_owned()).collect();
    // `/api/v1/me` is the manager's own, read above.
    covered.insert("GET /api/v1/me".into());
    assert_eq!(
        covered,
        guarded_operations(),
        "every operation of the route tables is walked (add a case for a new route)"
    );
    let mut forbidden = 0;
    for (operation, path, body, expect) in &cases {
        let method = operation.split(' ').next().unwrap();
        let reply = with_session(&mut mona, &server, method, path, Some(&csrf), Some(&origin), body).await;
        // What the admin reads there (never a write: that would change what is checked).
        let admin = if method == "GET" && *expect != Expect::Forbidden {
            Some(server.admin(method, path, Bytes::new()).await)
        } else {
            None
        };
        match expect {
            Expect::Hidden => {
                assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text);
                let admin = admin.unwrap();
                assert!(
                    needles.iter().any(|n| admin.text.contains(n)),
                    "the admin's answer names search's things: {method} {path}: {}",
                    admin.text
                );
                for needle in needles {
                    assert!(
                        !reply.text.contains(needle),
                        "{method} {path} shows {needle} to payments' manager: {}",
                        reply.text
                    );
                }
            }
            Expect::Missing => {
                assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
                if let Some(admin) = admin {
                    assert_eq!(admin.status, 200, "it exists: {method} {path}: {}", admin.text);
                }
            }
            Expect::Forbidden => {
                forbidden += 1;
                assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text);
                assert_eq!(reply.json["error"]["code"], "forbidden", "{method} {path}");
            }
        }
    }
    // Nothing refused changed anything.
    let quentins = admin_get("/api/v1/findings?user=quentin".into()).await;
    assert_eq!(quentins.json["findings"][0]["status"], "open", "{}", quentins.text);
    let keys = admin_get("/api/v1/keys".into()).await;
    assert_eq!(keys.json["keys"].as_array().unwrap().len(), 1, "{}", keys.text);
    assert_eq!(keys.json["keys"][0]["status"], "active", "{}", keys.text);
    let budgets = admin_get("/api/v1/budgets".into()).await;
    assert_eq!(budgets.json["budgets"].as_array().unwrap().len(), 4, "{}", budgets.text);
    let tokens = admin_get("/api/v1/tokens".into()).await;
    assert_eq!(tokens.json["tokens"].as_array().unwrap().len(), 1, "{}", tokens.text);
    assert_eq!(tokens.json["tokens"][0]["status"], "active", "{}", tokens.text);
    let me = with_session(&mut mona, &server, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(me.status, 200, "her session was not revoked: {}", me.text);

    // A payments person's finding is hers to decide, with the CSRF token only.
    let path = format!("/api/v1/findings/{anas_finding}/confirm");
    let body = r#"{"note": "a retry loop"}"#;
    let refused = with_session(&mut mona, &server, "POST", &path, None, Some(&origin), body).await;
    assert_eq!(refused.status, 403, "no CSRF token: {}", refused.text);
    let confirmed = with_session(&mut mona, &server, "POST", &path, Some(&csrf), Some(&origin), body).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let stored = admin_get("/api/v1/findings?user=ana".into()).await.json["findings"][0].clone();
    assert_eq!(
        (&stored["status"], &stored["decided_by"], &stored["note"]),
        (&json!("confirmed"), &json!("manager"), &json!("a retry loop")),
        "{stored}"
    );

    // The engineer: the usage user `eddie`, by the email without user_domain.
    let mut eddie = Browser::default();
    assert_eq!(eddie.sign_in(&server.url(), "eddie").await.status, 303);
    let me = with_session(&mut eddie, &server, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(
        (&me.json["role"], &me.json["user"], &me.json["may"]),
        (&json!("engineer"), &json!("eddie"), &json!(["read", "own_keys"])),
        "{}",
        me.text
    );
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();
    let refused = with_session(
        &mut eddie,
        &server,
        "POST",
        "/api/v1/me/keys",
        None,
        Some(&origin),
        r#"{"name": "laptop"}"#,
    )
    .await;
    assert_eq!(refused.status, 403, "no CSRF token: {}", refused.text);
    let made = with_session(
        &mut eddie,
        &server,
        "POST",
        "/api/v1/me/keys",
        Some(&csrf),
        Some(&origin),
        r#"{"name": "laptop"}"#,
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.json["user"], "eddie", "{}", made.text);
    let listed = with_session(&mut eddie, &server, "GET", "/api/v1/me/keys", None, None, "").await;
    assert_eq!(
        listed.json["keys"].as_array().unwrap().len(),
        1,
        "only the one made: {}",
        listed.text
    );
    let key = made.json["key"].as_str().unwrap().to_owned();
    let key_id = made.json["id"].as_str().unwrap().to_owned();
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let call = server
        .with_token(&key, "POST", "/v1/chat/completions", chat.clone())
        .await;
    assert_eq!(call.status, 200, "{}", call.text);
    server.flush().await;
    let own = with_session(
        &mut eddie,
        &server,
        "GET",
        "/api/v1/usage/summary?group_by=user",
        None,
        None,
        "",
    )
    .await;
    assert_eq!(
        (&own.json["rows"][0]["user"], &own.json["rows"][0]["requests"]),
        (&json!("eddie"), &json!(1)),
        "{}",
        own.text
    );
    let everyone = admin_get("/api/v1/usage/summary?group_by=user".into()).await;
    let eddies: Vec<&Value> = everyone.json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["user"] == "eddie")
        .collect();
    assert_eq!(eddies.len(), 1, "metered to eddie: {}", everyone.text);
    assert_eq!(eddies[0]["requests"], 1);
    for other in ["/api/v1/subjects/user/ana", "/api/v1/subjects/user/quentin"] {
        let reply = with_session(&mut eddie, &server, "GET", other, None, None, "").await;
        assert_eq!(reply.status, 404, "{other}: {}", reply.text);
    }
    let mine = with_session(
        &mut eddie,
        &server,
        "GET",
        "/api/v1/subjects/user/eddie",
        None,
        None,
        "",
    )
    .await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    let revoke = format!("/api/v1/me/keys/{key_id}/revoke");
    let refused = with_session(&mut eddie, &server, "POST", &revoke, None, Some(&origin), "").await;
    assert_eq!(refused.status, 403, "no CSRF token: {}", refused.text);
    let revoked = with_session(&mut eddie, &server, "POST", &revoke, Some(&csrf), Some(&origin), "").await;
    assert_eq!(revoked.json["status"], "revoked", "{}", revoked.text);
    let call = server.with_token(&key, "POST", "/v1/chat/completions", chat).await;
    assert_eq!(call.status, 401, "a revoked key opens nothing: {}", call.text);

    // The audit log: each action once, as the person who did it.
    let as_person = |entries: &[Value], email: &str| {
        entries
            .iter()
            .all(|e| e["actor"]["kind"] == "user" && e["actor"]["name"] == email)
    };
    let signed_in = crate::audit::audit_log(&server, "action=session.create").await;
    let mut people: Vec<&str> = signed_in.iter().map(|e| e["actor"]["name"].as_str().unwrap()).collect();
    people.sort_unstable();
    assert_eq!(people, ["eddie@example.com", "mona@example.com"], "{signed_in:?}");
    assert!(signed_in.iter().all(|e| e["actor"]["kind"] == "user"), "{signed_in:?}");
    let decided = crate::audit::audit_log(&server, "action=finding.confirm").await;
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert!(as_person(&decided, "mona@example.com"), "{decided:?}");
    assert_eq!(decided[0]["target"]["id"], anas_finding.as_str());
    assert!(
        crate::audit::audit_log(&server, "action=finding.dismiss")
            .await
            .is_empty()
    );
    for action in ["key.create", "key.revoke"] {
        let mut entries = crate::audit::audit_log(&server, &format!("action={action}")).await;
        // The admin's key for quentin, made before anyone signed in.
        entries.retain(|e| e["actor"]["kind"] != "admin_token");
        assert_eq!(entries.len(), 1, "{action}: {entries:?}");
        assert!(as_person(&entries, "eddie@example.com"), "{action}: {entries:?}");
        assert_eq!(entries[0]["target"]["id"], key_id.as_str(), "{action}");
    }
    // Refusals are audited within the failure bound of one address: each route once at most.
    let denied = crate::audit::audit_log(&server, "action=access.denied").await;
    let bound = goodhart_server::app::refusals::FAILURES_PER_ADDRESS as usize;
    assert!(
        (forbidden.min(bound)..=forbidden).contains(&denied.len()),
        "{} denials audited of {forbidden}: {denied:?}",
        denied.len()
    );
    assert!(as_person(&denied, "mona@example.com"), "{denied:?}");
    let routes: std::collections::BTreeSet<&str> = denied.iter().map(|e| e["target"]["id"].as_str().unwrap()).collect();
    assert_eq!(routes.len(), denied.len(), "no refusal twice: {denied:?}");
}

/// Follows redirects from `url` (GETs, cookies kept): the last URL and its answer.
async fn follow(browser: &mut Browser, url: &str) -> (String, Reply) {
    let mut url = url.to_owned();
    for _ in 0..20 {
        let reply = browser.request("GET", &url, &[], "").await;
        if !matches!(reply.status, 302 | 303) {
            return (url, reply);
        }
        url = absolute(&url, location(&reply));
    }
    panic!("more than 20 redirects from {url}");
}

fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    openidconnect::url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Signing out from a browser (the dashboard's form post) ends the session here and sends the
/// browser to the provider's end-session endpoint, which signs the person out there too and
/// sends them back: the next sign-in asks for the provider's login form again. A script's
/// sign-out keeps its 204.
#[tokio::test]
async fn signing_out_in_a_browser_signs_out_at_the_provider_too() {
    let addr = free_addr();
    let secret = "goodhart-test-client-secret";
    let provider = real_provider(&format!("http://{addr}/auth/callback"), secret).await;
    let server = server_with(addr, &provider.issuer, Some(secret), "").await;
    let origin = server.url();
    let home = format!("{}/", server.url());
    let login = format!("{}/auth/login", server.url());

    let mut alice = Browser::default();
    assert_eq!(alice.sign_in(&server.url(), "alice").await.status, 303);
    // Signed in at the provider: signing in again passes through without a form.
    let (landed, _) = follow(&mut alice, &login).await;
    assert_eq!(landed, home, "a silent sign-in while the provider's session lives");
    let me = with_session(&mut alice, &server, "GET", "/api/v1/me", None, None, "").await;
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();

    // A browser's form post, with the CSRF token as a field: sent on to the provider.
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", origin.as_str()),
    ];
    let logout = format!("{}/auth/logout", server.url());
    let refused = alice.request("POST", &logout, &form, "csrf_token=0000").await;
    assert_eq!(refused.status, 403, "a wrong CSRF token: {}", refused.text);
    let body = format!("csrf_token={csrf}");
    let elsewhere = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", "http://evil.example"),
    ];
    let refused = alice.request("POST", &logout, &elsewhere, &body).await;
    assert_eq!(refused.status, 403, "from another origin: {}", refused.text);
    let signed_out = alice.request("POST", &logout, &form, &body).await;
    assert_eq!(signed_out.status, 303, "{}", signed_out.text);
    assert!(set_cookie_of(&signed_out, "goodhart_session").contains("Max-Age=0"));
    let end_session = location(&signed_out).to_owned();
    assert!(
        end_session.starts_with(&format!("{}/session/end?", provider.issuer)),
        "to the provider's end_session_endpoint: {end_session}"
    );
    let sent = query_of(&end_session);
    assert_eq!(sent.get("client_id").map(String::as_str), Some("goodhart"));
    assert_eq!(sent.get("post_logout_redirect_uri"), Some(&home));
    let state = sent.get("state").cloned().unwrap_or_default();
    assert!(state.len() >= 16, "a fresh state: {end_session}");
    // The sign-in's ID token as the hint (the provider checks it is its own, for this client).
    let hint = sent.get("id_token_hint").cloned().unwrap_or_default();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(hint.split('.').nth(1).unwrap_or_default())
            .unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    assert_eq!(
        (&claims["sub"], &claims["aud"]),
        (&json!("alice"), &json!("goodhart")),
        "{end_session}"
    );
    assert!(!me.text.contains(&hint), "the ID token is never shown: {}", me.text);
    let sessions = server.admin("GET", "/api/v1/sessions", Bytes::new()).await;
    assert!(!sessions.text.contains(&hint[..40]), "{}", sessions.text);
    let me = with_session(&mut alice, &server, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(me.status, 401, "the session is over here");

    // The provider asks to confirm, signs out, and sends the browser back with the state.
    let (_, confirm) = follow(&mut alice, &end_session).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    let action = confirm
        .text
        .split("action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let xsrf = confirm
        .text
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let confirmed = alice
        .request(
            "POST",
            &absolute(&end_session, action),
            &[("content-type", "application/x-www-form-urlencoded")],
            &format!("xsrf={xsrf}&logout=yes"),
        )
        .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.text);
    assert_eq!(location(&confirmed), format!("{home}?state={state}"));

    // Signed out there too: signing in again shows the provider's login form.
    let (_, again) = follow(&mut alice, &login).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(again.text.contains("name=\"login\""), "the login form: {}", again.text);
    assert_eq!(alice.cookie(&server.url(), "goodhart_session"), None);

    // A script (and the dashboard's fetch) signs out with the header, as before: 204, no
    // redirect; the provider's end-session URL is in X-End-Session-URL for the page to follow.
    let mut victor = Browser::default();
    assert_eq!(victor.sign_in(&server.url(), "victor").await.status, 303);
    let me = with_session(&mut victor, &server, "GET", "/api/v1/me", None, None, "").await;
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();
    let reply = with_session(
        &mut victor,
        &server,
        "POST",
        "/auth/logout",
        Some(&csrf),
        Some(&origin),
        "",
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(reply.headers.get("location").is_none());
    let url = reply.headers["x-end-session-url"].to_str().unwrap();
    assert!(url.starts_with(&format!("{}/session/end?", provider.issuer)), "{url}");
    assert_eq!(query_of(url).get("post_logout_redirect_uri"), Some(&home));
    assert!(query_of(url).contains_key("id_token_hint"), "{url}");
    let ended = crate::audit::audit_log(&server, "action=session.end").await;
    assert_eq!(ended.len(), 2, "one sign-out each: {ended:?}");
}

#[tokio::test]
async fn an_admin_signs_in_with_a_real_browser_and_the_page_uses_the_session() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    let driver = std::path::Path::new("/usr/bin/chromedriver");
    assert!(
        chromium.exists() && driver.exists(),
        "Debian's chromium and chromium-driver are missing: run `bash scripts/setup-clients.sh`"
    );
    let python = crate::clients::tool("venv/bin/python");
    let addr = free_addr();
    let secret = "goodhart-browser-secret";
    let provider = real_provider(&format!("http://{addr}/auth/callback"), secret).await;
    let server = server_with(addr, &provider.issuer, Some(secret), "provider_name = \"Test IdP\"").await;
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sso-browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/sso_browser.py");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(suite)
        .arg(server.url())
        .arg(&artifacts)
        .env("SE_OFFLINE", "true")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the browser suite finished within 180 s")
        .unwrap();
    assert!(
        output.status.success(),
        "browser suite failed (screenshots and the page in {}):\n{}\n{}",
        artifacts.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let keys = server.admin("GET", "/api/v1/keys", Bytes::new()).await;
    assert_eq!(keys.json["keys"][0]["user"], "browser-user", "{}", keys.text);
}

// ---------------------------------------------------------------------------------------------
// A tiny provider of the test's own, for ID tokens a real one never issues.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Good,
    Expired,
    ExpiredWithinSkew,
    IssuedInTheFuture,
    NotValidYet,
    WrongNonce,
    ForgedSignature,
    AlgNone,
    Hs256WithThePublicKey,
    WrongAudience,
    AnotherAudienceWithoutAzp,
    WrongIssuer,
    UnknownKid,
}

struct Grant {
    nonce: String,
    challenge: String,
}

pub(crate) struct TinyState {
    issuer: String,
    /// Published keys; the last one signs.
    keys: Vec<(String, EcdsaKeyPair)>,
    grants: HashMap<String, Grant>,
    next_token: Token,
    pub(crate) groups: Vec<String>,
    jwks_fetches: usize,
    codes_redeemed: usize,
}

#[derive(Clone)]
pub(crate) struct TinyIdp {
    pub(crate) state: Arc<Mutex<TinyState>>,
    pub(crate) issuer: String,
}

fn key_pair() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn jwk(kid: &str, key: &EcdsaKeyPair) -> Value {
    let point = key.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
           "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

impl TinyIdp {
    pub(crate) async fn start() -> TinyIdp {
        let state = Arc::new(Mutex::new(TinyState {
            issuer: String::new(),
            keys: vec![("key-1".into(), key_pair())],
            grants: HashMap::new(),
            next_token: Token::Good,
            groups: vec!["goodhart-admins".into()],
            jwks_fetches: 0,
            codes_redeemed: 0,
        }));
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(Arc::clone(&state));
        let addr = serve_upstream(app).await;
        let issuer = format!("http://{addr}");
        state.lock().unwrap().issuer = issuer.clone();
        TinyIdp { state, issuer }
    }

    fn next(&self, token: Token) {
        self.state.lock().unwrap().next_token = token;
    }

    fn rotate(&self, kid: &str) {
        self.state.lock().unwrap().keys.push((kid.into(), key_pair()));
    }

    fn jwks_fetches(&self) -> usize {
        self.state.lock().unwrap().jwks_fetches
    }
}

type Shared = State<Arc<Mutex<TinyState>>>;

async fn discovery(State(state): Shared) -> axum::Json<Value> {
    let issuer = state.lock().unwrap().issuer.clone();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        // Listed, but never to be accepted: Goodhart pins the asymmetric ones.
        "id_token_signing_alg_values_supported": ["ES256", "HS256", "none"],
    }))
}

async fn jwks(State(state): Shared) -> axum::Json<Value> {
    let mut state = state.lock().unwrap();
    state.jwks_fetches += 1;
    let keys: Vec<Value> = state.keys.iter().map(|(kid, key)| jwk(kid, key)).collect();
    axum::Json(json!({ "keys": keys }))
}

async fn authorize(State(state): Shared, Query(query): Query<HashMap<String, String>>) -> axum::response::Response {
    assert_eq!(
        query.get("code_challenge_method").map(String::as_str),
        Some("S256"),
        "PKCE S256"
    );
    assert_eq!(query.get("response_type").map(String::as_str), Some("code"));
    let code = format!("code-{}", rand_hex());
    state.lock().unwrap().grants.insert(
        code.clone(),
        Grant {
            nonce: query["nonce"].clone(),
            challenge: query["code_challenge"].clone(),
        },
    );
    let target = format!("{}?code={code}&state={}", query["redirect_uri"], query["state"]);
    (StatusCode::FOUND, [("location", target)]).into_response()
}

fn rand_hex() -> String {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).unwrap();
    hex::encode(bytes)
}

async fn token(State(state): Shared, body: Bytes) -> axum::response::Response {
    let form: HashMap<String, String> = openidconnect::url::form_urlencoded::parse(&body).into_owned().collect();
    let mut state = state.lock().unwrap();
    let invalid = || (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    // A code is redeemed once, with the verifier of its challenge.
    let Some(grant) = state.grants.remove(&form["code"]) else {
        return invalid();
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return invalid();
    }
    state.codes_redeemed += 1;
    let now = jiff::Timestamp::now().as_second();
    let kind = state.next_token;
    let mut claims = json!({
        "iss": state.issuer, "sub": "person-1", "aud": "goodhart", "exp": now + 300, "iat": now,
        "nonce": grant.nonce, "email": "pat@example.com", "name": "Pat", "groups": state.groups,
    });
    match kind {
        Token::Expired => claims["exp"] = json!(now - 600),
        Token::ExpiredWithinSkew => claims["exp"] = json!(now - 20),
        Token::IssuedInTheFuture => claims["iat"] = json!(now + 600),
        Token::NotValidYet => claims["nbf"] = json!(now + 600),
        Token::WrongNonce => claims["nonce"] = json!("another-nonce"),
        Token::WrongAudience => claims["aud"] = json!("someone-else"),
        Token::AnotherAudienceWithoutAzp => claims["aud"] = json!(["goodhart", "someone-else"]),
        Token::WrongIssuer => claims["iss"] = json!("http://127.0.0.1:1"),
        _ => {}
    }
    let (kid, key) = state.keys.last().unwrap();
    let rng = SystemRandom::new();
    let id_token = match kind {
        Token::AlgNone => format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims)),
        Token::Hs256WithThePublicKey => {
            let input = format!(
                "{}.{}",
                b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
                b64(&claims)
            );
            let mac = ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.public_key().as_ref()),
                input.as_bytes(),
            );
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
        }
        _ => {
            let kid = if kind == Token::UnknownKid { "key-unknown" } else { kid };
            let input = format!(
                "{}.{}",
                b64(&json!({"alg": "ES256", "typ": "JWT", "kid": kid})),
                b64(&claims)
            );
            let signer = if kind == Token::ForgedSignature || kind == Token::UnknownKid {
                &key_pair()
            } else {
                key
            };
            let signature = signer.sign(&rng, input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }
    };
    axum::Json(json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}

async fn tiny_server() -> (TinyIdp, TestServer) {
    let idp = TinyIdp::start().await;
    let server = server_with(free_addr(), &idp.issuer, None, "").await;
    (idp, server)
}

#[tokio::test]
async fn id_tokens_are_refused_unless_signed_by_the_provider_for_us_now_and_for_this_login() {
    let (idp, server) = tiny_server().await;
    for refused in [
        Token::Expired,
        Token::IssuedInTheFuture,
        Token::NotValidYet,
        Token::WrongNonce,
        Token::ForgedSignature,
        Token::AlgNone,
        Token::Hs256WithThePublicKey,
        Token::WrongAudience,
        Token::AnotherAudienceWithoutAzp,
        Token::WrongIssuer,
    ] {
        idp.next(refused);
        let mut browser = Browser::default();
        let reply = browser.sign_in(&server.url(), "pat").await;
        assert_eq!(reply.status, 400, "{refused:?}: {}", reply.text);
        assert!(
            reply.text.contains("the ID token is refused"),
            "{refused:?}: {}",
            reply.text
        );
        assert_eq!(browser.cookie(&server.url(), "goodhart_session"), None, "{refused:?}");
    }
    for accepted in [Token::Good, Token::ExpiredWithinSkew] {
        idp.next(accepted);
        let mut browser = Browser::default();
        let reply = browser.sign_in(&server.url(), "pat").await;
        assert_eq!(reply.status, 303, "{accepted:?}: {}", reply.text);
        assert!(browser.cookie(&server.url(), "goodhart_session").is_some());
    }
    assert_eq!(
        idp.state.lock().unwrap().codes_redeemed,
        12,
        "every code was redeemed, with its PKCE verifier"
    );
}

#[tokio::test]
async fn the_login_state_is_bound_to_the_browser_and_used_once() {
    let (_idp, server) = tiny_server().await;
    let mut browser = Browser::default();
    let login = browser
        .request("GET", &format!("{}/auth/login", server.url()), &[], "")
        .await;
    assert_eq!(login.status, 303);
    let set_cookie = login.headers.get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    let authorize = browser.request("GET", location(&login), &[], "").await;
    let callback = location(&authorize).to_owned();
    let login_cookie = browser.cookie(&server.url(), "goodhart_login").unwrap();
    assert!(
        !login_cookie.contains(callback.split("&state=").nth(1).unwrap()),
        "the state travels encrypted"
    );

    // Another browser (no login cookie) cannot complete it; nor a wrong state.
    let mut other = Browser::default();
    let reply = other.request("GET", &callback, &[], "").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("not started in this browser"), "{}", reply.text);
    // Nor a login cookie tampered with.
    let mut tampered = Browser::default();
    let mut forged = login_cookie.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    tampered
        .cookies
        .entry(authority(&server.url()))
        .or_default()
        .insert("goodhart_login".into(), String::from_utf8(forged).unwrap());
    let reply = tampered.request("GET", &callback, &[], "").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let (without_state, _) = callback.split_once("&state=").unwrap();
    let wrong_state = format!("{without_state}&state=not-the-state");
    let reply = browser.request("GET", &wrong_state, &[], "").await;
    assert_eq!(reply.status, 400, "{}", reply.text);

    // The real one completes once; its replay is refused.
    let reply = browser.request("GET", &callback, &[], "").await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    let mut replayer = Browser {
        cookies: browser.cookies.clone(),
    };
    replayer
        .cookies
        .get_mut(&authority(&server.url()))
        .unwrap()
        .insert("goodhart_login".into(), login_cookie.clone());
    let reply = replayer.request("GET", &callback, &[], "").await;
    assert_eq!(reply.status, 400, "a replayed state and code: {}", reply.text);
    assert!(reply.text.contains("unknown, used or expired"), "{}", reply.text);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_unknown_keys_refetch_at_most_once_per_bound() {
    let (idp, server) = tiny_server().await;
    let mut browser = Browser::default();
    assert_eq!(browser.sign_in(&server.url(), "pat").await.status, 303);
    assert_eq!(idp.jwks_fetches(), 1, "discovery fetched the keys");

    idp.rotate("key-2");
    let mut browser = Browser::default();
    let reply = browser.sign_in(&server.url(), "pat").await;
    assert_eq!(reply.status, 303, "signed by the new key: {}", reply.text);
    assert_eq!(idp.jwks_fetches(), 2, "the unknown kid refetched the keys");

    idp.next(Token::UnknownKid);
    for _ in 0..3 {
        let mut browser = Browser::default();
        let reply = browser.sign_in(&server.url(), "pat").await;
        assert_eq!(reply.status, 400, "{}", reply.text);
    }
    assert_eq!(idp.jwks_fetches(), 2, "no refetch within the bound");
}

fn set_cookie_of(reply: &Reply, name: &str) -> String {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap()
}

#[tokio::test]
async fn session_cookies_are_flagged_need_csrf_and_stop_at_logout_revocation_and_expiry() {
    let (_idp, server) = tiny_server().await;
    let origin = server.url();
    let mut browser = Browser::default();
    let signed_in = browser.sign_in(&server.url(), "pat").await;
    let cookie = set_cookie_of(&signed_in, "goodhart_session");
    for flag in ["Path=/", "Max-Age=28800", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(flag), "{flag}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    assert!(
        set_cookie_of(&signed_in, "goodhart_login").contains("Max-Age=0"),
        "the login cookie is cleared"
    );

    let sso = with_session(&mut browser, &server, "GET", "/auth/sso", None, None, "").await;
    assert_eq!(
        (sso.json["enabled"].as_bool(), sso.json["signed_in"].as_bool()),
        (Some(true), Some(true)),
        "{}",
        sso.text
    );
    let anonymous = server.send("GET", "/auth/sso", &[], Bytes::new()).await;
    assert_eq!(anonymous.json["signed_in"], false, "{}", anonymous.text);
    let me = with_session(&mut browser, &server, "GET", "/api/v1/me", None, None, "").await;
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();
    let session_id = me.json["identity"]["session_id"].as_str().unwrap().to_owned();
    let key = r#"{"user": "pat", "name": "k"}"#;
    for (csrf, origin, why) in [
        (None, Some(origin.as_str()), "no CSRF token"),
        (Some("0000"), Some(origin.as_str()), "a wrong CSRF token"),
        (Some(csrf.as_str()), Some("http://evil.example"), "another origin"),
    ] {
        let reply = with_session(&mut browser, &server, "POST", "/api/v1/keys", csrf, origin, key).await;
        assert_eq!(reply.status, 403, "{why}: {}", reply.text);
    }
    let reply = with_session(
        &mut browser,
        &server,
        "POST",
        "/api/v1/keys",
        Some(&csrf),
        Some(&origin),
        key,
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let keys = server.admin("GET", "/api/v1/keys", Bytes::new()).await;
    assert_eq!(keys.json["keys"].as_array().unwrap().len(), 1, "{}", keys.text);

    // A forged cookie is nobody.
    let mut forger = Browser::default();
    let real = browser.cookie(&server.url(), "goodhart_session").unwrap();
    let (secret, signature) = real.split_once('.').unwrap();
    let forged = format!(
        "{}{}.{signature}",
        &secret[..63],
        if secret.ends_with('0') { "1" } else { "0" }
    );
    forger
        .cookies
        .entry(authority(&server.url()))
        .or_default()
        .insert("goodhart_session".into(), forged);
    assert_eq!(
        with_session(&mut forger, &server, "GET", "/api/v1/me", None, None, "")
            .await
            .status,
        401
    );

    // The admin lists the session and revokes it: the cookie stops working at once.
    let sessions = server.admin("GET", "/api/v1/sessions", Bytes::new()).await;
    assert_eq!(
        sessions.json["sessions"][0]["id"],
        session_id.as_str(),
        "{}",
        sessions.text
    );
    assert_eq!(sessions.json["sessions"][0]["email"], "pat@example.com");
    let revoked = server
        .admin("POST", &format!("/api/v1/sessions/{session_id}/revoke"), Bytes::new())
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(
        with_session(&mut browser, &server, "GET", "/api/v1/me", None, None, "")
            .await
            .status,
        401
    );
    let again = server
        .admin("POST", &format!("/api/v1/sessions/{session_id}/revoke"), Bytes::new())
        .await;
    assert_eq!(again.status, 404, "{}", again.text);

    // Logging out needs the CSRF token, then ends the session and clears the cookie.
    let mut browser = Browser::default();
    browser.sign_in(&server.url(), "pat").await;
    let me = with_session(&mut browser, &server, "GET", "/api/v1/me", None, None, "").await;
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();
    let kept = browser.cookie(&server.url(), "goodhart_session").unwrap();
    let reply = with_session(&mut browser, &server, "POST", "/auth/logout", None, Some(&origin), "").await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let reply = with_session(
        &mut browser,
        &server,
        "POST",
        "/auth/logout",
        Some(&csrf),
        Some(&origin),
        "",
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(set_cookie_of(&reply, "goodhart_session").contains("Max-Age=0"));
    // From a browser's form, without an end-session endpoint at the provider: to the dashboard.
    let mut from_form = Browser::default();
    from_form.sign_in(&server.url(), "pat").await;
    let me = with_session(&mut from_form, &server, "GET", "/api/v1/me", None, None, "").await;
    let form_csrf = me.json["csrf_token"].as_str().unwrap().to_owned();
    let form_out = from_form
        .request(
            "POST",
            &format!("{}/auth/logout", server.url()),
            &[("content-type", "application/x-www-form-urlencoded")],
            &format!("csrf_token={form_csrf}"),
        )
        .await;
    assert_eq!(form_out.status, 303, "{}", form_out.text);
    assert_eq!(location(&form_out), "/");
    assert!(
        reply.headers.get("x-end-session-url").is_none(),
        "no end-session endpoint, none to follow"
    );
    assert!(set_cookie_of(&form_out, "goodhart_session").contains("Max-Age=0"));
    // The revocation is the admin's in the audit log, the sign-out the person's; once each.
    let revocations = crate::audit::audit_log(&server, "action=session.revoke").await;
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    assert_eq!(revocations[0]["actor"]["kind"], "admin_token");
    assert_eq!(revocations[0]["target"]["id"], session_id.as_str());
    let ended = crate::audit::audit_log(&server, "action=session.end").await;
    assert_eq!(ended.len(), 2, "the refused logout is not one: {ended:?}");
    assert!(
        ended.iter().all(|e| e["actor"]["name"] == "pat@example.com"),
        "{ended:?}"
    );
    let mut replay = Browser::default();
    replay
        .cookies
        .entry(authority(&server.url()))
        .or_default()
        .insert("goodhart_session".into(), kept);
    assert_eq!(
        with_session(&mut replay, &server, "GET", "/api/v1/me", None, None, "")
            .await
            .status,
        401,
        "the logged-out cookie is refused even if kept"
    );

    // An expired session is refused (one stored as expired an hour ago, sealed with the key).
    let store = server.db.open().await.unwrap();
    let key = store.setting("session_cookie_key").await.unwrap().unwrap();
    let key = goodhart_server::app::sessions::SessionKey::new(&hex::decode(key).unwrap());
    let hour = 3_600_000_000;
    let now = goodhart_store::now_micros();
    let expired = Session {
        id: "ses_expired".into(),
        issuer: "x".into(),
        subject: "old".into(),
        email: None,
        name: None,
        groups: vec!["goodhart-admins".into()],
        created_at: goodhart_core::Micros(now.0 - 9 * hour),
        expires_at: goodhart_core::Micros(now.0 - hour),
        revoked_at: None,
    };
    let secret = "ab".repeat(32);
    let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    store.create_session(&expired, &hash).await.unwrap();
    let mut late = Browser::default();
    late.cookies
        .entry(authority(&server.url()))
        .or_default()
        .insert("goodhart_session".into(), key.seal(&secret));
    assert_eq!(
        with_session(&mut late, &server, "GET", "/api/v1/me", None, None, "")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn sessions_and_sign_ins_work_across_instances_on_postgres() {
    let idp = TinyIdp::start().await;
    let addr = free_addr();
    let server = server_on(TestDatabase::postgres().await, addr, &idp.issuer, None, "").await;
    let mut browser = Browser::default();
    assert_eq!(browser.sign_in(&server.url(), "pat").await.status, 303);
    let me = with_session(&mut browser, &server, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(me.json["role"], "admin", "{}", me.text);

    // A second instance on the same database shares the cookie key and the sessions.
    let peer = crate::common::start_peer(
        &server,
        "peer",
        &format!(
            "[auth.oidc]\nissuer = \"{}\"\nclient_id = \"goodhart\"\npublic_url = \"http://{addr}\"\nadmin_groups = [\"goodhart-admins\"]\n",
            idp.issuer
        ),
    )
    .await;
    // A sign-in started at one instance completes at the other; its replay at the first is refused.
    let mut roaming = Browser::default();
    let login = roaming
        .request("GET", &format!("{}/auth/login", server.url()), &[], "")
        .await;
    let authorize = roaming.request("GET", location(&login), &[], "").await;
    let callback = location(&authorize).replace(&server.url(), &peer.url());
    let login_cookie = roaming.cookie(&server.url(), "goodhart_login").unwrap();
    roaming
        .cookies
        .entry(authority(&peer.url()))
        .or_default()
        .insert("goodhart_login".into(), login_cookie);
    let completed = roaming.request("GET", &callback, &[], "").await;
    assert_eq!(completed.status, 303, "{}", completed.text);
    let replayed = roaming
        .request("GET", &callback.replace(&peer.url(), &server.url()), &[], "")
        .await;
    assert_eq!(replayed.status, 400, "{}", replayed.text);
    assert!(replayed.text.contains("unknown, used or expired"), "{}", replayed.text);

    let cookie = browser.cookie(&server.url(), "goodhart_session").unwrap();
    let mut at_peer = Browser::default();
    at_peer
        .cookies
        .entry(authority(&peer.url()))
        .or_default()
        .insert("goodhart_session".into(), cookie);
    let me = with_session(&mut at_peer, &peer, "GET", "/api/v1/me", None, None, "").await;
    assert_eq!(me.json["role"], "admin", "{}", me.text);

    // Revoked at one instance, refused at the other at once.
    let id = me.json["identity"]["session_id"].as_str().unwrap().to_owned();
    let revoked = server
        .admin("POST", &format!("/api/v1/sessions/{id}/revoke"), Bytes::new())
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(
        with_session(&mut at_peer, &peer, "GET", "/api/v1/me", None, None, "")
            .await
            .status,
        401
    );
}

/// `/auth/login` and `/auth/callback` take at most `max_sign_ins_per_minute` attempts a minute
/// from one client address each (the audit log's address: behind a trusted proxy, the last
/// `X-Forwarded-For`); past it, 429 with `Retry-After`, and other addresses and routes are
/// unaffected.
#[tokio::test]
async fn sign_ins_are_bounded_per_client_address() {
    let idp = TinyIdp::start().await;
    let server = server_with(
        free_addr(),
        &idp.issuer,
        None,
        "max_sign_ins_per_minute = 3\n[audit]\ntrust_forwarded_for = true\n",
    )
    .await;
    let mut browser = Browser::default();
    let from = |address: &'static str| [("x-forwarded-for", address)];
    let login = format!("{}/auth/login", server.url());
    for _ in 0..3 {
        let reply = browser.request("GET", &login, &from("203.0.113.7"), "").await;
        assert_eq!(reply.status, 303, "{}", reply.text);
    }
    let refused = browser.request("GET", &login, &from("203.0.113.7"), "").await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    let wait: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "one attempt back every 20 s: {wait}");
    assert!(refused.text.contains("Too many sign-ins"), "{}", refused.text);
    assert!(browser.cookie(&server.url(), "goodhart_login").is_some());

    // Another address signs in all the way; the callback is counted apart from the login.
    let mut other = Browser::default();
    let login_other = other.request("GET", &login, &from("198.51.100.1"), "").await;
    assert_eq!(login_other.status, 303, "{}", login_other.text);
    let authorize = other.request("GET", location(&login_other), &[], "").await;
    let callback = location(&authorize).to_owned();
    let done = other.request("GET", &callback, &from("198.51.100.1"), "").await;
    assert_eq!(done.status, 303, "{}", done.text);

    // Callbacks from the first address: refused past the bound before anything is checked.
    let bogus = format!("{}/auth/callback?state=s&code=c", server.url());
    for _ in 0..3 {
        let reply = browser.request("GET", &bogus, &from("203.0.113.7"), "").await;
        assert_eq!(reply.status, 400, "{}", reply.text);
    }
    let refused = browser.request("GET", &bogus, &from("203.0.113.7"), "").await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(
        crate::audit::audit_log(&server, "action=sign_in.failure").await.len(),
        3,
        "the refused callbacks reached nothing"
    );
    let status = browser
        .request("GET", &format!("{}/auth/sso", server.url()), &from("203.0.113.7"), "")
        .await;
    assert_eq!(status.status, 200, "other routes are not bounded: {}", status.text);
}
