//! jupyter-mcp-server: an MCP server that gives LLM agents a real Jupyter kernel.
//!
//! Layers, top to bottom (docs/architecture.md): the front doors (`run` for HTTP, `run_stdio`,
//! `lambda`; `http` with `auth`; `app` builds what they serve) -> `mcp` (rmcp handler and thin
//! tools) -> `service` (the application state and its operations) -> the engine (`pool`,
//! `workspace`, `kernel`, `notebook`, `output`, `files`, `packages`, `child`). `config` turns
//! flags and environment into settings; `main.rs` picks the door.

pub(crate) mod app;
pub(crate) mod audit;
pub mod auth;
pub(crate) mod aws;
pub(crate) mod child;
pub mod config;
pub(crate) mod files;
pub(crate) mod http;
pub(crate) mod kernel;
pub mod lambda;
pub(crate) mod limits;
pub(crate) mod mcp;
pub(crate) mod notebook;
pub(crate) mod output;
pub(crate) mod packages;
pub(crate) mod pool;
pub(crate) mod principal;
pub(crate) mod quota;
pub(crate) mod request_id;
pub(crate) mod service;
pub(crate) mod workspace;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::app::build_app;
use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot listen on {addr}: {source}\nhint: pick another --port, or stop what uses this one"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Service(#[from] service::BuildError),
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("the Lambda runtime failed: {0}")]
    Lambda(String),
    #[error(
        "the stdio transport failed: {0}\nhint: the client must speak MCP (JSON-RPC lines) on stdin"
    )]
    Stdio(String),
    #[error("cannot set up OpenID Connect: {0}")]
    Oidc(#[from] auth::oidc::Error),
}

/// Serves MCP over HTTP until `shutdown` resolves, then stops every kernel.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let stop = CancellationToken::new();
    let (app, _runtime) = build_app(&settings, stop.child_token())?;
    let addr = SocketAddr::new(settings.host, settings.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    if !settings.host.is_loopback() && !settings.requires_credentials() {
        tracing::warn!(
            host = %settings.host,
            "listening on a non-loopback address without authentication: anyone who can reach this port can run code"
        );
    }
    tracing::info!("listening on http://{local}/mcp");
    let router = http::router(Arc::clone(&app), &settings, stop.child_token());
    let graceful = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down");
            stop.cancel();
        }
    };
    // Replies are small and latency-bound: do not let Nagle hold them back.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The peer address keys the limit on refused requests (`limits::Refusals`).
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful)
    .await
    .map_err(Error::Serve);
    stop.cancel();
    app.service.pool.shutdown().await;
    served
}

/// Serves one MCP client over stdin/stdout until stdin closes or `shutdown` resolves, then stops
/// every kernel. Nothing but MCP messages goes to stdout: logs go to stderr (main.rs) and kernels
/// write to their own log files.
pub async fn run_stdio(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    use rmcp::ServiceExt;
    let stop = CancellationToken::new();
    let (app, _runtime) = build_app(&settings, stop.child_token())?;
    tracing::info!("serving MCP over stdio");
    let handler = mcp::JupyterMcp::new(Arc::clone(&app.service));
    let served = async {
        let running = handler
            .serve_with_ct(rmcp::transport::stdio_pipes(), stop.child_token())
            .await
            .map_err(|e| Error::Stdio(e.to_string()))?;
        let reason = running
            .waiting()
            .await
            .map_err(|e| Error::Stdio(e.to_string()))?;
        tracing::info!(?reason, "stdio client gone");
        Ok(())
    };
    let result = tokio::select! {
        r = served => r,
        _ = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    stop.cancel();
    app.service.pool.shutdown().await;
    result
}

/// The parent of all kernel runtime directories (short, under the system temp dir, because a
/// unix socket path must fit in 108 bytes). Removed when dropped.
///
/// A server killed outright (SIGKILL, OOM) cannot remove it, so each root holds a lock file that
/// its server keeps locked for its whole life; at start-up a server removes every root whose lock
/// it can take, i.e. whose server is gone. The kernel, not the lock, tells liveness: the lock is
/// released by the OS however the server ends.
pub struct RuntimeRoot {
    path: std::path::PathBuf,
    /// Held (exclusively locked) while this server lives.
    _lock: std::fs::File,
}

/// Prefix of every runtime root's name under the temp dir.
const RUNTIME_ROOT_PREFIX: &str = "jmcp-";
/// The lock file in each runtime root.
pub(crate) const RUNTIME_LOCK_FILE: &str = "server.lock";

impl RuntimeRoot {
    fn create() -> std::io::Result<RuntimeRoot> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        remove_abandoned_roots(&std::env::temp_dir());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = std::env::temp_dir().join(format!("{RUNTIME_ROOT_PREFIX}{}", &id[..10]));
        // 0711: a kernel under its own uid may pass through to its own directory (0700, its
        // uid's) but not list the others.
        std::fs::DirBuilder::new().mode(0o711).create(&path)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path.join(RUNTIME_LOCK_FILE))?;
        lock.lock()?;
        Ok(RuntimeRoot { path, _lock: lock })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Removes the runtime roots under `tmp` whose server is gone (their lock can be taken).
/// Roots without a lock file (being created right now, or left by an older version) are left
/// alone: without the lock nothing says their server is dead.
fn remove_abandoned_roots(tmp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_root = name.to_str().is_some_and(|n| {
            n.strip_prefix(RUNTIME_ROOT_PREFIX)
                .is_some_and(|id| id.len() == 10 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        // `file_type` does not follow symlinks: a planted link is never followed.
        if !is_root || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let Ok(lock) = std::fs::File::open(path.join(RUNTIME_LOCK_FILE)) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed the runtime directory of a server that is gone")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove an abandoned runtime directory")
                }
            }
        }
    }
}

impl Drop for RuntimeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
