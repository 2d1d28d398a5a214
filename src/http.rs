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

use crate::app::App;
use crate::auth;
use crate::config::Settings;
use crate::mcp::JupyterMcp;
use crate::mcp::cancel::{CallRegistry, Cancelled};

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
    let handler = JupyterMcp::new(Arc::clone(&app.service));
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let front = Front {
        service: service.clone(),
        calls: Arc::new(CallRegistry::default()),
    };
    let metadata = axum::routing::get(auth::resource_metadata).with_state(Arc::clone(&app.auth));
    axum::Router::new()
        .nest_service(auth::MCP_PATH, service)
        .route(auth::RESOURCE_METADATA_PATH, metadata.clone())
        .route(
            &format!("{}{}", auth::RESOURCE_METADATA_PATH, auth::MCP_PATH),
            metadata,
        )
        .layer(axum::middleware::from_fn_with_state(
            front,
            reject_invalid_jsonrpc,
        ))
        // Outside the JSON-RPC checks, so it runs before them: a request without valid
        // credentials is answered 401 before its body is even read.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app.auth),
            auth::middleware,
        ))
        // Outermost of all: every request, refused or not, gets its id (`x-request-id`).
        .layer(axum::middleware::from_fn(crate::request_id::middleware))
}

type McpService = StreamableHttpService<JupyterMcp, NeverSessionManager>;

/// What the JSON-RPC checks in front of rmcp need: the service (for batches) and the running
/// calls a `notifications/cancelled` may name (see `mcp/cancel.rs`).
#[derive(Clone)]
struct Front {
    service: McpService,
    calls: Arc<CallRegistry>,
}

/// The only protocol revision whose clients may send JSON-RPC batches.
const BATCH_PROTOCOL_VERSION: &str = "2025-03-26";

/// Most messages one batch may hold. Without a cap a small body fans out into as many calls
/// (a 37 KB batch of 500 `tools/list` answered 12.7 MB); 32 is far above what a client batches.
pub const MAX_BATCH_MESSAGES: usize = 32;

/// Once a batch's answers add up to this many bytes, its remaining requests are not run: each
/// gets an error saying to send it again in another POST. One answer is bounded by the output
/// cap, so a whole batch answer stays under this plus one answer.
pub const MAX_BATCH_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Largest answer read back from one message of a batch (a tool result with images is under
/// 1 MiB with the default caps).
const MAX_BATCH_ITEM_BYTES: usize = 16 * 1024 * 1024;

/// Answers malformed POST bodies the way JSON-RPC and the MCP transport spec ask (HTTP 400 with
/// -32700 for bad JSON, -32600 for what is not one JSON-RPC message, -32602 for a `tools/call`
/// without a tool name or with non-object arguments) before rmcp sees them; rmcp would answer
/// 415 or "method not found". rmcp has no batches: under 2025-03-26 (which requires them) each
/// message of a batch is sent through the service in turn and the answers are returned as one
/// array; later revisions removed batches, so they get -32600 there.
///
/// It also registers each `tools/call` so that a later `notifications/cancelled` in another POST
/// can cancel it, and applies such notifications (rmcp's stateless service ignores them).
async fn reject_invalid_jsonrpc(
    axum::extract::State(Front { service, calls }): axum::extract::State<Front>,
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
    let message = match check_jsonrpc(&bytes) {
        Ok(message) => message,
        Err((status, id, code, message)) => {
            let body = serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": code, "message": message},
            });
            return (status, axum::Json(body)).into_response();
        }
    };
    let mut parts = parts;
    track_cancellation(&calls, &mut parts, &message);
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// Registers a `tools/call` (its cancel token goes into the request's extensions), or applies a
/// `notifications/cancelled` to the caller's running call it names.
fn track_cancellation(
    calls: &CallRegistry,
    parts: &mut axum::http::request::Parts,
    message: &serde_json::Value,
) {
    match message.get("method").and_then(serde_json::Value::as_str) {
        Some("tools/call") => {
            if let Some(id) = message.get("id") {
                let cancel = calls.register(&parts.headers, id);
                parts.extensions.insert(cancel);
            }
        }
        Some("notifications/cancelled") => {
            let Some(id) = message.pointer("/params/requestId") else {
                return;
            };
            match calls.cancel(&parts.headers, id) {
                Cancelled::One => {
                    tracing::info!(request_id = %id, "tool call cancelled by the client")
                }
                Cancelled::NoSuchCall => {
                    tracing::debug!(request_id = %id, "cancellation of no running call")
                }
                Cancelled::Ambiguous(n) => tracing::warn!(
                    request_id = %id,
                    running = n,
                    "cancellation ignored: several running calls of this caller have this id"
                ),
            }
        }
        _ => {}
    }
}

