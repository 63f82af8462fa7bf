//! Waste findings end to end: usage in through the public API, detection on demand and on
//! its schedule, the findings API, decisions, and waste in the leaderboard, ROI and alerts.

use crate::common::{TestServer, loop_calls, start_with};
use bytes::Bytes;
use goodhart_store::testing::TestDatabase;
use serde_json::{Value, json};

const WORDS: [&str; 16] = [
    "refactor",
    "payment",
    "retry",
    "cache",
    "schema",
    "migration",
    "latency",
    "index",
    "queue",
    "webhook",
    "timeout",
    "parser",
    "invoice",
    "ledger",
    "tenant",
    "rollout",
];

/// Alice's working session: varied prompts and answers at human pauses, office hours, each turn
/// carrying the session's growing context.
fn working_calls(start: jiff::Timestamp, calls: i64) -> Vec<Value> {
    let mut seed: u64 = 7;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut at = start;
    (0..calls)
        .map(|i| {
            at += jiff::SignedDuration::from_secs(40 + (next() % 400) as i64);
            let words: Vec<&str> = (0..12).map(|_| WORDS[next() % WORDS.len()]).collect();
            let answer: Vec<&str> = (0..40).map(|_| WORDS[next() % WORDS.len()]).collect();
            json!({
                "id": format!("work-{}-{i}", start.as_second()),
                "timestamp": at.to_string(),
                "user": "alice", "team": "payments", "agent": "claude-code", "session": "release",
                "model": "claude-sonnet-4-5", "input_tokens": 3000, "output_tokens": 800,
                "cache_read_tokens": 10_000 + 1_000 * i,
                "prompt": words.join(" "), "completion": answer.join(" "), "finish_reason": "max_tokens",
            })
        })
        .collect()
}

