//! Cancellation interrupts: a `notifications/cancelled` in another POST (how legacy-era HTTP
//! clients such as the TypeScript SDK cancel), a closed connection (JSON response) and a closed
//! SSE stream (the 2026-07-28 way) each interrupt the running cell; a queued call that is
//! cancelled never runs. "Interrupted" is read from the kernel, never from a clock: the cancelled
//! cell sets `finished = True` only if it runs to its end (30 s), and the next call prints it.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// A cell that touches `started` in the working directory, then runs for 30 s unless interrupted.
const LONG_CELL: &str = "import pathlib, time\nfinished = False\npathlib.Path('started').touch()\nfor _ in range(300):\n    time.sleep(0.1)\nfinished = True";

fn tools_call(id: Value, args: Value, meta: Option<Value>) -> String {
    let mut params = json!({"name": "execute_code", "arguments": args});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string()
}

async fn wait_for(path: &Path) {
    for _ in 0..600 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", path.display());
}

/// Sends the long cell on `kernel` as request `id` in its own task; returns once it runs.
async fn start_long_cell(
    server: &std::sync::Arc<Server>,
    kernel: &str,
    id: Value,
    meta: Option<Value>,
) -> tokio::task::JoinHandle<(u16, Value)> {
    // Warm the kernel first, so the call below starts the cell at once.
    assert_eq!(
        status(&server.exec_on(kernel, "finished = None").await),
        "ok"
    );
    let started = server.workdir.path().join("started");
    let _ = std::fs::remove_file(&started);
    let body = tools_call(id, json!({"code": LONG_CELL, "kernel": kernel}), meta);
    let s = std::sync::Arc::clone(server);
    let task = tokio::spawn(async move { s.post_raw(body, &[]).await });
    wait_for(&started).await;
    task
}

/// The next call on the kernel runs and finds the cancelled cell unfinished.
async fn assert_interrupted(server: &Server, kernel: &str) {
    let r = server.exec_on(kernel, "print(finished)").await;
    assert_eq!(status(&r), "ok", "{r}");
    assert_eq!(
        text(&r),
        "False\n",
        "the cancelled cell was not interrupted: {r}"
    );
}

async fn cancel(server: &Server, id: Value) {
    let body = json!({
        "jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": id, "reason": "the user gave up"}
    });
    let (code, _) = server.post_raw(body.to_string(), &[]).await;
    assert_eq!(code, 202);
}

#[tokio::test]
async fn notifications_cancelled_in_another_post_interrupts_the_cell() {
    let server = std::sync::Arc::new(Server::start());
    let call = start_long_cell(&server, "nc", json!(42), None).await;
    cancel(&server, json!(42)).await;
    let (code, reply) = call.await.unwrap();
    assert_eq!(code, 200, "{reply}");
    let result = &reply["result"];
    assert_eq!(status(result), "cancelled", "{reply}");
    assert!(text(result).contains("cancelled by the client"), "{reply}");
    assert_interrupted(&server, "nc").await;
}

#[tokio::test]
async fn a_cancel_naming_another_id_changes_nothing() {
    let server = std::sync::Arc::new(Server::start());
    let body = tools_call(
        json!(5),
        json!({"code": "import time\ntime.sleep(1)\nprint('done')", "kernel": "other-id"}),
        None,
    );
    let s = std::sync::Arc::clone(&server);
    let call = tokio::spawn(async move { s.post_raw(body, &[]).await });
    cancel(&server, json!(6)).await;
    cancel(&server, json!("5")).await;
    let (_, reply) = call.await.unwrap();
    assert_eq!(status(&reply["result"]), "ok", "{reply}");
    assert_eq!(text(&reply["result"]), "done\n", "{reply}");
}

#[tokio::test]
async fn a_cancel_from_other_credentials_changes_nothing() {
    let server = std::sync::Arc::new(Server::start());
    let body = tools_call(
        json!(8),
        json!({"code": "import time\ntime.sleep(1)\nprint('done')", "kernel": "creds"}),
        None,
    );
    let s = std::sync::Arc::clone(&server);
    let call = tokio::spawn(async move { s.post_raw(body, &[("x-api-key", "alice")]).await });
    let notice =
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 8}});
    server
        .post_raw(notice.to_string(), &[("x-api-key", "mallory")])
        .await;
    let (_, reply) = call.await.unwrap();
    assert_eq!(text(&reply["result"]), "done\n", "{reply}");
}

#[tokio::test]
async fn a_closed_connection_interrupts_the_cell() {
    let server = std::sync::Arc::new(Server::start());
    let call = start_long_cell(&server, "drop-json", json!(1), None).await;
    // Dropping the request future closes its connection (the response would have been JSON).
    call.abort();
    let _ = call.await;
    assert_interrupted(&server, "drop-json").await;
}

#[tokio::test]
async fn a_closed_sse_stream_interrupts_the_cell() {
    let server = std::sync::Arc::new(Server::start());
    // A progress token makes the response an SSE stream.
    let call = start_long_cell(
        &server,
        "drop-sse",
        json!(2),
        Some(json!({"progressToken": "p"})),
    )
    .await;
    call.abort();
    let _ = call.await;
    assert_interrupted(&server, "drop-sse").await;
}

#[tokio::test]
async fn a_cancelled_queued_call_never_runs() {
    let server = std::sync::Arc::new(Server::start());
    let running = start_long_cell(&server, "queue", json!(10), None).await;
    let marker = server.workdir.path().join("queued_ran");
    let body = tools_call(
        json!(11),
        json!({"code": "import pathlib\npathlib.Path('queued_ran').touch()", "kernel": "queue"}),
        None,
    );
    let s = std::sync::Arc::clone(&server);
    let queued = tokio::spawn(async move { s.post_raw(body, &[]).await });
    // The queued call is registered once its POST got through; retry the cancel until it lands.
    let mut reply = None;
    for _ in 0..100 {
        cancel(&server, json!(11)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if queued.is_finished() {
            reply = Some(queued.await.unwrap().1);
            break;
        }
    }
    let reply = reply.expect("the queued call was never cancelled");
    assert_eq!(status(&reply["result"]), "cancelled", "{reply}");
    assert!(text(&reply["result"]).contains("did not run"), "{reply}");
    cancel(&server, json!(10)).await;
    let (_, first) = running.await.unwrap();
    assert_eq!(status(&first["result"]), "cancelled", "{first}");
    assert_interrupted(&server, "queue").await;
    assert!(!marker.exists(), "the cancelled queued call ran");
}
