//! Process lifecycle: SIGTERM stops the server and every kernel it started; the warm spare makes
//! a new kernel name ready without Python start-up.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn sigterm_stops_the_server_and_every_kernel() {
    let mut server = Server::start();
    for name in ["a", "b", "c"] {
        assert_eq!(status(&server.exec_on(name, "1").await), "ok");
    }
    // Three kernels and the warm spare: the children started with a connection file (a child
    // that is exiting, or not yet exec'd, has none and is not counted).
    let kernel_cmdlines = || -> Vec<(u32, String)> {
        children_of(server.pid())
            .into_iter()
            .filter_map(|pid| {
                let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?;
                cmdline
                    .contains("connection.json")
                    .then_some((pid, cmdline))
            })
            .collect()
    };
    let mut found = kernel_cmdlines();
    for _ in 0..100 {
        if found.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        found = kernel_cmdlines();
    }
    assert!(found.len() >= 4, "{found:?}");
    let (kernels, runtime_dirs): (Vec<u32>, Vec<String>) = found.into_iter().unzip();
    assert!(server.stop(), "the server did not exit on SIGTERM");
    for _ in 0..100 {
        if kernels.iter().all(|pid| !alive(*pid)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in &kernels {
        assert!(!alive(*pid), "kernel {pid} outlived the server");
    }
    // Connection files and sockets are gone with them.
    for cmdline in runtime_dirs {
        let conn = cmdline
            .split('\0')
            .find(|a| a.ends_with("connection.json"))
            .unwrap();
        assert!(!std::path::Path::new(conn).exists(), "{conn} left behind");
    }
}

#[tokio::test]
async fn the_warm_spare_serves_a_new_kernel_name() {
    let server = Server::start();
    server.exec("1").await;
    // Wait until the spare is up (a child beyond the default kernel).
    for _ in 0..200 {
        if children_of(server.pid()).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        children_of(server.pid()).len() >= 2,
        "no warm spare came up"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = server
        .call("get_kernel_status", json!({"kernel": "fresh"}))
        .await;
    assert_eq!(r["structuredContent"]["state"], "not_started");
    let asked = std::time::Instant::now();
    assert_eq!(status(&server.exec_on("fresh", "1").await), "ok");
    let r = server
        .call("get_kernel_status", json!({"kernel": "fresh"}))
        .await;
    assert_eq!(r["structuredContent"]["state"], "idle", "{r}");
    // The kernel process is older than the request: it was the spare, already running.
    let uptime = r["structuredContent"]["uptime_secs"].as_f64().unwrap();
    let since_asked = asked.elapsed().as_secs_f64();
    assert!(
        uptime > since_asked + 0.4,
        "uptime {uptime} s, asked {since_asked} s ago"
    );
}

#[tokio::test]
async fn a_non_loopback_bind_with_insecure_no_auth_works_with_a_warning() {
    use std::io::{BufRead, BufReader};
    let workdir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_jupyter-mcp-server"))
        .args([
            "--port",
            "0",
            "--host",
            "0.0.0.0",
            "--insecure-no-auth",
            "--working-dir",
        ])
        .arg(workdir.path())
        .arg("--python")
        .arg(python())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut warned = false;
    let mut port = None;
    // The start-up log lists every sandbox layer (a dozen or more lines) before the address.
    for line in lines.by_ref().map_while(Result::ok).take(100) {
        warned |= line.contains("non-loopback") && line.contains("anyone who can reach this port");
        if let Some(i) = line.find("http://0.0.0.0:") {
            port = line[i + "http://0.0.0.0:".len()..]
                .split('/')
                .next()
                .map(str::to_string);
            break;
        }
    }
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let port = port.expect("the server logged its address");
    assert!(warned, "no warning about the open bind");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let resp = mcp_post(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}/mcp"),
    )
    .body(body.to_string())
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    drop(child);
}
