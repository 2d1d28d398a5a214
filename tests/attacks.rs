//! The attack suite: hostile code in real kernels, through the real server. Each test runs one
//! attack, expects it to fail with a clear reason, and checks that the server and another kernel
//! still work afterwards. Where a defence cannot apply on the running Linux (or with the
//! server's privileges), the test says so and checks that `get_kernel_status` reports it as not
//! applied. Each test prints one `ATTACK <name>: blocked|not applicable (<reason>)` line; `make
//! attacks` runs the module and prints the summary line (tried / blocked / not applicable).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

/// Prints the verdict line the summary counts.
fn verdict(name: &str, blocked: bool, reason: &str) {
    let outcome = if blocked { "blocked" } else { "not applicable" };
    println!("ATTACK {name}: {outcome} ({reason})");
}

/// The server answers, the attacked kernel's name still serves, and a bystander kernel works.
async fn still_works(server: &Server) {
    let r = server.exec_on("bystander", "print(6 * 7)").await;
    assert!(text(&r).contains("42"), "bystander kernel: {r}");
    let r = server.exec("print('after')").await;
    assert!(text(&r).contains("after"), "attacked kernel's name: {r}");
}

/// `get_kernel_status` of a kernel, structured.
async fn status(server: &Server, kernel: &str) -> Value {
    server
        .call("get_kernel_status", json!({"kernel": kernel}))
        .await["structuredContent"]
        .clone()
}

/// Whether the status lists a layer (by name prefix) as not applied.
fn reported_not_applied(status: &Value, layer: &str) -> bool {
    strings(&status["security"]["not_applied"])
        .iter()
        .any(|l| l.starts_with(layer))
}

fn verified(status: &Value, prefix: &str) -> bool {
    strings(&status["security"]["kernel"])
        .iter()
        .any(|l| l.starts_with(prefix))
}

/// Runs `code` and returns its text output (a Python error included).
async fn run(server: &Server, kernel: &str, code: &str) -> String {
    text(&server.exec_on(kernel, code).await)
}

/// Python that tries `expr` for each item and prints `label: OK` or `label: <error>`.
const TRY: &str = r#"
def attempt(label, fn):
    try:
        fn()
        print(label + ": OK")
    except Exception as e:
        print(label + ": " + type(e).__name__ + " " + str(e))
"#;

#[tokio::test]
async fn kill_the_server() {
    let server = Server::start();
    let code = format!(
        r#"{TRY}
import os, signal
ppid = os.getppid()
attempt("kill-server", lambda: os.kill(ppid, signal.SIGKILL))
attempt("kill-minus-one", lambda: os.kill(-1, 0))
attempt("kill-server-group", lambda: os.kill(-os.getpgid(ppid), 0))
for tid in sorted(os.listdir(f"/proc/{{ppid}}/task")):
    attempt("kill-thread-" + tid, lambda: os.kill(int(tid), signal.SIGKILL))
attempt("pidfd", lambda: os.pidfd_open(ppid))
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def tgkill():
    if libc.syscall(234, ppid, ppid, signal.SIGKILL) != 0:  # x86_64 tgkill
        raise PermissionError(ctypes.get_errno(), "tgkill refused")
attempt("tgkill", tgkill)
"#
    );
    let out = run(&server, "default", &code).await;
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(": ")).collect();
    assert!(lines.len() >= 6, "{out}");
    for line in &lines {
        assert!(
            line.contains("PermissionError"),
            "an attempt on the server got through: {line}\n{out}"
        );
    }
    assert!(alive(server.pid()));
    still_works(&server).await;
    verdict(
        "kill the server (pid, threads, group, -1, pidfd)",
        true,
        "seccomp refuses signals aimed at the server; Landlock scopes signals",
    );
}

#[tokio::test]
async fn signal_another_kernel() {
    let server = Server::start();
    let victim: u32 = run(&server, "victim", "import os; print(os.getpid())")
        .await
        .trim()
        .parse()
        .unwrap();
    let st = status(&server, "default").await;
    let _ = st;
    let code = format!(
        "{TRY}\nimport os, signal\nattempt('kill-kernel', lambda: os.kill({victim}, signal.SIGKILL))\nattempt('stop-kernel', lambda: os.kill({victim}, signal.SIGSTOP))"
    );
    let out = run(&server, "attacker", &code).await;
    let st = status(&server, "attacker").await;
    if out.contains("kill-kernel: OK") {
        // Only possible without Landlock signal scoping and without separate uids.
        assert!(
            reported_not_applied(&st, "landlock") || reported_not_applied(&st, "unprivileged uid"),
            "{st}"
        );
        verdict(
            "signal another kernel",
            false,
            "no Landlock signal scoping on this Linux and kernels share a uid",
        );
        return;
    }
    assert!(out.contains("kill-kernel: PermissionError"), "{out}");
    assert!(out.contains("stop-kernel: PermissionError"), "{out}");
    let again = run(&server, "victim", "import os; print(os.getpid())").await;
    assert_eq!(
        again.trim(),
        victim.to_string(),
        "the victim kernel was replaced"
    );
    still_works(&server).await;
    verdict(
        "signal another kernel",
        true,
        "Landlock signal scoping (and a separate uid where kernels have one)",
    );
}

