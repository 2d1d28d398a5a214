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

pub use app::Error;

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
