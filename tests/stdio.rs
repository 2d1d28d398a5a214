//! The stdio transport: one client on stdin/stdout, nothing but JSON-RPC on stdout (logs on
//! stderr, kernel output in the kernels' log files), and closing stdin stops the server and
//! every kernel it started.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest;

use crate::common::*;

struct StdioServer {
    guard: ChildGuard,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    workdir: tempfile::TempDir,
    /// Lines on stderr, when `start_keeping_stderr` kept them.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StdioServer {
    fn start() -> StdioServer {
        StdioServer::spawn(&[], false)
    }

    /// A server whose stderr (the log, and the audit records under stdio) is kept.
    fn start_keeping_stderr(args: &[&str]) -> StdioServer {
        StdioServer::spawn(args, true)
    }

    fn spawn(args: &[&str], keep_stderr: bool) -> StdioServer {
        let workdir = tempfile::Builder::new()
            .prefix("jmcp-test-")
            .tempdir()
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_jupyter-mcp-server"))
            .args(["--transport", "stdio", "--working-dir"])
            .arg(workdir.path())
            .arg("--python")
            .arg(python())
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if keep_stderr {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let kept = std::sync::Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    kept.lock().unwrap().push(line);
                }
            });
        }
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        StdioServer {
            guard: ChildGuard(child),
            stdin,
            lines,
            workdir,
            stderr,
        }
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// The response to request `id`; every line on stdout must be a JSON-RPC message.
    fn response(&self, id: u64) -> Value {
        self.response_after(id).1
    }

    /// The messages that came before the response to request `id`, and the response.
    fn response_after(&self, id: u64) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .expect("no response on stdout");
            let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("stdout carried a line that is not JSON ({e}): {line:?}")
            });
            assert_eq!(message["jsonrpc"], "2.0", "{line}");
            if message["id"] == id {
                return (before, message);
            }
            before.push(message);
        }
    }

    fn call(&mut self, id: u64, tool: &str, args: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}));
        self.response(id)["result"].clone()
    }

    fn initialize(&mut self) {
        self.send(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "stdio-test", "version": "0"}}}),
        );
        let r = self.response(0);
        assert_eq!(
            r["result"]["serverInfo"]["name"], "jupyter-mcp-server",
            "{r}"
        );
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }
}

#[test]
fn stdio_serves_the_same_tools_and_kernels() {
    let mut server = StdioServer::start();
    server.initialize();
    server.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let tools = server.response(1);
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"execute_code") && names.contains(&"read_notebook"),
        "{names:?}"
    );
    let r = server.call(2, "execute_code", json!({"code": "x = 6 * 7"}));
    assert_eq!(status(&r), "ok", "{r}");
    let r = server.call(3, "execute_code", json!({"code": "print(x)"}));
    assert_eq!(text(&r), "42\n", "state persists between calls: {r}");
    // A failure keeps the result convention: no structuredContent, a `status:` first line.
    let r = server.call(4, "read_notebook", json!({"path": "missing.ipynb"}));
    assert_eq!(status(&r), "not_found", "{r}");
}

#[test]
fn kernel_writes_to_its_stdout_never_reach_the_protocol_stream() {
    let mut server = StdioServer::start();
    server.initialize();
    let code = "import os, subprocess\nos.write(1, b'garbage on fd 1\\n')\nsubprocess.run(['echo', 'garbage from a child'])\n!echo garbage from a shell\nprint('ok')";
    let r = server.call(1, "execute_code", json!({"code": code}));
    assert_eq!(status(&r), "ok", "{r}");
    // `response` asserted that every stdout line so far was JSON-RPC; one more call makes sure
    // nothing arrived late.
    let r = server.call(2, "execute_code", json!({"code": "1"}));
    assert_eq!(status(&r), "ok", "{r}");
}

