//! Holes under load, bad input and faults (issue 12): each test first shows the hole on the real
//! server, then that the server still serves normally afterwards.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// The revision whose clients may batch, and also what a request without a version header gets.
const BATCH_ERA: &str = "2025-03-26";

/// The server's caps on a batch (src/http.rs).
const MAX_BATCH_MESSAGES: usize = 32;
const MAX_BATCH_ANSWER_BYTES: usize = 4 * 1024 * 1024;

async fn post_batch(server: &Server, batch: &[Value]) -> (u16, String) {
    // Not `mcp_post`: it sets a later protocol version, which refuses batches.
    let resp = reqwest::Client::new()
        .post(&server.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", BATCH_ERA)
        .body(Value::Array(batch.to_vec()).to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn tools_list(id: usize) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

/// Bad input: a batch over the message cap is refused whole with -32600 naming the cap, and
/// none of its messages runs.
#[tokio::test]
async fn a_batch_over_the_message_cap_is_refused_whole() {
    let server = Server::start();
    let mut batch: Vec<Value> = (0..MAX_BATCH_MESSAGES + 1).map(tools_list).collect();
    batch[0] = json!({"jsonrpc": "2.0", "id": 0, "method": "tools/call",
        "params": {"name": "execute_code", "arguments": {"code": "ran = 1"}}});
    let (status, body) = post_batch(&server, &batch).await;
    assert_eq!(status, 400, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["error"]["code"], -32600, "{body}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("32"), "the cap is not named: {message}");
    // Nothing of the refused batch ran.
    let result = server.exec("'ran' in globals()").await;
    assert_eq!(text(&result), "False", "{result}");
}

/// A batch exactly at the cap is answered, one answer per request.
#[tokio::test]
async fn a_batch_at_the_message_cap_is_answered() {
    let server = Server::start();
    let batch: Vec<Value> = (0..MAX_BATCH_MESSAGES).map(tools_list).collect();
    let (status, body) = post_batch(&server, &batch).await;
    assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(answers.len(), MAX_BATCH_MESSAGES);
    assert!(answers.iter().all(|a| a["result"]["tools"].is_array()));
}

/// A batch whose answers would add up past the byte cap: once the cap is reached the remaining
/// requests are answered with an error that says to resend them, and they never ran.
#[tokio::test]
async fn a_batch_stops_running_requests_once_its_answer_is_over_the_byte_cap() {
    let server = Server::start();
    server.exec("ran = []").await;
    // Each answer holds ~120 KB of text twice (content and structuredContent): the cap is
    // reached well before the 32nd.
    let batch: Vec<Value> = (0..MAX_BATCH_MESSAGES)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
                "name": "execute_code",
                "arguments": {"code": format!("ran.append({i}); print('x' * 120_000)")}}})
        })
        .collect();
    let (status, body) = post_batch(&server, &batch).await;
    assert_eq!(status, 200);
    assert!(
        body.len() < MAX_BATCH_ANSWER_BYTES + 1024 * 1024,
        "batch answer of {} bytes",
        body.len()
    );
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answers.len(),
        MAX_BATCH_MESSAGES,
        "every request is answered"
    );
    let ran: Vec<&Value> = answers.iter().filter(|a| a["result"].is_object()).collect();
    let refused: Vec<&Value> = answers.iter().filter(|a| a["error"].is_object()).collect();
    assert!(!ran.is_empty() && !refused.is_empty(), "{} ran", ran.len());
    for answer in &refused {
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("again"), "{message}");
    }
    let count = server.exec("len(ran)").await;
    assert_eq!(text(&count), ran.len().to_string(), "refused requests ran");
}

