//! The HTTP front door: one axum `Router` serving MCP at `/mcp`.
//!
//! The router is a tower service, so the same value runs under `axum::serve` locally and under
//! `lambda_http` later. rmcp runs with no session manager: on Lambda no request is guaranteed to
//! reach the same instance, so nothing may depend on an MCP session.

use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;

use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::auth;
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
    // rmcp asks for a handler per request; build the tool router (schemas and all) once and
    // hand out clones.
    let handler = JupyterMcp::new(Arc::clone(&app));
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let metadata = axum::routing::get(auth::resource_metadata).with_state(Arc::clone(&app.auth));
    axum::Router::new()
        .nest_service("/mcp", service.clone())
        .route(auth::RESOURCE_METADATA_PATH, metadata.clone())
        .route(&format!("{}/mcp", auth::RESOURCE_METADATA_PATH), metadata)
        .layer(axum::middleware::from_fn_with_state(
            service,
            reject_invalid_jsonrpc,
        ))
        // Outermost, so it runs first: a request without valid credentials is answered 401
        // before its body is even read.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app.auth),
            auth::middleware,
        ))
}

type McpService = StreamableHttpService<JupyterMcp, NeverSessionManager>;

/// The only protocol revision whose clients may send JSON-RPC batches.
const BATCH_PROTOCOL_VERSION: &str = "2025-03-26";

/// Answers malformed POST bodies the way JSON-RPC and the MCP transport spec ask (HTTP 400 with
/// -32700 for bad JSON, -32600 for what is not one JSON-RPC message, -32602 for a `tools/call`
/// without a tool name or with non-object arguments) before rmcp sees them; rmcp would answer
/// 415 or "method not found". rmcp has no batches: under 2025-03-26 (which requires them) each
/// message of a batch is sent through the service in turn and the answers are returned as one
/// array; later revisions removed batches, so they get -32600 there.
async fn reject_invalid_jsonrpc(
    axum::extract::State(service): axum::extract::State<McpService>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_json = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if request.method() != axum::http::Method::POST || !is_json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES).await else {
        return (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_REQUEST_BODY_BYTES} bytes"),
        )
            .into_response();
    };
    let version = parts
        .headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(BATCH_PROTOCOL_VERSION);
    if version == BATCH_PROTOCOL_VERSION
        && let Ok(serde_json::Value::Array(batch)) = serde_json::from_slice(&bytes)
        && !batch.is_empty()
    {
        return run_batch(service, &parts, batch).await;
    }
    if let Err((status, id, code, message)) = check_jsonrpc(&bytes) {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code, "message": message},
        });
        return (status, axum::Json(body)).into_response();
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

type Rejection = (axum::http::StatusCode, serde_json::Value, i32, String);

fn check_jsonrpc(bytes: &[u8]) -> Result<(), Rejection> {
    use axum::http::StatusCode;
    use serde_json::Value;
    let invalid = |id: Value, message: &str| {
        Err((
            StatusCode::BAD_REQUEST,
            id,
            -32600,
            format!("Invalid Request: {message}"),
        ))
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32700,
            format!("Parse error: {e}"),
        )
    })?;
    let Value::Object(msg) = value else {
        return match value {
            Value::Array(_) => invalid(
                Value::Null,
                "JSON-RPC batches are not supported (MCP removed them in 2025-06-18); send one message per POST",
            ),
            _ => invalid(
                Value::Null,
                "the body must be one JSON-RPC message (an object)",
            ),
        };
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    if msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(id, "\"jsonrpc\": \"2.0\" is required");
    }
    let method = msg.get("method");
    if method.is_none() && !msg.contains_key("result") && !msg.contains_key("error") {
        return invalid(id, "a request needs a \"method\"");
    }
    if method.is_some_and(|m| !m.is_string()) {
        return invalid(id, "\"method\" must be a string");
    }
    if method.and_then(Value::as_str) == Some("tools/call") {
        let params = msg.get("params");
        let name_ok = params
            .and_then(|p| p.get("name"))
            .is_some_and(Value::is_string);
        let args_ok = params
            .and_then(|p| p.get("arguments"))
            .is_none_or(|a| a.is_object() || a.is_null());
        if !name_ok || !args_ok {
            let message = "Invalid params: tools/call needs params.name (a string) and, if given, params.arguments (an object)";
            return Err((StatusCode::OK, id, -32602, message.to_string()));
        }
    }
    Ok(())
}

/// Answers a 2025-03-26 batch: each message goes through the service as its own POST, and the
/// responses (notifications have none) come back as one JSON array.
async fn run_batch(
    service: McpService,
    parts: &axum::http::request::Parts,
    batch: Vec<serde_json::Value>,
) -> axum::response::Response {
    use tower::ServiceExt;
    let mut answers = Vec::new();
    for message in batch {
        let body = serde_json::to_vec(&message).unwrap_or_default();
        if let Err((_, id, code, text)) = check_jsonrpc(&body) {
            answers.push(serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": text}}));
            continue;
        }
        let mut request = axum::http::Request::builder()
            .method(axum::http::Method::POST)
            .uri(parts.uri.clone())
            .body(axum::body::Body::from(body));
        if let Ok(r) = request.as_mut() {
            *r.headers_mut() = parts.headers.clone();
            // The principal (and on Lambda the invocation context) travel with each message.
            *r.extensions_mut() = parts.extensions.clone();
            r.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
        }
        let Ok(request) = request else { continue };
        let Ok(response) = service.clone().oneshot(request).await;
        let bytes = axum::body::to_bytes(axum::body::Body::new(response.into_body()), usize::MAX)
            .await
            .unwrap_or_default();
        if let Some(answer) = last_jsonrpc_message(&bytes) {
            answers.push(answer);
        }
    }
    if answers.is_empty() {
        return axum::http::StatusCode::ACCEPTED.into_response();
    }
    axum::Json(serde_json::Value::Array(answers)).into_response()
}

/// The response in a JSON body, or the last response event of an SSE body.
fn last_jsonrpc_message(bytes: &[u8]) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return Some(v);
    }
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok())
        .rfind(|v| v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some()))
}
