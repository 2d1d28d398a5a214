//! Work that outlives its call: `running` with an execution id once `wait` has passed, then
//! get_execution, cancel_execution and list_executions, against the real binary and ipykernel.
//!
//! Bad input, each named below: an unknown id and another principal's id (`not_found`, the
//! same words), a `wait` out of range (`invalid_argument`), a second call on a busy kernel
//! (`busy`, naming the running execution), cancelling an execution that already ended (its
//! result, unchanged).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

/// Prints `line 0` .. `line {n-1}` every `every` seconds, then sets `done`.
fn ticking(n: u32, every: f64) -> String {
    format!(
        "import time\nfor i in range({n}):\n    print(f'line {{i}}', flush=True)\n    time.sleep({every})\ndone = {n}"
    )
}

fn execution_id(result: &Value) -> String {
    result["structuredContent"]["execution_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no execution_id: {result}"))
        .to_string()
}

/// Polls get_execution until the execution ended; returns the last report.
async fn poll_to_end(server: &Server, id: &str) -> Value {
    for _ in 0..60 {
        let r = server
            .call("get_execution", json!({"execution_id": id, "wait": 5}))
            .await;
        assert!(!is_error(&r), "{r}");
        if r["structuredContent"]["status"] != "running" {
            return r;
        }
    }
    panic!("execution {id} still running after 60 polls");
}

#[tokio::test]
async fn a_long_cell_answers_running_within_its_wait_and_is_polled_to_the_end() {
    let server = Server::start();
    server.exec("1").await;
    let started = Instant::now();
    let r = server
        .call("execute_code", json!({"code": ticking(8, 0.5), "wait": 1}))
        .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert_eq!(status(&r), "running", "{r}");
    assert!(!is_error(&r), "running is not an error: {r}");
    let id = execution_id(&r);
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    assert!(text(&r).contains("line 0"), "output so far: {r}");
    assert!(text(&r).contains("get_execution"), "says what to call: {r}");

    let end = poll_to_end(&server, &id).await;
    let s = &end["structuredContent"];
    assert_eq!(s["status"], "ok", "{end}");
    assert_eq!(s["result"]["status"], "ok", "{end}");
    let result_text = s["result"]["outputs"][0]["text"].as_str().unwrap();
    assert!(
        result_text.contains("line 0") && result_text.contains("line 7"),
        "{end}"
    );
    assert!(
        !s["new_output"].as_str().unwrap().contains("line 0"),
        "only new output: {end}"
    );
    // The kernel kept what the execution did.
    assert_eq!(text(&server.exec("done").await), "8");
    // Read again: the result is still there, and all the output on request.
    let again = server
        .call(
            "get_execution",
            json!({"execution_id": id, "wait": 0, "all_output": true}),
        )
        .await;
    assert!(
        again["structuredContent"]["new_output"]
            .as_str()
            .unwrap()
            .contains("line 0")
    );
}

#[tokio::test]
async fn work_that_ends_within_wait_answers_exactly_as_before() {
    let server = Server::start();
    let r = server.exec("print('hi'); 1 + 1").await;
    assert_eq!(status(&r), "ok");
    assert!(r["structuredContent"].get("execution_id").is_none(), "{r}");
    let listed = server.call("list_executions", json!({})).await;
    assert_eq!(
        listed["structuredContent"]["executions"],
        json!([]),
        "nothing kept: {listed}"
    );
}

#[tokio::test]
async fn cancel_execution_interrupts_and_the_kernel_runs_the_next_call_at_once() {
    let server = Server::start();
    server.exec("x = 41").await;
    let r = server
        .call(
            "execute_code",
            json!({"code": "import time\ntime.sleep(600)", "wait": 0.5}),
        )
        .await;
    let id = execution_id(&r);
    let started = Instant::now();
    let c = server
        .call("cancel_execution", json!({"execution_id": id}))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let s = &c["structuredContent"];
    assert_eq!(s["status"], "cancelled", "{c}");
    assert_eq!(s["stopped_by"], "cancel_execution", "{c}");
    assert!(
        s["result"]["note"]
            .as_str()
            .unwrap()
            .contains("cancel_execution"),
        "{c}"
    );
    let started = Instant::now();
    assert_eq!(text(&server.exec("x + 1").await), "42", "variables kept");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Cancelling what already ended changes nothing.
    let again = server
        .call("cancel_execution", json!({"execution_id": id}))
        .await;
    assert_eq!(again["structuredContent"]["status"], "cancelled");
}

