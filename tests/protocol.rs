//! The MCP protocol surface at `/mcp`: both eras on one stateless endpoint, the spec's answer to
//! each kind of bad request, and a golden `tools/list`.
//!
//! Both eras share the endpoint: the stateless `2026-07-28` (`server/discover`, `_meta` and
//! `Mcp-*` headers on every request) and the `initialize`-based `2025-11-25`, `2025-06-18` and
//! `2025-03-26`. No test opens an MCP session: the server never mints one (DESIGN.md, Lambda).
//! Every bad-request test asserts the exact error the spec names, then that the same server still
//! runs `1+1`, so a rejected request can never take the endpoint down.
//!
//! The golden test pins `tools/list` in `tests/fixtures/tools_list.json`; run it with
//! `UPDATE_GOLDEN=1` to rewrite the fixture, and review the diff like any schema change.

use std::path::PathBuf;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::*;

/// The stateless protocol revision: no `initialize`, per-request `_meta` and headers.
const MODERN: &str = "2026-07-28";

/// The `initialize`-based revisions the server must keep serving.
const LEGACY: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// JSON-RPC 2.0 error codes, and the MCP ones used here.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const HEADER_MISMATCH: i64 = -32020;
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// The golden `tools/list`, relative to the crate root.
const GOLDEN_TOOLS_LIST: &str = "tests/fixtures/tools_list.json";

/// Set to `1` to rewrite the golden fixtures instead of comparing against them.
const UPDATE_GOLDEN_ENV: &str = "UPDATE_GOLDEN";

// ---------------------------------------------------------------------------------------------
// Helpers local to this module: full control over method, headers and body, and the reply's
// headers, which `common::Server::post_raw` does not expose.
// ---------------------------------------------------------------------------------------------

/// One HTTP answer from `/mcp`.
struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    /// The body as JSON: a JSON body as is, or the last JSON-RPC message of an SSE body.
    fn json(&self) -> Value {
        parse_body(&self.text)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} {:?}: {}",
            self.status,
            self.header("content-type"),
            self.text
        )
    }
}

/// Sends one request. `content-type: application/json` and the `accept` header the transport
/// requires are added unless `headers` names them; no `MCP-Protocol-Version` is added.
async fn send(
    server: &Server,
    method: Method,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> Reply {
    let named = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut req = reqwest::Client::new().request(method, &server.url);
    if !named("content-type") {
        req = req.header("content-type", "application/json");
    }
    if !named("accept") {
        req = req.header("accept", "application/json, text/event-stream");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        headers,
        text,
    }
}

async fn post(server: &Server, body: impl Into<reqwest::Body>, headers: &[(&str, &str)]) -> Reply {
    send(server, Method::POST, body, headers).await
}

/// A JSON-RPC request (id 1) under a legacy revision, named by `MCP-Protocol-Version`.
async fn post_legacy(server: &Server, version: &str, method: &str, params: Value) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    post(
        server,
        body.to_string(),
        &[("mcp-protocol-version", version)],
    )
    .await
}

/// The `_meta` every `2026-07-28` request carries instead of an `initialize` handshake.
fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "protocol-tests", "version": "0.0.0"},
    })
}

/// A well-formed `2026-07-28` request (id 1): `_meta` in the params, and the
/// `MCP-Protocol-Version`, `Mcp-Method` and (for `tools/call`) `Mcp-Name` headers.
async fn post_modern(server: &Server, method: &str, mut params: Value) -> Reply {
    params["_meta"] = modern_meta();
    let name = params["name"].as_str().unwrap_or_default().to_string();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut headers = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    if method == "tools/call" {
        headers.push(("mcp-name", name.as_str()));
    }
    post(server, body.to_string(), &headers).await
}

/// `initialize` under `version`, as a legacy client sends it.
async fn initialize(server: &Server, version: &str) -> Reply {
    let params = json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "protocol-tests", "version": "0.0.0"},
    });
    post_legacy(server, version, "initialize", params).await
}

