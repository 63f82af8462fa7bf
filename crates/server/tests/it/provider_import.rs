//! Importing the providers' organisation reports against the mock of their APIs
//! (`goodhart_sim::mock_admin`): pages, resuming, re-runs, 429s, refusals and malformed pages.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::provider_reports::ReportKind;
use goodhart_core::time::{MICROS_PER_DAY, parse_rfc3339};
use goodhart_server::provider_import::{ImportError, ReportApi, ReportSource, import_reports};
use goodhart_sim::mock_admin::{ADMIN_KEY, AdminData, DailyLine, router};
use goodhart_store::testing::TestDatabase;

use crate::common::serve_upstream;

fn at(text: &str) -> Micros {
    parse_rfc3339(text).unwrap()
}

/// Ten days from 1 November, two models a day, nothing on the fifth.
fn ten_days() -> AdminData {
    let lines = (0..10u32)
        .filter(|day| *day != 4)
        .flat_map(|day| {
            ["claude-sonnet-4-5", "claude-haiku-4-5"].map(|model| DailyLine {
                day,
                model: model.into(),
                api_key_id: "apikey_ci".into(),
                workspace: Some("wrkspc_platform".into()),
                input: 1_000 + u64::from(day),
                cache_read: 5_000,
                output: 700,
                cost_nanos: 12_345_678 + i64::from(day),
            })
        })
        .collect();
    AdminData {
        first_day: at("2026-11-01T00:00:00Z"),
        days: 10,
        lines,
        max_page: 4,
        ..AdminData::default()
    }
}

async fn mock(data: AdminData) -> (Arc<AdminData>, String) {
    let data = Arc::new(data);
    let addr = serve_upstream(router(Arc::clone(&data))).await;
    (data, format!("http://{addr}"))
}

fn source(api: ReportApi, provider: &str, base_url: &str, key: &str) -> ReportSource {
    ReportSource {
        api,
        provider: provider.into(),
        base_url: base_url.into(),
        admin_key: key.into(),
    }
}

/// Every nano-dollar the providers' cost lines of `[from, to)` hold.
async fn billed(store: &dyn goodhart_store::Store, from: Micros, to: Micros) -> i64 {
    let lines = store.provider_costs(from, to).await.unwrap();
    lines.iter().map(|(_, l)| l.amount.0).sum()
}

#[tokio::test]
async fn reports_are_imported_page_by_page_resumed_and_never_counted_twice() {
    for (api, provider) in [
        (ReportApi::AnthropicAdmin, "anthropic"),
        (ReportApi::OpenAiAdmin, "openai"),
    ] {
        let (data, url) = mock(ten_days()).await;
        let db = TestDatabase::sqlite();
        let store = db.open().await.unwrap();
        let client = goodhart_gateway::upstream::client();
        let source = source(api, provider, &url, ADMIN_KEY);
        let (from, to, now) = (
            at("2026-11-01T00:00:00Z"),
            at("2026-11-11T00:00:00Z"),
            at("2026-11-11T02:00:00Z"),
        );

        let first = import_reports(store.as_ref(), &client, &source, Some(from), to, now)
            .await
            .unwrap();
        for report in [&first.usage, &first.cost] {
            assert_eq!(
                (report.pages, report.buckets, report.lines),
                (3, 10, 18),
                "{provider}: {first:?}"
            );
        }
        let usage = store.provider_usage(from, to).await.unwrap();
        assert_eq!(usage.len(), 18);
        let input: u64 = usage.iter().map(|(_, l)| l.tokens.input).sum();
        let expected: u64 = data.lines.iter().map(|l| l.input).sum();
        assert_eq!(
            input, expected,
            "{provider}: uncached input, whatever the provider's convention"
        );
        assert!(
            usage
                .iter()
                .all(|(_, l)| l.tokens.cache_read == 5_000 && l.tokens.output == 700)
        );
        let total = billed(store.as_ref(), from, to).await;
        let expected: i64 = data.lines.iter().map(|l| l.cost_nanos).sum();
        assert_eq!(Nanos(total), Nanos(expected), "{provider}: to the nano-dollar");
        assert_eq!(
            store.report_imported_until(provider, ReportKind::Usage).await.unwrap(),
            Some(to)
        );

        // A second import resumes two days before where the first stopped and adds nothing.
        let served = data.requests.load(Ordering::SeqCst);
        let again = import_reports(store.as_ref(), &client, &source, None, to, now)
            .await
            .unwrap();
        assert_eq!(again.usage.from.as_deref(), Some("2026-11-09T00:00:00Z"));
        assert_eq!((again.usage.pages, again.usage.buckets, again.usage.lines), (1, 2, 4));
        assert_eq!(
            data.requests.load(Ordering::SeqCst) - served,
            2,
            "one page of each report"
        );
        assert_eq!(store.provider_usage(from, to).await.unwrap().len(), 18);
        assert_eq!(billed(store.as_ref(), from, to).await, total);
    }
}