#[tokio::test]
async fn ptrace_and_read_the_servers_memory() {
    let server = Server::start();
    let code = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
ppid = os.getppid()
r = libc.ptrace(16, ppid, 0, 0)  # PTRACE_ATTACH
print("ptrace", r, ctypes.get_errno())
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(64)
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 64)
remote = iovec(0x400000, 64)
libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
r = libc.process_vm_readv(ppid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
print("process_vm_readv", r, ctypes.get_errno())
"#;
    let out = run(&server, "default", code).await;
    assert!(
        out.contains("ptrace -1 1"),
        "ptrace not refused with EPERM: {out}"
    );
    assert!(
        out.contains("process_vm_readv -1 1"),
        "process_vm_readv not refused with EPERM: {out}"
    );
    still_works(&server).await;
    verdict(
        "ptrace / process_vm_readv the server",
        true,
        "seccomp: EPERM",
    );
}

#[tokio::test]
async fn read_proc_environ_and_mem_of_the_server_and_another_kernel() {
    let server = Server::start();
    let victim = run(&server, "victim", "import os; print(os.getpid())").await;
    let code = format!(
        r#"{TRY}
import os
for pid, who in ((os.getppid(), "server"), ({victim}, "kernel")):
    attempt(who + "-environ", lambda: open(f"/proc/{{pid}}/environ", "rb").read())
    attempt(who + "-mem", lambda: open(f"/proc/{{pid}}/mem", "rb").read(1))
"#,
        victim = victim.trim()
    );
    let out = run(&server, "attacker", &code).await;
    for what in [
        "server-environ",
        "server-mem",
        "kernel-environ",
        "kernel-mem",
    ] {
        assert!(
            out.contains(&format!("{what}: PermissionError")),
            "{what} was readable: {out}"
        );
    }
    still_works(&server).await;
    verdict(
        "read /proc/<pid>/environ and mem (server, other kernel)",
        true,
        "non-dumpable server and kernels, no CAP_SYS_PTRACE",
    );
}

#[tokio::test]
async fn steal_another_kernels_connection_file() {
    let server = Server::start();
    let victim = run(&server, "victim", "import os; print(os.getpid())").await;
    let code = format!(
        r#"{TRY}
import os
args = open(f"/proc/{victim}/cmdline", "rb").read().split(b"\0")
conn = args[args.index(b"-f") + 1].decode()
print("found", conn)
attempt("read-connection-file", lambda: open(conn).read())
attempt("list-runtime-dir", lambda: os.listdir(os.path.dirname(conn)))
attempt("list-runtime-root", lambda: os.listdir(os.path.dirname(os.path.dirname(conn))))
"#,
        victim = victim.trim()
    );
    let out = run(&server, "attacker", &code).await;
    assert!(out.contains("found "), "{out}");
    for what in [
        "read-connection-file",
        "list-runtime-dir",
        "list-runtime-root",
    ] {
        assert!(
            out.contains(&format!("{what}: PermissionError")),
            "{what} got through: {out}"
        );
    }
    // Without the key nothing can be sent to the victim's sockets; it still answers us.
    assert!(
        run(&server, "victim", "print('mine')")
            .await
            .contains("mine")
    );
    still_works(&server).await;
    verdict(
        "read another kernel's connection file",
        true,
        "Landlock: other runtime directories are outside the ruleset",
    );
}

#[tokio::test]
async fn plant_start_up_code_for_the_next_kernel() {
    let server = Server::start();
    let home = server.workdir.path().display().to_string();
    // Every planted file, if it ever runs, leaves a marker in the working directory.
    let code = format!(
        r#"
import os, sys, json
home = {home:?}
def payload(tag):
    return f"open({{home!r}} + '/PWNED-{{tag}}', 'w').close()\n"
def plant(path, text):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        print("planted", path)
    except Exception as e:
        print("could not plant", path, type(e).__name__)
H = os.environ["HOME"]
ver = f"python{{sys.version_info[0]}}.{{sys.version_info[1]}}"
plant(home + "/ipykernel_launcher.py", payload("launcher"))
plant(home + "/sitecustomize.py", payload("sitecustomize"))
plant(home + "/usercustomize.py", payload("usercustomize"))
plant(home + "/json.py", payload("json-shadow"))
plant(home + "/.packages/evil.pth", "import os; " + payload("pth-packages"))
plant(home + "/.packages/os.py", payload("os-shadow"))
plant(home + "/matplotlibrc", "backend: module://evil_backend\n")
plant(home + "/evil_backend.py", payload("mpl-backend"))
plant(H + f"/.local/lib/{{ver}}/site-packages/usercustomize.py", payload("user-site"))
plant(H + f"/.local/lib/{{ver}}/site-packages/evil.pth", "import os; " + payload("user-pth"))
plant(os.environ["IPYTHONDIR"] + "/profile_default/startup/00-evil.py", payload("ipython-startup"))
plant(H + "/.ipython/profile_default/startup/00-evil.py", payload("ipython-home-startup"))
plant(os.environ["MPLCONFIGDIR"] + "/matplotlibrc", "backend: module://evil_backend\n")
"#
    );
    let out = run(&server, "default", &code).await;
    assert!(out.contains("planted"), "{out}");
    // Two restarts: the second kernel was started after the files were planted (the first may
    // be the warm spare started before).
    for _ in 0..2 {
        let r = server.call("restart_kernel", json!({})).await;
        assert!(!is_error(&r), "{r}");
    }
    let check = r#"
import json, os, sys
import matplotlib, matplotlib.pyplot as plt
plt.plot([1, 2])
print("json from", json.__file__)
print("os from", os.__file__)
print("backend", matplotlib.get_backend())
"#;
    let out = run(&server, "default", check).await;
    assert!(!out.contains("Error"), "{out}");
    assert!(!out.contains(&format!("json from {home}")), "{out}");
    assert!(!out.contains("evil"), "{out}");
    let pwned: Vec<String> = std::fs::read_dir(server.workdir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("PWNED"))
        .collect();
    assert!(pwned.is_empty(), "planted code ran: {pwned:?}\n{out}");
    still_works(&server).await;
    verdict(
        "plant start-up code (launcher, sitecustomize, usercustomize, .pth, stdlib shadow, IPython startup, matplotlibrc)",
        true,
        "python -I, layer and packages after the stdlib, working dir last on sys.path, private HOME/IPYTHONDIR/MPLCONFIGDIR per kernel",
    );
}

