//! Starting and stopping the server: open the store, settle the admin token, start the gateway,
//! the alert dispatcher, scheduled detection and the scheduled import of the providers' bills
//! ([`Server::start`]); serve HTTP/1.1 with per-connection limits and a connection cap
//! ([`run`], configured by `[limits]`, see [`ConnectionLimits`]); on SIGTERM/SIGINT stop
//! accepting and let in-flight requests finish up to the drain deadline, end the streams still
//! open in-band, and once every connection has ended stop the gateway, the background work and
//! the alert dispatcher in that order ([`Server::shutdown`]).
//!
//! The connection loop is our own rather than `axum::serve`'s, which cannot be configured:
//! it gives hyper no timer (so no header read timeout), keeps idle connections forever, has no
//! cap, and its caller returned at the drain deadline with connections still running.
//! Limits hyper does not have are added here: a request body deadline ([`TimedBody`]) and a
//! bound on writes to a client that reads nothing ([`StallBound`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use std::time::Instant;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use goodhart_gateway::Gateway;
use goodhart_gateway::alerts::AlertSink;
use goodhart_store::Store;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::alerts::Dispatcher;
use crate::api::{self, ApiState};
use crate::app::App;
use crate::app::sessions::{SESSION_KEY_SETTING, SessionKey};
use crate::app::tokens::{self, ADMIN_TOKEN_SETTING, TokenHash};
use crate::config::{Config, ConnectionLimits};
use crate::oidc::Sso;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("database: {0}")]
    Store(#[from] goodhart_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("usage spool: {0}")]
    Spool(#[from] goodhart_store::spool::SpoolError),
    #[error(
        "the stored admin token hash is corrupt; delete the `{ADMIN_TOKEN_SETTING}` setting to generate a new token"
    )]
    CorruptAdminToken,
    #[error(
        "the stored session cookie key is corrupt; delete the `{}` setting (signs everyone out)",
        crate::app::sessions::SESSION_KEY_SETTING
    )]
    CorruptSessionKey,
}

/// The key that signs session cookies: the stored one, else a new one stored (one for every
/// instance sharing the store).
pub async fn settle_session_key(store: &dyn Store) -> Result<SessionKey, ServeError> {
    store
        .set_setting_if_absent(SESSION_KEY_SETTING, &SessionKey::generate())
        .await?;
    let stored = store
        .setting(SESSION_KEY_SETTING)
        .await?
        .ok_or(ServeError::CorruptSessionKey)?;
    let bytes = hex::decode(stored).map_err(|_| ServeError::CorruptSessionKey)?;
    if bytes.len() < 32 {
        return Err(ServeError::CorruptSessionKey);
    }
    Ok(SessionKey::new(&bytes))
}

/// The admin token's hash: from `GOODHART_ADMIN_TOKEN` when set, else the stored one, else a
/// new token that is returned (to be shown once) while only its hash is stored.
pub async fn settle_admin_token(
    store: &dyn Store,
    from_env: Option<&str>,
) -> Result<(TokenHash, Option<String>), ServeError> {
    if let Some(token) = from_env.filter(|t| !t.trim().is_empty()) {
        return Ok((tokens::hash_token(token.trim()), None));
    }
    let stored = |hex_hash: String| -> Result<TokenHash, ServeError> {
        let bytes = hex::decode(hex_hash).map_err(|_| ServeError::CorruptAdminToken)?;
        bytes.try_into().map_err(|_| ServeError::CorruptAdminToken)
    };
    if let Some(hash) = store.setting(ADMIN_TOKEN_SETTING).await? {
        return Ok((stored(hash)?, None));
    }
    let token = tokens::generate_token();
    let hash = tokens::hash_token(&token);
    if store
        .set_setting_if_absent(ADMIN_TOKEN_SETTING, &hex::encode(hash))
        .await?
    {
        return Ok((hash, Some(token)));
    }
    // Another instance generated one at the same moment: use theirs.
    let hash = store
        .setting(ADMIN_TOKEN_SETTING)
        .await?
        .ok_or(ServeError::CorruptAdminToken)?;
    Ok((stored(hash)?, None))
}

