//! Starting and stopping the server: open the store, settle the admin token, start the gateway,
//! the alert dispatcher, scheduled detection and the scheduled import of the providers' bills
//! ([`Server::start`]), listen, and on SIGTERM/SIGINT stop accepting and let in-flight requests
//! finish (bounded by a deadline), then stop the gateway, the background work and the alert
//! dispatcher in that order
//! ([`Server::shutdown`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use goodhart_gateway::Gateway;
use goodhart_gateway::alerts::AlertSink;
use goodhart_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alerts::Dispatcher;
use crate::api::{self, ApiState};
use crate::app::App;
use crate::app::tokens::{self, ADMIN_TOKEN_SETTING, TokenHash};
use crate::config::Config;

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

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
        let server = Server {
            app,
            background,
            dispatcher,
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
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
        };
        api::router(state, self.request_timeout)
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

/// Serves `app` until `shutdown` resolves, then drains in-flight requests for at most
/// [`DRAIN_DEADLINE`].
pub async fn run(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Small streamed writes must not wait for Nagle's algorithm (see DESIGN.md).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("could not set TCP_NODELAY: {e}");
        }
    });
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    // Handlers are made into routes once, here, and each connection gets a clone of the router
    // (an `Arc`). Served as a plain `Router`, axum redoes that for every connection: ~36 KB and
    // dozens of allocations each, which 1,000 open streams pay a thousand times (BENCHMARKS.md).
    let app = app.with_state(()).into_make_service();
    let graceful = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    });
    #[expect(clippy::disallowed_methods, reason = "awaited below, within the drain deadline")]
    let server = tokio::spawn(async move { graceful.await });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return Ok(result.map_err(std::io::Error::other)??),
        _ = signalled_rx => tracing::info!("shutting down: draining in-flight requests"),
    }
    match tokio::time::timeout(DRAIN_DEADLINE, server).await {
        Ok(result) => Ok(result.map_err(std::io::Error::other)??),
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within {DRAIN_DEADLINE:?}; exiting");
            Ok(())
        }
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
