//! Shared helpers: start the real server binary on a free loopback port with a temporary working
//! directory and the test venv's ipykernel, talk JSON-RPC to it, and stop it by PID.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const PROTOCOL: &str = "2025-11-25";

pub fn python() -> PathBuf {
    std::env::var_os("JUPYTER_MCP_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

pub struct Server {
    child: Child,
    pub url: String,
    pub workdir: tempfile::TempDir,
    pub log: Arc<Mutex<Vec<String>>>,
    /// Lines the server wrote to stdout (the audit records).
    pub stdout: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[], &[])
    }

    /// Starts the binary with extra arguments and extra environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_wrapped(&[], args, env)
    }

    /// Starts the binary through a wrapper command (`wrapper[0] wrapper[1..] BINARY ARGS`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Server {
        let workdir = tempfile::Builder::new()
            .prefix("jmcp-test-")
            .tempdir()
            .unwrap();
        Server::spawn(workdir, wrapper, args, env)
    }

    /// Starts the binary on an existing working directory (e.g. one a stopped server used).
    pub fn start_in(workdir: tempfile::TempDir, args: &[&str]) -> Server {
        Server::spawn(workdir, &[], args, &[])
    }

    /// The working directory, kept, once the server has exited (by `stop` or a signal).
    pub fn into_workdir(mut self) -> tempfile::TempDir {
        assert!(
            matches!(self.child.try_wait(), Ok(Some(_))),
            "the server is still running"
        );
        let spare = tempfile::Builder::new()
            .prefix("jmcp-test-")
            .tempdir()
            .unwrap();
        std::mem::replace(&mut self.workdir, spare)
    }

    /// Waits (bounded) for the server process to exit by itself; true if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn spawn(
        workdir: tempfile::TempDir,
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let bin = env!("CARGO_BIN_EXE_jupyter-mcp-server");
        let lambda_like = lambda_like_wrapper(workdir.path());
        let wrapper: Vec<&str> = if wrapper.is_empty() {
            lambda_like.iter().map(String::as_str).collect()
        } else {
            wrapper.to_vec()
        };
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["--port", "0", "--host", "127.0.0.1", "--working-dir"])
            .arg(workdir.path())
            .arg("--python")
            .arg(python())
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        {
            let out = child.stdout.take().unwrap();
            let lines = Arc::clone(&stdout_lines);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !sent && let Some(i) = line.find("http://127.0.0.1:") {
                        let url: String = line[i..].split_whitespace().next().unwrap().to_string();
                        let _ = tx.send(url);
                        sent = true;
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {:?}", log.lock().unwrap());
            }
        };
        Server {
            child,
            url,
            workdir,
            log,
            stdout: stdout_lines,
            http: reqwest::Client::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// POSTs a raw body; returns status and parsed JSON body (Null if none).
    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = mcp_post(&self.http, &self.url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, parse_body(&text))
    }

    /// One JSON-RPC request; returns the whole response object.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (status, value) = self.post_raw(body.to_string(), &[]).await;
        assert!(status == 200, "HTTP {status}: {value}");
        value
    }

    /// Calls a tool; returns the `result` (panics on a JSON-RPC error).
    pub async fn call(&self, tool: &str, args: Value) -> Value {
        let resp = self
            .rpc("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        match resp.get("result") {
            Some(r) => r.clone(),
            None => panic!("tools/call {tool} failed: {resp}"),
        }
    }

    /// One JSON-RPC request with a bearer token; returns HTTP status and body.
    pub async fn rpc_as(&self, token: &str, method: &str, params: Value) -> (u16, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let auth = format!("Bearer {token}");
        self.post_raw(body.to_string(), &[("authorization", &auth)])
            .await
    }

    /// Calls a tool with a bearer token; returns the `result` (panics on anything else).
    pub async fn call_as(&self, token: &str, tool: &str, args: Value) -> Value {
        let (status, resp) = self
            .rpc_as(
                token,
                "tools/call",
                json!({"name": tool, "arguments": args}),
            )
            .await;
        assert_eq!(status, 200, "tools/call {tool}: HTTP {status}: {resp}");
        match resp.get("result") {
            Some(r) => r.clone(),
            None => panic!("tools/call {tool} failed: {resp}"),
        }
    }

    /// Runs code on a kernel and returns the result.
    pub async fn exec(&self, code: &str) -> Value {
        self.call("execute_code", json!({"code": code})).await
    }

    pub async fn exec_on(&self, kernel: &str, code: &str) -> Value {
        self.call("execute_code", json!({"code": code, "kernel": kernel}))
            .await
    }

    /// SIGTERM, then SIGKILL if it does not stop within 15 s. Returns true if it exited by itself.
    pub fn stop(&mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The server's stdout lines once at least `n` have been read (or after 10 s): a thread
    /// reads the pipe, so a line the server has written may not have reached `stdout` yet.
    pub fn stdout_lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.stdout.lock().unwrap().clone();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Set to run every server of the test run in a Lambda-like sandbox: read-only root, only /tmp
/// writable, an unprivileged uid, no cgroup (`make attacks-lambda-like`). Needs root and `bwrap`.
pub const LAMBDA_LIKE_ENV: &str = "JUPYTER_MCP_TEST_LAMBDA_LIKE";
/// Whether this test run's servers run in the Lambda-like sandbox (`LAMBDA_LIKE_ENV` set).
pub fn in_lambda_like() -> bool {
    std::env::var_os(LAMBDA_LIKE_ENV).is_some()
}
/// The uid the Lambda-like sandbox runs the server as (tests/lambda-like's default).
pub const LAMBDA_LIKE_UID: u32 = 65534;

/// The Lambda-like sandbox's one definition, a script the Python Lambda tests use too.
pub fn lambda_like_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lambda-like")
}

