//! jupyter-mcp-server: an MCP server that gives LLM agents a real Jupyter kernel.
//!
//! Layers, top to bottom: `http` (the axum router) -> `mcp` (rmcp handler and tools) ->
//! `pool` (kernels by principal and name) -> `kernel` (one ipykernel process). `output`,
//! `notebook` and `packages` are the domain pieces the tools format and call.

pub mod audit;
pub mod auth;
pub mod config;
pub mod http;
pub mod kernel;
pub mod lambda;
pub mod limits;
pub mod mcp;
pub(crate) mod notebook;
pub mod output;
pub(crate) mod packages;
pub mod pool;
pub mod principal;
pub mod security;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::kernel::LaunchConfig;
use crate::mcp::App;
use crate::pool::{Pool, PoolConfig};

/// How long a kernel may take to start.
const KERNEL_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

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
    #[error("cannot create the kernels' runtime directory: {0}")]
    RuntimeDir(#[source] std::io::Error),
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("the Lambda runtime failed: {0}")]
    Lambda(String),
    #[error(transparent)]
    Audit(#[from] audit::Error),
    #[error("cannot set up OpenID Connect: {0}")]
    Oidc(#[from] auth::oidc::Error),
}

/// Builds the pool and the shared state every front door serves.
pub fn build_app(
    settings: &Settings,
    stop: CancellationToken,
) -> Result<(Arc<App>, RuntimeRoot), Error> {
    let runtime = RuntimeRoot::create().map_err(Error::RuntimeDir)?;
    let launch = LaunchConfig {
        python: settings.python.clone(),
        runtime_root: runtime.0.clone(),
        cwd: settings.working_dir.clone(),
        startup_timeout: KERNEL_STARTUP_TIMEOUT,
        pythonpath: settings.kernel_pythonpath.clone(),
    };
    let pool_cfg = PoolConfig {
        launch,
        max_kernels: settings.max_kernels,
        max_kernels_per_principal: settings.max_kernels_per_principal,
        idle_timeout: settings.idle_timeout,
        spare: true,
    };
    let dirs_settings = settings.clone();
    let pool = Pool::new(
        pool_cfg,
        move |principal| mcp::principal_dirs(&dirs_settings, principal),
        stop,
    );
    let server_hardening = security::harden_server_process();
    tracing::info!(layers = ?server_hardening, "process hardening");
    let audit = Arc::new(audit::Audit::open(&settings.audit)?);
    let limits = Arc::new(limits::Limits::new(
        settings.requests_per_minute_per_principal,
        settings.max_calls_per_principal,
    ));
    let auth = Arc::new(auth::Authenticator::new(
        settings,
        Arc::clone(&audit),
        Arc::clone(&limits),
    )?);
    if settings.auth.insecure_no_auth {
        tracing::warn!(
            "--insecure-no-auth: requests without credentials are served as the shared principal `local`; anyone who reaches this server can run code"
        );
    }
    let app = Arc::new(App {
        settings: settings.clone(),
        pool,
        server_hardening,
        install_locks: Default::default(),
        auth,
        audit,
        tenant: Default::default(),
        limits,
    });
    Ok((app, runtime))
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
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(graceful)
        .await
        .map_err(Error::Serve);
    stop.cancel();
    app.pool.shutdown().await;
    served
}

/// The parent of all kernel runtime directories (short, under the system temp dir, because a
/// unix socket path must fit in 108 bytes). Removed when dropped.
pub struct RuntimeRoot(std::path::PathBuf);

impl RuntimeRoot {
    fn create() -> std::io::Result<RuntimeRoot> {
        use std::os::unix::fs::DirBuilderExt;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = std::env::temp_dir().join(format!("jmcp-{}", &id[..10]));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(RuntimeRoot(path))
    }
}

impl Drop for RuntimeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