#[tokio::test]
async fn a_second_call_on_a_busy_kernel_answers_busy_naming_the_execution() {
    let server = Server::start();
    let r = server
        .call(
            "execute_code",
            json!({"code": "import time\ntime.sleep(30)", "wait": 0.5}),
        )
        .await;
    let id = execution_id(&r);
    let started = Instant::now();
    let second = server
        .call(
            "execute_code",
            json!({"code": "print('second')", "wait": 1}),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status(&second), "busy", "{second}");
    assert!(
        text(&second).contains(&id),
        "names the running execution: {second}"
    );
    // Another kernel runs in parallel.
    assert_eq!(status(&server.exec_on("other", "1").await), "ok");
    // The read-only tools answer as before for a busy kernel.
    let listed = server.call("list_executions", json!({})).await;
    assert_eq!(
        listed["structuredContent"]["executions"][0]["execution_id"],
        id
    );
    assert_eq!(
        listed["structuredContent"]["executions"][0]["status"],
        "running"
    );
    server
        .call("cancel_execution", json!({"execution_id": id}))
        .await;
}

#[tokio::test]
async fn restart_kernel_during_an_execution_ends_it_and_says_so() {
    let server = Server::start();
    server.exec("1").await;
    let r = server
        .call(
            "execute_code",
            json!({"code": "import time\ntime.sleep(600)", "wait": 0.5}),
        )
        .await;
    let id = execution_id(&r);
    let restarted = server.call("restart_kernel", json!({})).await;
    assert!(!is_error(&restarted), "{restarted}");
    let end = poll_to_end(&server, &id).await;
    let note = end["structuredContent"]["result"]["note"]
        .as_str()
        .unwrap_or_default();
    assert!(note.contains("restart"), "says what ended it: {end}");
}

#[tokio::test]
async fn a_notebook_run_answers_running_with_cells_done_and_saves_each_cell() {
    let server = Server::start();
    let cells: Vec<Value> = (0..4)
        .map(|i| json!({"cell_type": "code", "source": format!("import time; time.sleep(0.7); print({i})")}))
        .collect();
    let created = server
        .call(
            "create_notebook",
            json!({"path": "long.ipynb", "cells": cells}),
        )
        .await;
    assert!(!is_error(&created), "{created}");
    let r = server
        .call("execute_notebook", json!({"path": "long.ipynb", "wait": 1}))
        .await;
    assert_eq!(status(&r), "running", "{r}");
    assert_eq!(r["structuredContent"]["cells_total"], 4, "{r}");
    let id = execution_id(&r);
    let end = poll_to_end(&server, &id).await;
    let result = &end["structuredContent"]["result"];
    assert_eq!(result["status"], "ok", "{end}");
    assert_eq!(result["cells"].as_array().unwrap().len(), 4, "{end}");
    let read = server
        .call("read_notebook", json!({"path": "long.ipynb"}))
        .await;
    assert!(text(&read).contains('3'), "every cell saved: {read}");
}

#[tokio::test]
async fn unknown_ids_and_bad_waits_are_refused_and_the_server_goes_on() {
    let server = Server::start();
    let unknown = server
        .call(
            "get_execution",
            json!({"execution_id": "0b8f9c7e-1111-4222-8333-444455556666"}),
        )
        .await;
    assert_eq!(status(&unknown), "not_found", "{unknown}");
    let bad_wait = server
        .call("execute_code", json!({"code": "1", "wait": -1}))
        .await;
    assert_eq!(status(&bad_wait), "invalid_argument", "{bad_wait}");
    let too_long = server
        .call(
            "get_execution",
            json!({"execution_id": "x", "wait": 100000}),
        )
        .await;
    assert!(is_error(&too_long), "{too_long}");
    let cancel_unknown = server
        .call("cancel_execution", json!({"execution_id": "nope"}))
        .await;
    assert_eq!(status(&cancel_unknown), "not_found", "{cancel_unknown}");
    assert_eq!(text(&server.exec("2 + 2").await), "4");
}

