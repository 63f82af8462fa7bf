//! SCIM 2.0 provisioning end to end, as Okta and Entra ID drive it: people provisioned (who
//! never signed in) join the people directory with the home team their groups give, their
//! teamless keys are attributed to it, and a deactivation offboards them — out of the
//! directory, their session, keys and personal tokens revoked, their sign-in refused. Each
//! write is audited once, as the SCIM token; errors are SCIM's.

use bytes::Bytes;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::audit::audit_log;
use crate::common::{ADMIN, Reply, TestServer, start_with};
use crate::directory::requests_by_team_and_user;
use crate::oidc::{Browser, TinyIdp, free_addr, server_with};
use crate::viewers::{create_viewer, get};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

async fn scim_server(idp: &TinyIdp) -> TestServer {
    let extra = "user_domain = \"example.com\"\n\
                 member_groups = { \"org-payments\" = \"payments\", \"org-search\" = \"search\" }\n\
                 [limits]\nmax_body_bytes = 1048576\n";
    server_with(free_addr(), &idp.issuer, None, extra).await
}

async fn scim_token(server: &TestServer) -> String {
    let made = create_viewer(server, json!({"role": "scim", "name": "okta"})).await;
    assert_eq!(made["role"], "scim");
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gh_scim_"), "{token}");
    token
}

/// A SCIM request with `token`, sent as application/scim+json.
async fn scim(server: &TestServer, token: &str, method: &str, path: &str, body: Value) -> Reply {
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/scim+json"),
    ];
    let body = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let reply = server.send(method, &format!("/scim/v2{path}"), &headers, body).await;
    if reply.status != 204 {
        assert_eq!(
            reply.headers["content-type"], "application/scim+json",
            "{method} {path}: {}",
            reply.text
        );
    }
    reply
}

/// `filter` made safe for a query string.
fn filter(text: &str) -> String {
    text.replace(' ', "%20").replace('"', "%22")
}

