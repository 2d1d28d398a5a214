//! Results that validate in every client: each tool's success and failure results checked
//! against the `outputSchema` it declares (with a JSON Schema validator, as the TypeScript SDK
//! does), failures carrying their `status:` line and no `structuredContent`, and every schema
//! free of non-standard `format`s (see src/mcp/error.rs and src/mcp/schema.rs).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::*;

/// The formats JSON Schema 2020-12 defines. Written out again rather than imported from
/// `mcp::schema` on purpose: the test checks the server's list against the specification.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Tools with no failure a call can provoke, and why.
const CANNOT_FAIL: &[(&str, &str)] = &[
    (
        "list_kernels",
        "takes no arguments and reads only the pool's state",
    ),
    (
        "list_notebooks",
        "takes no arguments; the working directory exists from start-up",
    ),
    (
        "list_executions",
        "takes no arguments and reads only the caller's executions",
    ),
];

async fn tools(server: &Server) -> BTreeMap<String, Value> {
    let r = server.rpc("tools/list", json!({})).await;
    r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
        .collect()
}

fn formats(schema: &Value, at: String, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(f)) = map.get("format")
                && !STANDARD_FORMATS.contains(&f.as_str())
            {
                out.push(format!("{at}: {f}"));
            }
            for (k, v) in map {
                formats(v, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                formats(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn schemas_use_only_standard_formats() {
    let server = Server::start();
    let tools = tools(&server).await;
    let mut bad = Vec::new();
    for (name, tool) in &tools {
        formats(&tool["inputSchema"], format!("{name} input"), &mut bad);
        formats(&tool["outputSchema"], format!("{name} output"), &mut bad);
    }
    assert!(bad.is_empty(), "non-standard formats: {bad:#?}");
    // The information the format carried is still there.
    let count = &tools["execute_code"]["outputSchema"]["properties"]["duration_ms"];
    assert_eq!(count["minimum"], 0, "{count}");
}

/// Checks one result against its tool's schema and the failure convention.
fn check(tool: &Value, case: &str, result: &Value, expect_error: bool) {
    let name = tool["name"].as_str().unwrap();
    assert_eq!(is_error(result), expect_error, "{name} {case}: {result}");
    let text = text(result);
    assert!(!text.is_empty(), "{name} {case}: no text content: {result}");
    match result.get("structuredContent") {
        Some(structured) => {
            let schema = &tool["outputSchema"];
            assert!(schema.is_object(), "{name} has no outputSchema");
            let validator = jsonschema::validator_for(schema).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(structured)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{name} {case}: structuredContent does not match outputSchema: {errors:#?}\n{result}"
            );
        }
        None => {
            assert!(
                expect_error,
                "{name} {case}: a success without structuredContent: {result}"
            );
            let first = text.lines().next().unwrap_or("");
            assert!(
                first.starts_with("status: ") && first.len() > "status: ".len(),
                "{name} {case}: a failure's first line must be `status: X`: {result}"
            );
        }
    }
}

#[tokio::test]
async fn every_tool_result_matches_its_output_schema() {
    let server = Server::start();
    let tools = tools(&server).await;
    // An execution still running after its wait, for the execution tools' cases.
    let running = server
        .call(
            "execute_code",
            json!({"code": "import time\ntime.sleep(30)", "kernel": "long", "wait": 0.5}),
        )
        .await;
    check(&tools["execute_code"], "running", &running, false);
    assert_eq!(status(&running), "running", "{running}");
    let id = running["structuredContent"]["execution_id"].clone();
    // (tool, case, arguments, expected isError, expected status or "" for any)
    let cases: Vec<(&str, &str, Value, bool, &str)> = vec![
        (
            "get_execution",
            "running",
            json!({"execution_id": id, "wait": 0}),
            false,
            "",
        ),
        ("list_executions", "ok", json!({}), false, ""),
        (
            "cancel_execution",
            "ok",
            json!({"execution_id": id}),
            false,
            "",
        ),
        (
            "get_execution",
            "ended",
            json!({"execution_id": id, "wait": 0}),
            false,
            "",
        ),
        (
            "get_execution",
            "unknown id",
            json!({"execution_id": "nope"}),
            true,
            "not_found",
        ),
        (
            "cancel_execution",
            "unknown id",
            json!({"execution_id": "nope"}),
            true,
            "not_found",
        ),
        (
            "execute_code",
            "ok",
            json!({"code": "x = 41\nx + 1"}),
            false,
            "ok",
        ),
        (
            "execute_code",
            "raises",
            json!({"code": "1/0"}),
            true,
            "error",
        ),
        (
            "execute_code",
            "times out",
            json!({"code": "import time\ntime.sleep(30)", "timeout": 0.5}),
            true,
            "timeout",
        ),
        (
            "execute_code",
            "bad timeout",
            json!({"code": "1", "timeout": -1}),
            true,
            "invalid_argument",
        ),
        (
            "execute_code",
            "missing code",
            json!({}),
            true,
            "invalid_argument",
        ),
        ("get_variables", "ok", json!({}), false, ""),
        (
            "get_variables",
            "bad kernel name",
            json!({"kernel": "no/such"}),
            true,
            "invalid_argument",
        ),
        ("inspect_variable", "ok", json!({"name": "x"}), false, ""),
        (
            "inspect_variable",
            "missing name",
            json!({"name": "nope"}),
            true,
            "",
        ),
        (
            "inspect_variable",
            "kernel not running",
            json!({"name": "x", "kernel": "other"}),
            true,
            "not_found",
        ),
        (
            "install_package",
            "ok",
            json!({"package": "termcolor==3.3.0"}),
            false,
            "",
        ),
        (
            "install_package",
            "refused",
            json!({"package": "git+https://example.com/x"}),
            true,
            "refused",
        ),
        ("get_kernel_status", "ok", json!({}), false, ""),
        (
            "get_kernel_status",
            "bad kernel name",
            json!({"kernel": ""}),
            true,
            "invalid_argument",
        ),
        ("list_kernels", "ok", json!({}), false, ""),
        ("interrupt_kernel", "ok", json!({}), false, ""),
        (
            "interrupt_kernel",
            "unknown kernel",
            json!({"kernel": "ghost"}),
            true,
            "not_found",
        ),
        (
            "create_notebook",
            "ok",
            json!({"path": "a.ipynb", "cells": [{"cell_type": "code", "source": "1"}]}),
            false,
            "",
        ),
        (
            "create_notebook",
            "exists",
            json!({"path": "a.ipynb"}),
            true,
            "already_exists",
        ),
        (
            "create_notebook",
            "outside",
            json!({"path": "../a.ipynb"}),
            true,
            "invalid_argument",
        ),
        (
            "create_notebook",
            "stale revision",
            json!({"path": "a.ipynb", "overwrite": true, "revision": "0000000000000000"}),
            true,
            "conflict",
        ),
        (
            "execute_code",
            "stale notebook revision",
            json!({"code": "1", "notebook": "a.ipynb", "revision": "0000000000000000"}),
            true,
            "conflict",
        ),
        ("read_notebook", "ok", json!({"path": "a.ipynb"}), false, ""),
        (
            "read_notebook",
            "missing",
            json!({"path": "missing.ipynb"}),
            true,
            "not_found",
        ),
        ("list_notebooks", "ok", json!({}), false, ""),
        // The notebook a.ipynb holds one code cell, `1`; the cases below edit and run it.
        (
            "insert_cell",
            "ok",
            json!({"path": "a.ipynb", "cell_type": "code", "source": "1/0"}),
            false,
            "",
        ),
        (
            "insert_cell",
            "missing notebook",
            json!({"path": "missing.ipynb", "cell_type": "code", "source": "1"}),
            true,
            "not_found",
        ),
        (
            "edit_cell",
            "ok",
            json!({"path": "a.ipynb", "cell": 0, "source": "y = 2\ny"}),
            false,
            "",
        ),
        (
            "edit_cell",
            "no such cell",
            json!({"path": "a.ipynb", "cell": 99, "source": "1"}),
            true,
            "not_found",
        ),
        (
            "execute_cell",
            "ok",
            json!({"path": "a.ipynb", "cell": 0}),
            false,
            "ok",
        ),
        (
            "execute_cell",
            "raises",
            json!({"path": "a.ipynb", "cell": 1}),
            true,
            "error",
        ),
        (
            "execute_cell",
            "no such cell",
            json!({"path": "a.ipynb", "cell": 99}),
            true,
            "not_found",
        ),
        (
            "execute_notebook",
            "ok",
            json!({"path": "a.ipynb", "stop": 1}),
            false,
            "ok",
        ),
        (
            "execute_notebook",
            "a cell raises",
            json!({"path": "a.ipynb"}),
            true,
            "error",
        ),
        (
            "execute_notebook",
            "missing notebook",
            json!({"path": "missing.ipynb"}),
            true,
            "not_found",
        ),
        (
            "read_notebook",
            "with outputs",
            json!({"path": "a.ipynb"}),
            false,
            "",
        ),
        ("clear_outputs", "ok", json!({"path": "a.ipynb"}), false, ""),
        (
            "clear_outputs",
            "no such cell",
            json!({"path": "a.ipynb", "cell": 99}),
            true,
            "not_found",
        ),
        (
            "move_cell",
            "ok",
            json!({"path": "a.ipynb", "cell": 1, "to": 0}),
            false,
            "",
        ),
        (
            "move_cell",
            "stale revision",
            json!({"path": "a.ipynb", "cell": 1, "to": 0, "revision": "stale"}),
            true,
            "conflict",
        ),
        (
            "delete_cell",
            "ok",
            json!({"path": "a.ipynb", "cell": 0}),
            false,
            "",
        ),
        (
            "delete_cell",
            "no such cell id",
            json!({"path": "a.ipynb", "cell": "no-such-id"}),
            true,
            "not_found",
        ),
        (
            "write_file",
            "ok",
            json!({"path": "notes/a.txt", "content": "hello\n"}),
            false,
            "",
        ),
        (
            "write_file",
            "exists",
            json!({"path": "notes/a.txt", "content": "again"}),
            true,
            "already_exists",
        ),
        (
            "write_file",
            "outside",
            json!({"path": "../a.txt", "content": "x"}),
            true,
            "invalid_argument",
        ),
        (
            "write_file",
            "image",
            json!({"path": "notes/dot.png", "content": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==", "encoding": "base64"}),
            false,
            "",
        ),
        (
            "write_file",
            "binary",
            json!({"path": "notes/blob.bin", "content": "AAECA/8=", "encoding": "base64"}),
            false,
            "",
        ),
        ("read_file", "ok", json!({"path": "notes/a.txt"}), false, ""),
        (
            "read_file",
            "image",
            json!({"path": "notes/dot.png"}),
            false,
            "",
        ),
        (
            "read_file",
            "image, max_image_px",
            json!({"path": "notes/dot.png", "max_image_px": 100}),
            false,
            "",
        ),
        (
            "read_file",
            "binary",
            json!({"path": "notes/blob.bin"}),
            false,
            "",
        ),
        (
            "read_file",
            "past the end",
            json!({"path": "notes/a.txt", "offset": 10}),
            false,
            "",
        ),
        (
            "read_file",
            "a notebook",
            json!({"path": "a.ipynb"}),
            false,
            "",
        ),
        (
            "write_file",
            "empty",
            json!({"path": "notes/empty.txt", "content": ""}),
            false,
            "",
        ),
        (
            "read_file",
            "empty",
            json!({"path": "notes/empty.txt"}),
            false,
            "",
        ),
        (
            "read_file",
            "missing",
            json!({"path": "notes/missing.txt"}),
            true,
            "not_found",
        ),
        (
            "write_file",
            "not a notebook",
            json!({"path": "notes/bad.ipynb", "content": "{}"}),
            true,
            "invalid_argument",
        ),
        ("list_files", "ok", json!({}), false, ""),
        (
            "list_files",
            "recursive",
            json!({"recursive": true}),
            false,
            "",
        ),
        (
            "list_files",
            "missing directory",
            json!({"path": "nope"}),
            true,
            "not_found",
        ),
        ("restart_kernel", "ok", json!({}), false, ""),
        (
            "restore_kernel",
            "nothing recorded without a bucket",
            json!({"kernel": "restored"}),
            false,
            "",
        ),
        (
            "restore_kernel",
            "bad kernel name",
            json!({"kernel": "a b"}),
            true,
            "invalid_argument",
        ),
        (
            "restart_kernel",
            "bad kernel name",
            json!({"kernel": "a b"}),
            true,
            "invalid_argument",
        ),
        ("shutdown_kernel", "ok", json!({}), false, ""),
        (
            "shutdown_kernel",
            "unknown kernel",
            json!({"kernel": "ghost"}),
            true,
            "not_found",
        ),
        (
            "execute_code",
            "kernel dies",
            json!({"code": "import os\nos._exit(1)", "kernel": "dies"}),
            true,
            "kernel_died",
        ),
    ];
    for (name, case, args, expect_error, expect_status) in &cases {
        let tool = tools
            .get(*name)
            .unwrap_or_else(|| panic!("case for unknown tool {name}"));
        let result = server.call(name, args.clone()).await;
        check(tool, case, &result, *expect_error);
        if !expect_status.is_empty() {
            assert_eq!(status(&result), *expect_status, "{name} {case}: {result}");
        }
    }
    // Every tool has a success and a failure case here: a new tool must add its own.
    for name in tools.keys() {
        for want_error in [false, true] {
            if want_error && CANNOT_FAIL.iter().any(|(n, _)| n == name) {
                continue;
            }
            assert!(
                cases
                    .iter()
                    .any(|(n, _, _, e, _)| n == name && *e == want_error),
                "tests/results.rs: add a {} case for the tool {name}",
                if want_error { "failure" } else { "success" }
            );
        }
    }
}

fn ok(r: &Value) -> &Value {
    assert!(!is_error(r), "{r}");
    &r["structuredContent"]
}

/// An image read and a read with no lines (an empty file, an offset past the end) used to
/// carry no text at all: hosts that show the model only text saw nothing, and the
/// TypeScript client's check for text content failed.
#[tokio::test]
async fn read_file_always_says_something_in_text() {
    const PNG_1PX: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let server = Server::start();
    for (path, content, encoding) in [
        ("dot.png", PNG_1PX, "base64"),
        ("empty.txt", "", "text"),
        ("one.txt", "one line\n", "text"),
    ] {
        let r = server
            .call(
                "write_file",
                json!({"path": path, "content": content, "encoding": encoding}),
            )
            .await;
        ok(&r);
    }
    let r = server.call("read_file", json!({"path": "dot.png"})).await;
    assert_eq!(ok(&r)["kind"], "image");
    assert_eq!(text(&r), "dot.png (image/png, 70 bytes)", "{r}");
    assert!(image_block(&r).is_some(), "{r}");

    let r = server.call("read_file", json!({"path": "empty.txt"})).await;
    assert_eq!(ok(&r)["lines"], 0);
    assert_eq!(
        text(&r),
        "[empty.txt has 0 lines; none from offset 0]",
        "{r}"
    );

    let r = server
        .call("read_file", json!({"path": "one.txt", "offset": 5}))
        .await;
    assert_eq!(ok(&r)["lines"], 0);
    assert_eq!(text(&r), "[one.txt has 1 lines; none from offset 5]", "{r}");
}