#[tokio::test]
async fn another_principal_cannot_read_list_or_cancel_an_execution() {
    const ALICE: &str = "jmcp_alice_0123456789abcdef0123456789abcdef";
    const BOB: &str = "jmcp_bob_fedcba9876543210fedcba9876543210";
    let keys = format!("alice:{},bob:{}", sha256_hex(ALICE), sha256_hex(BOB));
    let server = Server::start_with(&[], &[("JUPYTER_MCP_API_KEYS", &keys)]);
    let r = server
        .call_as(
            ALICE,
            "execute_code",
            json!({"code": "import time\ntime.sleep(20)", "wait": 0.5}),
        )
        .await;
    let id = execution_id(&r);
    let unknown = "0b8f9c7e-1111-4222-8333-444455556666";
    let not_mine = server
        .call_as(BOB, "get_execution", json!({"execution_id": id, "wait": 0}))
        .await;
    let never = server
        .call_as(
            BOB,
            "get_execution",
            json!({"execution_id": unknown, "wait": 0}),
        )
        .await;
    assert_eq!(status(&not_mine), "not_found");
    assert_eq!(
        text(&not_mine).replace(&id, "ID"),
        text(&never).replace(unknown, "ID"),
        "another's id reads exactly like an unknown one"
    );
    let cancel = server
        .call_as(BOB, "cancel_execution", json!({"execution_id": id}))
        .await;
    assert_eq!(status(&cancel), "not_found");
    let listed = server.call_as(BOB, "list_executions", json!({})).await;
    assert_eq!(listed["structuredContent"]["executions"], json!([]));
    let still = server
        .call_as(
            ALICE,
            "get_execution",
            json!({"execution_id": id, "wait": 0}),
        )
        .await;
    assert_eq!(still["structuredContent"]["status"], "running", "{still}");
    server
        .call_as(ALICE, "cancel_execution", json!({"execution_id": id}))
        .await;
}

#[tokio::test]
async fn output_nobody_reads_keeps_the_server_small() {
    let server = Server::start();
    server.exec("1").await;
    let before = rss_bytes(server.pid());
    // About 100 MB of output with nobody polling.
    let code = "import sys\nline = 'x' * 999 + '\\n'\nfor _ in range(100_000):\n    sys.stdout.write(line)\nsys.stdout.flush()";
    let r = server
        .call(
            "execute_code",
            json!({"code": code, "wait": 0.2, "timeout": 600}),
        )
        .await;
    let id = execution_id(&r);
    let mut end = Value::Null;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let listed = server.call("list_executions", json!({})).await;
        if listed["structuredContent"]["executions"][0]["status"] != "running" {
            end = server
                .call("get_execution", json!({"execution_id": id, "wait": 0}))
                .await;
            break;
        }
    }
    assert_eq!(end["structuredContent"]["status"], "ok", "{end}");
    assert!(
        end["structuredContent"]["output_total_bytes"]
            .as_u64()
            .unwrap()
            >= 100_000_000
    );
    let after = rss_bytes(server.pid());
    let grown = after.saturating_sub(before);
    assert!(grown < 24 << 20, "server RSS grew by {} MiB", grown >> 20);
}