#[tokio::test]
async fn write_outside_the_principals_directory() {
    let server = Server::start();
    let code = format!(
        r#"{TRY}
attempt("etc", lambda: open("/etc/jmcp-attack", "w"))
attempt("usr", lambda: open("/usr/jmcp-attack", "w"))
attempt("usr-lib", lambda: open("/usr/lib/jmcp-attack", "w"))
attempt("var", lambda: open("/var/tmp/jmcp-attack", "w"))
attempt("tmp", lambda: open("/tmp/jmcp-attack-{pid}", "w"))
attempt("own", lambda: open("own-file.txt", "w").write("x"))
"#,
        pid = server.pid()
    );
    let out = run(&server, "default", &code).await;
    // A read-only mount (the Lambda-like sandbox) answers EROFS before Landlock is asked; /tmp
    // is writable there, so it always tests Landlock.
    for what in ["etc", "usr", "usr-lib", "var"] {
        assert!(
            out.contains(&format!("{what}: PermissionError"))
                || out.contains(&format!("{what}: OSError [Errno 30]")),
            "{what} was writable: {out}"
        );
    }
    assert!(
        out.contains("tmp: PermissionError"),
        "/tmp was writable: {out}"
    );
    assert!(
        out.contains("own: OK"),
        "the principal's own directory must stay writable: {out}"
    );
    for path in [
        "/etc/jmcp-attack",
        "/usr/jmcp-attack",
        "/usr/lib/jmcp-attack",
    ] {
        assert!(!std::path::Path::new(path).exists(), "{path} was created");
    }
    still_works(&server).await;
    verdict(
        "write /etc, /usr, /var, /tmp",
        true,
        "Landlock (and the unprivileged uid where it applies)",
    );
}

#[tokio::test]
async fn open_network_sockets() {
    let server = Server::start();
    let port = server
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let code = format!(
        r#"{TRY}
import socket
def tcp(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2); s.connect(addr)
def udp(fam, addr):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.sendto(b"x", addr)
attempt("tcp4-server", lambda: tcp(socket.AF_INET, ("127.0.0.1", {port})))
attempt("tcp4-runtime-api", lambda: tcp(socket.AF_INET, ("127.0.0.1", 9001)))
attempt("udp4", lambda: udp(socket.AF_INET, ("127.0.0.1", 9001)))
attempt("tcp6", lambda: tcp(socket.AF_INET6, ("::1", {port})))
attempt("udp6", lambda: udp(socket.AF_INET6, ("::1", 9001)))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
"#
    );
    let out = run(&server, "default", &code).await;
    for what in [
        "tcp4-server",
        "tcp4-runtime-api",
        "udp4",
        "tcp6",
        "udp6",
        "packet",
    ] {
        assert!(
            out.contains(&format!("{what}: PermissionError")),
            "{what} was not refused: {out}"
        );
    }
    still_works(&server).await;
    verdict(
        "AF_INET/AF_INET6 TCP and UDP sockets (server port, 9001)",
        true,
        "seccomp refuses socket()",
    );
}

#[tokio::test]
async fn network_allowed_when_configured() {
    let server = Server::start_with(&["--kernel-network", "allow"], &[]);
    let out = run(
        &server,
        "default",
        "import socket; s = socket.socket(); print('socket ok', s.family)",
    )
    .await;
    assert!(out.contains("socket ok"), "{out}");
}

/// Kernel code that forks up to `n` sleeping children, stops at the first refusal, kills and
/// reaps them and prints `forked <count> then <error type> <error>`.
fn fork_up_to(n: usize) -> String {
    format!(
        r#"
import os, time
pids, err = [], None
for i in range({n}):
    try:
        pid = os.fork()
    except OSError as e:
        err = e
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    pids.append(pid)
for p in pids:
    os.kill(p, 9)
for p in pids:
    os.waitpid(p, 0)
print("forked", len(pids), "then", type(err).__name__, err)
"#
    )
}