/// Asserts a JSON-RPC error object with `code` answering request `id` (`Null` for none).
fn assert_jsonrpc_error(reply: &Reply, code: i64, id: Value) {
    let v = reply.json();
    assert_eq!(v["jsonrpc"], "2.0", "not a JSON-RPC message: {reply}");
    assert_eq!(
        v["error"]["code"], code,
        "wrong or missing JSON-RPC error: {reply}"
    );
    assert!(
        v["error"]["message"].is_string(),
        "error without a message: {reply}"
    );
    assert_eq!(v["id"], id, "error answers the wrong id: {reply}");
    assert!(v.get("result").is_none(), "an error and a result: {reply}");
}

/// The server still runs code after whatever the test threw at it.
async fn assert_still_serves(server: &Server) {
    let r = server.exec("1+1").await;
    assert_eq!(status(&r), "ok", "server no longer runs code: {r}");
    assert_eq!(text(&r), "2", "{r}");
}

/// A `tools/call` result that reports a tool execution error (`isError: true`) with a message.
fn assert_tool_execution_error(reply: &Reply, mentions: &str) {
    assert_eq!(reply.status, 200, "{reply}");
    let v = reply.json();
    assert!(
        v.get("error").is_none(),
        "a protocol error, not a tool execution error: {reply}"
    );
    let result = &v["result"];
    assert!(is_error(result), "isError is not true: {reply}");
    let message = text(result);
    assert!(
        message.contains(mentions),
        "message does not name `{mentions}`: {reply}"
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed requests: JSON-RPC 2.0 section 5.1 and the Streamable HTTP transport.
// ---------------------------------------------------------------------------------------------

/// JSON-RPC 2.0: invalid JSON gets a Response with `-32700 Parse error` and `id: null`; the
/// transport answers input it cannot accept with an HTTP error status (400).
#[tokio::test]
async fn malformed_json_is_a_parse_error() {
    let server = Server::start();
    let reply = post(
        &server,
        r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/list""#,
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{reply}");
    assert_jsonrpc_error(&reply, PARSE_ERROR, Value::Null);
    assert_still_serves(&server).await;
}

/// JSON-RPC 2.0: valid JSON that is not a Request object gets `-32600 Invalid Request`.
#[tokio::test]
async fn json_that_is_not_jsonrpc_is_an_invalid_request() {
    let server = Server::start();
    let reply = post(&server, r#"{"hello": "world"}"#, &[]).await;
    assert_eq!(reply.status, 400, "{reply}");
    assert_jsonrpc_error(&reply, INVALID_REQUEST, Value::Null);
    assert_still_serves(&server).await;
}

/// An unknown method under a legacy revision: `-32601 Method not found`, answering its id.
#[tokio::test]
async fn an_unknown_method_is_method_not_found() {
    let server = Server::start();
    let reply = post_legacy(&server, "2025-11-25", "kernels/explode", json!({})).await;
    assert_jsonrpc_error(&reply, METHOD_NOT_FOUND, json!(1));
    assert_still_serves(&server).await;
}

/// 2026-07-28 transport: an unimplemented method MUST get `404 Not Found` and `-32601`.
#[tokio::test]
async fn an_unknown_method_under_2026_07_28_is_404_method_not_found() {
    let server = Server::start();
    let reply = post_modern(&server, "kernels/explode", json!({})).await;
    assert_eq!(reply.status, 404, "{reply}");
    assert_jsonrpc_error(&reply, METHOD_NOT_FOUND, json!(1));
    assert_still_serves(&server).await;
}

/// 2025-11-25 tools: an unknown tool is a protocol error, `-32602` (the spec's own example).
#[tokio::test]
async fn an_unknown_tool_is_invalid_params() {
    let server = Server::start();
    let params = json!({"name": "no_such_tool", "arguments": {}});
    let reply = post_legacy(&server, "2025-11-25", "tools/call", params).await;
    assert_jsonrpc_error(&reply, INVALID_PARAMS, json!(1));
    assert_still_serves(&server).await;
}

/// The same under 2026-07-28, with the headers a modern client sends.
#[tokio::test]
async fn an_unknown_tool_under_2026_07_28_is_invalid_params() {
    let server = Server::start();
    let reply = post_modern(
        &server,
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    )
    .await;
    assert_jsonrpc_error(&reply, INVALID_PARAMS, json!(1));
    assert_still_serves(&server).await;
}

/// 2025-11-25 tools (SEP-1303): arguments that fail the tool's input schema are a tool
/// execution error (`isError: true`) the model can read and correct, not a protocol error.
#[tokio::test]
async fn a_missing_argument_is_a_tool_execution_error() {
    let server = Server::start();
    let params = json!({"name": "execute_code", "arguments": {"kernel": "default"}});
    let reply = post_legacy(&server, "2025-11-25", "tools/call", params).await;
    assert_tool_execution_error(&reply, "code");
    assert_still_serves(&server).await;
}

#[tokio::test]
async fn a_mistyped_argument_is_a_tool_execution_error() {
    let server = Server::start();
    let params = json!({"name": "execute_code", "arguments": {"code": 42}});
    let reply = post_legacy(&server, "2025-11-25", "tools/call", params).await;
    assert_tool_execution_error(&reply, "42");
    assert_still_serves(&server).await;
}

#[tokio::test]
async fn an_unknown_argument_is_a_tool_execution_error() {
    let server = Server::start();
    let params = json!({"name": "execute_code", "arguments": {"code": "1", "cod": "2"}});
    let reply = post_legacy(&server, "2025-11-25", "tools/call", params).await;
    assert_tool_execution_error(&reply, "cod");
    assert_still_serves(&server).await;
}

/// 2025-11-25 tools: a request that fails the `CallToolRequest` schema is a protocol error;
/// `tools/call` is a known method, so it is `-32602 Invalid params`, not `-32601`.
#[tokio::test]
async fn tools_call_without_a_name_is_invalid_params() {
    let server = Server::start();
    let params = json!({"arguments": {"code": "1+1"}});
    let reply = post_legacy(&server, "2025-11-25", "tools/call", params).await;
    assert_jsonrpc_error(&reply, INVALID_PARAMS, json!(1));
    assert_still_serves(&server).await;
}

/// `CallToolRequest.params.arguments` is an object; a string fails the request schema.
#[tokio::test]
async fn tools_call_with_non_object_arguments_is_invalid_params() {
    let server = Server::start();
    let params = json!({"name": "execute_code", "arguments": "1+1"});
    let reply = post_legacy(&server, "2025-11-25", "tools/call", params).await;
    assert_jsonrpc_error(&reply, INVALID_PARAMS, json!(1));
    assert_still_serves(&server).await;
}

/// Bodies over the 4 MiB cap get `413 Payload Too Large` before any JSON parsing.
#[tokio::test]
async fn a_10_mb_body_gets_413() {
    let server = Server::start();
    let code = format!("s = '{}'", "a".repeat(10 * 1024 * 1024));
    let params = json!({"name": "execute_code", "arguments": {"code": code}});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
    let head = post_while_reading(&server, body.to_string().into_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
    assert_still_serves(&server).await;
}

/// POSTs `body` over a raw socket while reading the answer, and returns the response head.
///
/// The server answers 413 once 4 MiB have arrived and closes the connection; a client that only
/// reads after writing everything (reqwest) gets a broken pipe instead of the answer.
async fn post_while_reading(server: &Server, body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let authority = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for chunk in body.chunks(64 * 1024) {
            writer.write_all(chunk).await?;
        }
        writer.flush().await
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    sender.abort();
    String::from_utf8_lossy(&received).into_owned()
}

/// Transport: `Content-Type` other than `application/json` gets `415 Unsupported Media Type`.
#[tokio::test]
async fn a_wrong_content_type_gets_415() {
    let server = Server::start();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let reply = post(&server, body, &[("content-type", "text/plain")]).await;
    assert_eq!(reply.status, 415, "{reply}");
    assert_still_serves(&server).await;
}

/// 2025-11-25 transport: an invalid or unsupported `MCP-Protocol-Version` MUST get 400.
#[tokio::test]
async fn an_unsupported_protocol_version_header_gets_400() {
    let server = Server::start();
    let reply = post_legacy(&server, "2099-01-01", "tools/list", json!({})).await;
    assert_eq!(reply.status, 400, "{reply}");
    assert_still_serves(&server).await;
}

// ---------------------------------------------------------------------------------------------
// DNS-rebinding defences: Origin and Host.
// ---------------------------------------------------------------------------------------------

/// Transport: an `Origin` that is present and invalid MUST get `403 Forbidden`.
#[tokio::test]
async fn a_foreign_origin_gets_403() {
    let server = Server::start();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let reply = post(&server, body, &[("origin", "http://evil.example")]).await;
    assert_eq!(reply.status, 403, "{reply}");
    assert_still_serves(&server).await;
}

/// A name that merely starts with `localhost` is not loopback.
#[tokio::test]
async fn a_lookalike_localhost_origin_gets_403() {
    let server = Server::start();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let reply = post(
        &server,
        body,
        &[("origin", "http://localhost.evil.example:8080")],
    )
    .await;
    assert_eq!(reply.status, 403, "{reply}");
    assert_still_serves(&server).await;
}

/// A page served from loopback (any port) may call the local server.
#[tokio::test]
async fn a_loopback_origin_is_served() {
    let server = Server::start();
    let params = json!({"name": "execute_code", "arguments": {"code": "1+1"}});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
    let reply = post(
        &server,
        body.to_string(),
        &[("origin", "http://localhost:5173")],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(text(&reply.json()["result"]), "2", "{reply}");
}

/// A `Host` outside the allowed list (DNS rebinding) gets `403 Forbidden`.
#[tokio::test]
async fn a_foreign_host_header_gets_403() {
    let server = Server::start();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let reply = post(&server, body, &[("host", "evil.example")]).await;
    assert_eq!(reply.status, 403, "{reply}");
    assert_still_serves(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Legacy era: initialize-based revisions, served statelessly.
// ---------------------------------------------------------------------------------------------

/// `initialize` answers with the requested revision and the tools capability, and mints no
/// `Mcp-Session-Id`: nothing may depend on a session.
async fn assert_initialize_negotiates(version: &str) {
    let server = Server::start();
    let reply = initialize(&server, version).await;
    assert_eq!(reply.status, 200, "{reply}");
    let result = &reply.json()["result"];
    assert_eq!(result["protocolVersion"], version, "{reply}");
    assert!(
        result["capabilities"]["tools"].is_object(),
        "no tools capability: {reply}"
    );
    assert!(result["serverInfo"]["name"].is_string(), "{reply}");
    assert_eq!(
        reply.header("mcp-session-id"),
        None,
        "a session was minted: {reply}"
    );
    // The client's `initialized` notification is accepted, and nothing needs it afterwards.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let reply = post(&server, note, &[("mcp-protocol-version", version)]).await;
    assert_eq!(reply.status, 202, "{reply}");
    let call = json!({"name": "execute_code", "arguments": {"code": "1+1"}});
    let reply = post_legacy(&server, version, "tools/call", call).await;
    assert_eq!(text(&reply.json()["result"]), "2", "{reply}");
}

#[tokio::test]
async fn initialize_2025_11_25_negotiates_that_version() {
    assert_initialize_negotiates(LEGACY[0]).await;
}

#[tokio::test]
async fn initialize_2025_06_18_negotiates_that_version() {
    assert_initialize_negotiates(LEGACY[1]).await;
}

#[tokio::test]
async fn initialize_2025_03_26_negotiates_that_version() {
    assert_initialize_negotiates(LEGACY[2]).await;
}

/// `serverInfo` names this server, not the SDK it is built on.
#[tokio::test]
async fn initialize_names_this_server_in_server_info() {
    let server = Server::start();
    let reply = initialize(&server, LEGACY[0]).await;
    let info = &reply.json()["result"]["serverInfo"];
    assert_eq!(info["name"], "jupyter-mcp-server", "{reply}");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"), "{reply}");
}

/// Stateless: a `tools/call` with no `initialize` before it, for each legacy revision, and with
/// no `MCP-Protocol-Version` at all (which the transport reads as 2025-03-26).
#[tokio::test]
async fn tools_call_needs_no_initialize() {
    let server = Server::start();
    let call = json!({"name": "execute_code", "arguments": {"code": "1+1"}});
    for version in LEGACY {
        let reply = post_legacy(&server, version, "tools/call", call.clone()).await;
        assert_eq!(reply.status, 200, "{version}: {reply}");
        assert_eq!(text(&reply.json()["result"]), "2", "{version}: {reply}");
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call});
    let reply = post(&server, body.to_string(), &[]).await;
    assert_eq!(
        text(&reply.json()["result"]),
        "2",
        "no version header: {reply}"
    );
}

/// JSON responses are on by default: a plain tool call answers `application/json`.
#[tokio::test]
async fn a_tool_call_answers_with_a_json_body() {
    let server = Server::start();
    let call = json!({"name": "execute_code", "arguments": {"code": "1+1"}});
    let reply = post_legacy(&server, LEGACY[0], "tools/call", call).await;
    assert_eq!(reply.status, 200, "{reply}");
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "{reply}");
    assert!(
        serde_json::from_str::<Value>(&reply.text).is_ok(),
        "{reply}"
    );
}

/// A client that still holds a session id (from another server, or another Lambda instance)
/// is served as if it had none.
#[tokio::test]
async fn a_stale_session_id_is_ignored() {
    let server = Server::start();
    let call = json!({"name": "execute_code", "arguments": {"code": "1+1"}});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call});
    let headers = [
        ("mcp-protocol-version", LEGACY[0]),
        ("mcp-session-id", "stale-0123"),
    ];
    let reply = post(&server, body.to_string(), &headers).await;
    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(text(&reply.json()["result"]), "2", "{reply}");
    assert_eq!(
        reply.header("mcp-session-id"),
        None,
        "a session id was echoed: {reply}"
    );
}

/// Transport: an accepted notification gets `202 Accepted` with no body.
#[tokio::test]
async fn a_notification_gets_202_with_no_body() {
    let server = Server::start();
    let note = json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 99, "reason": "test"},
    });
    let reply = post(
        &server,
        note.to_string(),
        &[("mcp-protocol-version", LEGACY[0])],
    )
    .await;
    assert_eq!(reply.status, 202, "{reply}");
    assert!(reply.text.is_empty(), "{reply}");
    assert_still_serves(&server).await;
}

/// Transport: a server without a standalone SSE stream MUST answer GET with `405`.
#[tokio::test]
async fn get_gets_405() {
    let server = Server::start();
    let reply = send(&server, Method::GET, "", &[("accept", "text/event-stream")]).await;
    assert_eq!(reply.status, 405, "{reply}");
    let allow = reply.header("allow").unwrap_or_default();
    assert!(allow.contains("POST"), "Allow does not list POST: {reply}");
    assert_still_serves(&server).await;
}

/// There is no session to terminate; DELETE MAY get `405` (2025-11-25) and SHOULD (2026-07-28).
#[tokio::test]
async fn delete_gets_405() {
    let server = Server::start();
    let reply = send(
        &server,
        Method::DELETE,
        "",
        &[("mcp-session-id", "stale-0123")],
    )
    .await;
    assert_eq!(reply.status, 405, "{reply}");
    assert_still_serves(&server).await;
}

/// 2025-11-25 (and 2025-06-18) removed batching: the body MUST be a single JSON-RPC message.
/// An array is input the server cannot accept: an HTTP error status (400) and, per JSON-RPC,
/// `-32600 Invalid Request` with `id: null`.
#[tokio::test]
async fn a_batch_under_2025_11_25_is_an_invalid_request() {
    let server = Server::start();
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
    ]);
    let reply = post(
        &server,
        batch.to_string(),
        &[("mcp-protocol-version", LEGACY[0])],
    )
    .await;
    assert_eq!(reply.status, 400, "{reply}");
    assert_jsonrpc_error(&reply, INVALID_REQUEST, Value::Null);
    assert_still_serves(&server).await;
}