type Rejection = (axum::http::StatusCode, serde_json::Value, i32, String);

/// The message, if it is one well-formed JSON-RPC message.
fn check_jsonrpc(bytes: &[u8]) -> Result<serde_json::Value, Rejection> {
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
    Ok(Value::Object(msg))
}

/// Answers a 2025-03-26 batch: each message goes through the service as its own POST, and the
/// responses (notifications have none) come back as one JSON array.
async fn run_batch(
    service: McpService,
    parts: &axum::http::request::Parts,
    batch: Vec<serde_json::Value>,
) -> axum::response::Response {
    use tower::ServiceExt;
    if batch.len() > MAX_BATCH_MESSAGES {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32600,
                "message": format!(
                    "Invalid Request: a batch of {} messages is over the limit of {MAX_BATCH_MESSAGES}; send at most {MAX_BATCH_MESSAGES} per POST",
                    batch.len()
                ),
            },
        });
        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let mut answers = Vec::new();
    let mut answer_bytes = 0usize;
    for message in batch {
        let body = serde_json::to_vec(&message).unwrap_or_default();
        if let Err((_, id, code, text)) = check_jsonrpc(&body) {
            answers.push(serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": text}}));
            continue;
        }
        if answer_bytes >= MAX_BATCH_ANSWER_BYTES {
            // Notifications need no answer; a request is refused unrun, so it is safe to resend.
            if let Some(id) = message.get("id") {
                answers.push(serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": -32603,
                    "message": format!("not run: this batch's answers reached {MAX_BATCH_ANSWER_BYTES} bytes; send this request again in another POST"),
                }}));
            }
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
        let bytes = axum::body::to_bytes(
            axum::body::Body::new(response.into_body()),
            MAX_BATCH_ITEM_BYTES,
        )
        .await
        .unwrap_or_default();
        answer_bytes += bytes.len();
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

/// Properties of the body classification (issue 12): any bytes get an answer, never a panic;
/// what is not JSON is -32700; JSON that is not one message is -32600; a well-formed request
/// passes.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn code(bytes: &[u8]) -> Option<i32> {
        check_jsonrpc(bytes).err().map(|(_, _, code, _)| code)
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_classified(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let parsed = serde_json::from_slice::<Value>(&bytes);
            let got = code(&bytes);
            match parsed {
                Err(_) => prop_assert_eq!(got, Some(-32700)),
                Ok(Value::Object(_)) => {}
                Ok(_) => prop_assert_eq!(got, Some(-32600)),
            }
        }

        #[test]
        fn well_formed_requests_pass(
            method in "[a-z/]{1,30}",
            id in prop_oneof![any::<i64>().prop_map(Value::from), "[a-z0-9]{0,10}".prop_map(Value::from)],
            tool in "[a-z_]{1,20}",
        ) {
            let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}});
            prop_assert_eq!(code(request.to_string().as_bytes()), None);
            let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": tool, "arguments": {}}});
            prop_assert_eq!(code(call.to_string().as_bytes()), None);
        }

        #[test]
        fn malformed_envelopes_are_invalid_requests(
            version in prop_oneof![Just(json!("1.0")), Just(json!(2)), Just(Value::Null)],
            method in prop_oneof![Just(json!(1)), Just(json!(["tools/list"])), Just(Value::Null)],
        ) {
            let wrong_version = json!({"jsonrpc": version, "id": 1, "method": "ping"});
            prop_assert_eq!(code(wrong_version.to_string().as_bytes()), Some(-32600));
            let wrong_method = json!({"jsonrpc": "2.0", "id": 1, "method": method});
            prop_assert_eq!(code(wrong_method.to_string().as_bytes()), Some(-32600));
        }
    }
}
