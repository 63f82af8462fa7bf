//! Starting and stopping the server: open the store, settle the admin token, listen, and on
//! SIGTERM/SIGINT stop accepting and let in-flight requests finish (bounded by a deadline).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use goodhart_gateway::Gateway;
use goodhart_store::Store;
use tokio::net::TcpListener;

use crate::auth::{self, ADMIN_TOKEN_SETTING, TokenHash};
use crate::config::Config;
use crate::state::{AppState, Background};

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
        return Ok((auth::hash_token(token.trim()), None));
    }
    let stored = |hex_hash: String| -> Result<TokenHash, ServeError> {
        let bytes = hex::decode(hex_hash).map_err(|_| ServeError::CorruptAdminToken)?;
        bytes.try_into().map_err(|_| ServeError::CorruptAdminToken)
    };
    if let Some(hash) = store.setting(ADMIN_TOKEN_SETTING).await? {
        return Ok((stored(hash)?, None));
    }
    let token = auth::generate_token();
    let hash = auth::hash_token(&token);
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

/// Opens the store, settles the admin token, starts the gateway — with the built-in mock
/// provider on a loopback port for the protocols no provider serves — and scheduled waste
/// detection. Returns a newly generated admin token, if any.
pub async fn prepare(config: &Config, admin_token_env: Option<&str>) -> Result<(AppState, Option<String>), ServeError> {
    let store = goodhart_store::open(&config.database_url).await?;
    let (admin_token_hash, generated) = settle_admin_token(store.as_ref(), admin_token_env).await?;
    let env = |var: &str| std::env::var(var).ok();
    let mut gateway_config = config.gateway.clone();
    if gateway_config.providers.is_empty() {
        let needs_mock = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]
            .iter()
            .any(|var| env(var).is_none_or(|v| v.trim().is_empty()));
        let mock_base = if needs_mock {
            format!("http://{}", goodhart_sim::mock_provider::spawn().await?)
        } else {
            String::new()
        };
        gateway_config = gateway_config.with_default_providers(env, &mock_base);
    }
    let gateway = Gateway::start(gateway_config, Arc::clone(&store), Arc::clone(&config.prices)).await?;
    let state = AppState {
        store,
        prices: config.prices.clone(),
        admin_token_hash,
        store_content: config.store_content,
        max_body_bytes: config.max_body_bytes,
        gateway,
        outcomes: Arc::new(config.outcomes.clone()),
        waste: Arc::new(config.waste.clone()),
        background: Background::default(),
    };
    let background = state.background.clone();
    crate::waste::spawn_detection(state.clone(), &background.tracker, background.cancel.clone());
    Ok((state, generated))
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
    let graceful = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    });
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