#[tokio::test]
async fn a_429_is_waited_out_and_a_refusal_or_a_bad_page_stops_with_the_reason() {
    let (data, url) = mock(ten_days()).await;
    let db = TestDatabase::sqlite();
    let store = db.open().await.unwrap();
    let client = goodhart_gateway::upstream::client();
    let (from, to, now) = (
        at("2026-11-01T00:00:00Z"),
        at("2026-11-11T00:00:00Z"),
        at("2026-11-11T02:00:00Z"),
    );

    let wrong_key = source(ReportApi::AnthropicAdmin, "anthropic", &url, "sk-ant-api-not-admin");
    let refused = import_reports(store.as_ref(), &client, &wrong_key, Some(from), to, now)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ImportError::Refused { status: 401, message, .. } if message == "invalid admin key"),
        "{refused}"
    );
    assert!(
        !refused.to_string().contains("sk-ant-api-not-admin"),
        "the key is never shown"
    );

    // Two 429s (retry-after: 1) before the first page: waited out.
    data.rate_limited.store(2, Ordering::SeqCst);
    let source = source(ReportApi::AnthropicAdmin, "anthropic", &url, ADMIN_KEY);
    let imported = import_reports(store.as_ref(), &client, &source, Some(from), to, now)
        .await
        .unwrap();
    assert_eq!(imported.usage.rate_limited, 2);
    assert_eq!(imported.usage.lines, 18);

    // The second page of a fresh import is malformed: the first page is kept, nothing of the
    // second, and the error names the field.
    let db = TestDatabase::sqlite();
    let store = db.open().await.unwrap();
    let next = data.requests.load(Ordering::SeqCst);
    *data.malformed_request.lock().unwrap() = Some(next + 1);
    let error = import_reports(store.as_ref(), &client, &source, Some(from), to, now)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "anthropic's usage report, page 2: data[3].results[2].uncached_input_tokens: expected a non-negative integer"
    );
    assert_eq!(
        store
            .report_imported_until("anthropic", ReportKind::Usage)
            .await
            .unwrap(),
        Some(Micros(from.0 + 4 * MICROS_PER_DAY)),
        "the first page's four days, not the second's"
    );
    assert_eq!(store.provider_usage(from, to).await.unwrap().len(), 8);
}

#[tokio::test]
async fn the_bill_beside_the_meter_shows_a_bypassing_key_and_a_price_gap_exactly() {
    let server = crate::common::start_with(TestDatabase::sqlite(), "").await;
    // Metered through Goodhart on 2 November: 1,000 uncached input and 100 output tokens of
    // Sonnet, at the built-in price ($3 and $15 a million): $0.0045.
    let event = serde_json::json!([{
        "id": "m-1", "timestamp": "2026-11-02T10:00:00Z", "user": "ann", "provider": "anthropic",
        "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 100
    }]);
    let posted = server.admin("POST", "/api/v1/usage", event.to_string()).await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    // The provider reports the same Sonnet usage, billed $0.005 (a price gap of $0.0005), and
    // Haiku usage nobody metered (a key used straight against the provider), billed $0.002.
    let line = |model: &str, output: u64, cost_nanos: i64| DailyLine {
        day: 1,
        model: model.into(),
        api_key_id: "apikey_01".into(),
        workspace: None,
        input: 1_000,
        cache_read: 0,
        output,
        cost_nanos,
    };
    let (_, url) = mock(AdminData {
        first_day: at("2026-11-01T00:00:00Z"),
        days: 3,
        lines: vec![
            line("claude-sonnet-4-5-20250929", 100, 5_000_000),
            line("claude-haiku-4-5-20251001", 300, 2_000_000),
        ],
        ..AdminData::default()
    })
    .await;
    let store = server.db.open().await.unwrap();
    let source = source(ReportApi::AnthropicAdmin, "anthropic", &url, ADMIN_KEY);
    let (from, to) = (at("2026-11-01T00:00:00Z"), at("2026-11-04T00:00:00Z"));
    import_reports(
        store.as_ref(),
        &goodhart_gateway::upstream::client(),
        &source,
        Some(from),
        to,
        to,
    )
    .await
    .unwrap();

    let reply = server
        .admin(
            "GET",
            "/api/v1/reports/reconciliation?from=2026-11-01&to=2026-11-04",
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let doc = &reply.json;
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{doc:#}");
    let haiku = &rows[0];
    assert_eq!(
        (
            haiku["model"].as_str(),
            haiku["unmetered"].as_bool(),
            haiku["metered_tokens"].as_u64()
        ),
        (Some("claude-haiku-4-5"), Some(true), Some(0))
    );
    assert_eq!(
        (haiku["reported_tokens"].as_u64(), haiku["token_drift"].as_i64()),
        (Some(1_300), Some(1_300))
    );
    assert_eq!(haiku["drift_usd"].to_string(), "0.002");
    let sonnet = &rows[1];
    assert_eq!(
        (sonnet["day"].as_str(), sonnet["model"].as_str()),
        (Some("2026-11-02"), Some("claude-sonnet-4-5"))
    );
    assert_eq!(sonnet["token_drift"].as_i64(), Some(0), "the same tokens on both sides");
    assert_eq!(
        (
            sonnet["metered_usd"].to_string(),
            sonnet["billed_usd"].to_string(),
            sonnet["drift_usd"].to_string()
        ),
        ("0.0045".into(), "0.005".into(), "0.0005".into())
    );
    assert_eq!(sonnet["drift_percent"].as_f64(), Some(10.0));
    assert_eq!(
        (
            doc["metered_usd"].to_string(),
            doc["billed_usd"].to_string(),
            doc["drift_usd"].to_string()
        ),
        ("0.0045".into(), "0.007".into(), "0.0025".into())
    );
}
