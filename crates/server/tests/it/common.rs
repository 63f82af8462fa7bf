//! A real server on a random loopback port, and a small HTTP client for it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use goodhart_server::config::{Config, Overrides, RawConfig};
use goodhart_store::testing::TestDatabase;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const ADMIN: &str = "test-admin-token";

pub struct TestServer {
    pub addr: SocketAddr,
    /// Shared with the other instances started by [`start_peer`].
    pub db: Arc<TestDatabase>,
    pub gateway: goodhart_gateway::Gateway,
    _stop: tokio::sync::oneshot::Sender<()>,
    /// Serves until `_stop` is dropped, then drains and shuts the server down.
    serving: tokio::task::JoinHandle<()>,
}

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    /// The body as sent (a protobuf answer is not text).
    pub bytes: Bytes,
    pub text: String,
    pub json: Value,
}

/// Serves `app` on a random loopback port for the rest of the test (a fake upstream, a webhook
/// receiver); returns its address.
pub async fn serve_upstream(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Starts a server on `db` with extra TOML configuration (the spool goes in the database's
/// scratch directory). Unless the configuration names providers, every protocol goes to a
/// built-in mock provider of the test's own, whatever keys the environment holds.
pub async fn start_with(db: TestDatabase, extra_config: &str) -> TestServer {
    start_configured(db, extra_config, |_| {}).await
}

/// Like [`start_with`], with a last say over the resolved configuration.
pub async fn start_configured(db: TestDatabase, extra_config: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
    launch(Arc::new(db), "spool", extra_config, adjust).await
}

/// Another instance on `server`'s database, with a spool of its own: what a second
/// `goodhart serve` on the same PostgreSQL database is.
pub async fn start_peer(server: &TestServer, name: &str, extra_config: &str) -> TestServer {
    launch(Arc::clone(&server.db), &format!("spool-{name}"), extra_config, |_| {}).await
}

async fn launch(
    db: Arc<TestDatabase>,
    spool: &str,
    extra_config: &str,
    adjust: impl FnOnce(&mut Config),
) -> TestServer {
    let providers = if extra_config.contains("[[providers]]") {
        String::new()
    } else {
        let mock = goodhart_sim::mock_provider::spawn().await.unwrap();
        format!(
            "[[providers]]\nname = \"mock\"\nprotocol = \"openai\"\nbase_url = \"http://{mock}/v1\"\n\
             [[providers]]\nname = \"mock\"\nprotocol = \"anthropic\"\nbase_url = \"http://{mock}\"\n\
             [[providers]]\nname = \"mock\"\nprotocol = \"gemini\"\nbase_url = \"http://{mock}\"\n\
             [[providers]]\nname = \"mock\"\nprotocol = \"azure\"\nbase_url = \"http://{mock}\"\n\
             deployments = {{ \"prod-4o\" = \"gpt-4o\" }}\ndefault = true\n\
             [[providers]]\nname = \"mock\"\nprotocol = \"bedrock\"\nbase_url = \"http://{mock}\"\n\
             [[providers]]\nname = \"mock\"\nprotocol = \"vertex\"\n\
             base_url = \"http://{mock}/v1/projects/goodhart-test/locations/us-east5\"\n"
        )
    };
    let file = RawConfig::from_toml(&format!(
        "{extra_config}\n{providers}[gateway]\nspool_dir = {:?}\nflush_interval_ms = 50",
        db.dir().join(spool)
    ))
    .unwrap();
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".into()),
        database_url: Some(db.url.clone()),
    };
    let mut config = Config::resolve(file, overrides).unwrap();
    adjust(&mut config);
    let (server, generated) = goodhart_server::Server::start(&config, Some(ADMIN), None)
        .await
        .unwrap();
    assert!(
        generated.is_none(),
        "an admin token from the environment is never replaced"
    );
    let gateway = server.app().gateway().cloned().unwrap();
    let listener = goodhart_server::serve::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        let served = server.serve(listener, async move {
            let _ = stopped.await;
        });
        served.await.unwrap();
        server.shutdown().await;
    });
    TestServer {
        addr,
        db,
        gateway,
        _stop: stop,
        serving,
    }
}