#[tokio::test]
async fn fork_three_thousand_processes() {
    let server = Server::start();
    let code = fork_up_to(3000);
    let st = status(&server, "default").await;
    // Where nothing limits processes (the Lambda-like sandbox), 3,000 real forks of a Python
    // kernel take tens of seconds on a loaded 2-core machine: give the cell 300 s, not the
    // default 50, so the verdict is about the limit and never about the machine's load.
    let r = server
        .call(
            "execute_code",
            json!({"code": code, "kernel": "default", "timeout": 300}),
        )
        .await;
    let out = text(&r);
    let st_after = status(&server, "default").await;
    let _ = st;
    if out.contains("forked 3000") {
        assert!(
            reported_not_applied(&st_after, "cgroup")
                && reported_not_applied(&st_after, "RLIMIT_NPROC"),
            "3000 forks succeeded but the status claims a process limit: {st_after}"
        );
        verdict(
            "fork 3000 processes",
            false,
            "no cgroup and no RLIMIT_NPROC for this server",
        );
        return;
    }
    assert!(out.contains("BlockingIOError"), "{out}");
    still_works(&server).await;
    let how = if verified(&st_after, "cgroup v2")
        && !reported_not_applied(&st_after, "cgroup v2 pids.max")
    {
        "cgroup v2 pids.max"
    } else if verified(&st_after, "cgroup v1") {
        "cgroup v1 pids.max"
    } else {
        "RLIMIT_NPROC"
    };
    verdict("fork 3000 processes", true, how);
}

#[tokio::test]
async fn allocate_ten_times_the_memory_limit() {
    let server = Server::start_with(&["--kernel-memory-mb", "256"], &[]);
    let out = run(
        &server,
        "default",
        "try:\n    b = bytearray(10 * 256 * 1024 * 1024)\n    b[::4096] = b'x' * len(b[::4096])\n    print('allocated')\nexcept MemoryError as e:\n    print('MemoryError', e)",
    )
    .await;
    assert!(out.contains("MemoryError"), "{out}");
    let st = status(&server, "default").await;
    assert!(verified(&st, "RLIMIT_AS"), "{st}");
    still_works(&server).await;
    verdict(
        "allocate 10x the memory limit",
        true,
        "RLIMIT_AS: MemoryError",
    );
}

#[tokio::test]
async fn burn_cpu_past_the_limit() {
    let server = Server::start_with(&["--kernel-cpu-secs", "2"], &[]);
    let r = server.exec("while True:\n    pass").await;
    assert_eq!(status_of(&r), "kernel_died", "{r}");
    assert!(
        text(&r).contains("SIGXCPU") || text(&r).contains("CPU"),
        "the message must name the limit: {r}"
    );
    still_works(&server).await;
    verdict(
        "burn CPU past RLIMIT_CPU",
        true,
        "RLIMIT_CPU: the kernel is killed, the next call gets a fresh one",
    );
}

fn status_of(r: &Value) -> &str {
    crate::common::status(r)
}

#[tokio::test]
async fn write_a_file_past_the_size_limit() {
    let server = Server::start_with(&["--kernel-file-size-mb", "1"], &[]);
    let out = run(
        &server,
        "default",
        "try:\n    open('big.bin', 'wb').write(b'x' * (2 * 1024 * 1024))\n    print('wrote')\nexcept OSError as e:\n    print('OSError', e.errno, e)",
    )
    .await;
    assert!(out.contains("OSError 27"), "{out}");
    still_works(&server).await;
    verdict("write past RLIMIT_FSIZE", true, "RLIMIT_FSIZE: EFBIG");
}

/// Starts, from `kernel`, a `setsid` child and a double-forked one (its parent exits, so it is
/// no longer in the kernel's process tree); returns their pids.
async fn leave_setsid_children(server: &Server, kernel: &str) -> Vec<u32> {
    let code = r#"
import os, subprocess
p = subprocess.Popen(["sleep", "600"], start_new_session=True)
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        os.execvp("sleep", ["sleep", "601"])
    os._exit(0)
print(p.pid, int(os.read(r, 32)))
"#;
    let out = run(server, kernel, code).await;
    let pids: Vec<u32> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "{out}");
    pids
}

