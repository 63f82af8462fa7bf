//! Importing coding agents' analytics against the mock of their APIs
//! (`goodhart_sim::mock_analytics`): pages, resuming, re-runs, partial days, rate limits,
//! malformed pages and lines, identity, and the rule that activity is never value.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::agent_analytics::{ActivityLine, Tool};
use goodhart_core::time::parse_rfc3339;
use goodhart_server::agent_import::{AnalyticsSource, import_claude_code, import_copilot};
use goodhart_server::provider_import::ImportError;
use goodhart_sim::mock_analytics::{ADMIN_KEY, AnalyticsData, GITHUB_TOKEN, UserDay, router};
use goodhart_store::testing::TestDatabase;

use crate::common::serve_upstream;

fn at(text: &str) -> Micros {
    parse_rfc3339(text).unwrap()
}

fn user_day(day: u32, user: &str, sessions: u64) -> UserDay {
    UserDay {
        day,
        user: user.into(),
        sessions,
        lines_added: 100 * sessions,
        accepted: 10 * sessions,
        tokens: 50_000,
        cost_cents: 125,
    }
}

/// Five days from 1 November: five Claude Code people (one an API key) and three Copilot users
/// a day, nobody on the third day.
fn five_days() -> AnalyticsData {
    let days = (0..5u32).filter(|d| *d != 2);
    AnalyticsData {
        first_day: at("2026-11-01T00:00:00Z"),
        days: 5,
        claude_code: days
            .clone()
            .flat_map(|d| {
                [
                    "ann@example.com",
                    "bo@example.com",
                    "cy@example.com",
                    "dee@example.com",
                    "ci-bot",
                ]
                .map(|u| user_day(d, u, 1 + u64::from(d)))
            })
            .collect(),
        copilot: days
            .flat_map(|d| ["ann-gh", "bo", "cy"].map(|u| user_day(d, u, 2)))
            .collect(),
        max_page: 2,
        file_lines: 2,
        ..AnalyticsData::default()
    }
}

async fn mock(data: AnalyticsData) -> (Arc<AnalyticsData>, String) {
    let data = Arc::new(data);
    let addr = serve_upstream(router(Arc::clone(&data))).await;
    (data, format!("http://{addr}"))
}

fn source(org: &str, url: &str, key: &str) -> AnalyticsSource {
    AnalyticsSource {
        org: org.into(),
        base_url: url.into(),
        key: key.into(),
    }
}

fn of(lines: &[(String, ActivityLine)], tool: Tool) -> Vec<ActivityLine> {
    lines
        .iter()
        .filter(|(_, l)| l.tool == tool)
        .map(|(_, l)| l.clone())
        .collect()
}

const FROM: &str = "2026-11-01T00:00:00Z";
const TO: &str = "2026-11-06T00:00:00Z";

#[tokio::test]
async fn claude_code_days_are_imported_page_by_page_resumed_and_never_counted_twice() {
    let (data, url) = mock(five_days()).await;
    let db = TestDatabase::sqlite();
    let store = db.open().await.unwrap();
    let client = goodhart_gateway::upstream::client();
    let source = source("", &url, ADMIN_KEY);
    let (from, to, now) = (at(FROM), at(TO), at("2026-11-06T02:00:00Z"));

    let first = import_claude_code(store.as_ref(), &client, &source, Some(from), to, now)
        .await
        .unwrap();
    // Four days of five records in pages of two (three pages each), one empty day (one page).
    assert_eq!((first.days, first.requests, first.lines), (5, 13, 20), "{first:?}");
    assert_eq!(first.from.as_deref(), Some("2026-11-01"));
    let stored = store.agent_activity(from, to).await.unwrap();
    let lines = of(&stored, Tool::ClaudeCode);
    assert_eq!(lines.len(), 20);
    let estimated: i64 = lines
        .iter()
        .flat_map(|l| &l.models)
        .filter_map(|m| m.estimated_cost)
        .map(|c| c.0)
        .sum();
    assert_eq!(Nanos(estimated), Nanos(20 * 1_250_000_000), "125 cents a line, exactly");
    assert_eq!(
        store.activity_imported_until(Tool::ClaudeCode, "").await.unwrap(),
        Some(to)
    );
    assert_eq!(
        first.unmatched.len(),
        5,
        "nobody has metered usage yet, and an API key is never a person: {:?}",
        first.unmatched
    );
    assert!(first.unmatched.contains(&"ci-bot (API key)".to_owned()));

    // A re-run resumes two days before where the first stopped and adds nothing.
    let served = data.requests.load(Ordering::SeqCst);
    let again = import_claude_code(store.as_ref(), &client, &source, None, to, now)
        .await
        .unwrap();
    assert_eq!(again.from.as_deref(), Some("2026-11-04"));
    assert_eq!((again.days, again.lines), (2, 10));
    assert_eq!(data.requests.load(Ordering::SeqCst) - served, 6);
    assert_eq!(store.agent_activity(from, to).await.unwrap(), stored);
}