/// 2025-03-26 basic: implementations MUST support receiving JSON-RPC batches; the answer is
/// one response per request (a JSON array, or each on the SSE stream).
#[tokio::test]
async fn a_batch_under_2025_03_26_is_answered_per_request() {
    let server = Server::start();
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
    ]);
    let reply = post(
        &server,
        batch.to_string(),
        &[("mcp-protocol-version", LEGACY[2])],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply}");
    let responses: Vec<Value> = match serde_json::from_str::<Value>(&reply.text) {
        Ok(Value::Array(items)) => items,
        _ => reply
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .collect(),
    };
    let by_id = |id: i64| responses.iter().find(|r| r["id"] == id);
    assert!(
        by_id(1).is_some_and(|r| r["result"]["tools"].is_array()),
        "{reply}"
    );
    assert!(by_id(2).is_some_and(|r| r["result"].is_object()), "{reply}");
    assert_still_serves(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Modern era: 2026-07-28, stateless by definition.
// ---------------------------------------------------------------------------------------------

/// `server/discover` lists every revision served and the tools capability.
#[tokio::test]
async fn server_discover_under_2026_07_28_lists_versions_and_tools() {
    let server = Server::start();
    let reply = post_modern(&server, "server/discover", json!({})).await;
    assert_eq!(reply.status, 200, "{reply}");
    let result = &reply.json()["result"];
    let versions = result["supportedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for version in std::iter::once(MODERN).chain(LEGACY) {
        assert!(
            versions.contains(&json!(version)),
            "{version} missing: {reply}"
        );
    }
    assert!(
        result["capabilities"]["tools"].is_object(),
        "no tools capability: {reply}"
    );
    assert_eq!(reply.header("mcp-session-id"), None, "{reply}");
}

/// A 2026-07-28 `tools/call` with no discover, no initialize and no session runs code.
#[tokio::test]
async fn execute_code_under_2026_07_28_needs_no_session() {
    let server = Server::start();
    let call = json!({"name": "execute_code", "arguments": {"code": "1+1"}});
    let reply = post_modern(&server, "tools/call", call).await;
    assert_eq!(reply.status, 200, "{reply}");
    let result = &reply.json()["result"];
    assert_eq!(text(result), "2", "{reply}");
    assert_eq!(status(result), "ok", "{reply}");
    assert_eq!(reply.header("mcp-session-id"), None, "{reply}");
}

#[tokio::test]
async fn tools_list_under_2026_07_28_matches_the_legacy_list() {
    let server = Server::start();
    let modern = post_modern(&server, "tools/list", json!({})).await;
    assert_eq!(modern.status, 200, "{modern}");
    let legacy = server.rpc("tools/list", json!({})).await;
    assert_eq!(modern.json()["result"]["tools"], legacy["result"]["tools"]);
}

/// Kernels are keyed by (principal, name), never by session or era: state set by a 2025-03-26
/// call is seen by a 2026-07-28 call.
#[tokio::test]
async fn kernel_state_is_shared_across_eras() {
    let server = Server::start();
    let set = json!({"name": "execute_code", "arguments": {"code": "x = 41"}});
    let reply = post_legacy(&server, LEGACY[2], "tools/call", set).await;
    assert_eq!(status(&reply.json()["result"]), "ok", "{reply}");
    let get = json!({"name": "execute_code", "arguments": {"code": "x + 1"}});
    let reply = post_modern(&server, "tools/call", get).await;
    assert_eq!(text(&reply.json()["result"]), "42", "{reply}");
}

/// A `2026-07-28` request whose `Mcp-*` headers or versions do not add up: its `_meta` names
/// `meta_version`, exactly `headers` are sent, and the answer must be `400` with `code`.
struct BadHeaders<'a> {
    method: &'a str,
    params: Value,
    meta_version: &'a str,
    headers: &'a [(&'a str, &'a str)],
    code: i64,
}

