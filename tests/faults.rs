//! Faults (issue 12): a kernel or pip killed with SIGKILL mid-call, and the server itself stopped
//! mid-cell with SIGTERM and with SIGKILL, then started again on the same working directory.
//! Each checks that the files are intact, nothing is left running or on disk, and the next call
//! works.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::common::*;

/// Code that writes the kernel's pid to `pidfile`, then sleeps until stopped.
fn sleeper(pidfile: &Path) -> String {
    format!(
        "import os, time\nopen({:?}, 'w').write(str(os.getpid()))\nprint('started', flush=True)\ntime.sleep(600)",
        pidfile.display().to_string()
    )
}

/// Waits (bounded) for `pidfile` to hold a pid.
async fn read_pid(pidfile: &Path) -> u32 {
    for _ in 0..300 {
        if let Ok(pid) = std::fs::read_to_string(pidfile).map(|s| s.trim().parse::<u32>())
            && let Ok(pid) = pid
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never held a pid", pidfile.display());
}

/// Waits (bounded) until `pid` is gone.
async fn gone(pid: u32) -> bool {
    for _ in 0..100 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Waits (bounded) until `path` no longer exists.
async fn removed(path: &Path) -> bool {
    for _ in 0..100 {
        if !path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

/// The notebook parses as JSON and as nbformat 4 (nbformat's own validator).
fn assert_valid_notebook(path: &Path) -> Value {
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    assert_nbformat_valid(path);
    doc
}

#[tokio::test]
async fn a_kernel_killed_mid_cell_fails_the_call_and_the_next_call_runs() {
    let server = Arc::new(Server::start());
    let pidfile = server.workdir.path().join("kpid");
    let running = {
        let server = Arc::clone(&server);
        let code = sleeper(&pidfile);
        tokio::spawn(async move {
            server
                .call(
                    "execute_code",
                    json!({"kernel": "f", "code": code, "timeout": 600}),
                )
                .await
        })
    };
    let pid = read_pid(&pidfile).await;
    sigkill(pid);
    let r = running.await.unwrap();
    assert_eq!(status(&r), "kernel_died", "{r}");
    assert!(
        text(&r).contains("started"),
        "the output before the kill was lost: {r}"
    );
    assert!(gone(pid).await);
    let next = server.exec_on("f", "6 * 7").await;
    assert_eq!(status(&next), "ok", "{next}");
    assert!(text(&next).contains("42"), "{next}");
}

/// pip processes among the server's children.
fn pips(server_pid: u32) -> Vec<u32> {
    children_of(server_pid)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("pip"))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test]
async fn pip_killed_mid_install_fails_the_install_and_frees_the_lock() {
    // pip hangs on a loopback index that accepts and never answers: it is mid-install.
    let index = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/simple", index.local_addr().unwrap());
    let server = Arc::new(Server::start_with(
        &["--wait-timeout", "5", "--package-index-url", &url],
        &[],
    ));
    let install = |package: &'static str| {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            server
                .call("install_package", json!({"package": package}))
                .await
        })
    };
    let first = install("termcolor");
    let (held, _) = tokio::time::timeout(Duration::from_secs(60), index.accept())
        .await
        .expect("pip never reached the index")
        .unwrap();
    let pip = pips(server.pid());
    assert_eq!(pip.len(), 1, "expected one pip: {pip:?}");
    sigkill(pip[0]);
    let r = first.await.unwrap();
    assert!(is_error(&r), "{r}");
    assert!(!text(&r).is_empty(), "{r}");
    assert!(gone(pip[0]).await);
    drop(held);
    // The lock is free: the next install reaches pip (the index) instead of answering busy.
    let second = install("six");
    let (held, _) = tokio::time::timeout(Duration::from_secs(60), index.accept())
        .await
        .expect("the next install never reached pip: the lock was kept")
        .unwrap();
    for p in pips(server.pid()) {
        sigkill(p);
    }
    drop(held);
    let r = second.await.unwrap();
    assert!(is_error(&r), "{r}");
    assert_eq!(text(&server.exec("1 + 1").await), "2");
    for p in pips(server.pid()) {
        assert!(gone(p).await, "pip {p} was left running");
    }
}