#[tokio::test]
async fn a_partial_day_is_completed_by_the_next_import_and_an_interrupted_one_resumes() {
    let (data, url) = mock(five_days()).await;
    let db = TestDatabase::sqlite();
    let store = db.open().await.unwrap();
    let client = goodhart_gateway::upstream::client();
    let source = source("", &url, ADMIN_KEY);
    let (from, to) = (at(FROM), at(TO));
    // "Today" (the fifth day) is served in part; the import is cut short after the third day
    // by a malformed second page of the fourth.
    *data.partial_day.lock().unwrap() = Some(4);
    let before_day_four = 3 + 1 + 3;
    *data.malformed_request.lock().unwrap() = Some(before_day_four + 1);
    let error = import_claude_code(store.as_ref(), &client, &source, Some(from), to, to)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "claude_code activity of 2026-11-04, page 2: data[1].core_metrics.num_sessions: expected a non-negative integer"
    );
    assert!(matches!(error, ImportError::Activity { .. }));
    assert_eq!(
        store.activity_imported_until(Tool::ClaudeCode, "").await.unwrap(),
        Some(at("2026-11-04T00:00:00Z")),
        "three whole days kept, nothing of the fourth"
    );
    let fourth = (at("2026-11-04T00:00:00Z"), to);
    assert!(store.agent_activity(fourth.0, fourth.1).await.unwrap().is_empty());

    // Resumed: the fourth day whole, the partial fifth.
    let resumed = import_claude_code(store.as_ref(), &client, &source, None, to, to)
        .await
        .unwrap();
    assert_eq!(resumed.from.as_deref(), Some("2026-11-02"));
    assert_eq!(store.agent_activity(fourth.0, fourth.1).await.unwrap().len(), 5 + 2);

    // Later the fifth day is complete; the next import replaces it.
    *data.partial_day.lock().unwrap() = None;
    import_claude_code(store.as_ref(), &client, &source, None, to, to)
        .await
        .unwrap();
    assert_eq!(store.agent_activity(fourth.0, fourth.1).await.unwrap().len(), 10);
    assert_eq!(store.agent_activity(at(FROM), to).await.unwrap().len(), 20);
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_refusals_stop_without_the_key() {
    let (data, url) = mock(five_days()).await;
    let db = TestDatabase::sqlite();
    let store = db.open().await.unwrap();
    let client = goodhart_gateway::upstream::client();
    let (from, to) = (at("2026-11-04T00:00:00Z"), at("2026-11-05T00:00:00Z"));

    let wrong = source("", &url, "sk-ant-admin01-wrong");
    let refused = import_claude_code(store.as_ref(), &client, &wrong, Some(from), to, to)
        .await
        .unwrap_err();
    assert_eq!(refused.to_string(), "anthropic answered 401: invalid admin key");
    let wrong = source("acme", &url, "ghp_wrong");
    let refused = import_copilot(store.as_ref(), &client, &wrong, Some(from), to, to)
        .await
        .unwrap_err();
    assert_eq!(refused.to_string(), "github answered 401: Bad credentials");

    // Anthropic's 429 with retry-after, GitHub's 403 with x-ratelimit-reset.
    data.rate_limited.store(2, Ordering::SeqCst);
    let imported = import_claude_code(
        store.as_ref(),
        &client,
        &source("", &url, ADMIN_KEY),
        Some(from),
        to,
        to,
    )
    .await
    .unwrap();
    assert_eq!((imported.rate_limited, imported.lines), (2, 5));
    data.github_rate_limited.store(1, Ordering::SeqCst);
    let imported = import_copilot(
        store.as_ref(),
        &client,
        &source("acme", &url, GITHUB_TOKEN),
        Some(from),
        to,
        to,
    )
    .await
    .unwrap();
    assert_eq!((imported.rate_limited, imported.lines), (1, 3));
}

