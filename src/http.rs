//! The HTTP front door: one axum `Router` serving MCP at `/mcp`.
//!
//! The router is a tower service, so the same value runs under `axum::serve` locally and under
//! `lambda_http` later. rmcp runs with no session manager: on Lambda no request is guaranteed to
//! reach the same instance, so nothing may depend on an MCP session.

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::mcp::{App, JupyterMcp};

/// Largest request body accepted (code and notebook cells); larger ones get 413.
pub const MAX_REQUEST_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Builds the router. `stop` ends open SSE streams on shutdown.
pub fn router(app: Arc<App>, settings: &Settings, stop: CancellationToken) -> axum::Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_allowed_hosts(settings.allowed_hosts.clone())
        // Browsers send Origin; only local pages may call a local server (DNS-rebinding defence).
        .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"])
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_REQUEST_BODY_BYTES)
        .with_cancellation_token(stop);
    let service = StreamableHttpService::new(
        move || Ok(JupyterMcp::new(Arc::clone(&app))),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    axum::Router::new().nest_service("/mcp", service)
}