async fn bad_headers(case: &str, c: BadHeaders<'_>) {
    let server = Server::start();
    let mut params = c.params;
    params["_meta"] = modern_meta();
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(c.meta_version);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": c.method, "params": params});
    let reply = post(&server, body.to_string(), c.headers).await;
    assert_eq!(reply.status, 400, "{case}: {reply}");
    assert_jsonrpc_error(&reply, c.code, json!(1));
    if c.code == UNSUPPORTED_PROTOCOL_VERSION {
        let supported = reply.json()["error"]["data"]["supported"].clone();
        assert!(
            supported
                .as_array()
                .is_some_and(|s| s.contains(&json!(MODERN))),
            "{case}: {reply}"
        );
    }
    assert_still_serves(&server).await;
}

cases!(bad_headers {
    /// 2026-07-28 transport: a missing required standard header (`Mcp-Name` on `tools/call`)
    /// MUST get `400 Bad Request` with `-32020 HeaderMismatch`.
    a_2026_07_28_tools_call_without_mcp_name_gets_header_mismatch: BadHeaders {
        method: "tools/call",
        params: json!({"name": "execute_code", "arguments": {"code": "1+1"}}),
        meta_version: MODERN,
        headers: &[("mcp-protocol-version", MODERN), ("mcp-method", "tools/call")],
        code: HEADER_MISMATCH,
    };
    /// 2026-07-28 transport: `Mcp-Name` that disagrees with the body MUST get `400` / `-32020`
    /// (a router could otherwise send one tool's call past a policy written for another).
    a_2026_07_28_mcp_name_that_disagrees_with_the_body_gets_header_mismatch: BadHeaders {
        method: "tools/call",
        params: json!({"name": "execute_code", "arguments": {"code": "1+1"}}),
        meta_version: MODERN,
        headers: &[
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_kernel_status"),
        ],
        code: HEADER_MISMATCH,
    };
    /// 2026-07-28 transport: `MCP-Protocol-Version` MUST match `_meta`; otherwise `400` /
    /// `-32020`.
    a_2026_07_28_version_header_that_disagrees_with_meta_gets_header_mismatch: BadHeaders {
        method: "tools/list",
        params: json!({}),
        meta_version: MODERN,
        headers: &[("mcp-protocol-version", LEGACY[0]), ("mcp-method", "tools/list")],
        code: HEADER_MISMATCH,
    };
    /// 2026-07-28: a version the server does not implement MUST get `400` and an
    /// `UnsupportedProtocolVersionError` listing the supported versions.
    an_unknown_modern_version_gets_unsupported_protocol_version: BadHeaders {
        method: "tools/list",
        params: json!({}),
        meta_version: "2099-01-01",
        headers: &[("mcp-protocol-version", "2099-01-01"), ("mcp-method", "tools/list")],
        code: UNSUPPORTED_PROTOCOL_VERSION,
    };
});

