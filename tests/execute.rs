//! execute_code: outputs, statuses, caps, crashes, timeouts, concurrency, environment.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn state_persists_and_results_come_back_in_order() {
    let server = Server::start();
    let r = server.exec("x = 21\nprint('before')\nx * 2").await;
    assert_eq!(status(&r), "ok", "{r}");
    assert!(!is_error(&r));
    let outputs = r["structuredContent"]["outputs"].as_array().unwrap();
    assert_eq!(outputs[0]["type"], "stream");
    assert_eq!(outputs[0]["text"], "before\n");
    assert_eq!(outputs[1]["type"], "execute_result");
    assert_eq!(outputs[1]["text"], "42");
    assert_eq!(r["structuredContent"]["execution_count"], 1);
    let r = server.exec("print(x + 1)").await;
    assert_eq!(text(&r), "22\n");
    assert_eq!(r["structuredContent"]["execution_count"], 2);
}

#[tokio::test]
async fn an_exception_is_status_error_with_a_clean_traceback() {
    let server = Server::start();
    let r = server.exec("def f():\n    return 1/0\nf()").await;
    assert!(is_error(&r));
    assert_eq!(status(&r), "error");
    let err = r["structuredContent"]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "error")
        .unwrap();
    assert_eq!(err["ename"], "ZeroDivisionError");
    let tb = err["traceback"].as_str().unwrap();
    assert!(tb.contains("ZeroDivisionError"), "{tb}");
    assert!(!tb.contains('\x1b'), "ANSI codes left in {tb:?}");
    assert!(!text(&r).contains('\x1b'));
    // The kernel is still usable.
    assert_eq!(status(&server.exec("1").await), "ok");
}

