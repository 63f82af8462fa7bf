//! The dashboard's delivery: a browser asking for `/` gets the page, every asset comes from
//! this server (nothing from a CDN), and clients probing `/` still get the gateway's answer.

use crate::common::start_with;
use bytes::Bytes;
use goodhart_store::testing::TestDatabase;

#[tokio::test]
async fn browsers_get_the_dashboard_and_clients_still_get_the_probe() {
    let server = start_with(TestDatabase::sqlite(), "").await;
    let page = server
        .send(
            "GET",
            "/",
            &[("accept", "text/html,application/xhtml+xml")],
            Bytes::new(),
        )
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert!(page.text.contains("<title>Goodhart</title>"));

    // Every script and stylesheet the page loads is served here, with its type.
    let mut assets = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for part in page.text.split(attribute).skip(1) {
            let url = part.split('"').next().unwrap();
            // `data:` (the empty favicon) loads nothing.
            if !url.starts_with('#') && !url.starts_with("data:") {
                assets.push(url.to_owned());
            }
        }
    }
    assert_eq!(assets.len(), 3, "{assets:?}");
    for url in &assets {
        assert!(url.starts_with("/dashboard/"), "{url} is not served by Goodhart itself");
        let asset = server.send("GET", url, &[], Bytes::new()).await;
        assert_eq!(asset.status, 200, "{url}");
        let expected = if url.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert!(
            asset.headers["content-type"].to_str().unwrap().starts_with(expected),
            "{url}"
        );
        assert!(!asset.text.is_empty());
    }
    let chart = server
        .send("GET", "/dashboard/vendor/chart.umd.min.js", &[], Bytes::new())
        .await;
    assert!(
        chart.text.contains("Chart.js v4.6.1"),
        "the charting library is embedded"
    );

    // Claude Code and SDKs probe the base URL without asking for HTML.
    let probe = server.send("GET", "/", &[], Bytes::new()).await;
    assert_eq!(probe.status, 200);
    assert_eq!(probe.json["gateway"]["openai_base_url"], "/v1");
    assert_eq!(server.send("HEAD", "/", &[], Bytes::new()).await.status, 200);
}