impl TestServer {
    /// A gateway metric's value now (0 when it was never set).
    pub fn metric(&self, name: &str) -> i64 {
        metric_in(&self.gateway.metrics_text(), name)
    }

    /// Stops the server as SIGTERM stops `goodhart serve`: drains its connections (up to
    /// `[limits] drain_secs`), then stops the gateway (flushing its spool, giving back its
    /// budget slices).
    pub async fn stop(self) {
        let TestServer { _stop, serving, .. } = self;
        drop(_stop);
        serving.await.unwrap();
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = client
            .request(request.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            json,
        }
    }

    /// A request with `token` (a viewer token, say) instead of the admin's.
    pub async fn with_token(&self, token: &str, method: &str, path: &str, body: impl Into<Bytes>) -> Reply {
        let auth = format!("Bearer {token}");
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        self.send(method, path, &headers, body).await
    }

    pub async fn admin(&self, method: &str, path: &str, body: impl Into<Bytes>) -> Reply {
        self.with_token(ADMIN, method, path, body).await
    }

    pub async fn summary(&self, query: &str) -> Reply {
        self.admin("GET", &format!("/api/v1/usage/summary?{query}"), Bytes::new())
            .await
    }

    /// Creates a budget from the API's JSON body; returns the budget as the API shows it.
    pub async fn create_budget(&self, body: Value) -> Value {
        let reply = self.admin("POST", "/api/v1/budgets", body.to_string()).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.json
    }

    /// Creates a virtual key from a JSON body; returns (id, secret).
    pub async fn create_key(&self, body: &str) -> (String, String) {
        let reply = self.admin("POST", "/api/v1/keys", body.to_owned()).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        (
            reply.json["id"].as_str().unwrap().to_owned(),
            reply.json["key"].as_str().unwrap().to_owned(),
        )
    }

    /// Flushes the gateway's spool into the store so reports see every finished call.
    pub async fn flush(&self) {
        self.gateway.flush().await.unwrap();
    }
}

/// Every recorded event: (model, status, stream, estimated, tokens as input/output/cache read/reasoning, cost).
/// A metric's value (without labels) in a `/metrics` scrape; 0 when it was never set.
pub fn metric_in(scrape: &str, name: &str) -> i64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

pub async fn recorded(server: &TestServer) -> Vec<(String, i64, bool, bool, [i64; 4], Option<i64>)> {
    server.flush().await;
    let path = server.db.url.strip_prefix("sqlite://").unwrap();
    let db = rusqlite::Connection::open(path).unwrap();
    let mut statement = db
        .prepare(
            "SELECT e.model, c.status, c.stream, e.estimated, e.input_tokens, e.output_tokens, e.cache_read_tokens, \
             e.reasoning_tokens, e.cost_nanos FROM usage_events e JOIN gateway_calls c ON c.seq = e.seq ORDER BY e.seq",
        )
        .unwrap();
    statement
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                [r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?],
                r.get(8)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `user`'s agent `loop-agent` asking the same thing every 30 s, its outputs cut off at
/// `max_tokens`, from `start`: `calls` calls of 1,000 input and 200 output tokens ($0.006 each
/// on Sonnet) — a loop waste detection finds.
pub fn loop_calls(user: &str, team: &str, start: jiff::Timestamp, calls: i64) -> Vec<Value> {
    (0..calls)
        .map(|i| {
            serde_json::json!({
                "id": format!("loop-{user}-{}-{i}", start.as_second()),
                "timestamp": (start + jiff::SignedDuration::from_secs(30 * i)).to_string(),
                "user": user, "team": team, "agent": "loop-agent", "session": "loop-session",
                "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 200,
                "prompt": format!("Run the full test suite again and report whether it passes (attempt {i})."),
                "completion": "The test suite is running. The test suite is running. The test suite is running.",
                "finish_reason": "max_tokens",
            })
        })
        .collect()
}
