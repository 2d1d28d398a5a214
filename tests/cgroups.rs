//! Kernel cgroups: a server killed outright (SIGKILL) cannot remove its kernels' cgroup
//! directories; the next server to start removes them, as it removes the runtime directories.
//! A kernel in a cgroup v2 is listed in that cgroup's `cgroup.procs`, and the start-up log and
//! `get_kernel_status` name each v2 piece (membership, kill, pids.max, memory.max) as applied or
//! not, with the reason this host gives.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::*;

/// The kernel cgroup directories (v1 pids and memory, v2) a process is in, from
/// `/proc/<pid>/cgroup`.
fn kernel_cgroup_dirs(pid: u32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let v2 = cgroup_v2_dir(pid).filter(|d| d.to_string_lossy().contains("/jupyter-mcp-p"));
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if !path.contains("/jupyter-mcp-p") {
                return None;
            }
            let controller = ["pids", "memory"]
                .into_iter()
                .find(|c| controllers.split(',').any(|x| x == *c))?;
            Some(
                PathBuf::from("/sys/fs/cgroup")
                    .join(controller)
                    .join(path.trim_start_matches('/')),
            )
        })
        .chain(v2)
        .collect()
}

#[tokio::test]
async fn a_killed_servers_kernel_cgroups_are_removed_by_the_next() {
    if in_lambda_like() {
        eprintln!("not applicable: no cgroup in the Lambda-like sandbox");
        return;
    }
    let mut server = Server::start();
    let r = server.exec("import os; print(os.getpid())").await;
    let kernel: u32 = text(&r).trim().parse().unwrap();
    let dirs = kernel_cgroup_dirs(kernel);
    if dirs.is_empty() {
        let st = server
            .call("get_kernel_status", serde_json::json!({}))
            .await;
        let not_applied = st["structuredContent"]["security"]["not_applied"].to_string();
        assert!(
            not_applied.contains("cgroup"),
            "no cgroup, and none reported: {st}"
        );
        eprintln!("not applicable: this server cannot create cgroups ({not_applied})");
        return;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    server.stop();
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(kernel) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(kernel), "the kernel outlived its SIGKILLed server");
    for dir in &dirs {
        assert!(
            dir.exists(),
            "{} was already gone: nothing to test",
            dir.display()
        );
    }
    let next = Server::start();
    for dir in &dirs {
        assert!(
            !dir.exists(),
            "{} is still there after a new server started",
            dir.display()
        );
    }
    assert!(
        next.log_text()
            .contains("removed the cgroup of a kernel whose server is gone"),
        "{}",
        next.log_text()
    );
}

/// Status lines of a kernel, structured.
async fn kernel_status(server: &Server) -> serde_json::Value {
    server
        .call("get_kernel_status", serde_json::json!({}))
        .await["structuredContent"]["security"]
        .clone()
}

/// A server, its default kernel's pid and that kernel's `security` status.
async fn server_with_kernel() -> (Server, u32, serde_json::Value) {
    let server = Server::start();
    let r = server.exec("import os; print(os.getpid())").await;
    let kernel: u32 = text(&r).trim().parse().unwrap();
    let security = kernel_status(&server).await;
    (server, kernel, security)
}

#[tokio::test]
async fn a_kernel_is_listed_in_its_v2_cgroup_procs() {
    if in_lambda_like() {
        eprintln!("not applicable: no cgroup in the Lambda-like sandbox");
        return;
    }
    let (server, kernel, security) = server_with_kernel().await;
    let Some(dir) =
        cgroup_v2_dir(kernel).filter(|d| d.to_string_lossy().contains("/jupyter-mcp-p"))
    else {
        let not_applied = strings(&security["not_applied"]);
        assert!(
            not_applied.iter().any(|l| l.starts_with("cgroup v2: ")),
            "the kernel has no cgroup v2, and none is reported: {security}"
        );
        eprintln!("not applicable: {not_applied:?}");
        return;
    };
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with(&format!("jupyter-mcp-p{}-", server.pid())),
        "{name} is not named by the server's pid"
    );
    assert_eq!(
        dir.parent(),
        cgroup_v2_dir(server.pid()).as_deref(),
        "the kernel's cgroup is not a child of the server's"
    );
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == kernel.to_string()),
        "kernel {kernel} is not in {}/cgroup.procs: {procs}",
        dir.display()
    );
    let path = std::fs::read_to_string(format!("/proc/{kernel}/cgroup")).unwrap();
    let path = path.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    assert!(
        strings(&security["kernel"]).contains(&format!("cgroup v2 {path}")),
        "the status does not verify the kernel's cgroup v2: {security}"
    );
}