/// Many capped batches leave the server's memory near where it started (the original hole:
/// one 37 KB batch left it at 296 MB).
#[tokio::test]
async fn memory_used_by_batches_is_given_back() {
    let server = Server::start();
    // Warm up: the first tools/list builds caches that stay by design.
    let batch: Vec<Value> = (0..MAX_BATCH_MESSAGES).map(tools_list).collect();
    post_batch(&server, &batch).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_bytes(server.pid());
    for _ in 0..40 {
        let (status, _) = post_batch(&server, &batch).await;
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_bytes(server.pid());
    let grown = after.saturating_sub(before);
    assert!(
        grown < 24 * 1024 * 1024,
        "RSS grew by {} MiB over 40 batches ({} -> {} MiB)",
        grown / (1024 * 1024),
        before / (1024 * 1024),
        after / (1024 * 1024)
    );
    let result = server.exec("1+1").await;
    assert_eq!(text(&result), "2");
}

/// The runtime root (`/tmp/jmcp-*`) of a server, read from its kernels' command lines.
fn runtime_root_of(server_pid: u32) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        for kid in children_of(server_pid) {
            let cmdline = std::fs::read(format!("/proc/{kid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if let Some(conn) = args.iter().find(|a| a.ends_with("connection.json")) {
                // ROOT/<kernel id>/connection.json
                let path = std::path::Path::new(conn);
                return path.parent().unwrap().parent().unwrap().to_path_buf();
            }
        }
        assert!(std::time::Instant::now() < deadline, "no kernel started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fault: a server killed with SIGKILL cannot clean up; the next server to start removes the
/// runtime directory it left, and leaves a live server's alone.
#[tokio::test]
async fn a_killed_servers_runtime_directory_is_removed_by_the_next_server() {
    let mut killed = Server::start();
    let live = Server::start();
    killed.exec("1").await;
    live.exec("1").await;
    let killed_root = runtime_root_of(killed.pid());
    let live_root = runtime_root_of(live.pid());
    assert!(killed_root.is_dir() && live_root.is_dir());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    killed.stop();
    // SIGKILL leaves the directory behind; a server that another test starts meanwhile may
    // already have removed it, which is the behaviour under test too.

    let next = Server::start();
    let result = next.exec("1+1").await;
    assert_eq!(text(&result), "2");
    assert!(!killed_root.exists(), "{} was left", killed_root.display());
    assert!(live_root.is_dir(), "a live server's directory was removed");
    let result = live.exec("1+1").await;
    assert_eq!(text(&result), "2", "the live server stopped serving");
}

/// Fault: calls whose timeout expires while their kernel is still starting must not keep the
/// kernel's place under the limit (before, 8 such calls filled `--max-kernels 8` for good).
#[tokio::test]
async fn starts_abandoned_by_a_timeout_free_their_place() {
    let server = Server::start_with(&["--max-kernels", "3", "--idle-timeout", "0"], &[]);
    for i in 0..5 {
        let result = server
            .call(
                "execute_code",
                json!({"code": "1", "kernel": format!("abandoned{i}"), "timeout": 0.001}),
            )
            .await;
        assert_eq!(status(&result), "timeout", "{result}");
    }
    let result = server.exec_on("after", "40 + 2").await;
    assert_eq!(text(&result), "42", "{result}");
}

/// Fault: a call queued behind a running cell, when the kernel is restarted (or shut down)
/// meanwhile, does not silently run in the fresh kernel: it returns `cancelled` and says why.
#[tokio::test]
async fn a_call_queued_across_a_restart_is_cancelled_with_the_reason() {
    for (tool, reason) in [
        ("restart_kernel", "restart_kernel"),
        ("shutdown_kernel", "shutdown_kernel"),
    ] {
        let server = std::sync::Arc::new(Server::start());
        server.exec_on("q", "x = 1").await;
        let running = {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move { server.exec_on("q", "import time; time.sleep(5)").await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let queued = {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move { server.exec_on("q", "print(x)").await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stopped = server.call(tool, json!({"kernel": "q"})).await;
        assert!(!is_error(&stopped), "{tool}: {stopped}");
        let running = running.await.unwrap();
        assert_eq!(status(&running), "cancelled", "{tool}: {running}");
        let queued = queued.await.unwrap();
        assert_eq!(status(&queued), "cancelled", "{tool}: {queued}");
        let note = queued["structuredContent"]["note"].as_str().unwrap_or("");
        assert!(
            note.contains(reason) && note.contains("did not run"),
            "{tool}: {queued}"
        );
        // The kernel name works again afterwards.
        let after = server.exec_on("q", "'x' in globals()").await;
        assert_eq!(text(&after), "False", "{tool}: {after}");
    }
}