// ---------------------------------------------------------------------------------------------
// Golden tools/list.
// ---------------------------------------------------------------------------------------------

/// The whole `tools/list` (names, descriptions, inputSchema, outputSchema, annotations), sorted
/// by name, must equal the fixture. `UPDATE_GOLDEN=1` rewrites it; review the diff.
#[tokio::test]
async fn tools_list_matches_the_golden_fixture() {
    let server = Server::start();
    let resp = server.rpc("tools/list", json!({})).await;
    let mut tools = resp["result"]["tools"]
        .as_array()
        .cloned()
        .expect("a tools array");
    tools.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let actual = json!({ "tools": tools });
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(GOLDEN_TOOLS_LIST);

    if std::env::var(UPDATE_GOLDEN_ENV).is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let pretty = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        std::fs::write(&path, pretty).unwrap();
        return;
    }

    let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nhint: run with {UPDATE_GOLDEN_ENV}=1 to create it",
            path.display()
        )
    });
    let expected: Value = serde_json::from_str(&stored).expect("the fixture is JSON");
    if let Some(at) = first_difference(&expected, &actual, String::new()) {
        panic!(
            "tools/list differs from {GOLDEN_TOOLS_LIST} at {at}\n  fixture: {}\n  server:  {}\n\
             hint: if the change is intended, rerun with {UPDATE_GOLDEN_ENV}=1 and commit the diff",
            pointer(&expected, &at),
            pointer(&actual, &at),
        );
    }
}