/// `tests/lambda-like --own WORKDIR --python PY --` when `LAMBDA_LIKE_ENV` is set; empty
/// otherwise.
fn lambda_like_wrapper(workdir: &Path) -> Vec<String> {
    if !in_lambda_like() {
        return Vec::new();
    }
    vec![
        lambda_like_script().display().to_string(),
        "--own".into(),
        workdir.display().to_string(),
        "--python".into(),
        python().display().to_string(),
        "--".into(),
    ]
}

/// A package index on loopback serving generated wheels (tests/fixtures/local_index.py, specs
/// `name==version[:size_mib]`), so install tests need no internet. Stopped by PID when dropped.
pub struct LocalIndex {
    child: Child,
    /// The index's `simple/` URL, for `--package-index-url`.
    pub url: String,
}

impl LocalIndex {
    pub fn start(specs: &[&str]) -> LocalIndex {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/local_index.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(specs)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = match line.strip_prefix("INDEX ") {
            Some(url) => url.trim().to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("local index did not start: {line:?}");
            }
        };
        LocalIndex { child, url }
    }
}

impl Drop for LocalIndex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails unless nbformat itself reads the file as written (no conversion), finds it nbformat 4
/// and validates it: what Jupyter would say on opening it.
pub fn assert_nbformat_valid(path: &Path) {
    run_python(
        &[
            "-c".as_ref(),
            "import nbformat, sys; nb = nbformat.read(sys.argv[1], as_version=nbformat.NO_CONVERT); assert nb.nbformat == 4, nb.nbformat; nbformat.validate(nb)".as_ref(),
            path.as_os_str(),
        ],
        &[],
        &format!("nbformat rejects {}", path.display()),
    );
}

/// Runs the test interpreter with `args` (and `env` added) and returns its stdout; fails,
/// saying `what` and the interpreter's stderr, unless it exits 0.
pub fn run_python(args: &[&std::ffi::OsStr], env: &[(&str, &str)], what: &str) -> Vec<u8> {
    let out = Command::new(python())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether `uid` can run the test interpreter and import ipykernel as the machine is.
pub fn python_runs_as(uid: u32) -> bool {
    use std::os::unix::process::CommandExt;
    Command::new(python())
        .args(["-I", "-c", "import ipykernel"])
        .env_clear()
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .uid(uid)
        .gid(uid)
        .status()
        .is_ok_and(|s| s.success())
}

/// A wrapper that keeps the server root but lets other uids run the test interpreter: where it
/// lives under /root (0700, as with pyenv here), `bwrap` puts an empty /root over it and binds
/// the interpreter's prefix back read-only, with the directories above it 0755. Everything else
/// is the host as it is (`--dev-bind / /`), same pids (no pid namespace), so the test can look at
/// the kernels. `Some(vec![])` when the interpreter is reachable as it is; `None` when there is no
/// way (not root, or no bwrap).
pub fn readable_python_wrapper(uid: u32) -> Option<Vec<String>> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    if python_runs_as(uid) {
        return Some(Vec::new());
    }
    let real = std::fs::canonicalize(python()).ok()?;
    let prefix = real.parent().and_then(Path::parent)?;
    if !prefix.starts_with("/root") || Command::new("bwrap").arg("--version").output().is_err() {
        return None;
    }
    let mut w: Vec<String> = [
        "bwrap",
        "--dev-bind",
        "/",
        "/",
        "--perms",
        "0755",
        "--tmpfs",
        "/root",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut levels: Vec<&Path> = prefix
        .ancestors()
        .skip(1)
        .take_while(|p| p.starts_with("/root") && *p != Path::new("/root"))
        .collect();
    levels.reverse();
    for level in levels {
        w.extend([
            "--perms".into(),
            "0755".into(),
            "--dir".into(),
            level.display().to_string(),
        ]);
    }
    let prefix = prefix.display().to_string();
    // The server stays root (no setpriv), so bwrap's parent-death signal reaches it.
    w.extend([
        "--ro-bind".into(),
        prefix.clone(),
        prefix,
        "--die-with-parent".into(),
    ]);
    Some(w)
}

/// A POST to an MCP endpoint with the headers every request here carries.
pub fn mcp_post(client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL)
}

