//! Hostile and slow clients on raw loopback sockets against a real server: slowloris heads,
//! oversized heads, trickled bodies, thousands of idle connections, the connection cap, a
//! client that stops reading a stream, pipelining and request smuggling. Each attack measures
//! `/healthz` on fresh connections while it runs (p50/p99 printed, only a generous bound
//! asserted) and checks that the server answers normally afterwards; each prints a chaos row
//! for BENCHMARKS.md.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use goodhart_store::testing::TestDatabase;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{ADMIN, Reply, TestServer, serve_upstream, start_with};

/// Short limits, so that each attack's bound is reached within the test.
const LIMITS: &str = "[limits]\nheader_timeout_secs = 2\nbody_timeout_secs = 2\nwrite_stall_secs = 2\n";

async fn start(limits: &str) -> TestServer {
    start_with(TestDatabase::sqlite(), limits).await
}

/// Sends `request` on a new connection and reads until the server closes it (or `wait` passes).
async fn raw(server: &TestServer, request: &[u8], wait: Duration) -> String {
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    read_until_closed(&mut tcp, wait).await.0
}

/// Everything the server sends until it closes the connection; and whether it did within `wait`.
async fn read_until_closed(tcp: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// The status codes of the responses in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// One `/healthz` on a fresh connection: how long the answer took (None when it did not come
/// within 5 s or was not a 200).
async fn healthz_once(addr: SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut text = String::new();
        tcp.read_to_string(&mut text).await.ok()?;
        text.starts_with("HTTP/1.1 200").then_some(())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
        .map(|()| started.elapsed())
}

/// `/healthz` asked every 25 ms on fresh connections while an attack runs.
struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Vec<Duration>, usize)>,
}

impl Probe {
    fn start(server: &TestServer) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = server.addr;
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let (mut latencies, mut failed) = (Vec::new(), 0);
            while !flag.load(Ordering::Relaxed) {
                match healthz_once(addr).await {
                    Some(latency) => latencies.push(latency),
                    None => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            (latencies, failed)
        });
        Probe { stop, task }
    }

    /// Stops probing; asserts every probe was answered within 2 s; returns "p50 / p99".
    async fn finish(self, attack: &str) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let (mut latencies, failed) = self.task.await.unwrap();
        latencies.sort();
        assert!(!latencies.is_empty(), "{attack}: /healthz was asked during the attack");
        let at = |q: usize| latencies[(latencies.len() - 1) * q / 100];
        let (p50, p99) = (at(50), at(99));
        eprintln!(
            "{attack}: /healthz during the attack: {} answered, {failed} unanswered, p50 {p50:?}, p99 {p99:?}",
            latencies.len()
        );
        assert_eq!(failed, 0, "{attack}: every /healthz during the attack was answered");
        assert!(p99 < Duration::from_secs(2), "{attack}: /healthz p99 {p99:?}");
        format!("{:.1} ms", p99.as_secs_f64() * 1000.0)
    }
}

