//! Kernel cgroups: a server killed outright (SIGKILL) cannot remove its kernels' cgroup
//! directories; the next server to start removes them, as it removes the runtime directories.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::*;

/// The kernel cgroup directories (pids, memory) a process is in, from `/proc/<pid>/cgroup`.
fn kernel_cgroup_dirs(pid: u32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
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
        .collect()
}

#[tokio::test]
async fn a_killed_servers_kernel_cgroups_are_removed_by_the_next() {
    if std::env::var_os(LAMBDA_LIKE_ENV).is_some() {
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