async fn ingest(server: &TestServer, events: &[Value]) {
    let reply = server
        .admin("POST", "/api/v1/usage", serde_json::to_string(events).unwrap())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// The waste the week's user leaderboard shows for `user`.
async fn board_waste(server: &TestServer, user: &str) -> Option<String> {
    let board = server
        .admin(
            "GET",
            "/api/v1/leaderboard?from=2026-11-01&to=2026-11-08&by=user",
            Bytes::new(),
        )
        .await;
    board.json["rows"]
        .as_array()?
        .iter()
        .find(|r| r["subject"] == user)
        .map(|r| r["waste_usd"].to_string())
}

async fn findings(server: &TestServer, query: &str) -> Value {
    let reply = server
        .admin("GET", &format!("/api/v1/findings?{query}"), Bytes::new())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

#[tokio::test]
async fn a_loop_is_found_explained_priced_and_a_dismissal_sticks() {
    let server = start_with(
        TestDatabase::sqlite(),
        "[waste]\ndetect_every_secs = 0\n[outcomes]\nmin_team_members = 1\n",
    )
    .await;
    let night: jiff::Timestamp = "2026-11-02T22:00:00Z".parse().unwrap();
    let morning: jiff::Timestamp = "2026-11-02T09:00:00Z".parse().unwrap();
    ingest(&server, &loop_calls("bob", "payments", night, 130)).await;
    ingest(&server, &working_calls(morning, 130)).await;

    let pass = server
        .admin(
            "POST",
            "/api/v1/findings/detect?from=2026-11-02T12:00:00Z&to=2026-11-02T13:00:00Z",
            Bytes::new(),
        )
        .await;
    assert_eq!(pass.status, 200, "{}", pass.text);
    assert_eq!(pass.json["from"], "2026-11-02T00:00:00Z", "whole UTC days");
    assert_eq!(pass.json["to"], "2026-11-03T00:00:00Z");
    assert_eq!(
        (pass.json["calls"].as_u64(), pass.json["new"].as_u64()),
        (Some(260), Some(1))
    );

    let listed = findings(&server, "from=2026-11-01&to=2026-11-04").await;
    let all = listed["findings"].as_array().unwrap();
    assert_eq!(all.len(), 1, "the productive session is not flagged: {listed:#}");
    let finding = &all[0];
    assert_eq!(finding["subject_kind"], "agent");
    assert_eq!(finding["subject"], "loop-agent");
    assert_eq!(finding["user"], "bob");
    assert_eq!(finding["status"], "open");
    assert_eq!(finding["detector"], "repeated_prompts");
    assert_eq!(
        finding["signals"],
        json!([
            "repeated_prompts",
            "filler_output",
            "metronomic_cadence",
            "off_hours",
            "independent_calls"
        ])
    );
    assert_eq!(finding["calls"], 130);
    assert_eq!(finding["wasted_tokens"], 130 * 1200);
    assert_eq!(finding["wasted_usd"].to_string(), "0.78", "130 calls at $0.006, exact");
    assert_eq!(finding["confidence"], 0.95);
    let samples = finding["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 5, "a few calls spread over the finding: {samples:#?}");
    assert_eq!(samples[0]["at"], finding["from"]);
    assert_eq!(samples[4]["at"], finding["to"]);
    for sample in samples {
        let keys: Vec<&str> = sample.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "agent",
                "at",
                "cache_read_tokens",
                "cost_usd",
                "input_tokens",
                "model",
                "output_tokens",
                "session"
            ],
            "times, models, tokens and cost; never text"
        );
        assert_eq!(sample["cost_usd"].to_string(), "0.006");
    }
    let evidence = finding["evidence"].as_str().unwrap();
    for part in [
        "130 calls between 22:00 and 23:04",
        "130 of 130 prompts near-identical",
        "every output hit max_tokens",
        "median gap 30.0 s ± 0.0 s",
    ] {
        assert!(evidence.contains(part), "{part:?} missing from {evidence:?}");
    }
    assert_eq!(listed["totals"]["wasted_usd"].to_string(), "0.78");

    assert_eq!(board_waste(&server, "bob").await.as_deref(), Some("0.78"));
    let roi = server
        .admin("GET", "/api/v1/reports/roi?from=2026-11-01&to=2026-11-08", Bytes::new())
        .await;
    assert_eq!(roi.json["org"]["waste_usd"].to_string(), "0.78", "{}", roi.text);

    let id = finding["id"].as_str().unwrap().to_owned();
    let dismissed = server
        .admin(
            "POST",
            &format!("/api/v1/findings/{id}/dismiss"),
            r#"{"note": "load test we asked for"}"#,
        )
        .await;
    assert_eq!(dismissed.status, 200, "{}", dismissed.text);
    assert_eq!(dismissed.json["status"], "dismissed");
    assert_eq!(dismissed.json["note"], "load test we asked for");
    assert_eq!(
        board_waste(&server, "bob").await.as_deref(),
        Some("0"),
        "a dismissed finding stops counting"
    );

    // A later pass finds it again and keeps the decision.
    let again = server
        .admin(
            "POST",
            "/api/v1/findings/detect?from=2026-11-02&to=2026-11-03",
            Bytes::new(),
        )
        .await;
    assert_eq!(
        (again.json["new"].as_u64(), again.json["updated"].as_u64()),
        (Some(0), Some(1))
    );
    let listed = findings(&server, "from=2026-11-01&to=2026-11-04&status=dismissed").await;
    assert_eq!(listed["findings"][0]["note"], "load test we asked for");
    assert_eq!(listed["totals"]["wasted_usd"].to_string(), "0");
    assert_eq!(listed["totals"]["dismissed"], 1);

    let confirmed = server
        .admin("POST", &format!("/api/v1/findings/{id}/confirm"), Bytes::new())
        .await;
    assert_eq!(confirmed.json["status"], "confirmed", "a decision can be revised");

    let unknown = server
        .admin("POST", "/api/v1/findings/nope/confirm", Bytes::new())
        .await;
    assert_eq!(unknown.status, 404);
    let bad_body = server
        .admin("POST", &format!("/api/v1/findings/{id}/dismiss"), r#"{"reason": "x"}"#)
        .await;
    assert_eq!(bad_body.status, 400, "{}", bad_body.text);
    assert!(bad_body.text.contains("reason"), "{}", bad_body.text);
    let bad_status = server
        .admin("GET", "/api/v1/findings?status=closed", Bytes::new())
        .await;
    assert_eq!(bad_status.status, 400);
    assert_eq!(bad_status.json["error"]["parameter"], "status");

    let alerts = server
        .admin("GET", "/api/v1/alerts?from=2026-11-01", Bytes::new())
        .await;
    assert_eq!(
        alerts.json["alerts"],
        json!([]),
        "a finding about weeks ago raises no alert"
    );
}

#[tokio::test]
async fn scheduled_detection_finds_a_fresh_loop_and_raises_one_alert() {
    let server = start_with(TestDatabase::sqlite(), "[waste]\ndetect_every_secs = 1\n").await;
    let two_hours_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    ingest(&server, &loop_calls("bob", "payments", two_hours_ago, 130)).await;
    let mut alerts = Vec::new();
    for _ in 0..100 {
        let reply = server.admin("GET", "/api/v1/alerts", Bytes::new()).await;
        alerts = reply.json["alerts"].as_array().unwrap().clone();
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["kind"], "waste");
    assert_eq!(alerts[0]["budget_id"], Value::Null);
    assert_eq!(alerts[0]["scope"], "agent loop-agent (bob)");
    let message = alerts[0]["message"].as_str().unwrap();
    assert!(message.contains("wasted $0.78"), "{message}");
    let listed = findings(&server, "from=2d").await;
    assert_eq!(listed["findings"].as_array().unwrap().len(), 1);
    assert_eq!(
        alerts[0]["id"],
        format!("waste:{}", listed["findings"][0]["id"].as_str().unwrap())
    );

    // Later passes find it again: no second alert.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let reply = server.admin("GET", "/api/v1/alerts", Bytes::new()).await;
    assert_eq!(reply.json["alerts"].as_array().unwrap().len(), 1);
}

/// Like [`loop_calls`], but each call carries the last one's context over (cache reads grow
/// 200 tokens a call): a loop that repeats its prompt on a steady rhythm at night, every answer
/// cut off at `max_tokens`, in one conversation.
fn quiet_loop_calls(user: &str, start: jiff::Timestamp, calls: i64) -> Vec<Value> {
    let mut seed: u64 = start.as_second() as u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    (0..calls)
        .map(|i| {
            let answer: Vec<String> = (0..40)
                .map(|_| format!("{}{}", WORDS[next() % WORDS.len()], next() % 1000))
                .collect();
            json!({
                "id": format!("quiet-{user}-{}-{i}", start.as_second()),
                "timestamp": (start + jiff::SignedDuration::from_secs(30 * i)).to_string(),
                "user": user, "team": "payments", "agent": "loop-agent", "session": "loop-session",
                "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 200,
                "cache_read_tokens": 200 * i,
                "prompt": format!("Run the full test suite again and report whether it passes (attempt {i})."),
                "completion": answer.join(" "), "finish_reason": "max_tokens",
            })
        })
        .collect()
}

async fn detect_day(server: &TestServer, day: &str) -> Value {
    let reply = server
        .admin(
            "POST",
            &format!("/api/v1/findings/detect?from={day}&to={day}T23:59:59Z"),
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

#[tokio::test]
async fn a_dismissed_pattern_is_dismissed_automatically_the_next_day_until_it_shows_something_new() {
    let server = start_with(
        TestDatabase::sqlite(),
        "[waste]\ndetect_every_secs = 0\n[outcomes]\nmin_team_members = 1\n",
    )
    .await;
    // Bob's agent loops on one prompt every night; on Wednesday its calls stop carrying
    // anything over.
    for night in ["2026-11-02T22:00:00Z", "2026-11-03T22:00:00Z"] {
        ingest(&server, &quiet_loop_calls("bob", night.parse().unwrap(), 130)).await;
    }
    ingest(
        &server,
        &loop_calls("bob", "payments", "2026-11-04T22:00:00Z".parse().unwrap(), 130),
    )
    .await;

    let monday = detect_day(&server, "2026-11-02").await;
    assert_eq!(
        (monday["new"].as_u64(), monday["auto_dismissed"].as_u64()),
        (Some(1), Some(0))
    );
    let listed = findings(&server, "from=2026-11-02&to=2026-11-03").await;
    let first = &listed["findings"][0];
    assert_eq!(
        first["signals"],
        json!(["repeated_prompts", "filler_output", "metronomic_cadence", "off_hours"]),
        "{listed:#}"
    );
    let id = first["id"].as_str().unwrap().to_owned();
    let dismissed = server
        .admin(
            "POST",
            &format!("/api/v1/findings/{id}/dismiss"),
            r#"{"note": "load test we asked for"}"#,
        )
        .await;
    assert_eq!(dismissed.json["decided_by"], "admin", "{}", dismissed.text);
    let decided_on = dismissed.json["decided_at"].as_str().unwrap()[..10].to_owned();

    // Tuesday: the same pattern, nothing new: recorded, dismissed, not counted.
    let tuesday = detect_day(&server, "2026-11-03").await;
    assert_eq!(
        (
            tuesday["new"].as_u64(),
            tuesday["auto_dismissed"].as_u64(),
            tuesday["findings"].as_u64()
        ),
        (Some(0), Some(1), Some(1)),
        "{tuesday:#}"
    );
    let listed = findings(&server, "from=2026-11-03&to=2026-11-04").await;
    let second = &listed["findings"][0];
    assert_eq!(second["status"], "dismissed");
    assert_eq!(second["decided_by"], "automatic");
    assert_eq!(second["subject"], "loop-agent");
    assert_eq!(
        second["note"],
        format!(
            "dismissed automatically: the same pattern as finding {id}, dismissed on {decided_on} by an admin \
             (“load test we asked for”)"
        )
    );
    assert_eq!(
        second["wasted_usd"].to_string(),
        "1.2831",
        "the finding keeps its numbers: 130 × $0.006 and 1,677,000 cache reads at $0.30/M"
    );
    assert_eq!(listed["totals"]["wasted_usd"].to_string(), "0", "but they are no waste");
    assert_eq!(board_waste(&server, "bob").await.as_deref(), Some("0"));

    // A later pass over Tuesday keeps the automatic decision.
    let again = detect_day(&server, "2026-11-03").await;
    assert_eq!(
        (
            again["new"].as_u64(),
            again["auto_dismissed"].as_u64(),
            again["updated"].as_u64()
        ),
        (Some(0), Some(0), Some(1))
    );
    let listed = findings(&server, "from=2026-11-03&to=2026-11-04").await;
    assert_eq!(listed["findings"][0]["decided_by"], "automatic");

    // Wednesday: calls that build on nothing, which the admin never saw: it fires as usual.
    let wednesday = detect_day(&server, "2026-11-04").await;
    assert_eq!(
        (wednesday["new"].as_u64(), wednesday["auto_dismissed"].as_u64()),
        (Some(1), Some(0))
    );
    let listed = findings(&server, "from=2026-11-04&to=2026-11-05").await;
    let third = &listed["findings"][0];
    assert_eq!(third["status"], "open");
    assert_eq!(third["decided_by"], Value::Null);
    assert!(
        third["signals"]
            .as_array()
            .unwrap()
            .contains(&json!("independent_calls")),
        "{listed:#}"
    );
    assert_eq!(
        board_waste(&server, "bob").await.as_deref(),
        Some("0.78"),
        "Wednesday's loop only"
    );

    // An admin's word on an automatically dismissed finding wins.
    let tuesday_id = second["id"].as_str().unwrap();
    let confirmed = server
        .admin("POST", &format!("/api/v1/findings/{tuesday_id}/confirm"), Bytes::new())
        .await;
    assert_eq!(
        (&confirmed.json["status"], &confirmed.json["decided_by"]),
        (&json!("confirmed"), &json!("admin"))
    );
    assert_eq!(board_waste(&server, "bob").await.as_deref(), Some("2.0631"));
}

/// `calls` calls by `user` on `day`: a conversation when `filler` is false (each turn carries the
/// last one's context and answer); else filler — independent calls generating ten times what
/// they were sent, prompts reworded, a new session every 30 calls.
fn day_of(user: &str, day: &str, calls: i64, filler: bool) -> Vec<Value> {
    let start: jiff::Timestamp = format!("{day}T09:00:00Z").parse().unwrap();
    (0..calls)
        .map(|i| {
            let words: Vec<&str> = (0..12).map(|k| WORDS[(i as usize * 5 + k * 3) % WORDS.len()]).collect();
            let (input, cache, output, session) = if filler {
                (200, 0, 2_000, format!("{user}-{day}-{}", i / 30))
            } else {
                (3_000, 10_000 + 1_000 * i, 800, format!("{user}-{day}"))
            };
            json!({
                "id": format!("{user}-{day}-{filler}-{i}"),
                "timestamp": (start + jiff::SignedDuration::from_secs(120 * i)).to_string(),
                "user": user, "team": "payments", "session": session, "model": "claude-sonnet-4-5",
                "input_tokens": input, "cache_read_tokens": cache, "output_tokens": output,
                "prompt": words.join(" "), "completion": words.repeat(3).join(" "), "finish_reason": "end_turn",
            })
        })
        .collect()
}

#[tokio::test]
async fn a_day_of_filler_is_judged_against_four_weeks_of_spend_and_outcomes_not_the_days_pass() {
    let server = start_with(
        TestDatabase::sqlite(),
        "[waste]\ndetect_every_secs = 0\n[outcomes]\nmin_team_members = 1\n",
    )
    .await;
    // Four colleagues work every day of November's first 20 and resolve a ticket a week.
    let colleagues = ["ann", "bob", "cat", "dan"];
    for day in 1..=20 {
        let day = format!("2026-11-{day:02}");
        let work: Vec<Value> = colleagues.iter().flat_map(|u| day_of(u, &day, 10, false)).collect();
        ingest(&server, &work).await;
    }
    let tickets: Vec<Value> = colleagues
        .iter()
        .flat_map(|u| {
            ["03", "10", "17"].map(|d| {
                json!({"id": format!("{u}-{d}"), "timestamp": format!("2026-11-{d}T16:00:00Z"), "kind": "ticket_resolved", "user": u})
            })
        })
        .collect();
    let posted = server
        .admin("POST", "/api/v1/outcomes", Value::from(tickets).to_string())
        .await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    let zeds = |found: &Value| {
        found["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["user"] == "zed")
            .map(|f| f["signals"].clone())
            .collect::<Vec<_>>()
    };

    // Zed's one day of filler costs ten times the colleagues' day, but about what each of them
    // spent over the weeks: a batch day, not spend far above the peers'.
    ingest(&server, &day_of("zed", "2026-11-20", 120, true)).await;
    detect_day(&server, "2026-11-20").await;
    let found = findings(&server, "from=2026-11-20&to=2026-11-21").await;
    assert_eq!(zeds(&found), Vec::<Value>::new(), "{found:#}");

    // Five such days in a week are over three times the colleagues' weeks, for no outcome.
    for day in ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"] {
        ingest(&server, &day_of("zed", day, 120, true)).await;
    }
    detect_day(&server, "2026-11-20").await;
    let found = findings(&server, "from=2026-11-20&to=2026-11-21").await;
    assert_eq!(
        zeds(&found),
        [json!([
            "repeated_prompts",
            "spend_without_outcomes",
            "independent_calls",
            "output_heavy"
        ])],
        "{found:#}"
    );
}
