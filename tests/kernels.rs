//! Kernel lifecycle tools: status, restart, interrupt, list, shutdown, limits, idle reaping.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn status_reports_state_versions_memory_and_limits() {
    let server = Server::start();
    let r = server.call("get_kernel_status", json!({})).await;
    assert_eq!(
        r["structuredContent"]["state"], "not_started",
        "does not start a kernel: {r}"
    );
    server.exec("x = 1").await;
    let r = server.call("get_kernel_status", json!({})).await;
    let s = &r["structuredContent"];
    assert_eq!(s["state"], "idle", "{r}");
    assert_eq!(s["kernel"], "default");
    assert_eq!(s["execution_count"], 1);
    assert!(s["python_version"].as_str().unwrap().starts_with("3."));
    assert!(s["ipykernel_version"].as_str().unwrap().starts_with('7'));
    assert!(s["memory_rss_bytes"].as_u64().unwrap() > 10_000_000);
    assert!(s["uptime_secs"].as_f64().unwrap() >= 0.0);
    assert_eq!(s["limits"]["exec_timeout_secs"], 3600);
    assert_eq!(s["limits"]["max_kernels"], 8);
    // Layers are reported as verified, and missing ones are named.
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        list(&s["security"]["server"]).contains(&"server non-dumpable".to_string()),
        "{s}"
    );
    let kernel = list(&s["security"]["kernel"]);
    assert!(kernel.contains(&"no_new_privs".to_string()), "{s}");
    assert!(kernel.contains(&"environment allowlist".to_string()), "{s}");
    // Read back from /proc on this Linux (seccomp filters are supported here).
    assert!(
        kernel.iter().any(|l| l.starts_with("seccomp filter")),
        "{s}"
    );
    assert!(kernel.iter().any(|l| l.starts_with("RLIMIT_AS")), "{s}");
    assert!(
        list(&s["security"]["not_applied"])
            .iter()
            .any(|l| l.contains("authentication")),
        "{s}"
    );
}