/// A 2026-07-28 request (no handshake) from a client that declares the tasks extension.
async fn tasks_rpc(server: &Server, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {
            "extensions": {"io.modelcontextprotocol/tasks": {}}
        },
        "io.modelcontextprotocol/clientInfo": {"name": "tasks-tests", "version": "0.0.0"},
    });
    // Mcp-Name: the tool of a tools/call, the task of a tasks/* request.
    let name = params["name"]
        .as_str()
        .or(params["taskId"].as_str())
        .unwrap_or_default()
        .to_string();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut req = reqwest::Client::new()
        .post(&server.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if !name.is_empty() {
        req = req.header("mcp-name", name.as_str());
    }
    let resp = req.body(body.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    let value = parse_body(&resp.text().await.unwrap());
    assert_eq!(status, 200, "{method}: HTTP {status}: {value}");
    value
}

#[tokio::test]
async fn a_client_with_tasks_gets_a_task_that_is_an_execution() {
    let server = Server::start();
    server.exec("1").await;
    let discover = tasks_rpc(&server, "server/discover", json!({})).await;
    assert!(
        discover["result"]["capabilities"]["extensions"]["io.modelcontextprotocol/tasks"]
            .is_object(),
        "the extension is advertised: {discover}"
    );
    // Work that ends within its wait answers as always, task-capable client or not.
    let quick = tasks_rpc(
        &server,
        "tools/call",
        json!({"name": "execute_code", "arguments": {"code": "6 * 7"}}),
    )
    .await;
    assert_eq!(
        quick["result"]["structuredContent"]["status"], "ok",
        "{quick}"
    );
    // Work still going answers a task, whose id is the execution's.
    let created = tasks_rpc(
        &server,
        "tools/call",
        json!({"name": "execute_code", "arguments": {"code": ticking(4, 0.5), "wait": 0.5}}),
    )
    .await;
    let task = &created["result"];
    assert_eq!(task["resultType"], "task", "{created}");
    assert_eq!(task["status"], "working", "{created}");
    let id = task["taskId"].as_str().unwrap().to_string();
    let listed = server.call("list_executions", json!({})).await;
    assert_eq!(
        listed["structuredContent"]["executions"][0]["execution_id"],
        id.as_str()
    );
    let mut last = Value::Null;
    for _ in 0..40 {
        last = tasks_rpc(&server, "tasks/get", json!({"taskId": id})).await;
        if last["result"]["status"] != "working" {
            break;
        }
        assert!(
            last["result"]["statusMessage"]
                .as_str()
                .unwrap()
                .contains("get_execution")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let done = &last["result"];
    assert_eq!(done["status"], "completed", "{last}");
    assert_eq!(
        done["result"]["structuredContent"]["status"], "ok",
        "{last}"
    );
    let printed = done["result"]["structuredContent"]["outputs"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        printed.contains("line 0") && printed.contains("line 3"),
        "{last}"
    );
    // The same record through get_execution.
    let report = server
        .call("get_execution", json!({"execution_id": id, "wait": 0}))
        .await;
    assert_eq!(report["structuredContent"]["status"], "ok", "{report}");
}

#[tokio::test]
async fn tasks_cancel_interrupts_and_unknown_tasks_are_refused() {
    let server = Server::start();
    server.exec("y = 5").await;
    let created = tasks_rpc(
        &server,
        "tools/call",
        json!({"name": "execute_code", "arguments": {"code": "import time\ntime.sleep(600)", "wait": 0.3}}),
    )
    .await;
    let id = created["result"]["taskId"].as_str().unwrap().to_string();
    let started = Instant::now();
    let ack = tasks_rpc(&server, "tasks/cancel", json!({"taskId": id})).await;
    assert!(ack.get("error").is_none(), "{ack}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let got = tasks_rpc(&server, "tasks/get", json!({"taskId": id})).await;
    assert_eq!(got["result"]["status"], "cancelled", "{got}");
    // Cancelling again is acknowledged; the kernel kept its state and runs at once.
    let again = tasks_rpc(&server, "tasks/cancel", json!({"taskId": id})).await;
    assert!(again.get("error").is_none(), "{again}");
    assert_eq!(text(&server.exec("y").await), "5");
    // An id nobody issued: a JSON-RPC error naming the status, and the server goes on.
    let unknown = tasks_rpc(&server, "tasks/get", json!({"taskId": "nope"})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not_found")
    );
    let unknown_cancel = tasks_rpc(&server, "tasks/cancel", json!({"taskId": "nope"})).await;
    assert_eq!(unknown_cancel["error"]["code"], -32602, "{unknown_cancel}");
    assert_eq!(text(&server.exec("y + 1").await), "6");
}

#[tokio::test]
async fn an_execution_that_outlives_its_call_has_an_audit_record_of_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let server = Server::start_with(&["--audit-log", log.to_str().unwrap()], &[]);
    server.exec("1").await;
    let code = ticking(3, 0.4);
    let r = server
        .call("execute_code", json!({"code": code, "wait": 0.3}))
        .await;
    let id = execution_id(&r);
    let end = poll_to_end(&server, &id).await;
    assert_eq!(end["structuredContent"]["status"], "ok");
    let mut found = None;
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["event"] == "execution_end" && r["execution_id"] == id.as_str());
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = found.expect("an execution_end record");
    assert_eq!(record["tool"], "execute_code", "{record}");
    assert_eq!(record["status"], "ok", "{record}");
    assert_eq!(record["code_count"], 1, "{record}");
    assert_eq!(record["code_sha256"], sha256_hex(&code), "{record}");
    assert_eq!(record["principal"], "local", "{record}");
    // A call that finished within its wait has no such record: its call's record says it all.
    server.exec("2").await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("\"execution_end\"").count(), 1, "{text}");
}