/// One running Goodhart: the application with its gateway, and the background work (scheduled
/// waste detection, alert dispatch) to stop with it.
pub struct Server {
    app: App,
    background: Background,
    /// The alert dispatcher, apart from the rest of the background work so that it stops last.
    dispatcher: Background,
    max_body_bytes: usize,
    request_timeout: Duration,
    limits: ConnectionLimits,
    /// `audit.trust_forwarded_for`.
    trust_forwarded_for: bool,
    sso: Option<Arc<Sso>>,
}

/// The server's own background work, stopped at shutdown.
#[derive(Clone, Default)]
struct Background {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Background {
    /// Cancels the work and waits for it to end.
    async fn stop(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Server {
    /// Opens the store, settles the admin token, starts the gateway — sending the protocols no
    /// provider serves to the mock provider at `mock_base`, when the caller runs one — the
    /// alert dispatcher the gateway and waste detection raise alerts into, and scheduled waste
    /// detection. Returns a newly generated admin token, if any.
    pub async fn start(
        config: &Config,
        admin_token_env: Option<&str>,
        mock_base: Option<&str>,
    ) -> Result<(Server, Option<String>), ServeError> {
        let store = goodhart_store::open(&config.database_url).await?;
        let (admin_token_hash, generated) = settle_admin_token(store.as_ref(), admin_token_env).await?;
        let sso = match &config.oidc {
            Some(settings) => Some(Arc::new(Sso::new(
                settings.clone(),
                settle_session_key(store.as_ref()).await?,
                goodhart_gateway::upstream::client(),
            ))),
            None => None,
        };
        let gateway_config = config.gateway_with_defaults(mock_base.unwrap_or(""));
        let (sink, queue) = AlertSink::channel();
        let gateway = Gateway::start(
            gateway_config,
            Arc::clone(&store),
            Arc::clone(&config.prices),
            sink.clone(),
        )
        .await?;
        let dispatcher = Background::default();
        let windows = gateway.clone();
        Dispatcher {
            store: Arc::clone(&store),
            client: goodhart_gateway::upstream::client(),
            config: config.alerts.clone(),
        }
        .start(
            queue,
            sink.clone(),
            move || windows.budget_windows(),
            &dispatcher.tracker,
            dispatcher.cancel.clone(),
        );
        let app = App::new(store, Arc::clone(&config.prices), config.settings())
            .with_gateway(gateway)
            .with_alert_sink(sink)
            .with_admin_token(admin_token_hash);
        let background = Background::default();
        app.spawn_detection(&background.tracker, background.cancel.clone());
        app.spawn_bill_imports(&background.tracker, background.cancel.clone());
        app.spawn_audit_flush(&background.tracker, background.cancel.clone());
        let server = Server {
            app,
            background,
            dispatcher,
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            limits: config.connections.clone(),
            trust_forwarded_for: config.audit.trust_forwarded_for,
            sso,
        };
        Ok((server, generated))
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// The whole HTTP surface: API, dashboard and gateway.
    pub fn router(&self) -> axum::Router {
        let state = ApiState {
            app: self.app.clone(),
            max_body_bytes: self.max_body_bytes,
            trust_forwarded_for: self.trust_forwarded_for,
            sso: self.sso.clone(),
        };
        api::router(state, self.request_timeout)
    }

    /// Serves [`Server::router`] on `listener` with the configured connection limits until
    /// `shutdown` resolves, then drains (see [`run`]); at the drain deadline the gateway's open
    /// streams end with an in-band error event and are recorded as cut. Call
    /// [`Server::shutdown`] after it.
    pub fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), ServeError>> + Send + 'static {
        let gateway = self.app.gateway().cloned();
        let end_streams = move || {
            if let Some(gateway) = gateway {
                gateway.end_streams();
            }
        };
        run(listener, self.router(), self.limits.clone(), shutdown, end_streams)
    }

    /// Stops the gateway (flushing its spool), then the background work, then the alert
    /// dispatcher, waiting for each.
    pub async fn shutdown(&self) {
        // Whatever raises alerts stops before what stores and posts them, so that no alert
        // raised during shutdown is lost: the gateway first (by now `run` has drained the calls
        // in flight, which raise threshold and blocked alerts), then scheduled detection (a
        // pass under way still raises its waste alerts), and last the dispatcher, which ends
        // its forecast/runaway evaluation, then stores and posts what is still queued.
        if let Some(gateway) = self.app.gateway() {
            gateway.shutdown().await;
        }
        self.background.stop().await;
        self.dispatcher.stop().await;
    }
}

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`). The default
/// of 128 drops the SYNs of a burst of agents opening connections at once, which the clients
/// only retry a second later.
const LISTEN_BACKLOG: u32 = 4096;

pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|source| ServeError::Bind { addr, source })
}

/// Header lines in one request head at most (hyper's default, stated here).
const MAX_HEADERS: usize = 100;

/// After the drain deadline, how long streams get to deliver their closing error event before
/// their connections are dropped (a client that reads nothing would otherwise hold them).
const CUT_GRACE: Duration = Duration::from_secs(2);

/// File descriptors kept for the store, the spool, logs and the like, out of the process's
/// limit, when fitting the connection cap into it.
const FD_RESERVE: u64 = 256;

/// Serves `app` until `shutdown` resolves, then drains: the listener closes (new connections
/// are refused), idle connections close, in-flight requests get `limits.drain` to finish;
/// then `end_streams` ends the open streams (each with an in-band error event), and what is
/// still open [`CUT_GRACE`] later is dropped. Returns once every connection has ended, so
/// that whatever the calls record is spooled before the gateway's last flush.
pub async fn run(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    end_streams: impl FnOnce() + Send + 'static,
) -> Result<(), ServeError> {
    let max_connections = fit_to_file_limit(limits.max_connections);
    let shared = Arc::new(Shared::new(app, limits, max_connections));
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let (tcp, peer) = tcp;
        tracker.spawn(serve_connection(Arc::clone(&shared), tcp, peer));
    }
    drop(listener);
    let drain = shared.limits.drain;
    tracing::info!("shutting down: draining in-flight requests (at most {drain:?})");
    shared.draining.cancel();
    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_ok() {
        return Ok(());
    }
    tracing::warn!("in-flight requests did not finish within {drain:?}; ending the open streams");
    end_streams();
    if tokio::time::timeout(CUT_GRACE, tracker.wait()).await.is_err() {
        tracing::warn!("closing the connections still open");
        shared.cut.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// An `accept` that failed: a connection reset before it was accepted costs nothing; out of
/// file descriptors (or memory), waiting a moment lets connections close rather than spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// `configured`, or fewer if the file descriptor limit (raised to its hard maximum first)
/// cannot hold that many client connections each with a provider connection.
fn fit_to_file_limit(configured: usize) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
            && current < maximum
        {
            let raised = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                limit = raised;
            }
        }
        if let Some(current) = limit.current {
            let fits = usize::try_from(current.saturating_sub(FD_RESERVE) / 2).unwrap_or(usize::MAX);
            if fits < configured {
                tracing::warn!(
                    "limits.max_connections lowered from {configured} to {fits}: the file descriptor limit is {current} \
                     (raise it with `ulimit -n` or LimitNOFILE)"
                );
                return fits.max(1);
            }
        }
    }
    configured
}

/// What every connection's task shares.
struct Shared {
    /// The routes, made once; each request runs on a clone (an `Arc`).
    app: axum::Router,
    limits: ConnectionLimits,
    max_connections: usize,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    /// Connections over the cap being answered 503, and how many there may be.
    overflow: AtomicUsize,
    max_overflow: usize,
    epoch: Instant,
    /// Open connections: keep-alive off, idle ones close.
    http: http1::Builder,
    /// Over the cap: one request, a short wait for it.
    http_overflow: http1::Builder,
    /// Cancelled when shutdown starts: connections finish their request and close.
    draining: CancellationToken,
    /// Cancelled when the drain is over: connections are dropped.
    cut: CancellationToken,
}

/// One open connection, as its requests and the cap see it.
struct Connection {
    /// Requests whose response has not been written in full.
    in_flight: AtomicUsize,
    /// When a request last started or ended (ms since [`Shared::epoch`]).
    last_active: AtomicU64,
    /// Cancelled to make room for a new connection.
    evict: CancellationToken,
}

enum Admission {
    Open(u64, Arc<Connection>),
    /// Over the cap, every connection busy: answered 503 (but `/healthz`) and closed.
    Overflow,
    /// Over the cap and over the overflow allowance: closed at once.
    Refused,
}

impl Shared {
    fn new(app: axum::Router, limits: ConnectionLimits, max_connections: usize) -> Shared {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_headers(MAX_HEADERS)
            .max_header_size(limits.max_header_bytes)
            .max_buf_size(limits.max_header_bytes.max(8192));
        let mut http_overflow = http.clone();
        http_overflow
            .keep_alive(false)
            .header_read_timeout(limits.header_timeout.min(Duration::from_secs(5)));
        Shared {
            app,
            max_overflow: (max_connections / 64).max(16),
            limits,
            max_connections,
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            overflow: AtomicUsize::new(0),
            epoch: Instant::now(),
            http,
            http_overflow,
            draining: CancellationToken::new(),
            cut: CancellationToken::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a new connection in, making room at the cap by evicting the connection idle the
    /// longest; a scan of the open connections, paid only at the cap.
    fn admit(&self) -> Admission {
        let mut open = self.open();
        if open.len() >= self.max_connections {
            let idlest = open
                .iter()
                .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, c)| c.last_active.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            match idlest.and_then(|id| open.remove(&id)) {
                Some(evicted) => evicted.evict.cancel(),
                None => {
                    drop(open);
                    if self.overflow.fetch_add(1, Ordering::AcqRel) < self.max_overflow {
                        return Admission::Overflow;
                    }
                    self.overflow.fetch_sub(1, Ordering::AcqRel);
                    return Admission::Refused;
                }
            }
        }
        let connection = Arc::new(Connection {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.now_ms()),
            evict: self.cut.child_token(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        open.insert(id, Arc::clone(&connection));
        Admission::Open(id, connection)
    }
}

/// A request in flight on a connection, until its response is written (or dropped).
struct Active {
    shared: Arc<Shared>,
    connection: Arc<Connection>,
}

impl Active {
    fn start(shared: &Arc<Shared>, connection: &Arc<Connection>) -> Active {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        connection.last_active.store(shared.now_ms(), Ordering::Relaxed);
        Active {
            shared: Arc::clone(shared),
            connection: Arc::clone(connection),
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.connection
            .last_active
            .store(self.shared.now_ms(), Ordering::Relaxed);
        self.connection.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

type ServiceResponse = hyper::Response<Tracked>;

async fn serve_connection(shared: Arc<Shared>, tcp: TcpStream, peer: std::net::SocketAddr) {
    // Small streamed writes must not wait for Nagle's algorithm (see DESIGN.md).
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::warn!("could not set TCP_NODELAY: {e}");
    }
    let (open, http) = match shared.admit() {
        Admission::Open(id, connection) => (Some((id, connection)), &shared.http),
        Admission::Overflow => (None, &shared.http_overflow),
        Admission::Refused => return,
    };
    let connection = open.as_ref().map(|(_, c)| Arc::clone(c));
    let service = {
        let (shared, connection) = (Arc::clone(&shared), connection.clone());
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            respond(&shared, connection.as_ref(), peer, request)
        })
    };
    let io = TokioIo::new(StallBound::new(tcp, shared.limits.write_stall));
    let served = http.serve_connection(io, service).with_upgrades();
    tokio::pin!(served);
    let evicted = connection
        .as_ref()
        .map_or_else(CancellationToken::new, |c| c.evict.clone());
    let mut closing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                break;
            }
            () = shared.cut.cancelled() => break,
            () = evicted.cancelled(), if !closing => {
                closing = true;
                // Chosen while idle; a request that started since finishes first.
                if connection.as_ref().is_none_or(|c| c.in_flight.load(Ordering::Acquire) == 0) {
                    break;
                }
                served.as_mut().graceful_shutdown();
            }
            () = shared.draining.cancelled(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
    match open {
        Some((id, _)) => {
            shared.open().remove(&id);
        }
        None => {
            shared.overflow.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One request: bounded in how long its body may take, counted in flight until its response
/// is written; a connection over the cap gets only `/healthz`.
fn respond(
    shared: &Arc<Shared>,
    connection: Option<&Arc<Connection>>,
    peer: std::net::SocketAddr,
    request: hyper::Request<Incoming>,
) -> impl Future<Output = Result<ServiceResponse, Infallible>> + Send + use<> {
    let active = connection.map(|c| Active::start(shared, c));
    let over_cap = connection.is_none() && request.uri().path() != "/healthz";
    let body_timeout = shared.limits.body_timeout;
    let mut request = request.map(|body| axum::body::Body::new(TimedBody::new(body, body_timeout)));
    // Who is at the other end, for the audit log (`axum::extract::ConnectInfo`).
    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    let app = shared.app.clone();
    async move {
        let response = if over_cap {
            at_capacity()
        } else {
            match app.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
        Ok(response.map(|body| Tracked { body, _active: active }))
    }
}

/// The answer to a request on a connection over the cap.
fn at_capacity() -> axum::response::Response {
    let body = serde_json::json!({"error": {
        "code": "overloaded",
        "message": "the server is at its connection limit (limits.max_connections); retry shortly",
    }});
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A response body that keeps its request counted in flight until it is written or dropped.
struct Tracked {
    body: axum::body::Body,
    _active: Option<Active>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The request body did not arrive within [`ConnectionLimits::body_timeout`].
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in full within {0} s (limits.body_timeout_secs)")]
pub struct BodyTimeout(u64);

/// A request body that fails once its deadline passes, so a body trickled byte by byte holds
/// neither the connection nor the handler reading it for longer.
struct TimedBody {
    body: Incoming,
    deadline: tokio::time::Instant,
    limit: Duration,
    /// Armed the first time the body is not ready (a body that arrives at once costs no timer).
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(body: Incoming, limit: Duration) -> TimedBody {
        TimedBody {
            body,
            deadline: tokio::time::Instant::now() + limit,
            limit,
            timer: None,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout(this.limit.as_secs()).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A client socket whose writes fail once they have waited [`ConnectionLimits::write_stall`]
/// for a client that reads nothing: hyper then ends the connection, dropping the response
/// (and with it a stream's provider connection and hold on budgets).
struct StallBound {
    tcp: TcpStream,
    limit: Duration,
    /// Running while writes wait.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl StallBound {
    fn new(tcp: TcpStream, limit: Duration) -> StallBound {
        StallBound {
            tcp,
            limit,
            stalled: None,
        }
    }

    fn bound<T>(&mut self, cx: &mut Context<'_>, poll: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if stalled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?} (limits.write_stall_secs)"),
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for StallBound {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallBound {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.bound(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.bound(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.tcp).poll_flush(cx);
        self.bound(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_fits_in_the_file_descriptor_limit() {
        assert_eq!(fit_to_file_limit(10), 10, "a cap the limit holds is kept");
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let fitted = fit_to_file_limit(usize::MAX);
        match limit.current {
            // Two descriptors a connection (the client's and the provider's), and a reserve.
            Some(current) => assert_eq!(fitted as u64, (current.saturating_sub(FD_RESERVE) / 2).max(1)),
            None => assert_eq!(fitted, usize::MAX),
        }
    }
}