/// Parses a JSON body or the last `data:` JSON of an SSE body.
pub fn parse_body(text: &str) -> Value {
    if let Ok(v) = serde_json::from_str(text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .rfind(|v| v.get("result").is_some() || v.get("error").is_some())
        .unwrap_or(Value::Null)
}

/// All text content of a tool result, joined.
pub fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|b| b.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

/// The first image content block of a tool result.
pub fn image_block(result: &Value) -> Option<&Value> {
    result["content"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "image")
}

/// A result's status: `structuredContent.status` (execute_code), or the `status: X` first line
/// of a failed result (which carries no structuredContent, see src/mcp/error.rs).
pub fn status(result: &Value) -> &str {
    if let Some(s) = result["structuredContent"]["status"].as_str() {
        return s;
    }
    result["content"][0]["text"]
        .as_str()
        .and_then(|t| t.lines().next())
        .and_then(|l| l.strip_prefix("status: "))
        .unwrap_or("")
}

pub fn is_error(result: &Value) -> bool {
    result["isError"].as_bool().unwrap_or(false)
}

/// PIDs of the direct children of `pid` (the kernels a server started).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == pid {
            out.push(child);
        }
    }
    out
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Peak resident memory of a process so far (VmHWM).
pub fn peak_rss_bytes(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:") * 1024
}

/// Resident memory of a process now (VmRSS).
pub fn rss_bytes(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:") * 1024
}

/// A `kB` field of `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
}

/// A child process that is stopped (SIGTERM, then SIGKILL) and reaped when dropped, so a test
/// that fails halfway leaves nothing running.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The runtime root (`/tmp/jmcp-*`) of a server, read from its kernels' command lines.
pub fn runtime_root_of(server_pid: u32) -> std::path::PathBuf {
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

/// The cgroup2 mount points of this machine, from /proc/self/mountinfo (those that mount the
/// hierarchy's root: the only kind the tests map paths through).
pub fn cgroup2_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2").then_some(())?;
            let mut fields = left.split_whitespace();
            (fields.nth(3)? == "/").then_some(())?;
            Some(PathBuf::from(fields.next()?))
        })
        .collect()
}

/// The cgroup v2 directory `pid` is in, read from the host (`0::` line of /proc/<pid>/cgroup
/// under the cgroup2 mount); `None` without one.
pub fn cgroup_v2_dir(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let mount = cgroup2_mounts().into_iter().next()?;
    let rest = path.trim_start_matches('/');
    Some(if rest.is_empty() {
        mount
    } else {
        mount.join(rest)
    })
}

/// The strings of a JSON array (a status's `applied` / `not_applied` lines); empty otherwise.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The reported reason why the cgroup v2 limit of `controller` did not apply names what the
/// host's files say: the controller is available but not enabled for the server's children,
/// or it is missing, and then the line quotes the parent's `cgroup.controllers` (`available`).
pub fn assert_v2_limit_reason(line: &str, controller: &str, available: &[String]) {
    if available.iter().any(|a| a == controller) {
        assert!(line.contains("is available in"), "{line}");
        return;
    }
    let listed = if available.is_empty() {
        "none".to_string()
    } else {
        available.join(" ")
    };
    assert!(
        line.contains(&format!("(its cgroup.controllers: {listed})")),
        "the reason is not the host's ({listed}): {line}"
    );
}

/// The words of a cgroup interface file (`cgroup.controllers`, `cgroup.subtree_control`).
pub fn cgroup_words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// A moto server (real AWS APIs: S3, Secrets Manager) on a loopback port, stopped on drop.
pub struct Moto {
    pub endpoint: String,
    _child: ChildGuard,
}

/// Credentials and region for moto (it accepts any); no instance metadata lookups.
pub const FAKE_AWS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// A moto server on a free loopback port.
pub fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    moto_on(port)
}

/// A moto server on `port` (to bring one back where a stopped one was).
pub fn moto_on(port: u16) -> Moto {
    let child = Command::new(python())
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: child,
    }
}

/// Runs a boto3 script (moto's own client library) with `args` as sys.argv[1:].
pub fn boto3(script: &str, args: &[&str]) {
    let mut argv: Vec<&std::ffi::OsStr> = vec!["-c".as_ref(), script.as_ref()];
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    run_python(&argv, FAKE_AWS, "boto3 script");
}

/// SHA-256 of `s`, lower-case hex (how API keys are configured and code is audited).
pub fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A table of cases, one named test each, as ripgrep's `rgtest!`: `cases!(run { name: case; })`
/// makes `#[tokio::test] async fn name() { run("name", case).await }` (`cases!(sync run {..})` a
/// plain `#[test]`). nextest runs every case in its own process, in parallel with the rest, a
/// case that fails does not hide the next, and the failure is reported under the case's name.
macro_rules! cases {
    (sync $run:ident { $($(#[$meta:meta])* $name:ident: $case:expr;)+ }) => {
        $($(#[$meta])* #[test] fn $name() { $run(stringify!($name), $case) })+
    };
    ($run:ident { $($(#[$meta:meta])* $name:ident: $case:expr;)+ }) => {
        $($(#[$meta])* #[tokio::test] async fn $name() { $run(stringify!($name), $case).await })+
    };
}
pub(crate) use cases;