#[tokio::test]
async fn a_kernel_killed_mid_execute_cell_leaves_a_valid_notebook() {
    let server = Arc::new(Server::start());
    let pidfile = server.workdir.path().join("kpid");
    let created = server
        .call(
            "create_notebook",
            json!({"path": "nb.ipynb", "cells": [
                {"cell_type": "code", "source": sleeper(&pidfile)},
                {"cell_type": "code", "source": "6 * 7"}]}),
        )
        .await;
    assert!(!is_error(&created), "{created}");
    let running = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            server
                .call(
                    "execute_cell",
                    json!({"path": "nb.ipynb", "cell": 0, "timeout": 600}),
                )
                .await
        })
    };
    let pid = read_pid(&pidfile).await;
    sigkill(pid);
    let r = running.await.unwrap();
    assert_eq!(status(&r), "kernel_died", "{r}");
    let doc = assert_valid_notebook(&server.workdir.path().join("nb.ipynb"));
    assert_eq!(doc["cells"].as_array().unwrap().len(), 2, "{doc}");
    let next = server
        .call("execute_cell", json!({"path": "nb.ipynb", "cell": 1}))
        .await;
    assert!(!is_error(&next), "{next}");
    let doc = assert_valid_notebook(&server.workdir.path().join("nb.ipynb"));
    assert!(
        doc["cells"][1]["outputs"].to_string().contains("42"),
        "{doc}"
    );
}

/// Stops the server with `signal` while a cell runs (after saving a notebook), then starts a
/// new server on the same directory: the notebook is intact, the kernel, the server's runtime
/// root and the kernel's directories are gone, and the next call works.
async fn stop_mid_cell_and_start_again(signal: Signal) {
    let mut server = Server::start();
    let created = server
        .call(
            "create_notebook",
            json!({"path": "kept.ipynb", "cells": [{"cell_type": "code", "source": "x = 1"}]}),
        )
        .await;
    assert!(!is_error(&created), "{created}");
    let ran = server
        .call("execute_cell", json!({"path": "kept.ipynb", "cell": 0}))
        .await;
    assert!(!is_error(&ran), "{ran}");
    let before = std::fs::read(server.workdir.path().join("kept.ipynb")).unwrap();
    let pidfile = server.workdir.path().join("kpid");
    let url = server.url.clone();
    let code = sleeper(&pidfile);
    let running = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "execute_code", "arguments": {"code": code, "timeout": 600}}});
        mcp_post(&client, &url).body(body.to_string()).send().await
    });
    let kernel = read_pid(&pidfile).await;
    let root: PathBuf = runtime_root_of(server.pid());
    kill(Pid::from_raw(server.pid() as i32), signal).unwrap();
    assert!(
        server.wait_exit(Duration::from_secs(20)),
        "the server did not exit on {signal}"
    );
    // The client's call ended (answered or cut off); it does not hang.
    let _ = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the running call hung after the server stopped");
    assert!(
        gone(kernel).await,
        "kernel {kernel} outlived the server ({signal})"
    );
    if signal == Signal::SIGTERM {
        assert!(
            removed(&root).await,
            "{} was left after SIGTERM",
            root.display()
        );
    }
    let workdir = server.into_workdir();
    let path = workdir.path().join("kept.ipynb");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the notebook changed"
    );
    assert_valid_notebook(&path);

    let again = Server::start_in(workdir, &[]);
    let r = again.exec("6 * 7").await;
    assert_eq!(text(&r), "42", "{r}");
    assert!(
        !root.exists(),
        "{} was left after {signal} and a new start",
        root.display()
    );
    let read = again
        .call("read_notebook", json!({"path": "kept.ipynb"}))
        .await;
    assert!(!is_error(&read), "{read}");
}

#[tokio::test]
async fn a_server_stopped_by_sigterm_mid_cell_leaves_nothing_and_starts_again() {
    stop_mid_cell_and_start_again(Signal::SIGTERM).await;
}

#[tokio::test]
async fn a_server_killed_by_sigkill_mid_cell_leaves_nothing_and_starts_again() {
    stop_mid_cell_and_start_again(Signal::SIGKILL).await;
}