/// Every tool declares an output schema and annotations (STYLE.md rule 8).
#[tokio::test]
async fn every_tool_has_an_output_schema_and_annotations() {
    let server = Server::start();
    let resp = server.rpc("tools/list", json!({})).await;
    let tools = resp["result"]["tools"]
        .as_array()
        .cloned()
        .expect("a tools array");
    assert!(!tools.is_empty());
    for tool in &tools {
        let name = &tool["name"];
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}: {tool}");
        assert_eq!(
            tool["outputSchema"]["type"], "object",
            "{name} has no outputSchema"
        );
        assert!(tool["annotations"].is_object(), "{name} has no annotations");
        assert!(
            tool["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
}

/// The JSON pointer of the first place where `a` and `b` differ, if any.
fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, here),
                    _ => Some(here),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            let common = x.iter().zip(y).enumerate();
            let inner = common
                .into_iter()
                .find_map(|(i, (p, q))| first_difference(p, q, format!("{at}/{i}")));
            inner.or_else(|| (x.len() != y.len()).then(|| format!("{at}/{}", x.len().min(y.len()))))
        }
        _ => (a != b).then_some(at),
    }
}

/// The value at `at`, shortened for a failure message.
fn pointer(v: &Value, at: &str) -> String {
    let s = v
        .pointer(at)
        .map_or_else(|| "(absent)".to_string(), Value::to_string);
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}