/// How long after an attack ends until `/healthz` and an authenticated API call answer again.
async fn recovery(server: &TestServer) -> String {
    let started = Instant::now();
    loop {
        if healthz_once(server.addr).await.is_some()
            && server.admin("GET", "/api/v1/keys", Bytes::new()).await.status == 200
        {
            return format!("{} ms", started.elapsed().as_millis());
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server never recovered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// This process's resident memory, in KiB (the server runs in it).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

#[expect(clippy::too_many_arguments, reason = "one column each")]
fn chaos_row(
    fault: &str,
    attempted: &str,
    completed: &str,
    recorded: &str,
    lost: &str,
    doubled: &str,
    recovery: &str,
    healthz: &str,
    rss: &str,
) {
    eprintln!(
        "chaos-row: | {fault} | {attempted} | {completed} | {recorded} | {lost} | {doubled} | — | {recovery} | {healthz} | {rss} |"
    );
}

#[tokio::test]
async fn chaos_slowloris() {
    let server = start(LIMITS).await;
    let rss_before = rss_kib();
    let probe = Probe::start(&server);
    // 200 connections that each send a header line every 500 ms and never end their head.
    let attackers: Vec<_> = (0..200)
        .map(|i| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                let started = Instant::now();
                tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
                for n in 0..40 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if tcp
                        .write_all(format!("X-Slow-{i}-{n}: a\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                let (text, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
                (started.elapsed(), closed, text)
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for attacker in attackers {
        let (held, closed, text) = attacker.await.unwrap();
        assert!(closed, "a slowloris connection was closed by the server");
        assert!(
            !text.contains("200 OK"),
            "an unfinished head was never answered as a request"
        );
        slowest = slowest.max(held);
    }
    let healthz = probe.finish("slowloris").await;
    eprintln!("slowloris: the longest connection was held {slowest:?} (header_timeout_secs = 2)");
    assert!(slowest < Duration::from_secs(6), "held {slowest:?}");
    let recovered = recovery(&server).await;
    let rss = format!("{} -> {}", mib(rss_before), mib(rss_kib()));
    chaos_row(
        "slowloris (200 connections, a header line every 500 ms)",
        "200 connections",
        "—",
        "—",
        "—",
        "—",
        &recovered,
        &healthz,
        &rss,
    );
}

#[tokio::test]
async fn chaos_oversized_headers() {
    let server = start(LIMITS).await;
    let probe = Probe::start(&server);
    // One header of 100 KiB (the bound is 64 KiB), and 200 small headers (the bound is 100).
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let many = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    let mut attempted = 0;
    for _ in 0..20 {
        for request in [&big, &many] {
            attempted += 1;
            let reply = raw(&server, request.as_bytes(), Duration::from_secs(5)).await;
            assert_eq!(statuses(&reply), [431], "{}", &reply[..reply.len().min(200)]);
        }
    }
    // A head just under the bound is served.
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(60 * 1024)
    );
    assert_eq!(
        statuses(&raw(&server, fits.as_bytes(), Duration::from_secs(5)).await),
        [200]
    );
    let healthz = probe.finish("oversized headers").await;
    let recovered = recovery(&server).await;
    chaos_row(
        "oversized headers (100 KiB header; 200 headers) -> 431",
        &format!("{attempted} requests"),
        "—",
        "—",
        "—",
        "—",
        &recovered,
        &healthz,
        "—",
    );
}

/// A gateway key for `server`.
async fn key(server: &TestServer) -> String {
    server.create_key(r#"{"user": "mallory", "team": "red"}"#).await.1
}

#[tokio::test]
async fn chaos_trickled_body() {
    let server = start(LIMITS).await;
    let key = key(&server).await;
    let probe = Probe::start(&server);
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let targets = [
        ("/v1/chat/completions", format!("Authorization: Bearer {key}")),
        ("/api/v1/usage", format!("Authorization: Bearer {ADMIN}")),
    ];
    let trickles: Vec<_> = (0..50)
        .map(|i| {
            let (path, auth) = targets[i % 2].clone();
            let (addr, body) = (server.addr, body.clone());
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                let started = Instant::now();
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: t\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                tcp.write_all(head.as_bytes()).await.unwrap();
                // One byte every 200 ms: the whole body would take over 10 s.
                let (mut reader, mut writer) = tcp.into_split();
                let writing = tokio::spawn(async move {
                    for byte in body.as_bytes() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if writer.write_all(&[*byte]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut text = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(15), reader.read_to_end(&mut text)).await;
                writing.abort();
                (path, started.elapsed(), String::from_utf8_lossy(&text).into_owned())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for trickle in trickles {
        let (path, took, text) = trickle.await.unwrap();
        assert_eq!(statuses(&text), [400], "{path}: {text}");
        assert!(text.contains("did not arrive in full within 2 s"), "{path}: {text}");
        slowest = slowest.max(took);
    }
    eprintln!("trickled body: answered 400 after at most {slowest:?} (body_timeout_secs = 2)");
    assert!(slowest < Duration::from_secs(6), "{slowest:?}");
    let healthz = probe.finish("trickled body").await;
    let recovered = recovery(&server).await;
    server.flush().await;
    let calls = crate::common::recorded(&server).await;
    assert!(
        calls.is_empty(),
        "a call whose body never arrived is not a call: {calls:?}"
    );
    chaos_row(
        "request body trickled a byte per 200 ms (gateway and API) -> 400 at 2 s",
        "50 requests",
        "0",
        "0",
        "—",
        "—",
        &recovered,
        &healthz,
        "—",
    );
}

#[tokio::test]
async fn chaos_idle_connections() {
    let server = start("[limits]\nheader_timeout_secs = 30\n").await;
    let rss_before = rss_kib();
    let probe = Probe::start(&server);
    let mut idle = Vec::new();
    for i in 0..2_500 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        // Half have had a request answered (a kept-alive connection); half never sent a byte.
        if i % 2 == 0 {
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        }
        idle.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_during = rss_kib();
    let healthz = probe.finish("2,500 idle connections").await;
    drop(idle);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recovered = recovery(&server).await;
    let rss_after = rss_kib();
    let per_connection = rss_during.saturating_sub(rss_before) * 1024 / 2_500;
    eprintln!(
        "idle connections: RSS {} before, {} with 2,500 open ({per_connection} B each, both ends), {} after",
        mib(rss_before),
        mib(rss_during),
        mib(rss_after)
    );
    assert!(
        per_connection < 200 * 1024,
        "an idle connection costs {per_connection} B of resident memory"
    );
    chaos_row(
        "2,500 idle connections (half kept alive after a request)",
        "2,500 connections",
        "—",
        "—",
        "—",
        "—",
        &recovered,
        &healthz,
        &format!("{} -> {} -> {}", mib(rss_before), mib(rss_during), mib(rss_after)),
    );
}

#[tokio::test]
async fn chaos_connection_cap() {
    let server = start("[limits]\nmax_connections = 100\nbody_timeout_secs = 30\n").await;
    let probe = Probe::start(&server);
    // 100 idle connections fill the cap; each new one evicts the idlest, so more come in.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Answered after the server accepted the 300 (accepts are in order).
    assert!(healthz_once(server.addr).await.is_some());
    let closed: Vec<_> = idle
        .into_iter()
        .map(|mut tcp| {
            tokio::spawn(async move {
                let mut buf = [0u8; 1];
                matches!(
                    tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await,
                    Ok(Ok(0) | Err(_))
                )
            })
        })
        .collect();
    let mut evicted = 0;
    for closed in closed {
        evicted += usize::from(closed.await.unwrap());
    }
    assert!(
        evicted >= 200,
        "the idlest connections made room ({evicted} of 300 closed)"
    );
    // 100 connections with a request in flight (a body that never comes) fill the cap with
    // nothing to evict: a new connection gets 503 with Retry-After, but /healthz is answered.
    let mut busy = Vec::new();
    for _ in 0..100 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /api/v1/usage HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 100\r\n\r\n{{"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        busy.push(tcp);
    }
    // Until the server has read the 100 heads, a new connection still finds one to evict.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let request = format!("GET /api/v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n\r\n");
        let reply = raw(&server, request.as_bytes(), Duration::from_secs(5)).await;
        if statuses(&reply) == [503] || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(statuses(&refused), [503], "{refused}");
    assert!(refused.to_ascii_lowercase().contains("retry-after: 1"), "{refused}");
    let health = raw(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(statuses(&health), [200], "{health}");
    let healthz = probe.finish("connection cap").await;
    drop(busy);
    let recovered = recovery(&server).await;
    chaos_row(
        "connection cap (100): 300 idle, then 100 busy + more",
        "400 connections",
        "—",
        "—",
        "—",
        "—",
        &recovered,
        &healthz,
        "—",
    );
}

/// A provider whose stream never ends (16 KiB events as fast as it can send them); counts the
/// chunks it sent and whether the gateway dropped its stream.
async fn endless_provider() -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicBool>) {
    struct Dropped(Arc<AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let (sent, dropped) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let (count, flag) = (Arc::clone(&sent), Arc::clone(&dropped));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let (count, flag) = (Arc::clone(&count), Arc::clone(&flag));
            async move {
                let guard = Dropped(flag);
                let filler = "x".repeat(16 * 1024);
                let chunks = futures_util::stream::unfold((guard, count), move |(guard, count)| {
                    let chunk = format!(
                        "data: {{\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{filler}\"}}}}]}}\n\n"
                    );
                    async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        count.fetch_add(1, Ordering::Relaxed);
                        Some((Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), (guard, count)))
                    }
                });
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .header("x-request-id", "req_endless")
                    .body(Body::from_stream(chunks))
                    .unwrap()
            }
        }),
    );
    (serve_upstream(app).await, sent, dropped)
}

async fn reserved_usd(server: &TestServer) -> f64 {
    let listed: Reply = server.admin("GET", "/api/v1/budgets", Bytes::new()).await;
    listed.json["budgets"][0]["reserved_usd"].as_f64().unwrap()
}

#[tokio::test]
async fn chaos_client_stops_reading_a_stream() {
    let (provider, sent, dropped) = endless_provider().await;
    let config = format!(
        "{LIMITS}[[providers]]\nname = \"openai\"\nprotocol = \"openai\"\nbase_url = \"http://{provider}/v1\"\n"
    );
    let server = start(&config).await;
    let key = key(&server).await;
    let created = server
        .admin(
            "POST",
            "/api/v1/budgets",
            r#"{"scope": "org", "period": "day", "limit_usd": "1000", "action": "block"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let rss_before = rss_kib();
    let probe = Probe::start(&server);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(server.addr).await.unwrap();
    let body =
        json!({"model": "gpt-4o", "stream": true, "max_tokens": 100, "messages": [{"role": "user", "content": "go"}]})
            .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut first = [0u8; 1024];
    let n = tcp.read(&mut first).await.unwrap();
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    // The client reads nothing more and keeps the connection open.
    let stopped = Instant::now();
    assert!(reserved_usd(&server).await > 0.0, "the stream holds its worst case");
    while !dropped.load(Ordering::Relaxed) {
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "the provider's stream is still held ({} chunks sent)",
            sent.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = stopped.elapsed();
    let rss_during = rss_kib();
    let healthz = probe.finish("client stops reading").await;
    eprintln!(
        "client stops reading: the provider's stream was dropped after {held:?} ({} chunks of 16 KiB sent; write_stall_secs = 2)",
        sent.load(Ordering::Relaxed)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while reserved_usd(&server).await > 0.0 {
        assert!(Instant::now() < deadline, "the reservation was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = recovery(&server).await;
    server.flush().await;
    let path = server.db.url.strip_prefix("sqlite://").unwrap();
    let rows: Vec<(bool, bool)> = rusqlite::Connection::open(path)
        .unwrap()
        .prepare("SELECT stream, client_disconnected FROM gateway_calls")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [(true, true)], "recorded once, as abandoned by the client");
    drop(tcp);
    chaos_row(
        "client stops reading a stream (endless provider stream)",
        "1 call",
        "0",
        "1 (abandoned by the client)",
        "0",
        "0",
        &recovered,
        &healthz,
        &format!("{} -> {}", mib(rss_before), mib(rss_during)),
    );
}

#[tokio::test]
async fn chaos_pipelining() {
    let server = start(LIMITS).await;
    let probe = Probe::start(&server);
    // Two requests in one write: both answered, in order (the second without credentials).
    let mut attempted = 0;
    for _ in 0..50 {
        attempted += 2;
        let reply = raw(
            &server,
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /api/v1/keys HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(statuses(&reply), [200, 401], "{reply}");
    }
    let authed = format!(
        "GET /api/v1/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    let reply = raw(&server, authed.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(statuses(&reply), [200, 200], "{reply}");
    assert!(
        reply.find("\"keys\"") < reply.rfind("HTTP/1.1 200"),
        "in order: {reply}"
    );
    let healthz = probe.finish("pipelining").await;
    let recovered = recovery(&server).await;
    chaos_row(
        "HTTP/1.1 pipelining (two requests in one write)",
        &format!("{} requests", attempted + 2),
        &format!("{} (in order)", attempted + 2),
        "—",
        "—",
        "—",
        &recovered,
        &healthz,
        "—",
    );
}

#[tokio::test]
async fn chaos_request_smuggling() {
    let server = start(LIMITS).await;
    let probe = Probe::start(&server);
    // Each attempt carries a second request, for an admin route without credentials; a server
    // that lost track of the framing would answer it (or worse, as part of the first).
    let smuggled = "GET /api/v1/keys HTTP/1.1\r\nHost: t\r\n\r\n";
    // The first request of the CL+TE cases is the admin's and is read to its end ("no events"):
    // the connection must still close after it, whatever framing a proxy in front chose.
    let admin = format!("Authorization: Bearer {ADMIN}");
    let cases: [(&str, String, &[u16]); 9] = [
        (
            "Content-Length and Transfer-Encoding",
            format!(
                "POST /api/v1/usage HTTP/1.1\r\nHost: t\r\n{admin}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            &[400],
        ),
        (
            "Transfer-Encoding then Content-Length",
            format!(
                "POST /api/v1/usage HTTP/1.1\r\nHost: t\r\n{admin}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            &[400],
        ),
        (
            "two different Content-Lengths",
            format!("POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 39\r\n\r\n{smuggled}"),
            &[400],
        ),
        (
            "Transfer-Encoding: chunked, identity",
            format!(
                "POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"
            ),
            &[400],
        ),
        (
            "Transfer-Encoding: identity",
            format!("POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n{smuggled}"),
            &[400],
        ),
        (
            "obs-fold header continuation",
            format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\n{smuggled}"),
            &[400],
        ),
        (
            "space before the colon",
            format!("POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}"),
            &[400],
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            format!("POST /healthz HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
            &[400],
        ),
        (
            "signed Content-Length",
            format!("POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: +39\r\n\r\n{smuggled}"),
            &[400],
        ),
    ];
    let mut attempted = 0;
    for (name, request, expected) in &cases {
        for _ in 0..5 {
            attempted += 1;
            let reply = raw(&server, request.as_bytes(), Duration::from_secs(5)).await;
            assert_eq!(statuses(&reply), *expected, "{name}: {reply}");
            assert!(!reply.contains("\"keys\""), "{name}: smuggled through: {reply}");
        }
    }
    let healthz = probe.finish("request smuggling").await;
    let recovered = recovery(&server).await;
    chaos_row(
        "request smuggling (CL+TE, duplicate CL, TE chunked,identity, obs-fold, ...)",
        &format!("{attempted} attempts"),
        "0 smuggled",
        "—",
        "—",
        "—",
        &recovered,
        &healthz,
        "—",
    );
}

/// One chat call of `body` to whichever instance `live` lists at `i`; a call an instance
/// refuses at the connection (it is restarting) goes to the first instance, as a load balancer
/// would send it. Returns the status, and whether it was sent again.
async fn balanced_call(live: &Mutex<Vec<SocketAddr>>, i: usize, key: &str, body: &str) -> (u16, bool) {
    let send = |addr: SocketAddr| {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<Bytes>>();
        let request = hyper::Request::post(format!("http://{addr}/v1/chat/completions"))
            .header("authorization", format!("Bearer {key}"))
            .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        async move { client.request(request).await.map(|r| r.status().as_u16()) }
    };
    let addr = {
        let live = live.lock().unwrap();
        live[i % live.len()]
    };
    match send(addr).await {
        Ok(status) => (status, false),
        Err(e) => {
            assert!(
                e.is_connect() || format!("{e:?}").contains("Incomplete") || format!("{e:?}").contains("reset"),
                "{e:?}"
            );
            let first = live.lock().unwrap()[0];
            (send(first).await.unwrap(), true)
        }
    }
}

#[tokio::test]
async fn chaos_rolling_restart_of_one_of_two_instances_on_postgres() {
    use crate::gateway::{SLOW_PRICED, cap_fitting_50, capped_body};
    let config = format!("{SLOW_PRICED}[limits]\ndrain_secs = 10\n");
    let first = start_with(TestDatabase::postgres().await, &config).await;
    let second = crate::common::start_peer(&first, "second", &config).await;
    // The budget `cap_fitting_50` sets is team payments'.
    let (_, key) = first.create_key(r#"{"user": "alice", "team": "payments"}"#).await;
    let body = capped_body();
    let limit = cap_fitting_50(&first, &body).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while second.gateway.standing().is_empty() {
        assert!(Instant::now() < deadline, "the second instance never saw the budget");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let probe = Probe::start(&first);
    let live = Arc::new(Mutex::new(vec![first.addr, second.addr]));
    // 300 calls over 3 s, spread over the instances; each holds the slow mock for a second.
    let calls: Vec<_> = (0..300)
        .map(|i| {
            let (live, key, body) = (Arc::clone(&live), key.clone(), body.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                balanced_call(&live, i, &key, &body).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // Restart the second instance in the middle of the load: drain, stop, start again on the
    // same spool directory.
    let restarting = Instant::now();
    second.stop().await;
    live.lock().unwrap().truncate(1);
    let restarted = crate::common::start_peer(&first, "second", &config).await;
    live.lock().unwrap().push(restarted.addr);
    let recovered = restarting.elapsed();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    let healthz = probe.finish("rolling restart").await;
    let admitted = results.iter().filter(|r| r.0 == 200).count();
    let resent = results.iter().filter(|r| r.1).count();
    assert!(
        results.iter().all(|r| r.0 == 200 || r.0 == 429),
        "only admissions and refusals: {results:?}"
    );
    assert!(
        (48..300).contains(&admitted),
        "the cap's room was used, and the cap held ({admitted} admitted)"
    );
    first.flush().await;
    restarted.flush().await;
    let rows = first
        .summary("from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&group_by=model")
        .await;
    let recorded = rows.json["rows"][0]["requests"].as_u64().unwrap() as usize;
    let spent = (rows.json["rows"][0]["cost_usd"].as_f64().unwrap() * 1e9).round() as i64;
    eprintln!(
        "rolling restart: {admitted} of 300 admitted ({resent} sent again after a refused connection), {recorded} recorded, \
         spent {spent} of {} nano-dollars; the instance was back in {recovered:?}",
        limit.0
    );
    assert_eq!(
        recorded, admitted,
        "every admitted call recorded once, none lost, none twice"
    );
    let overshoot = (spent - limit.0).max(0);
    assert_eq!(overshoot, 0, "spent {spent} within the limit {}", limit.0);
    eprintln!(
        "chaos-row: | rolling restart of one of two instances on PostgreSQL under a hard cap | 300 | {admitted} | {recorded} | {} | {} | {overshoot} | {} ms | {healthz} | — |",
        admitted - recorded.min(admitted),
        recorded.saturating_sub(admitted),
        recovered.as_millis()
    );
}

#[tokio::test]
async fn a_stream_that_outlasts_every_connection_timeout_is_not_cut() {
    // The header and stall timeouts are 2 s; the mock's slow stream takes about 5 s, read as
    // it comes. None of the bounds may end a call that is making progress.
    let server = start(LIMITS).await;
    let key = key(&server).await;
    let started = Instant::now();
    let body = json!({"model": "slow-long", "stream": true, "max_tokens": 80, "messages": [{"role": "user", "content": "go"}]});
    let auth = format!("Bearer {key}");
    let reply = server
        .send(
            "POST",
            "/v1/chat/completions",
            &[("authorization", auth.as_str()), ("content-type", "application/json")],
            body.to_string(),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(took > Duration::from_secs(3), "the stream was slow ({took:?})");
    assert!(reply.text.contains("data: [DONE]"), "{}", reply.text);
    let calls = crate::common::recorded(&server).await;
    assert_eq!(calls.len(), 1);
    assert!(
        !calls[0].3,
        "recorded with the provider's usage, not an estimate: {calls:?}"
    );
}
