//! Notebook editing and running through the real server and a real ipykernel: insert, edit,
//! delete, move, clear, execute_cell, execute_notebook, execute_code's `notebook`; revisions,
//! concurrent editors, a timeout and a crash mid-notebook; a named test per bad input.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

/// The status of a failed call. Read through this one helper so a change in how errors carry
/// their status (structuredContent today) is one edit here.
fn err_status(r: &Value) -> String {
    assert!(is_error(r), "expected an error result: {r}");
    status(r).to_string()
}

/// Asserts a failed call with this status and a message containing `hint`.
fn assert_refused(r: &Value, expected: &str, hint: &str) {
    assert_eq!(err_status(r), expected, "{r}");
    assert!(text(r).contains(hint), "message lacks {hint:?}: {r}");
}

fn ok(r: &Value) -> &Value {
    assert!(!is_error(r), "{r}");
    &r["structuredContent"]
}

/// The notebook file as JSON, after checking that nbformat validates it.
fn on_disk(server: &Server, path: &str) -> Value {
    let file = server.workdir.path().join(path);
    let out = Command::new(python())
        .args([
            "-c",
            "import nbformat, sys; nb = nbformat.read(sys.argv[1], as_version=nbformat.NO_CONVERT); nbformat.validate(nb); print('valid')",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nbformat rejects {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

async fn notebook(server: &Server, path: &str, cells: Value) -> Value {
    let r = server
        .call("create_notebook", json!({"path": path, "cells": cells}))
        .await;
    ok(&r).clone()
}

fn code(src: &str) -> Value {
    json!({"cell_type": "code", "source": src})
}

#[tokio::test]
async fn insert_edit_move_delete_clear_round_trip() {
    let server = Server::start();
    let made = notebook(&server, "nb.ipynb", json!([code("a = 1")])).await;
    let r = server
        .call(
            "insert_cell",
            json!({"path": "nb.ipynb", "cell_type": "markdown", "source": "# Title", "index": 0, "revision": made["revision"]}),
        )
        .await;
    let s = ok(&r);
    assert_eq!(
        (s["index"].as_u64(), s["total_cells"].as_u64()),
        (Some(0), Some(2))
    );
    let md_id = s["id"].as_str().unwrap().to_string();
    let r = server
        .call(
            "insert_cell",
            json!({"path": "nb.ipynb", "cell_type": "raw", "source": "raw"}),
        )
        .await;
    assert_eq!(ok(&r)["index"], 2, "appended by default");
    let r = server
        .call(
            "edit_cell",
            json!({"path": "nb.ipynb", "cell": 1, "source": "a = 2\nprint(a)"}),
        )
        .await;
    ok(&r);
    let r = server
        .call(
            "move_cell",
            json!({"path": "nb.ipynb", "cell": md_id, "to": 2}),
        )
        .await;
    assert_eq!(ok(&r)["index"], 2);
    let nb = on_disk(&server, "nb.ipynb");
    let sources: Vec<&str> = nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["a = 2\nprint(a)", "raw", "# Title"]);

    let r = server
        .call("execute_cell", json!({"path": "nb.ipynb", "cell": 0}))
        .await;
    assert_eq!(ok(&r)["status"], "ok");
    let r = server
        .call("clear_outputs", json!({"path": "nb.ipynb"}))
        .await;
    assert_eq!(ok(&r)["cleared"], 1);
    let nb = on_disk(&server, "nb.ipynb");
    assert_eq!(nb["cells"][0]["outputs"], json!([]));
    assert_eq!(nb["cells"][0]["execution_count"], Value::Null);

    let r = server
        .call("delete_cell", json!({"path": "nb.ipynb", "cell": md_id}))
        .await;
    let s = ok(&r);
    assert_eq!(
        (s["index"].as_u64(), s["total_cells"].as_u64()),
        (Some(2), Some(2))
    );
    let r = server
        .call("read_notebook", json!({"path": "nb.ipynb"}))
        .await;
    assert_eq!(
        ok(&r)["revision"],
        s["revision"],
        "read and change agree on the revision"
    );
}

#[tokio::test]
async fn execute_cell_saves_nbformat_outputs_visible_to_read_notebook() {
    let server = Server::start();
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let src = format!(
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\ndisplay({{'image/png': '{png}', 'text/plain': 'img'}}, raw=True)\n6 * 7"
    );
    let made = notebook(&server, "run.ipynb", json!([code(&src), code("1/0")])).await;
    let id = made["cell_ids"][0].as_str().unwrap();
    let r = server
        .call("execute_cell", json!({"path": "run.ipynb", "cell": id}))
        .await;
    let s = ok(&r);
    assert_eq!(s["status"], "ok");
    assert_eq!(s["notebook"]["index"], 0);
    assert!(
        image_block(&r).is_some(),
        "the image comes back as image content: {r}"
    );
    let nb = on_disk(&server, "run.ipynb");
    let cell = &nb["cells"][0];
    let count = cell["execution_count"].as_u64().unwrap();
    let kinds: Vec<&str> = cell["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["output_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["stream", "stream", "display_data", "execute_result"]
    );
    assert_eq!(cell["outputs"][0]["text"], "out\n");
    assert_eq!(cell["outputs"][2]["data"]["image/png"], png);
    assert_eq!(cell["outputs"][3]["data"]["text/plain"], "42");
    assert_eq!(cell["outputs"][3]["execution_count"].as_u64(), Some(count));

    let r = server
        .call("execute_cell", json!({"path": "run.ipynb", "cell": 1}))
        .await;
    assert_eq!(err_status(&r), "error");
    let nb = on_disk(&server, "run.ipynb");
    assert_eq!(nb["cells"][1]["outputs"][0]["output_type"], "error");
    assert_eq!(nb["cells"][1]["outputs"][0]["ename"], "ZeroDivisionError");

    let r = server
        .call("read_notebook", json!({"path": "run.ipynb"}))
        .await;
    let cells = &ok(&r)["cells"];
    assert_eq!(cells[0]["execution_count"].as_u64(), Some(count));
    assert_eq!(cells[0]["outputs"][0]["text"], "out\n");
    assert_eq!(cells[1]["outputs"][0]["ename"], "ZeroDivisionError");
}

#[tokio::test]
async fn execute_code_appends_to_a_notebook_created_if_missing() {
    let server = Server::start();
    for src in ["x = 20", "x + 1"] {
        let r = server
            .call(
                "execute_code",
                json!({"code": src, "notebook": "session/log.ipynb"}),
            )
            .await;
        assert_eq!(ok(&r)["status"], "ok");
    }
    let nb = on_disk(&server, "session/log.ipynb");
    assert_eq!(nb["nbformat_minor"], 5);
    assert_eq!(nb["cells"].as_array().unwrap().len(), 2);
    assert_eq!(nb["cells"][1]["source"], "x + 1");
    assert_eq!(nb["cells"][1]["outputs"][0]["data"]["text/plain"], "21");
}

#[tokio::test]
async fn execute_notebook_stops_on_error_or_runs_on() {
    let server = Server::start();
    let cells = json!([
        code("a = 1\nprint('first')"),
        {"cell_type": "markdown", "source": "text"},
        code("raise ValueError('boom')"),
        code("print('after', a)"),
    ]);
    notebook(&server, "flow.ipynb", cells).await;
    let r = server
        .call("execute_notebook", json!({"path": "flow.ipynb"}))
        .await;
    assert_eq!(err_status(&r), "error");
    let s = &r["structuredContent"];
    assert_eq!(s["failed_cell"], 2);
    assert_eq!(s["not_run"], json!([3]));
    assert_eq!(s["cells"].as_array().unwrap().len(), 2);
    assert!(text(&r).contains("boom"), "the failing cell's outputs: {r}");
    let nb = on_disk(&server, "flow.ipynb");
    assert_eq!(nb["cells"][0]["outputs"][0]["text"], "first\n");
    assert_eq!(nb["cells"][3]["outputs"], json!([]));

    let r = server
        .call(
            "execute_notebook",
            json!({"path": "flow.ipynb", "stop_on_error": false}),
        )
        .await;
    assert_eq!(err_status(&r), "error");
    let s = &r["structuredContent"];
    assert_eq!(s["cells"].as_array().unwrap().len(), 3);
    assert_eq!(s["cells"][2]["status"], "ok");
    assert_eq!(s["not_run"], json!([]));
    let nb = on_disk(&server, "flow.ipynb");
    assert_eq!(nb["cells"][3]["outputs"][0]["text"], "after 1\n");

    let r = server
        .call(
            "execute_notebook",
            json!({"path": "flow.ipynb", "start": 3, "stop": 4}),
        )
        .await;
    assert_eq!(ok(&r)["cells"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_timeout_mid_notebook_keeps_what_ran() {
    let server = Server::start();
    let cells = json!([
        code("print('kept')"),
        code("import time\nprint('started')\ntime.sleep(60)"),
        code("print('never')"),
    ]);
    notebook(&server, "slow.ipynb", cells).await;
    // Start the kernel first: the per-cell timeout also covers a kernel's start.
    ok(&server.exec("1").await);
    let r = server
        .call(
            "execute_notebook",
            json!({"path": "slow.ipynb", "timeout": 8}),
        )
        .await;
    assert_eq!(err_status(&r), "timeout");
    assert_eq!(r["structuredContent"]["failed_cell"], 1);
    assert_eq!(r["structuredContent"]["not_run"], json!([2]));
    let nb = on_disk(&server, "slow.ipynb");
    assert_eq!(nb["cells"][0]["outputs"][0]["text"], "kept\n");
    assert_eq!(nb["cells"][1]["outputs"][0]["text"], "started\n");
    assert_eq!(nb["cells"][2]["outputs"], json!([]));
}

#[tokio::test]
async fn a_crash_mid_notebook_keeps_what_ran() {
    let server = Server::start();
    let cells = json!([
        code("print('kept')"),
        code("import os\nos._exit(1)"),
        code("print('never')"),
    ]);
    notebook(&server, "crash.ipynb", cells).await;
    let r = server
        .call(
            "execute_notebook",
            json!({"path": "crash.ipynb", "stop_on_error": false}),
        )
        .await;
    assert_eq!(err_status(&r), "kernel_died");
    assert_eq!(r["structuredContent"]["not_run"], json!([2]));
    let nb = on_disk(&server, "crash.ipynb");
    assert_eq!(nb["cells"][0]["outputs"][0]["text"], "kept\n");
    assert!(nb["cells"][0]["execution_count"].is_u64());
    assert_eq!(nb["cells"][2]["outputs"], json!([]));
}

#[tokio::test]
async fn two_concurrent_editors_lose_nothing() {
    let server = Server::start();
    notebook(&server, "shared.ipynb", json!([])).await;
    let editor = |name: &'static str| {
        let server = &server;
        async move {
            for i in 0..15 {
                let r = server
                    .call(
                        "insert_cell",
                        json!({"path": "shared.ipynb", "cell_type": "code", "source": format!("{name}{i}")}),
                    )
                    .await;
                ok(&r);
            }
        }
    };
    futures::join!(editor("a"), editor("b"));
    let nb = on_disk(&server, "shared.ipynb");
    let mut sources: Vec<String> = nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap().to_string())
        .collect();
    sources.sort();
    let mut expected: Vec<String> = (0..15)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .collect();
    expected.sort();
    assert_eq!(sources, expected);
}

#[tokio::test]
async fn a_stale_revision_is_refused() {
    let server = Server::start();
    let made = notebook(&server, "r.ipynb", json!([code("1")])).await;
    let stale = made["revision"].clone();
    let r = server
        .call(
            "edit_cell",
            json!({"path": "r.ipynb", "cell": 0, "source": "2", "revision": stale}),
        )
        .await;
    let fresh = ok(&r)["revision"].clone();
    assert_ne!(fresh, stale);
    for (tool, args) in [
        (
            "edit_cell",
            json!({"path": "r.ipynb", "cell": 0, "source": "3", "revision": stale}),
        ),
        (
            "insert_cell",
            json!({"path": "r.ipynb", "cell_type": "code", "source": "3", "revision": stale}),
        ),
        (
            "delete_cell",
            json!({"path": "r.ipynb", "cell": 0, "revision": stale}),
        ),
        (
            "move_cell",
            json!({"path": "r.ipynb", "cell": 0, "to": 0, "revision": stale}),
        ),
        (
            "clear_outputs",
            json!({"path": "r.ipynb", "revision": stale}),
        ),
        (
            "execute_cell",
            json!({"path": "r.ipynb", "cell": 0, "revision": stale}),
        ),
        (
            "execute_notebook",
            json!({"path": "r.ipynb", "revision": stale}),
        ),
    ] {
        let r = server.call(tool, args).await;
        assert_refused(&r, "conflict", "read_notebook again");
    }
    let nb = on_disk(&server, "r.ipynb");
    assert_eq!(nb["cells"][0]["source"], "2");
    assert_eq!(nb["cells"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_old_notebook_gets_no_cell_ids() {
    let server = Server::start();
    let nb = json!({
        "nbformat": 4, "nbformat_minor": 2,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "code", "source": ["x = 5\n", "x"], "metadata": {}, "execution_count": null, "outputs": []}]
    });
    std::fs::write(server.workdir.path().join("old.ipynb"), nb.to_string()).unwrap();
    let r = server
        .call(
            "insert_cell",
            json!({"path": "old.ipynb", "cell_type": "markdown", "source": "note"}),
        )
        .await;
    assert_eq!(ok(&r)["id"], Value::Null);
    let r = server
        .call("execute_cell", json!({"path": "old.ipynb", "cell": 0}))
        .await;
    assert_eq!(ok(&r)["status"], "ok");
    let nb = on_disk(&server, "old.ipynb");
    assert_eq!(nb["nbformat_minor"], 2);
    assert!(
        nb["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("id").is_none())
    );
    assert_eq!(nb["cells"][0]["outputs"][0]["data"]["text/plain"], "5");
    let r = server
        .call(
            "edit_cell",
            json!({"path": "old.ipynb", "cell": "abc", "source": "y"}),
        )
        .await;
    assert_refused(&r, "not_found", "name cells by index");
}

// ---- bad inputs, one named test each ----

#[tokio::test]
async fn bad_input_cell_index_out_of_range() {
    let server = Server::start();
    notebook(&server, "b.ipynb", json!([code("1")])).await;
    for (tool, args) in [
        (
            "edit_cell",
            json!({"path": "b.ipynb", "cell": 5, "source": "x"}),
        ),
        ("delete_cell", json!({"path": "b.ipynb", "cell": 5})),
        ("move_cell", json!({"path": "b.ipynb", "cell": 5, "to": 0})),
        ("clear_outputs", json!({"path": "b.ipynb", "cell": 5})),
        ("execute_cell", json!({"path": "b.ipynb", "cell": 5})),
    ] {
        let r = server.call(tool, args).await;
        assert_refused(&r, "not_found", "has no cell with index 5");
    }
}

#[tokio::test]
async fn bad_input_unknown_cell_id() {
    let server = Server::start();
    notebook(&server, "b.ipynb", json!([code("1")])).await;
    let r = server
        .call(
            "edit_cell",
            json!({"path": "b.ipynb", "cell": "no-such-id", "source": "x"}),
        )
        .await;
    assert_refused(&r, "not_found", "read_notebook");
}

#[tokio::test]
async fn bad_input_insert_index_past_the_end() {
    let server = Server::start();
    notebook(&server, "b.ipynb", json!([code("1")])).await;
    let r = server
        .call(
            "insert_cell",
            json!({"path": "b.ipynb", "cell_type": "code", "source": "x", "index": 2}),
        )
        .await;
    assert_refused(&r, "invalid_argument", "use 0 to 1");
}

#[tokio::test]
async fn bad_input_move_target_out_of_range() {
    let server = Server::start();
    notebook(&server, "b.ipynb", json!([code("1"), code("2")])).await;
    let r = server
        .call("move_cell", json!({"path": "b.ipynb", "cell": 0, "to": 2}))
        .await;
    assert_refused(&r, "invalid_argument", "use 0 to 1");
}

#[tokio::test]
async fn bad_input_unknown_cell_type() {
    let server = Server::start();
    notebook(&server, "b.ipynb", json!([])).await;
    let r = server
        .call(
            "insert_cell",
            json!({"path": "b.ipynb", "cell_type": "python", "source": "x"}),
        )
        .await;
    assert!(is_error(&r), "{r}");
    assert!(text(&r).contains("cell_type"), "{r}");
}

#[tokio::test]
async fn bad_input_negative_cell_index() {
    let server = Server::start();
    notebook(&server, "b.ipynb", json!([code("1")])).await;
    let r = server
        .call("delete_cell", json!({"path": "b.ipynb", "cell": -1}))
        .await;
    assert!(is_error(&r), "{r}");
    assert!(text(&r).contains("cell"), "{r}");
}

#[tokio::test]
async fn bad_input_missing_notebook() {
    let server = Server::start();
    let r = server
        .call(
            "insert_cell",
            json!({"path": "nope.ipynb", "cell_type": "code", "source": "x"}),
        )
        .await;
    assert_refused(&r, "not_found", "list_notebooks");
    let r = server
        .call("execute_notebook", json!({"path": "nope.ipynb"}))
        .await;
    assert_refused(&r, "not_found", "list_notebooks");
}

#[tokio::test]
async fn bad_input_paths_outside_the_working_directory() {
    let server = Server::start();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), server.workdir.path().join("link")).unwrap();
    for path in [
        "../x.ipynb",
        "/tmp/x.ipynb",
        "link/x.ipynb",
        ".hidden/x.ipynb",
        "a\0.ipynb",
        "x.txt",
    ] {
        for (tool, args) in [
            (
                "insert_cell",
                json!({"path": path, "cell_type": "code", "source": "1"}),
            ),
            (
                "execute_code",
                json!({"code": "print('ran')", "notebook": path}),
            ),
            ("execute_notebook", json!({"path": path})),
        ] {
            let r = server.call(tool, args).await;
            assert_eq!(err_status(&r), "invalid_argument", "{tool} {path:?}: {r}");
            assert!(!text(&r).contains("ran"), "the code must not run: {r}");
        }
    }
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn bad_input_execute_a_markdown_cell() {
    let server = Server::start();
    notebook(
        &server,
        "b.ipynb",
        json!([{"cell_type": "markdown", "source": "# hi"}]),
    )
    .await;
    let r = server
        .call("execute_cell", json!({"path": "b.ipynb", "cell": 0}))
        .await;
    assert_refused(&r, "invalid_argument", "only code cells run");
}

#[tokio::test]
async fn bad_input_execute_notebook_range() {
    let server = Server::start();
    notebook(&server, "b.ipynb", json!([code("1")])).await;
    for args in [
        json!({"path": "b.ipynb", "start": 1, "stop": 0}),
        json!({"path": "b.ipynb", "stop": 5}),
    ] {
        let r = server.call("execute_notebook", args).await;
        assert_refused(&r, "invalid_argument", "start <= stop");
    }
}

#[tokio::test]
async fn bad_input_edit_a_file_that_is_not_a_notebook() {
    let server = Server::start();
    std::fs::write(
        server.workdir.path().join("junk.ipynb"),
        "{\"nbformat\": 3}",
    )
    .unwrap();
    let r = server
        .call(
            "edit_cell",
            json!({"path": "junk.ipynb", "cell": 0, "source": "x"}),
        )
        .await;
    assert_refused(&r, "invalid_argument", "nbformat 4");
    assert_eq!(
        std::fs::read_to_string(server.workdir.path().join("junk.ipynb")).unwrap(),
        "{\"nbformat\": 3}"
    );
}

#[tokio::test]
async fn bad_input_execute_timeout_out_of_range() {
    let server = Server::start();
    notebook(&server, "b.ipynb", json!([code("1")])).await;
    let r = server
        .call(
            "execute_cell",
            json!({"path": "b.ipynb", "cell": 0, "timeout": -1}),
        )
        .await;
    assert_refused(&r, "invalid_argument", "timeout");
}