#[test]
fn closing_stdin_stops_the_server_and_its_kernels() {
    let mut server = StdioServer::start();
    server.initialize();
    let r = server.call(1, "execute_code", json!({"code": "1"}));
    assert_eq!(status(&r), "ok", "{r}");
    let r = server.call(2, "execute_code", json!({"code": "1", "kernel": "second"}));
    assert_eq!(status(&r), "ok", "{r}");
    let pid = server.guard.0.id();
    let kernels = children_of(pid);
    assert!(kernels.len() >= 2, "kernels: {kernels:?}");
    drop(server.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = server.guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop when stdin closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let left: Vec<u32> = kernels.into_iter().filter(|k| alive(*k)).collect();
    assert!(left.is_empty(), "kernels left running: {left:?}");
}

#[test]
fn notifications_cancelled_on_stdio_interrupts_the_cell() {
    let mut server = StdioServer::start();
    server.initialize();
    let r = server.call(1, "execute_code", json!({"code": "finished = None"}));
    assert_eq!(status(&r), "ok", "{r}");
    let code = "import pathlib, time\nfinished = False\npathlib.Path('started').touch()\nfor _ in range(300):\n    time.sleep(0.1)\nfinished = True";
    server.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "execute_code", "arguments": {"code": code}}}));
    let started = server.workdir.path().join("started");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the cell never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2, "reason": "test"}}));
    // The cancelled call may or may not be answered; the next one runs and finds the cell
    // interrupted (it would print True had it waited the 30 s cell out).
    let r = server.call(3, "execute_code", json!({"code": "print(finished)"}));
    assert_eq!(text(&r), "False\n", "{r}");
}

/// Under stdio the audit records go to stderr (stdout is the protocol's): each call's record is
/// there, with its digest, while every stdout line is JSON-RPC (`response` checks each).
#[test]
fn stdio_audit_records_go_to_stderr_and_never_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let mut server =
        StdioServer::start_keeping_stderr(&["--audit-log", audit_path.to_str().unwrap()]);
    server.initialize();
    let code = "y = 3\nprint(y)";
    let r = server.call(1, "execute_code", json!({"code": code}));
    assert_eq!(status(&r), "ok", "{r}");
    let r = server.call(2, "list_kernels", json!({}));
    assert!(!is_error(&r), "{r}");
    // Close stdin: the server exits, so stdout and stderr are complete.
    drop(server.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.guard.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    for line in server.lines.try_iter() {
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout carried a line that is not JSON ({e}): {line:?}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
        assert!(
            message.get("event").is_none(),
            "an audit record on stdout: {line}"
        );
    }
    // The reader thread may still be catching up with what the server wrote before it exited.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (stderr, records) = loop {
        let stderr = server.stderr.lock().unwrap().clone();
        let records: Vec<Value> = stderr
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "tool_call")
            .collect();
        if records.len() >= 2 || Instant::now() > deadline {
            break (stderr, records);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let tools: Vec<&str> = records
        .iter()
        .map(|r| r["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["execute_code", "list_kernels"], "{stderr:?}");
    let digest: String = sha2::Sha256::digest(code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(records[0]["code_sha256"], digest);
    assert_eq!(records[0]["principal"], "local");
    assert_eq!(records[0]["rpc_id"], "1");
    assert!(
        records[0]["request_id"].is_null(),
        "no HTTP request: {}",
        records[0]
    );
    // The file gets the same records.
    let file: Vec<Value> = std::fs::read_to_string(&audit_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(file, records);
}

/// Every progress notification of a call goes out before its result (a client such as the
/// TypeScript SDK reports a notification for a token it no longer knows as an error). Each
/// cell prints through a few of the collector's 250 ms ticks and ends right after a print. The
/// race this guards against is too narrow to hit here at will; progress::tests prove the wait
/// that closes it.
#[test]
fn every_progress_notification_comes_before_its_result() {
    let mut server = StdioServer::start();
    server.initialize();
    let mut notified = 0;
    for id in 1..=4u64 {
        let token = format!("p{id}");
        let code = format!(
            "import time\nfor i in range(8):\n    print('step', i, flush=True)\n    time.sleep(0.05)\ntime.sleep(0.{id})\nprint('last line', flush=True)"
        );
        server.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "execute_code", "arguments": {"code": code}, "_meta": {"progressToken": token}}}));
        let (before, response) = server.response_after(id);
        assert_eq!(status(&response["result"]), "ok", "{response}");
        for m in &before {
            assert_eq!(m["method"], "notifications/progress", "{m}");
            assert_eq!(m["params"]["progressToken"], token.as_str(), "{m}");
        }
        notified += before.len();
        // Nothing of this call after its result.
        if let Ok(line) = server.lines.recv_timeout(Duration::from_millis(400)) {
            panic!("after the result of call {id}: {line}");
        }
    }
    assert!(notified >= 4, "progress was sent: {notified} notifications");
}