#[tokio::test]
async fn the_start_up_log_and_status_name_each_v2_piece_with_the_hosts_reason() {
    if in_lambda_like() {
        eprintln!("not applicable: no cgroup in the Lambda-like sandbox");
        return;
    }
    let (server, kernel, security) = server_with_kernel().await;
    let not_applied = strings(&security["not_applied"]);
    let log = server.log_text();
    let applied = |piece: &str| {
        log.lines().any(|l| {
            l.contains("kernel sandbox: applied") && l.contains(&format!("layer={piece} detail="))
        })
    };
    let reported = |piece: &str| {
        not_applied
            .iter()
            .find(|l| l.starts_with(&format!("{piece}: ")))
            .cloned()
    };
    let Some(parent) = cgroup_v2_dir(server.pid()) else {
        assert!(reported("cgroup v2").is_some(), "{security}");
        eprintln!("not applicable: no cgroup2 hierarchy on this host");
        return;
    };
    let kernel_dir = cgroup_v2_dir(kernel).unwrap();
    assert!(
        kernel_dir.starts_with(&parent) && kernel_dir != parent,
        "the kernel has no cgroup v2 of its own here ({}): {security}",
        kernel_dir.display()
    );
    assert!(applied("cgroup v2"), "{log}");
    // The kill: cgroup.kill exists in the kernel's cgroup (Linux 5.14+) or it is reported.
    let has_kill = kernel_dir.join("cgroup.kill").exists();
    assert_eq!(applied("cgroup v2 kill"), has_kill, "{log}");
    assert_eq!(
        reported("cgroup v2 kill").is_some(),
        !has_kill,
        "{security}"
    );
    // Each limit: applied exactly when its controller is enabled for the server's children;
    // otherwise the reason names what the host's files say.
    let enabled = cgroup_words(&parent.join("cgroup.subtree_control"));
    let available = cgroup_words(&parent.join("cgroup.controllers"));
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", server.pid())).unwrap();
    let mut sources = Vec::new();
    for c in ["pids", "memory"] {
        let piece = format!("cgroup v2 {c}.max");
        if enabled.iter().any(|e| e == c) {
            assert!(applied(&piece), "{log}");
            assert!(reported(&piece).is_none(), "{security}");
            sources.push(format!("cgroup v2 {c}.max"));
            continue;
        }
        assert!(!applied(&piece), "{log}");
        let line = reported(&piece).unwrap_or_else(|| panic!("{piece} not reported: {security}"));
        assert_v2_limit_reason(&line, c, &available);
        if !available.iter().any(|a| a == c) {
            // Bound to v1 exactly when the host shows the controller in a v1 line.
            let on_v1 = own.lines().any(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|cs| cs.split(',').any(|x| x == c))
            });
            assert_eq!(
                line.contains("bound to cgroup v1 on this host"),
                on_v1,
                "{line}"
            );
        }
    }
    // The summary says which hierarchy gives the kill.
    let kill = if has_kill {
        "kill by cgroup v2 cgroup.kill"
    } else {
        "kill by SIGKILL rounds over the cgroup v2 members"
    };
    assert!(
        log.lines()
            .any(|l| l.contains("layer=cgroup detail=a cgroup per kernel: ") && l.contains(kill)),
        "{log}"
    );
    eprintln!(
        "v2 limits applied here: {sources:?}; the log:\n{}",
        log.lines()
            .filter(|l| l.contains("layer=cgroup"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