#[tokio::test]
async fn copilot_days_are_links_then_files_missing_days_skipped_and_bad_lines_named() {
    let mut data = five_days();
    data.missing_days = vec![3];
    let (data, url) = mock(data).await;
    let db = TestDatabase::sqlite();
    let store = db.open().await.unwrap();
    let client = goodhart_gateway::upstream::client();
    let source = source("acme", &url, GITHUB_TOKEN);
    let (from, to) = (at(FROM), at(TO));

    let first = import_copilot(store.as_ref(), &client, &source, Some(from), to, to)
        .await
        .unwrap();
    assert_eq!(first.missing_days, ["2026-11-04"]);
    // Three users a day in files of two: a link response and two files a day; the empty day
    // has one empty file.
    assert_eq!((first.days, first.lines, first.requests), (4, 9, 11), "{first:?}");
    let lines = of(&store.agent_activity(from, to).await.unwrap(), Tool::Copilot);
    assert_eq!(lines.len(), 9);
    assert!(
        lines
            .iter()
            .all(|l| l.counts.acceptances == 20 && l.counts.lines_added == 200)
    );
    assert_eq!(lines[0].models[0].model, "cli");
    assert_eq!(lines[0].models[0].tokens.input, 50_000);
    // Nobody is a Goodhart user yet: every login is listed, none dropped.
    assert_eq!(first.unmatched.len(), 3, "{:?}", first.unmatched);

    // Re-run: nothing added; the missing day is asked for again.
    let again = import_copilot(store.as_ref(), &client, &source, Some(from), to, to)
        .await
        .unwrap();
    assert_eq!(again.missing_days, ["2026-11-04"]);
    assert_eq!(of(&store.agent_activity(from, to).await.unwrap(), Tool::Copilot), lines);

    // A bad line in a day's second file: nothing of that day is stored, the line is named.
    let fresh = TestDatabase::sqlite();
    let fresh = fresh.open().await.unwrap();
    let next = data.requests.load(Ordering::SeqCst);
    // Day one: links (next), file 1 (next + 1), file 2 (next + 2).
    *data.malformed_request.lock().unwrap() = Some(next + 1);
    let error = import_copilot(fresh.as_ref(), &client, &source, Some(from), to, to)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "copilot activity of 2026-11-01, file 1: line 2.user_login: expected a string or null"
    );
    assert!(fresh.agent_activity(from, to).await.unwrap().is_empty());
    assert_eq!(
        fresh.activity_imported_until(Tool::Copilot, "acme").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn activity_goes_to_people_by_login_mapping_and_email_but_never_into_value() {
    let server = crate::common::start_with(TestDatabase::sqlite(), "").await;
    // Ann and Bo have metered usage; Ann ships a verified outcome.
    let usage = serde_json::json!([
        {"id": "u-1", "timestamp": "2026-11-02T10:00:00Z", "user": "ann", "model": "claude-sonnet-4-5",
         "provider": "anthropic", "input_tokens": 1000, "output_tokens": 100},
        {"id": "u-2", "timestamp": "2026-11-02T11:00:00Z", "user": "bo", "model": "claude-sonnet-4-5",
         "provider": "anthropic", "input_tokens": 5000, "output_tokens": 900}
    ]);
    let posted = server.admin("POST", "/api/v1/usage", usage.to_string()).await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    let outcome =
        serde_json::json!([{"id": "o-1", "timestamp": "2026-11-02T12:00:00Z", "kind": "deployment", "user": "ann"}]);
    let posted = server.admin("POST", "/api/v1/outcomes", outcome.to_string()).await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    let mapped = server
        .admin("POST", "/api/v1/github/logins", r#"{"login": "ann-gh", "user": "ann"}"#)
        .await;
    assert_eq!(mapped.status, 200, "{}", mapped.text);

    let window = "from=2026-11-01&to=2026-11-06";
    let board = format!("/api/v1/leaderboard?{window}&by=user&metric=value");
    let roi = format!("/api/v1/reports/roi?{window}");
    let before = (
        server.admin("GET", &board, "").await.json,
        server.admin("GET", &roi, "").await.json,
    );

    // Lots of activity: Bo "accepts" a hundred times what Ann does.
    let mut data = five_days();
    for line in data.claude_code.iter_mut().chain(data.copilot.iter_mut()) {
        if line.user.starts_with("bo") {
            line.accepted *= 100;
            line.lines_added *= 100;
            line.sessions *= 100;
        }
    }
    let (_, url) = mock(data).await;
    let store = server.db.open().await.unwrap();
    let client = goodhart_gateway::upstream::client();
    let (from, to) = (at(FROM), at(TO));
    let claude = import_claude_code(
        store.as_ref(),
        &client,
        &source("", &url, ADMIN_KEY),
        Some(from),
        to,
        to,
    )
    .await
    .unwrap();
    assert_eq!(
        claude.unmatched,
        ["ci-bot (API key)", "cy@example.com (email)", "dee@example.com (email)"]
    );
    let copilot = import_copilot(
        store.as_ref(),
        &client,
        &source("acme", &url, GITHUB_TOKEN),
        Some(from),
        to,
        to,
    )
    .await
    .unwrap();
    assert_eq!(
        copilot.unmatched,
        ["cy (GitHub login)"],
        "ann-gh is mapped, bo is a user"
    );

    let after = (
        server.admin("GET", &board, "").await.json,
        server.admin("GET", &roi, "").await.json,
    );
    assert_eq!(after, before, "activity changes neither the board nor ROI");

    let page = server
        .admin("GET", &format!("/api/v1/subjects/user/ann?{window}"), "")
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let activity = &page.json["activity"];
    assert_eq!(activity["label"], "Activity (vendor-reported — not value)");
    let claude_code = &activity["claude_code"];
    // Ann: four days of 1 + day sessions (days 0, 1, 3, 4).
    assert_eq!(claude_code["sessions"], 1 + 2 + 4 + 5);
    assert_eq!(claude_code["lines_added"], 100 * 12);
    assert_eq!(claude_code["estimated_cost_usd"].to_string(), "5");
    assert_eq!(claude_code["days"], 4);
    let copilot = &activity["copilot"];
    assert_eq!(copilot["acceptances"], 4 * 20, "ann-gh's, through the login mapping");
    assert_eq!(
        activity["actors"],
        serde_json::json!(["ann-gh (GitHub login)", "ann@example.com (email)"])
    );
    // Outcomes are still the verified ones alone.
    assert_eq!(page.json["board"]["outcomes"], 1);

    let cy = server
        .admin("GET", &format!("/api/v1/subjects/user/cy?{window}"), "")
        .await;
    assert_eq!(
        cy.json["activity"]["claude_code"]["days"], 4,
        "unmatched, still shown under their name"
    );
    assert_eq!(cy.json["activity"]["matched"], false);
    assert_eq!(
        server
            .admin("GET", &format!("/api/v1/subjects/team/none?{window}"), "")
            .await
            .json["activity"],
        serde_json::Value::Null,
        "activity is per person"
    );
}