/// The directory as (user, team, issuer).
async fn people(server: &TestServer) -> Vec<(String, Option<String>, String)> {
    let people = get(server, ADMIN, "/api/v1/people").await["people"].clone();
    people
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["user"].as_str().unwrap().to_owned(),
                p["team"].as_str().map(str::to_owned),
                p["issuer"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn person(user: &str, team: Option<&str>) -> (String, Option<String>, String) {
    (user.to_owned(), team.map(str::to_owned), "scim".to_owned())
}

fn error_of(reply: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json["schemas"], json!([ERROR]), "{}", reply.text);
    assert_eq!(reply.json["status"], status.to_string(), "{}", reply.text);
    assert_eq!(reply.json["scimType"].as_str(), scim_type, "{}", reply.text);
}

async fn chat(server: &TestServer, key: &str) -> u16 {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let call = server
        .with_token(key, "POST", "/v1/chat/completions", body.to_string())
        .await;
    server.flush().await;
    call.status
}

#[tokio::test]
async fn okta_provisions_people_and_groups_and_a_deactivation_offboards() {
    let idp = TinyIdp::start().await;
    idp.state.lock().unwrap().groups = vec!["team-payments".into()];
    let server = scim_server(&idp).await;
    let okta = scim_token(&server).await;

    // Okta looks the person up first, then creates them.
    let miss = scim(
        &server,
        &okta,
        "GET",
        &format!("/Users?filter={}", filter(r#"userName eq "pat@example.com""#)),
        Value::Null,
    )
    .await;
    assert_eq!(miss.status, 200, "{}", miss.text);
    assert_eq!(
        (&miss.json["totalResults"], &miss.json["Resources"]),
        (&json!(0), &json!([]))
    );
    let pat = json!({"schemas": [USER], "userName": "pat@example.com", "name": {"givenName": "Pat", "familyName": "Doe"},
                     "emails": [{"primary": true, "value": "pat@example.com", "type": "work"}], "active": true,
                     "locale": "en-US", "password": "never kept"});
    let created = scim(&server, &okta, "POST", "/Users", pat.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let pat_id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(created.json["meta"]["resourceType"], "User");
    assert_eq!(
        created.json["meta"]["location"],
        format!("{}/scim/v2/Users/{pat_id}", server.url())
    );
    assert_eq!(created.json["name"]["familyName"], "Doe");
    assert!(created.json.get("password").is_none());
    let again = scim(&server, &okta, "POST", "/Users", json!({"userName": "PAT@example.com"})).await;
    error_of(&again, 409, Some("uniqueness"));
    let ben = scim(
        &server,
        &okta,
        "POST",
        "/Users",
        json!({"schemas": [USER], "userName": "ben@example.com"}),
    )
    .await;
    assert_eq!(ben.status, 201, "{}", ben.text);
    let ben_id = ben.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        people(&server).await,
        [person("ben", None), person("pat", None)],
        "in the directory without signing in; no group, no team"
    );
    let hit = scim(
        &server,
        &okta,
        "GET",
        &format!("/Users?filter={}", filter(r#"USERNAME EQ "Pat@Example.com""#)),
        Value::Null,
    )
    .await;
    assert_eq!(
        (&hit.json["totalResults"], &hit.json["Resources"][0]["id"]),
        (&json!(1), &json!(pat_id))
    );
    let paged = scim(&server, &okta, "GET", "/Users?startIndex=2&count=1", Value::Null).await;
    assert_eq!(
        (
            &paged.json["totalResults"],
            &paged.json["startIndex"],
            &paged.json["itemsPerPage"]
        ),
        (&json!(2), &json!(2), &json!(1))
    );

    // A group with her in it gives her its team.
    let search = scim(
        &server,
        &okta,
        "POST",
        "/Groups",
        json!({"schemas": [GROUP], "displayName": "org-search", "members": [{"value": pat_id}]}),
    )
    .await;
    assert_eq!(search.status, 201, "{}", search.text);
    let search_id = search.json["id"].as_str().unwrap().to_owned();
    assert_eq!(search.json["members"][0]["display"], "pat@example.com");
    assert_eq!(
        people(&server).await,
        [person("ben", None), person("pat", Some("search"))]
    );
    let taken = scim(&server, &okta, "POST", "/Groups", json!({"displayName": "ORG-SEARCH"})).await;
    error_of(&taken, 409, Some("uniqueness"));

    // Her key made without a team is her SCIM team's; so is her personal ingest token's usage.
    let (_, key) = server.create_key(r#"{"user": "pat"}"#).await;
    assert_eq!(chat(&server, &key).await, 200);
    assert_eq!(
        requests_by_team_and_user(&server).await,
        [("search".to_owned(), "pat".to_owned(), 1)]
    );
    let ingest = create_viewer(&server, json!({"role": "ingest", "user": "pat"})).await;
    let ingest_token = ingest["token"].as_str().unwrap().to_owned();

    // Members added and removed.
    let add =
        json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": ben_id}]}]});
    let added = scim(&server, &okta, "PATCH", &format!("/Groups/{search_id}"), add).await;
    assert_eq!(added.status, 200, "{}", added.text);
    assert_eq!(added.json["members"].as_array().unwrap().len(), 2);
    let remove = json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": format!("members[value eq \"{ben_id}\"]")}]});
    let removed = scim(&server, &okta, "PATCH", &format!("/Groups/{search_id}"), remove).await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(
        removed.json["members"],
        json!([{"value": pat_id, "display": "pat@example.com",
        "$ref": format!("{}/scim/v2/Users/{pat_id}", server.url())}])
    );
    assert_eq!(
        people(&server).await,
        [person("ben", None), person("pat", Some("search"))]
    );
    let user = scim(&server, &okta, "GET", &format!("/Users/{pat_id}"), Value::Null).await;
    assert_eq!(user.json["groups"][0]["display"], "org-search");

    // She signs in (her session is the IdP's), then leaves: Okta deactivates her.
    let mut browser = Browser::default();
    assert_eq!(browser.sign_in(&server.url(), "pat").await.status, 303);
    let me = browser
        .request("GET", &format!("{}/api/v1/me", server.url()), &[], "")
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    let deactivate = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let gone = scim(&server, &okta, "PATCH", &format!("/Users/{pat_id}"), deactivate).await;
    assert_eq!(
        (gone.status, &gone.json["active"]),
        (200, &json!(false)),
        "{}",
        gone.text
    );
    assert_eq!(people(&server).await, [person("ben", None)], "out of the directory");
    let me = browser
        .request("GET", &format!("{}/api/v1/me", server.url()), &[], "")
        .await;
    assert_eq!(me.status, 401, "her session is revoked: {}", me.text);
    assert_eq!(chat(&server, &key).await, 401, "her key is revoked");
    let sent = server.with_token(&ingest_token, "POST", "/api/v1/usage", "[]").await;
    assert_eq!(sent.status, 401, "her ingest token is revoked: {}", sent.text);
    let refused = Browser::default().sign_in(&server.url(), "pat").await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.text.contains("deactivated"), "{}", refused.text);

    // Each write once, as the SCIM token.
    for (action, count) in [
        ("scim.user.create", 2),
        ("scim.group.create", 1),
        ("scim.group.update", 2),
        ("scim.user.deactivate", 1),
        ("scim.user.update", 0),
    ] {
        let entries = audit_log(&server, &format!("action={action}")).await;
        assert_eq!(entries.len(), count, "{action}: {entries:?}");
        assert!(
            entries.iter().all(|e| e["actor"]["kind"] == "scim_token"),
            "{entries:?}"
        );
    }
    let offboarded = &audit_log(&server, "action=scim.user.deactivate").await[0]["details"];
    assert_eq!(offboarded["user"], "pat");
    assert_eq!(offboarded["revoked_keys"].as_array().unwrap().len(), 1, "{offboarded}");
    assert_eq!(
        offboarded["revoked_sessions"].as_array().unwrap().len(),
        1,
        "{offboarded}"
    );
    assert_eq!(
        offboarded["revoked_tokens"].as_array().unwrap().len(),
        1,
        "{offboarded}"
    );
    assert!(
        audit_log(&server, "action=key.revoke").await.is_empty(),
        "one entry per SCIM write"
    );

    // Reactivated, she is back in the directory with her group's team and may sign in again.
    let back = json!({"Operations": [{"op": "replace", "path": "active", "value": true}]});
    assert_eq!(
        scim(&server, &okta, "PATCH", &format!("/Users/{pat_id}"), back)
            .await
            .status,
        200
    );
    assert_eq!(
        people(&server).await,
        [person("ben", None), person("pat", Some("search"))]
    );
    assert_eq!(Browser::default().sign_in(&server.url(), "pat").await.status, 303);
}

#[tokio::test]
async fn entra_sends_capitalised_operations_string_booleans_and_external_ids() {
    let idp = TinyIdp::start().await;
    let server = scim_server(&idp).await;
    let entra = scim_token(&server).await;

    let by_external = format!("/Users?filter={}", filter(r#"externalId eq "e-1""#));
    assert_eq!(
        scim(&server, &entra, "GET", &by_external, Value::Null).await.json["totalResults"],
        0
    );
    let cy = json!({"schemas": [USER], "externalId": "e-1", "userName": "cy@corp.example", "active": "True",
                    "displayName": "Cy", "emails": [{"primary": "True", "type": "work", "value": "cy@example.com"}]});
    let created = scim(&server, &entra, "POST", "/Users", cy).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let cy_id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(created.json["active"], true);
    let found = scim(&server, &entra, "GET", &by_external, Value::Null).await;
    assert_eq!(found.json["Resources"][0]["id"], json!(cy_id));
    let by_email = format!("/Users?filter={}", filter(r#"emails.value eq "CY@example.com""#));
    assert_eq!(
        scim(&server, &entra, "GET", &by_email, Value::Null).await.json["totalResults"],
        1
    );
    assert_eq!(
        people(&server).await,
        [person("cy", None)],
        "named by the primary email less user_domain"
    );

    let rename = json!({"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "displayName", "value": "Cy Young"},
        {"op": "Replace", "path": "name.familyName", "value": "Young"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "cyrus@example.com"}]});
    let renamed = scim(&server, &entra, "PATCH", &format!("/Users/{cy_id}"), rename).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(
        (&renamed.json["displayName"], &renamed.json["emails"][0]["value"]),
        (&json!("Cy Young"), &json!("cyrus@example.com"))
    );
    assert_eq!(people(&server).await, [person("cyrus", None)], "the old name is gone");

    // A team group (from [auth.oidc]'s team_groups) by its external id, members added after.
    let group = scim(
        &server,
        &entra,
        "POST",
        "/Groups",
        json!({"schemas": [GROUP], "displayName": "team-payments", "externalId": "g-1"}),
    )
    .await;
    assert_eq!(group.status, 201, "{}", group.text);
    let group_id = group.json["id"].as_str().unwrap().to_owned();
    let by_group = format!(
        "/Groups?filter={}&excludedAttributes=members",
        filter(r#"externalId eq "g-1""#)
    );
    let listed = scim(&server, &entra, "GET", &by_group, Value::Null).await;
    assert_eq!(listed.json["totalResults"], 1);
    assert!(listed.json["Resources"][0].get("members").is_none(), "{}", listed.text);
    let add =
        json!({"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [{"value": cy_id}]}]});
    assert_eq!(
        scim(&server, &entra, "PATCH", &format!("/Groups/{group_id}"), add)
            .await
            .status,
        200
    );
    assert_eq!(people(&server).await, [person("cyrus", Some("payments"))]);
    let one = scim(
        &server,
        &entra,
        "GET",
        &format!("/Groups/{group_id}?excludedAttributes=members"),
        Value::Null,
    )
    .await;
    assert!(one.json.get("members").is_none(), "{}", one.text);
    let replace = json!({"Operations": [{"op": "Replace", "path": "displayName", "value": "org-search"}]});
    assert_eq!(
        scim(&server, &entra, "PATCH", &format!("/Groups/{group_id}"), replace)
            .await
            .status,
        200
    );
    assert_eq!(
        people(&server).await,
        [person("cyrus", Some("search"))],
        "a renamed group moves its members"
    );

    let off = json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let gone = scim(&server, &entra, "PATCH", &format!("/Users/{cy_id}"), off).await;
    assert_eq!(
        (gone.status, &gone.json["active"]),
        (200, &json!(false)),
        "{}",
        gone.text
    );
    assert!(people(&server).await.is_empty());
    assert_eq!(
        scim(&server, &entra, "DELETE", &format!("/Users/{cy_id}"), Value::Null)
            .await
            .status,
        204
    );
    error_of(
        &scim(&server, &entra, "GET", &format!("/Users/{cy_id}"), Value::Null).await,
        404,
        None,
    );
    let emptied = scim(&server, &entra, "GET", &format!("/Groups/{group_id}"), Value::Null).await;
    assert_eq!(emptied.json["members"], json!([]), "a deleted user leaves their groups");
    assert_eq!(
        scim(&server, &entra, "DELETE", &format!("/Groups/{group_id}"), Value::Null)
            .await
            .status,
        204
    );
    for (action, count) in [
        ("scim.user.create", 1),
        ("scim.user.update", 1),
        ("scim.user.deactivate", 1),
        ("scim.user.delete", 1),
        ("scim.group.create", 1),
        ("scim.group.update", 2),
        ("scim.group.delete", 1),
    ] {
        assert_eq!(
            audit_log(&server, &format!("action={action}")).await.len(),
            count,
            "{action}"
        );
    }
}

#[tokio::test]
async fn scim_answers_its_errors_in_its_own_schema() {
    let idp = TinyIdp::start().await;
    let server = scim_server(&idp).await;
    let token = scim_token(&server).await;

    let anonymous = server.send("GET", "/scim/v2/Users", &[], Bytes::new()).await;
    error_of(&anonymous, 401, None);
    let viewer = create_viewer(&server, json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    error_of(&scim(&server, &viewer, "GET", "/Users", Value::Null).await, 403, None);
    let refused = server.with_token(&token, "GET", "/api/v1/people", Bytes::new()).await;
    assert_eq!(refused.status, 403, "a SCIM token does nothing else: {}", refused.text);

    for bad in [
        r#"userName co "pat""#,
        r#"title eq "x""#,
        r#"userName eq "a" or userName eq "b""#,
    ] {
        let reply = scim(
            &server,
            &token,
            "GET",
            &format!("/Users?filter={}", filter(bad)),
            Value::Null,
        )
        .await;
        error_of(&reply, 400, Some("invalidFilter"));
    }
    error_of(
        &scim(&server, &token, "GET", "/Users/nobody", Value::Null).await,
        404,
        None,
    );
    error_of(
        &scim(&server, &token, "DELETE", "/Groups/nothing", Value::Null).await,
        404,
        None,
    );
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let broken = server
        .send(
            "POST",
            "/scim/v2/Users",
            &headers,
            r#"{"userName": "x", "active": tru}"#,
        )
        .await;
    error_of(&broken, 400, Some("invalidSyntax"));
    assert!(
        broken.json["detail"].as_str().unwrap().contains("`active`"),
        "{}",
        broken.text
    );
    error_of(
        &scim(&server, &token, "POST", "/Users", json!({"displayName": "no name"})).await,
        400,
        Some("invalidValue"),
    );
    let member = json!({"displayName": "org-search", "members": [{"value": "nobody"}]});
    error_of(
        &scim(&server, &token, "POST", "/Groups", member).await,
        400,
        Some("invalidValue"),
    );
    let made = scim(
        &server,
        &token,
        "POST",
        "/Users",
        json!({"userName": "dee@example.com"}),
    )
    .await;
    let path = format!("/Users/{}", made.json["id"].as_str().unwrap());
    let groups = json!({"Operations": [{"op": "add", "path": "groups", "value": [{"value": "g"}]}]});
    error_of(
        &scim(&server, &token, "PATCH", &path, groups).await,
        400,
        Some("mutability"),
    );
    let filter_path = json!({"Operations": [{"op": "add", "path": "emails[type sw \"w\"].value", "value": "x"}]});
    error_of(
        &scim(&server, &token, "PATCH", &path, filter_path).await,
        400,
        Some("invalidPath"),
    );
    let not_kept = json!({"Operations": [{"op": "replace", "path": "password", "value": "x"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"}]});
    let accepted = scim(&server, &token, "PATCH", &path, not_kept).await;
    assert_eq!(
        accepted.status, 200,
        "attributes not kept are accepted: {}",
        accepted.text
    );
    assert!(!accepted.text.contains("R&D"), "{}", accepted.text);
    let huge = json!({"userName": "e".repeat(2_000_000)});
    assert_eq!(scim(&server, &token, "POST", "/Users", huge).await.status, 413);

    let config = scim(&server, &token, "GET", "/ServiceProviderConfig", Value::Null).await;
    assert_eq!(
        (
            &config.json["patch"]["supported"],
            &config.json["filter"]["maxResults"],
            &config.json["bulk"]["supported"]
        ),
        (&json!(true), &json!(200), &json!(false))
    );
    let types = scim(&server, &token, "GET", "/ResourceTypes", Value::Null).await;
    assert_eq!(types.json["Resources"][1]["endpoint"], "/Groups");
    let schemas = scim(&server, &token, "GET", "/Schemas", Value::Null).await;
    assert_eq!(schemas.json["Resources"][0]["id"], USER);
}

#[tokio::test]
async fn without_single_sign_on_scim_says_what_it_needs() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let token = scim_token(&server).await;
    let reply = scim(&server, &token, "GET", "/Users", Value::Null).await;
    error_of(&reply, 404, None);
    assert!(
        reply.json["detail"].as_str().unwrap().contains("[auth.oidc]"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn concurrent_changes_to_one_group_are_all_kept() {
    let idp = TinyIdp::start().await;
    let server = scim_server(&idp).await;
    let token = scim_token(&server).await;
    let mut ids = Vec::new();
    for n in 0..8 {
        let made = scim(
            &server,
            &token,
            "POST",
            "/Users",
            json!({"userName": format!("p{n}@example.com")}),
        )
        .await;
        ids.push(made.json["id"].as_str().unwrap().to_owned());
    }
    let group = scim(&server, &token, "POST", "/Groups", json!({"displayName": "org-search"})).await;
    let path = format!("/Groups/{}", group.json["id"].as_str().unwrap());
    let adds = ids.iter().map(|id| {
        let add = json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]});
        scim(&server, &token, "PATCH", &path, add)
    });
    for reply in futures_util::future::join_all(adds).await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let members = scim(&server, &token, "GET", &path, Value::Null).await.json["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 8, "{members}");
    assert!(
        people(&server)
            .await
            .iter()
            .all(|(_, team, _)| team.as_deref() == Some("search"))
    );
}
