//! jupyter-mcp-server: an MCP server that gives LLM agents a real Jupyter kernel.
//!
//! Layers, top to bottom: `http` (the axum router) -> `mcp` (rmcp handler and tools) ->
//! `pool` (kernels by principal and name) -> `kernel` (one ipykernel process). `output`,
//! `notebook` and `packages` are the domain pieces the tools format and call.

pub mod audit;
pub mod auth;
pub(crate) mod aws;
pub mod child;
pub mod config;
pub(crate) mod files;
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
pub(crate) mod quota;
pub mod request_id;
pub(crate) mod workspace;

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
    #[error(
        "the stdio transport failed: {0}\nhint: the client must speak MCP (JSON-RPC lines) on stdin"
    )]
    Stdio(String),
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
    child::remove_abandoned_cgroups();
    let launch = LaunchConfig {
        python: settings.python.clone(),
        runtime_root: runtime.path.clone(),
        startup_timeout: KERNEL_STARTUP_TIMEOUT,
        pythonpath: settings.kernel_pythonpath.clone(),
        sandbox: settings.sandbox.clone(),
    };
    let pool_cfg = PoolConfig {
        launch,
        max_kernels: settings.max_kernels,
        max_kernels_per_principal: settings.max_kernels_per_principal,
        idle_timeout: settings.idle_timeout,
        spare: true,
        // Where credentials are required, `local` never calls: a spare for it would be a
        // kernel (and, on Lambda, an init that waits for it) nobody can use. The first
        // caller's own spare follows its first kernel.
        first_spare_for: (!settings.requires_credentials())
            .then(|| mcp::LOCAL_PRINCIPAL.to_string()),
    };
    // The pool starts the first warm spare, if any, right away: its home is made here the way
    // a call makes it (and marked made), before the kernel binds it. Otherwise the kernel's
    // launch would create it, and the first call, on Lambda, would distrust and replace a home
    // this process had not made, leaving the spare's Landlock rules on the removed directory.
    let homes_ready = principal::Ready::default();
    if let Some(first) = &pool_cfg.first_spare_for
        && let Err(e) = homes_ready.ensure(first, || mcp::make_home(settings, first))
    {
        tracing::warn!(error = %e.message, "cannot make the warm spare's directory");
    }
    let dirs_settings = settings.clone();
    let pool = Pool::new(
        pool_cfg,
        move |principal| mcp::principal_dirs(&dirs_settings, principal),
        stop,
    );
    let server_hardening = child::harden_server();
    tracing::info!(layers = ?server_hardening, "process hardening");
    let audit = Arc::new(audit::Audit::open(&settings.audit)?);
    let limits = Arc::new(
        limits::Limits::new(
            settings.requests_per_minute_per_principal,
            settings.max_calls_per_principal,
        )
        .with_refusals(settings.unauthenticated_per_minute_per_address.unwrap_or(0)),
    );
    let auth = Arc::new(auth::Authenticator::new(
        &settings.auth,
        Arc::clone(&audit),
        Arc::clone(&limits),
    )?);
    if settings.auth.insecure_no_auth {
        tracing::warn!(
            "--insecure-no-auth: requests without credentials are served as the shared principal `local`; anyone who reaches this server can run code"
        );
    }
    let sandbox_layers = settings.sandbox.probe();
    for layer in &sandbox_layers {
        if layer.applied {
            tracing::info!(layer = %layer.name, detail = %layer.detail, "kernel sandbox: applied");
        } else {
            tracing::warn!(layer = %layer.name, reason = %layer.detail, "kernel sandbox: not applied");
        }
    }
    // The operator's directory is never handed to the kernels' uid (only directories the server
    // creates are); say so when that leaves kernels unable to use it.
    if settings.local_owns_working_dir()
        && let Some(ids) = settings.sandbox.ids
        && !child::user::may_use(&settings.working_dir, ids)
    {
        tracing::warn!(
            working_dir = %settings.working_dir.display(),
            uid = ids.uid,
            "kernels run as uid {} and cannot read or write the working directory (the server does not change its owner); give that uid access (e.g. chown or chmod it), or pass --kernel-user",
            ids.uid
        );
    }
    let app = Arc::new(App {
        settings: settings.clone(),
        pool,
        server_hardening,
        sandbox_layers,
        install_locks: Default::default(),
        auth,
        audit,
        tenant: Default::default(),
        limits,
        homes_ready,
        workspace: settings
            .workspace
            .clone()
            .map(|w| Arc::new(workspace::Workspace::new(w))),
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
    // The peer address keys the limit on refused requests (`limits::Refusals`).
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful)
    .await
    .map_err(Error::Serve);
    stop.cancel();
    app.pool.shutdown().await;
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
    let handler = mcp::JupyterMcp::new(Arc::clone(&app));
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
    app.pool.shutdown().await;
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