/// Those of `pids` still alive after a grace period. In the Lambda-like sandbox the pids are
/// the sandbox's own (a pid namespace): they mean nothing here and are never signalled; the
/// namespace dies with its server.
async fn survivors(pids: &[u32]) -> Vec<u32> {
    if in_lambda_like() {
        return Vec::new();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pids.iter().copied().filter(|p| alive(*p)).collect()
}

/// Kills what a test left behind where no defence could (pids of this machine only).
fn kill_leftovers(pids: &[u32]) {
    for p in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[tokio::test]
async fn leave_a_setsid_child_and_crash() {
    let server = Server::start();
    let pids = leave_setsid_children(&server, "default").await;
    let st = status(&server, "default").await;
    let r = server.exec("import os; os.kill(os.getpid(), 9)").await;
    assert_eq!(status_of(&r), "kernel_died", "{r}");
    let survivors = survivors(&pids).await;
    if !verified(&st, "cgroup") {
        kill_leftovers(&survivors);
        assert!(reported_not_applied(&st, "cgroup"), "{st}");
        verdict(
            "setsid child outlives a crashed kernel",
            false,
            "no cgroup for this server: process-tree sweep only",
        );
        return;
    }
    assert!(survivors.is_empty(), "survived the kernel: {survivors:?}");
    still_works(&server).await;
    verdict(
        "setsid child outlives a crashed kernel",
        true,
        "cgroup per kernel, swept when it exits",
    );
}

/// The kernel's cgroup v2 path, as verified from /proc (`cgroup v2 /...`).
fn v2_cgroup(status: &Value) -> Option<String> {
    strings(&status["security"]["kernel"])
        .iter()
        .find_map(|l| l.strip_prefix("cgroup v2 ").map(String::from))
}

#[tokio::test]
async fn leave_setsid_children_and_restart_or_shut_down() {
    let server = Server::start();
    let mut all = Vec::new();
    let mut paths = Vec::new();
    for (kernel, action, args) in [
        ("default", "restart_kernel", json!({})),
        ("other", "shutdown_kernel", json!({"kernel": "other"})),
    ] {
        let pids = leave_setsid_children(&server, kernel).await;
        let st = status(&server, kernel).await;
        paths.push(v2_cgroup(&st));
        let r = server.call(action, args).await;
        assert!(!is_error(&r), "{action}: {r}");
        all.extend(pids);
    }
    let survivors = survivors(&all).await;
    let st = status(&server, "default").await;
    let Some(paths) = paths.into_iter().collect::<Option<Vec<String>>>() else {
        kill_leftovers(&survivors);
        let why: Vec<String> = strings(&st["security"]["not_applied"])
            .into_iter()
            .filter(|l| l.starts_with("cgroup v2: "))
            .collect();
        assert!(
            !why.is_empty(),
            "the kernels had no cgroup v2, and that is not reported: {st}"
        );
        verdict(
            "setsid and double-forked children outlive a restart or shutdown (cgroup v2)",
            false,
            &why.join("; "),
        );
        return;
    };
    if reported_not_applied(&st, "cgroup v2 kill") {
        // The v2 cgroup is still emptied, by SIGKILL rounds; this attack is about cgroup.kill.
        kill_leftovers(&survivors);
        verdict(
            "setsid and double-forked children outlive a restart or shutdown (cgroup v2)",
            false,
            "this Linux has no cgroup.kill",
        );
        return;
    }
    assert!(
        survivors.is_empty(),
        "survived a restart or shutdown: {survivors:?}"
    );
    // Each kernel's cgroup was killed through cgroup.kill, with its escapees still in it.
    let log = server.log_text();
    for path in &paths {
        assert!(
            log.lines()
                .any(|l| l.contains("killed a kernel's cgroup with cgroup.kill")
                    && l.contains(path.as_str())),
            "no cgroup.kill logged for {path}:\n{log}"
        );
    }
    still_works(&server).await;
    verdict(
        "setsid and double-forked children outlive a restart or shutdown (cgroup v2)",
        true,
        "cgroup v2 per kernel, killed with cgroup.kill",
    );
}

/// The `not_applied` lines of the cgroup v2 limits, each checked against the host's own files:
/// a controller missing from the server cgroup's `cgroup.subtree_control` must be reported,
/// naming what the host's `cgroup.controllers` lists. Empty when both limits apply.
fn v2_limits_not_applied(server: &Server, st: &Value) -> Vec<String> {
    let lines = strings(&st["security"]["not_applied"]);
    let find = |prefix: &str| lines.iter().find(|l| l.starts_with(prefix)).cloned();
    let Some(parent) = cgroup_v2_dir(server.pid()).filter(|_| !in_lambda_like()) else {
        let line = find("cgroup v2: ").expect("no cgroup v2 here, and none reported");
        return vec![line];
    };
    let enabled = cgroup_words(&parent.join("cgroup.subtree_control"));
    let available = cgroup_words(&parent.join("cgroup.controllers"));
    let mut out = Vec::new();
    for c in ["pids", "memory"] {
        let line = find(&format!("cgroup v2 {c}.max: "));
        if enabled.iter().any(|e| e == c) {
            assert!(line.is_none(), "{c} is enabled here, yet: {line:?}");
            continue;
        }
        let line =
            line.unwrap_or_else(|| panic!("{c} is not enabled here, yet not reported: {st}"));
        assert_v2_limit_reason(&line, c, &available);
        if !available.iter().any(|a| a == c) {
            let at = format!("not available in the v2 hierarchy at {}", parent.display());
            assert!(
                line.contains(&at),
                "the reason does not name the hierarchy: {line}"
            );
        }
        out.push(line);
    }
    out
}

/// A counter of a cgroup v2 `*.events` file (`max`, `oom_kill`, ...).
fn event(dir: &std::path::Path, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn fork_and_allocate_past_the_cgroup_v2_limits() {
    let name = "fork and allocate past the kernel's cgroup v2 pids.max and memory.max";
    let server = Server::start_with(
        &["--kernel-processes", "64", "--kernel-memory-mb", "256"],
        &[],
    );
    let kernel: u32 = run(&server, "default", "import os; print(os.getpid())")
        .await
        .trim()
        .parse()
        .unwrap();
    let st = status(&server, "default").await;
    let missing = v2_limits_not_applied(&server, &st);
    if !missing.is_empty() {
        verdict(name, false, &missing.join("; "));
        return;
    }
    // Both controllers are enabled for the server's children: the limits must be set and bind,
    // as the cgroup's own event counters show.
    let path = v2_cgroup(&st).expect("the limits apply, so the kernel has a cgroup v2");
    let dir = cgroup2_mounts()[0].join(path.trim_start_matches('/'));
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("pids.max"), "64");
    let limits = std::fs::read_to_string(format!("/proc/{kernel}/limits")).unwrap();
    let address_space = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max address space"))
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    assert_eq!(read("memory.max"), address_space);
    let out = run(&server, "default", &fork_up_to(200)).await;
    assert!(out.contains("BlockingIOError"), "{out}");
    assert!(
        event(&dir, "pids.events", "max") > 0,
        "pids.max did not bind: {out}"
    );
    // Eight children each touch 15% of memory.max: together past it, each under RLIMIT_AS.
    let limit: u64 = read("memory.max").parse().unwrap();
    let allocate = format!(
        r#"
import os, time
kids = []
for i in range(8):
    pid = os.fork()
    if pid == 0:
        b = bytearray({each})
        b[::4096] = b"x" * len(b[::4096])
        time.sleep(5)
        os._exit(0)
    kids.append(pid)
print("exits", [os.waitpid(k, 0)[1] for k in kids])
"#,
        each = limit * 15 / 100
    );
    let _ = server
        .call("execute_code", json!({"code": allocate, "timeout": 120}))
        .await;
    assert!(
        event(&dir, "memory.events", "oom_kill") > 0,
        "memory.max did not bind: {}",
        read("memory.events")
    );
    still_works(&server).await;
    verdict(name, true, "cgroup v2 pids.max and memory.max");
}

#[tokio::test]
async fn kernel_code_runs_as_root() {
    // Where the interpreter is under /root (as here), bwrap makes it readable for uid 65534 while
    // the server stays root, so the uid drop can apply and be checked.
    let wrapper = match std::env::var_os(LAMBDA_LIKE_ENV) {
        Some(_) => None,
        None => readable_python_wrapper(NOBODY),
    };
    let wrapper: Vec<&str> = wrapper.iter().flatten().map(String::as_str).collect();
    let server = Server::start_wrapped(&wrapper, &[], &[]);
    let out = run(
        &server,
        "default",
        "import os; print(os.getuid(), os.getgid())",
    )
    .await;
    let uid: u32 = out.split_whitespace().next().unwrap().parse().unwrap();
    let st = status(&server, "default").await;
    if !nix::unistd::geteuid().is_root() {
        assert!(reported_not_applied(&st, "unprivileged uid"), "{st}");
        verdict(
            "kernel code runs with the server's privileges",
            false,
            "the server is not root: kernels share its uid",
        );
        return;
    }
    if uid == 0 {
        // Root kernels only when the unprivileged uid could not run the interpreter; then the
        // status must say so, and capabilities must be gone all the same.
        assert!(reported_not_applied(&st, "unprivileged uid"), "{st}");
        assert!(verified(&st, "no capabilities"), "{st}");
        verdict(
            "kernel code runs as root",
            false,
            "the unprivileged uid cannot run this interpreter (reported); capabilities dropped",
        );
        return;
    }
    assert!(verified(&st, &format!("uid {uid}")), "{st}");
    assert!(verified(&st, "non-dumpable"), "{st}");
    still_works(&server).await;
    verdict(
        "kernel code runs as root",
        true,
        "kernels run as an unprivileged uid",
    );
}

#[tokio::test]
async fn install_a_package_over_the_download_cap() {
    // A 3 MiB wheel (random, stored: it does not compress) against a 1 MiB cap, from an index on
    // loopback; a small one from the same index must still install.
    let index = LocalIndex::start(&["jmcp-big==1.0:3", "jmcp-small==1.0:0.1"]);
    let server = Server::start_with(
        &[
            "--package-index-url",
            &index.url,
            "--package-max-download-mb",
            "1",
        ],
        &[],
    );
    let r = server
        .call("install_package", json!({"package": "jmcp-big"}))
        .await;
    assert!(is_error(&r), "an install over the cap succeeded: {r}");
    assert_eq!(status_of(&r), "refused", "{r}");
    assert!(
        text(&r).contains("1 MiB cap (--package-max-download-mb)"),
        "the refusal must name the cap: {r}"
    );
    let found = run(
        &server,
        "default",
        "import importlib.util; print(importlib.util.find_spec('jmcp_big'))",
    )
    .await;
    assert_eq!(found.trim(), "None", "the big package landed anyway");
    let r = server
        .call("install_package", json!({"package": "jmcp-small"}))
        .await;
    assert!(!is_error(&r), "an install under the cap failed: {r}");
    still_works(&server).await;
    verdict(
        "install a package whose wheel is over the download cap",
        true,
        "pip downloads under RLIMIT_FSIZE = --package-max-download-mb, then installs offline",
    );
}

#[tokio::test]
async fn fill_the_disk_quota() {
    let server = Server::start_with(&["--disk-quota-mb", "5"], &[]);
    // Writes until stopped: only the quota watcher's interrupt ends it before the timeout.
    let r = server
        .call(
            "execute_code",
            json!({"code": "import time, itertools\nfor i in itertools.count():\n    open(f'fill-{i}.bin', 'wb').write(b'x' * 1024 * 1024)\n    time.sleep(0.2)", "timeout": 120}),
        )
        .await;
    assert_eq!(
        status_of(&r),
        "error",
        "the cell should be interrupted: {r}"
    );
    assert!(text(&r).contains("KeyboardInterrupt"), "{r}");
    assert!(
        text(&r).contains("--disk-quota-mb"),
        "the result must name the quota: {r}"
    );
    let refused = server.exec("print('more')").await;
    assert_eq!(status_of(&refused), "over_quota", "{refused}");
    assert!(text(&refused).contains("delete files"), "{refused}");
    assert!(
        text(&refused).contains("fill-"),
        "it should name a file to delete: {refused}"
    );
    for entry in std::fs::read_dir(server.workdir.path()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("fill-") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    still_works(&server).await;
    verdict(
        "fill the disk quota",
        true,
        "measured before, during (interrupt) and after each execution",
    );
}

#[tokio::test]
async fn make_the_server_read_a_file_through_a_planted_link() {
    let server = Server::start();
    // The kernel plants links in its own directory; the server (not confined) must not follow
    // them out of the principal's directory.
    let code = format!(
        r#"{TRY}
import os
attempt("symlink", lambda: os.symlink("/etc/shadow", "steal.ipynb"))
attempt("dir-symlink", lambda: os.symlink("/etc", "etcdir"))
attempt("hardlink", lambda: os.link("/etc/passwd", "hard.ipynb"))
"#
    );
    let out = run(&server, "default", &code).await;
    assert!(
        out.contains("hardlink: PermissionError") || out.contains("hardlink: OSError"),
        "a hard link to a system file was made: {out}"
    );
    for path in ["steal.ipynb", "etcdir/passwd.ipynb", "hard.ipynb"] {
        let r = server.call("read_notebook", json!({"path": path})).await;
        assert!(is_error(&r), "{path}: {r}");
        assert!(!text(&r).contains("root:"), "{path} leaked: {r}");
    }
    still_works(&server).await;
    verdict(
        "make the server read /etc through a planted link",
        true,
        "notebook paths refuse symlinks out of the directory; Landlock refuses hard links from /etc",
    );
}

/// The uid kernels drop to by default when the server is root.
const NOBODY: u32 = 65534;

/// Keys of two principals for the attacks between them.
const ALICE_KEY: &str = "jmcp_attack_alice_0123456789abcdef";
const BOB_KEY: &str = "jmcp_attack_bob_fedcba9876543210";
/// A sub-range of its own, so this test's uids are nobody else's on the machine.
const UID_RANGE: &str = "231000-231999";
const UID_FIRST: u32 = 231000;

fn principal_keys() -> String {
    use sha2::Digest;
    let hex = |k: &str| -> String {
        sha2::Sha256::digest(k.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    format!("alice:{},bob:{}", hex(ALICE_KEY), hex(BOB_KEY))
}

/// Runs `code` as a principal; returns the text output.
async fn run_as(server: &Server, key: &str, code: &str) -> String {
    text(
        &server
            .call_as(key, "execute_code", json!({"code": code}))
            .await,
    )
}

/// `sh -c script` as `uid` straight from the test: no Landlock, no seccomp, nothing but the
/// uid. Returns (success, stderr).
fn sh_as(uid: u32, script: &str) -> (bool, String) {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .env_clear()
        .current_dir("/")
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The effective uid of a process, from /proc.
fn proc_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// Attack between principals under `--kernel-uid-per-principal`: alice's kernel signals bob's
/// kernel, reads bob's files and lists bob's directory, and reads bob's connection file. Each is
/// refused by the kernel's own layers; then the same reads and signals, made from the test as
/// alice's uid with no Landlock or seccomp at all, are refused too: the OS keeps them apart by
/// uid alone. Where the server cannot be root (the Lambda-like run) or no interpreter is
/// readable by other uids, the test says so and checks the status reports it.
#[tokio::test]
async fn principals_kept_apart_by_uid() {
    let keys = principal_keys();
    let env = [("JUPYTER_MCP_API_KEYS", keys.as_str())];
    let lambda_like = in_lambda_like();
    let wrapper = if lambda_like {
        None
    } else {
        readable_python_wrapper(UID_FIRST)
    };
    let Some(wrapper) = wrapper else {
        let server = Server::start_with(&[], &env);
        let st = server
            .call_as(ALICE_KEY, "get_kernel_status", json!({}))
            .await["structuredContent"]
            .clone();
        assert!(reported_not_applied(&st, "uid per principal"), "{st}");
        let why = if nix::unistd::geteuid().is_root() && !lambda_like {
            "no interpreter other uids can run here and no bwrap to make one readable (reported)"
        } else {
            "the server is not root (one OS user, as on Lambda): principals share a uid (reported)"
        };
        verdict(
            "another principal's kernel, files and keys, by uid",
            false,
            why,
        );
        return;
    };
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let index = LocalIndex::start(&["jmcp-uidpkg==1.0"]);
    let server = Server::start_wrapped(
        &wrapper,
        &[
            "--kernel-uid-per-principal",
            "--kernel-uid-range",
            UID_RANGE,
            "--package-index-url",
            &index.url,
        ],
        &env,
    );
    let who = "import os; print(os.getpid(), os.getuid(), os.getgid(), os.getcwd())";
    let bob = run_as(
        &server,
        BOB_KEY,
        &format!("open('bob-secret.txt', 'w').write('bob-secret-value')\n{who}"),
    )
    .await;
    let alice = run_as(&server, ALICE_KEY, who).await;
    let fields = |s: &str| -> (u32, u32, u32, String) {
        let v: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(v.len(), 4, "{s}");
        (
            v[0].parse().unwrap(),
            v[1].parse().unwrap(),
            v[2].parse().unwrap(),
            v[3].to_string(),
        )
    };
    let (bob_pid, bob_uid, bob_gid, bob_home) = fields(&bob);
    let (_alice_pid, alice_uid, alice_gid, alice_home) = fields(&alice);
    let range = UID_FIRST..=UID_FIRST + 999;
    assert!(
        range.contains(&alice_uid) && range.contains(&bob_uid),
        "{alice} / {bob}"
    );
    assert_ne!(alice_uid, bob_uid);
    assert_eq!((alice_gid, bob_gid), (alice_uid, bob_uid));
    assert_eq!(proc_uid(bob_pid), bob_uid, "as seen from outside");
    for (home, uid) in [(&alice_home, alice_uid), (&bob_home, bob_uid)] {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(home).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (uid, uid, 0o700),
            "{home}"
        );
    }
    // pip runs as the principal's uid too: what it installs in `.packages` is alice's.
    let r = server
        .call_as(
            ALICE_KEY,
            "install_package",
            json!({"package": "jmcp-uidpkg==1.0"}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let packages = std::path::Path::new(&alice_home).join(".packages");
    for path in [
        packages.clone(),
        packages.join("jmcp_uidpkg"),
        packages.join("jmcp_uidpkg/__init__.py"),
    ] {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (alice_uid, alice_uid),
            "{}",
            path.display()
        );
    }
    // The operator's working directory is not handed to anyone.
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(server.workdir.path()).unwrap().uid(), 0);
    }
    let args = std::fs::read(format!("/proc/{bob_pid}/cmdline")).unwrap();
    let args: Vec<String> = args
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let conn = args[args.iter().position(|a| a == "-f").unwrap() + 1].clone();
    let secret = format!("{bob_home}/bob-secret.txt");
    let code = format!(
        r#"{TRY}
import os, signal
attempt("signal-kernel", lambda: os.kill({bob_pid}, 0))
attempt("kill-kernel", lambda: os.kill({bob_pid}, signal.SIGKILL))
attempt("read-file", lambda: open({secret:?}).read())
attempt("list-dir", lambda: os.listdir({bob_home:?}))
attempt("read-connection-file", lambda: open({conn:?}).read())
"#
    );
    let out = run_as(&server, ALICE_KEY, &code).await;
    for what in [
        "signal-kernel",
        "kill-kernel",
        "read-file",
        "list-dir",
        "read-connection-file",
    ] {
        assert!(
            out.contains(&format!("{what}: PermissionError")),
            "{what} got through: {out}"
        );
    }
    // The uid alone: the same, from a plain process of alice's uid.
    for script in [
        format!("kill -0 {bob_pid}"),
        format!("cat {secret}"),
        format!("ls {bob_home}"),
        format!("cat {conn}"),
    ] {
        let (ok, err) = sh_as(alice_uid, &script);
        assert!(!ok, "as alice's uid, `{script}` worked");
        assert!(
            err.contains("not permitted") || err.contains("Permission denied"),
            "`{script}`: {err}"
        );
    }
    // Control: bob's uid reaches its own things, so the refusals above are about the uid.
    let (ok, err) = sh_as(
        bob_uid,
        &format!("cat {secret} {conn} >/dev/null && kill -0 {bob_pid}"),
    );
    assert!(ok, "bob's own uid: {err}");
    let st = server
        .call_as(ALICE_KEY, "get_kernel_status", json!({}))
        .await["structuredContent"]
        .clone();
    assert!(verified(&st, &format!("uid {alice_uid}")), "{st}");
    assert!(!reported_not_applied(&st, "uid per principal"), "{st}");
    assert!(!reported_not_applied(&st, "unprivileged uid"), "{st}");
    let again = run_as(&server, BOB_KEY, "import os; print(os.getpid())").await;
    assert_eq!(
        again.trim(),
        bob_pid.to_string(),
        "bob's kernel was replaced"
    );
    assert!(
        run_as(&server, BOB_KEY, "print(open('bob-secret.txt').read())")
            .await
            .contains("bob-secret-value")
    );
    verdict(
        "another principal's kernel, files and keys, by uid",
        true,
        "each principal's kernels run as its own uid: the OS refuses signals and reads without Landlock or seccomp",
    );
}
