//! The stdio transport: one client on stdin/stdout, nothing but JSON-RPC on stdout (logs on
//! stderr, kernel output in the kernels' log files), and closing stdin stops the server and
//! every kernel it started.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

struct StdioServer {
    guard: ChildGuard,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    workdir: tempfile::TempDir,
}

impl StdioServer {
    fn start() -> StdioServer {
        let workdir = tempfile::Builder::new()
            .prefix("jmcp-test-")
            .tempdir()
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_jupyter-mcp-server"))
            .args(["--transport", "stdio", "--working-dir"])
            .arg(workdir.path())
            .arg("--python")
            .arg(python())
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
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
        }
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// The response to request `id`; every line on stdout must be a JSON-RPC message.
    fn response(&self, id: u64) -> Value {
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
                return message;
            }
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