#[tokio::test]
async fn status_says_busy_while_code_runs() {
    let server = std::sync::Arc::new(Server::start());
    server.exec("1").await;
    let runner = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move { server.exec("import time\ntime.sleep(2)").await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = server.call("get_kernel_status", json!({})).await;
    assert_eq!(r["structuredContent"]["state"], "busy", "{r}");
    assert_eq!(status(&runner.await.unwrap()), "ok");
}

#[tokio::test]
async fn restart_gives_a_fresh_kernel() {
    let server = Server::start();
    server.exec("x = 1").await;
    server.exec("y = 2").await;
    let r = server.call("restart_kernel", json!({})).await;
    assert!(!is_error(&r), "{r}");
    assert_eq!(r["structuredContent"]["state"], "idle");
    assert_eq!(r["structuredContent"]["execution_count"], 0);
    let r = server.exec("print('x' in globals())").await;
    assert_eq!(text(&r), "False\n");
}

#[tokio::test]
async fn interrupt_stops_running_code_and_keeps_state() {
    let server = std::sync::Arc::new(Server::start());
    server.exec("kept = 5").await;
    let runner = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move {
            server
                .exec("import time\nprint('go', flush=True)\ntime.sleep(60)")
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = server.call("interrupt_kernel", json!({})).await;
    assert!(!is_error(&r), "{r}");
    let r = runner.await.unwrap();
    assert_eq!(status(&r), "error", "{r}");
    assert!(text(&r).contains("KeyboardInterrupt"), "{r}");
    assert!(text(&r).contains("go"));
    assert_eq!(text(&server.exec("print(kept)").await), "5\n");
}

#[tokio::test]
async fn interrupt_of_an_unknown_kernel_is_a_clear_error() {
    let server = Server::start();
    let r = server
        .call("interrupt_kernel", json!({"kernel": "nope"}))
        .await;
    assert!(is_error(&r));
    assert_eq!(status(&r), "not_found");
    assert!(text(&r).contains("list_kernels"));
}

#[tokio::test]
async fn list_kernels_shows_each_name() {
    let server = Server::start();
    server.exec_on("a", "1").await;
    server.exec_on("b", "1").await;
    let r = server.call("list_kernels", json!({})).await;
    let names: Vec<&str> = r["structuredContent"]["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kernel"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[tokio::test]
async fn max_kernels_refuses_more_with_a_clear_error_and_shutdown_frees_a_place() {
    let server = Server::start_with(&["--max-kernels", "2"], &[]);
    assert_eq!(status(&server.exec_on("one", "1").await), "ok");
    assert_eq!(status(&server.exec_on("two", "1").await), "ok");
    let r = server.exec_on("three", "1").await;
    assert!(is_error(&r));
    assert_eq!(status(&r), "limit_reached");
    assert!(text(&r).contains("--max-kernels"), "{r}");
    // The others keep working.
    assert_eq!(status(&server.exec_on("one", "2").await), "ok");
    let r = server
        .call("shutdown_kernel", json!({"kernel": "two"}))
        .await;
    assert!(!is_error(&r), "{r}");
    assert_eq!(status(&server.exec_on("three", "1").await), "ok");
}

#[tokio::test]
async fn idle_kernels_are_shut_down() {
    let server = Server::start_with(&["--idle-timeout", "1"], &[]);
    let r = server.exec("x = 1\nimport os\nos.getpid()").await;
    let pid: u32 = text(&r).trim().parse().unwrap();
    let mut reaped = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = server.call("get_kernel_status", json!({})).await;
        if r["structuredContent"]["state"] == "not_started" {
            reaped = true;
            break;
        }
    }
    assert!(reaped, "the idle kernel was not shut down");
    // Its process is gone too (counting children would race with the warm spare's refill).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "kernel {pid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new call starts a fresh one.
    let r = server.exec("print('x' in globals())").await;
    assert_eq!(text(&r), "False\n");
}

#[tokio::test]
async fn state_survives_separate_connections() {
    let server = Server::start();
    server.exec("shared = 'across connections'").await;
    // A new HTTP client: new connection, no session, same kernel.
    let other = reqwest::Client::new();
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "execute_code", "arguments": {"code": "print(shared)"}}});
    let resp = mcp_post(&other, &server.url)
        .header("connection", "close")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let v = parse_body(&resp.text().await.unwrap());
    assert_eq!(text(&v["result"]), "across connections\n");
}

#[tokio::test]
async fn the_timeout_covers_waiting_for_a_busy_kernel_and_the_code_then_never_runs() {
    let server = std::sync::Arc::new(Server::start());
    server.exec("1").await;
    let marker = server.workdir.path().join("ran");
    let busy = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move { server.exec("import time\ntime.sleep(6)").await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let code = format!("open({:?}, 'w').close()", marker.display().to_string());
    let r = server
        .call("execute_code", json!({"code": code, "timeout": 1.5}))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status(&r), "timeout", "{r}");
    assert!(text(&r).contains("did not run"), "{r}");
    assert_eq!(status(&busy.await.unwrap()), "ok");
    server.exec("1").await;
    assert!(!marker.exists(), "the timed-out call ran later anyway");
}

#[tokio::test]
async fn a_kernel_that_fails_to_start_does_not_hold_a_place_under_the_limit() {
    // /bin/false is an "interpreter" whose every kernel start fails.
    let workdir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_jupyter-mcp-server"))
        .args([
            "--port",
            "0",
            "--max-kernels",
            "1",
            "--python",
            "/bin/false",
            "--working-dir",
        ])
        .arg(workdir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.0.stderr.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.find("http://127.0.0.1:")
                .map(|i| l[i..].split_whitespace().next().unwrap().to_string())
        })
        .unwrap();
    std::thread::spawn(move || for _ in lines {});
    let call = |kernel: &'static str| {
        let url = url.clone();
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "execute_code", "arguments": {"code": "1", "kernel": kernel}}});
            let resp = mcp_post(&reqwest::Client::new(), &url)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            parse_body(&resp.text().await.unwrap())["result"].clone()
        }
    };
    for kernel in ["a", "b"] {
        let r = call(kernel).await;
        assert_eq!(status(&r), "kernel_start_failed", "{kernel}: {r}");
        assert!(text(&r).contains("--python"), "{r}");
    }
    drop(child);
}