#[tokio::test]
async fn a_matplotlib_plot_comes_back_as_a_png_image() {
    let server = Server::start();
    let r = server
        .exec("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()")
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let image = image_block(&r).expect("an image content block");
    assert_eq!(image["mimeType"], "image/png");
    let png = base64::engine::general_purpose::STANDARD
        .decode(image["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let item = &r["structuredContent"]["outputs"][0];
    assert_eq!(item["type"], "image");
    assert!(item.get("data").is_none(), "image data is only in content");
}

#[tokio::test]
async fn a_dataframe_is_its_text_plain_and_html_only_output_becomes_text() {
    let server = Server::start();
    let r = server
        .exec("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let t = text(&r);
    assert!(
        t.contains('a') && t.contains('x') && !t.contains("<table"),
        "{t}"
    );
    // Output with only an HTML form comes back as its text, tags gone.
    let r = server
        .exec("from IPython.display import publish_display_data\npublish_display_data({'text/html': '<b>hi</b>'})")
        .await;
    assert!(text(&r).contains("hi") && !text(&r).contains("<b>"), "{r}");
}

#[tokio::test]
async fn an_output_flood_is_capped_keeping_head_and_tail() {
    let server = Server::start_with(&["--max-output-bytes", "65536"], &[]);
    // 100 MB in 1 KB lines.
    let r = server
        .exec("print('FIRST')\nline = 'y' * 1023\nfor _ in range(100_000):\n    print(line)\nprint('z' * 30_000_000)\nprint('LAST')")
        .await;
    assert_eq!(status(&r), "ok", "{}", text(&r).len());
    let sc = &r["structuredContent"];
    assert_eq!(sc["truncated"], true);
    let reply_bytes = r.to_string().len();
    assert!(reply_bytes < 300_000, "reply is {reply_bytes} bytes");
    let t = text(&r);
    assert!(t.starts_with("FIRST\n"), "head kept");
    assert!(t.trim_end().ends_with("LAST"), "tail kept");
    let omitted = sc["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "truncated")
        .unwrap()["omitted_bytes"]
        .as_u64()
        .unwrap();
    assert!(omitted > 129_000_000, "{omitted}");
    assert!(t.contains("bytes of output cut"));
    // The server never held the flood: its peak stays well below the 130 MB printed. The one
    // 30 MB write arrives whole (the message frame and its decoded text, about twice its size,
    // for a moment), which with the debug build's own footprint and the allocator's slack under
    // parallel tests sets the bound; the 100 MB of lines never accumulate.
    let peak = peak_rss_bytes(server.pid());
    assert!(peak < 96 * 1024 * 1024, "server peak RSS {peak} bytes");
}

#[tokio::test]
async fn a_timeout_interrupts_and_keeps_state() {
    let server = Server::start();
    server.exec("kept = 'yes'").await;
    let started = Instant::now();
    let r = server
        .call(
            "execute_code",
            json!({"code": "import time\nprint('started', flush=True)\ntime.sleep(60)", "timeout": 1}),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status(&r), "timeout", "{r}");
    assert!(is_error(&r));
    assert!(
        text(&r).contains("started"),
        "output so far is returned: {r}"
    );
    assert!(
        elapsed < Duration::from_secs(1 + 2 + 2),
        "returned after {elapsed:?}"
    );
    assert_eq!(text(&server.exec("print(kept)").await), "yes\n");
}

#[tokio::test]
async fn a_timeout_on_code_that_ignores_interrupts_kills_and_restarts_the_kernel() {
    let server = Server::start();
    server.exec("lost = 1").await;
    let code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('stubborn', flush=True)\nwhile True:\n    time.sleep(0.1)";
    let started = Instant::now();
    let r = server
        .call("execute_code", json!({"code": code, "timeout": 1}))
        .await;
    assert_eq!(status(&r), "timeout", "{r}");
    assert!(text(&r).contains("stubborn"));
    assert!(text(&r).contains("killed"), "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let r = server.exec("print('lost' in globals())").await;
    assert_eq!(status(&r), "ok", "{r}");
    assert!(text(&r).contains("False"), "a fresh kernel: {r}");
}

#[tokio::test]
async fn os_exit_is_kernel_died_and_the_next_call_gets_a_fresh_kernel() {
    let server = Server::start();
    server.exec("gone = 1").await;
    let r = server
        .exec("import os\nprint('bye', flush=True)\nos._exit(1)")
        .await;
    assert_eq!(status(&r), "kernel_died", "{r}");
    assert!(is_error(&r));
    let r = server.exec("print('gone' in globals())").await;
    assert_eq!(status(&r), "ok", "{r}");
    assert!(text(&r).contains("False"));
    assert!(
        text(&r).contains("previous kernel of this name had died"),
        "{r}"
    );
}

#[tokio::test]
async fn a_segfault_is_kernel_died() {
    let server = Server::start();
    let r = server.exec("import ctypes\nctypes.string_at(0)").await;
    assert_eq!(status(&r), "kernel_died", "{r}");
    assert_eq!(status(&server.exec("1 + 1").await), "ok");
}

#[tokio::test]
async fn the_server_environment_does_not_reach_user_code() {
    let server = Server::start_with(
        &[],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE"),
            ("AWS_SECRET_ACCESS_KEY", "fake-secret-value"),
            ("AWS_SESSION_TOKEN", "fake-session-token"),
            ("MY_SECRET", "hunter2"),
        ],
    );
    let r = server.exec("import os\nprint(dict(os.environ))").await;
    assert_eq!(status(&r), "ok");
    let t = text(&r);
    for leaked in [
        "AWS_",
        "MY_SECRET",
        "AKIAFAKE",
        "fake-secret",
        "fake-session",
        "hunter2",
    ] {
        assert!(!t.contains(leaked), "{leaked} visible to user code: {t}");
    }
    // Nor through the server's /proc entry (it is non-dumpable, so not readable by its child).
    let code = format!(
        "try:\n    print(open('/proc/{}/environ','rb').read())\nexcept Exception as e:\n    print('refused', type(e).__name__)",
        server.pid()
    );
    let t = text(&server.exec(&code).await);
    assert!(!t.contains("hunter2"), "{t}");
}

#[tokio::test]
async fn twenty_calls_on_one_kernel_run_one_at_a_time_in_arrival_order() {
    let server = std::sync::Arc::new(Server::start());
    server.exec("order = []").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let server = std::sync::Arc::clone(&server);
        let code = if i == 0 {
            "import time\ntime.sleep(1)\norder.append(0)".to_string()
        } else {
            format!("order.append({i})")
        };
        tasks.push(tokio::spawn(async move { server.exec(&code).await }));
        // Let each request reach the server before the next one is sent.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        assert_eq!(status(&t.await.unwrap()), "ok");
    }
    let r = server.exec("print(order)").await;
    let expected = format!("{:?}\n", (0..20).collect::<Vec<_>>());
    assert_eq!(text(&r), expected);
}

#[tokio::test]
async fn five_kernels_run_in_parallel() {
    // Each cell waits until all five have started: that finishes only if they run at once.
    let server = std::sync::Arc::new(Server::start_with(&["--max-kernels", "6"], &[]));
    let dir = server.workdir.path().display().to_string();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let server = std::sync::Arc::clone(&server);
        let code = format!(
            "import pathlib, time\nd = pathlib.Path({dir:?})\n(d / 'k{i}').touch()\nt = time.time()\nwhile len(list(d.glob('k?'))) < 5 and time.time() - t < 60:\n    time.sleep(0.05)\nprint(len(list(d.glob('k?'))))"
        );
        tasks.push(tokio::spawn(async move {
            server
                .call(
                    "execute_code",
                    json!({"code": code, "kernel": format!("par{i}"), "timeout": 90}),
                )
                .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(status(&r), "ok", "{r}");
        assert_eq!(text(&r), "5\n");
    }
}

#[tokio::test]
async fn progress_notifications_stream_output_while_a_cell_runs() {
    let server = Server::start();
    let body = json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {
            "name": "execute_code",
            "arguments": {"code": "import time\nfor i in range(4):\n    print('tick', i, flush=True)\n    time.sleep(0.4)"},
            "_meta": {"progressToken": "p1"}
        }
    });
    let resp = mcp_post(&reqwest::Client::new(), &server.url)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let sse = resp.text().await.unwrap();
    let events: Vec<serde_json::Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect();
    let progress: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["method"] == "notifications/progress")
        .collect();
    assert!(progress.len() >= 2, "{sse}");
    assert_eq!(progress[0]["params"]["progressToken"], "p1");
    assert!(
        progress[0]["params"]["message"]
            .as_str()
            .unwrap()
            .contains("tick 0")
    );
    let last = events.last().unwrap();
    assert_eq!(last["id"], 7);
    assert_eq!(last["result"]["structuredContent"]["status"], "ok");
}

#[tokio::test]
async fn bad_execute_arguments_get_clear_errors() {
    let server = Server::start();
    for (args, expect) in [
        (json!({"code": "1", "timeout": 0}), "timeout must be"),
        (json!({"code": "1", "timeout": 99999}), "timeout must be"),
        (
            json!({"code": "1", "kernel": "../etc"}),
            "invalid kernel name",
        ),
        (json!({"code": "1", "kernel": ""}), "invalid kernel name"),
        (
            json!({"code": "1", "kernel": "x".repeat(65)}),
            "invalid kernel name",
        ),
    ] {
        let r = server.call("execute_code", args.clone()).await;
        assert!(is_error(&r), "{args}: {r}");
        assert_eq!(status(&r), "invalid_argument");
        assert!(text(&r).contains(expect), "{args}: {r}");
    }
    assert_eq!(status(&server.exec("1").await), "ok");
}

#[tokio::test]
async fn an_exception_with_a_huge_message_is_capped_and_the_server_keeps_serving() {
    let server = Server::start_with(&["--max-output-bytes", "4096"], &[]);
    let r = server.exec("raise ValueError('x' * 100_000)").await;
    assert_eq!(status(&r), "error", "{r}");
    assert_eq!(r["structuredContent"]["truncated"], true);
    assert!(
        r.to_string().len() < 20_000,
        "{} bytes",
        r.to_string().len()
    );
    let r = server.call("get_kernel_status", json!({})).await;
    assert_eq!(r["structuredContent"]["state"], "idle", "{r}");
}

#[tokio::test]
async fn a_large_plot_fits_the_image_budget() {
    let server = Server::start();
    // A dense scatter plot: a PNG of a few hundred KB, more than half the text cap.
    let r = server
        .exec("import matplotlib.pyplot as plt, numpy as np\nrng = np.random.default_rng(0)\nplt.figure(figsize=(6, 4), dpi=100)\nplt.scatter(rng.random(5000), rng.random(5000), s=3, c=rng.random(5000))\nplt.show()")
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let image = image_block(&r);
    let bytes = image
        .map(|i| i["data"].as_str().unwrap().len())
        .unwrap_or(0);
    assert!(
        bytes > 65_536,
        "the plot ({bytes} bytes) came back: {}",
        text(&r)
    );
}

#[tokio::test]
async fn descriptors_the_server_inherited_do_not_reach_user_code() {
    // The server starts with descriptor 7 open on a file; the kernel must not have it.
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "inherited-secret").unwrap();
    let script = format!("exec 7<{}; exec \"$0\" \"$@\"", secret.path().display());
    let server = Server::start_wrapped(&["bash", "-c", &script], &[], &[]);
    // Python may reuse the number for something of its own, so look at what every fd points to.
    let r = server
        .exec("import os\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n        print(fd, os.readlink(f'/proc/self/fd/{fd}'))\n    except OSError:\n        pass")
        .await;
    let t = text(&r);
    assert_eq!(status(&r), "ok", "{r}");
    let name = secret
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        !t.contains(&name),
        "the inherited file is open in the kernel: {t}"
    );
}

#[tokio::test]
async fn a_restart_during_a_call_is_reported_as_a_restart_not_a_crash() {
    let server = std::sync::Arc::new(Server::start());
    server.exec("1").await;
    let runner = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move { server.exec("import time\ntime.sleep(30)").await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = server.call("restart_kernel", json!({})).await;
    assert!(!is_error(&r), "{r}");
    let r = runner.await.unwrap();
    assert_eq!(status(&r), "cancelled", "{r}");
    assert!(text(&r).contains("restart_kernel"), "{r}");
}
