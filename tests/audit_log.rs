//! The audit log against the real binary: a session of every tool (taken from `tools/list`, so a
//! new tool fails here until it is covered), resource requests, refused requests and argument
//! errors, each with its one record; `--audit-code` end to end; two servers appending to one
//! `--audit-log`; and the request id each HTTP response carries and each record repeats.

use serde_json::{Value, json};

use crate::common::*;

const ALICE_KEY: &str = "jmcp_alice_audit_0123456789abcdef0123456789ab";
const BOB_KEY: &str = "jmcp_bob_audit_fedcba9876543210fedcba98765432";
const WRONG_KEY: &str = "jmcp_wrong_key_that_must_not_be_logged_0000";

/// Every JSON line of an audit log.
fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// One POST; returns the HTTP status, the `x-request-id` header and the JSON-RPC answer.
async fn post(
    server: &Server,
    token: Option<&str>,
    id: Value,
    method: &str,
    params: Value,
) -> (u16, String, Value) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut request = mcp_post(&reqwest::Client::new(), &server.url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.body(body.to_string()).send().await.unwrap();
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no x-request-id on the answer to {method}"))
        .to_string();
    let text = response.text().await.unwrap();
    (status, request_id, parse_body(&text))
}

const BUCKET: &str = "jmcp-audit";

/// A moto server with the workspace bucket made.
fn moto_with_bucket() -> Moto {
    let moto = moto();
    let endpoint = &moto.endpoint;
    boto3(
        &format!(
            "import boto3\nboto3.client('s3', endpoint_url={endpoint:?}).create_bucket(Bucket={BUCKET:?})"
        ),
        &[],
    );
    moto
}

/// One call of the session and what its record must say.
struct Step {
    tool: &'static str,
    args: Value,
    /// The `kernel` field: null for tools that take none.
    kernel: Option<&'static str>,
    path: Option<&'static str>,
    /// The code that ran, in order (its concatenation is digested).
    code: Vec<&'static str>,
}

const EXEC: &str = "v = 41 + 1\nprint(v)";
const CELL_A: &str = "print(2)";
const CELL_B: &str = "w = 6\nprint(w)";
const PACKAGE: &str = "jmcp-audit-pkg";

/// A call with valid arguments that succeeds, for every tool; `None` for a tool this session
/// does not know yet (the test then fails, naming it).
fn step(tool: &str) -> Option<Step> {
    let s = |tool, args, kernel, path, code| Step {
        tool,
        args,
        kernel,
        path,
        code,
    };
    let k = Some("default");
    let nb = Some("au.ipynb");
    Some(match tool {
        "execute_code" => s(
            "execute_code",
            json!({"code": EXEC, "notebook": "log.ipynb"}),
            k,
            Some("log.ipynb"),
            vec![EXEC],
        ),
        "get_variables" => s("get_variables", json!({}), k, None, vec![]),
        "inspect_variable" => s("inspect_variable", json!({"name": "v"}), k, None, vec![]),
        "get_kernel_status" => s("get_kernel_status", json!({}), k, None, vec![]),
        "list_kernels" => s("list_kernels", json!({}), None, None, vec![]),
        "interrupt_kernel" => s("interrupt_kernel", json!({}), k, None, vec![]),
        "install_package" => s(
            "install_package",
            json!({"package": PACKAGE}),
            k,
            None,
            vec![],
        ),
        "create_notebook" => s(
            "create_notebook",
            json!({"path": "au.ipynb", "cells": [{"cell_type": "code", "source": CELL_A}]}),
            None,
            nb,
            vec![],
        ),
        "read_notebook" => s(
            "read_notebook",
            json!({"path": "au.ipynb"}),
            None,
            nb,
            vec![],
        ),
        "list_notebooks" => s("list_notebooks", json!({}), None, None, vec![]),
        "insert_cell" => s(
            "insert_cell",
            json!({"path": "au.ipynb", "cell_type": "code", "source": "w = 5"}),
            None,
            nb,
            vec![],
        ),
        "edit_cell" => s(
            "edit_cell",
            json!({"path": "au.ipynb", "cell": 1, "source": CELL_B}),
            None,
            nb,
            vec![],
        ),
        "move_cell" => s(
            "move_cell",
            json!({"path": "au.ipynb", "cell": 1, "to": 0}),
            None,
            nb,
            vec![],
        ),
        "execute_cell" => s(
            "execute_cell",
            json!({"path": "au.ipynb", "cell": 0}),
            k,
            nb,
            vec![CELL_B],
        ),
        "execute_notebook" => s(
            "execute_notebook",
            json!({"path": "au.ipynb"}),
            k,
            nb,
            vec![CELL_B, CELL_A],
        ),
        "clear_outputs" => s(
            "clear_outputs",
            json!({"path": "au.ipynb"}),
            None,
            nb,
            vec![],
        ),
        "delete_cell" => s(
            "delete_cell",
            json!({"path": "au.ipynb", "cell": 1}),
            None,
            nb,
            vec![],
        ),
        "write_file" => s(
            "write_file",
            json!({"path": "f.txt", "content": "hello"}),
            None,
            Some("f.txt"),
            vec![],
        ),
        "read_file" => s(
            "read_file",
            json!({"path": "f.txt"}),
            None,
            Some("f.txt"),
            vec![],
        ),
        "list_files" => s("list_files", json!({}), None, None, vec![]),
        "list_executions" => s("list_executions", json!({}), None, None, vec![]),
        // An id nobody issued: refused (not_found), and recorded like any call.
        "get_execution" => s(
            "get_execution",
            json!({"execution_id": UNKNOWN_EXECUTION, "wait": 0}),
            None,
            None,
            vec![],
        ),
        "cancel_execution" => s(
            "cancel_execution",
            json!({"execution_id": UNKNOWN_EXECUTION}),
            None,
            None,
            vec![],
        ),
        // After restart_kernel, replays what ran on the previous `default` in order:
        // execute_code, execute_cell and the two cells of execute_notebook (and reinstalls the
        // package, which is not code).
        "restore_kernel" => s(
            "restore_kernel",
            json!({}),
            k,
            None,
            vec![EXEC, CELL_B, CELL_B, CELL_A],
        ),
        "restart_kernel" => s("restart_kernel", json!({}), k, None, vec![]),
        "shutdown_kernel" => s("shutdown_kernel", json!({}), k, None, vec![]),
        _ => return None,
    })
}

/// The session's order: the kernel first, the notebook built before it runs, restart then
/// restore (a restore replays the latest generation other than the live one), shutdown last.
/// An execution id no call issued (the execution tools' steps are refusals).
const UNKNOWN_EXECUTION: &str = "00000000-0000-4000-8000-000000000000";

/// Tools whose session step is a refusal, recorded with its status.
const REFUSED_STEPS: &[&str] = &["get_execution", "cancel_execution"];

const ORDER: &[&str] = &[
    "execute_code",
    "get_variables",
    "inspect_variable",
    "get_kernel_status",
    "list_kernels",
    "interrupt_kernel",
    "install_package",
    "create_notebook",
    "read_notebook",
    "list_notebooks",
    "insert_cell",
    "edit_cell",
    "move_cell",
    "execute_cell",
    "execute_notebook",
    "clear_outputs",
    "delete_cell",
    "write_file",
    "read_file",
    "list_files",
    "list_executions",
    "get_execution",
    "cancel_execution",
    "restart_kernel",
    "restore_kernel",
    "shutdown_kernel",
];

/// What one request expects of its record.
struct Expect {
    tool: &'static str,
    rpc_id: String,
    request_id: String,
    status: String,
    kernel: Option<&'static str>,
    path: Option<&'static str>,
    code: Vec<&'static str>,
}

/// A session of every tool with valid arguments (each succeeds), the two resource requests,
/// argument errors and refused requests: each has exactly one record, in order, saying who,
/// what, which kernel, path, code digest and package, how it went, how long and how much it
/// returned, under the request id the HTTP answer carried; and no key appears in any log.
#[tokio::test(flavor = "multi_thread")]
async fn every_tool_resource_request_and_refusal_has_its_record() {
    let moto = moto_with_bucket();
    let index = LocalIndex::start(&[&format!("{PACKAGE}==1.0")]);
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("alice {}\n", sha256_hex(ALICE_KEY))).unwrap();
    let inline = format!("bob:{}", sha256_hex(BOB_KEY));
    let mut env: Vec<(&str, &str)> = FAKE_AWS.to_vec();
    env.push(("AWS_ENDPOINT_URL_S3", moto.endpoint.as_str()));
    env.push(("JUPYTER_MCP_API_KEYS", &inline));
    let server = Server::start_with(
        &[
            "--api-keys-file",
            keys.to_str().unwrap(),
            "--audit-log",
            audit_path.to_str().unwrap(),
            "--package-index-url",
            &index.url,
            "--workspace-bucket",
            BUCKET,
            "--workspace-prefix",
            "audit/",
        ],
        &env,
    );
    let a = Some(ALICE_KEY);

    let (status, _, tools) = post(&server, a, json!(0), "tools/list", json!({})).await;
    assert_eq!(status, 200, "{tools}");
    let mut listed: Vec<String> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let unknown: Vec<&String> = listed.iter().filter(|t| step(t).is_none()).collect();
    assert!(
        unknown.is_empty(),
        "tools without a session step (add them to step() and ORDER): {unknown:?}"
    );
    let mut ordered: Vec<String> = ORDER.iter().map(|t| t.to_string()).collect();
    ordered.sort();
    assert_eq!(ordered, listed, "ORDER must hold every listed tool once");

    let mut expected: Vec<Expect> = Vec::new();
    let mut request_ids = std::collections::HashSet::new();
    for (n, tool) in ORDER.iter().enumerate() {
        let step = step(tool).unwrap();
        let id = json!(100 + n);
        let (status, request_id, answer) = post(
            &server,
            a,
            id.clone(),
            "tools/call",
            json!({"name": step.tool, "arguments": step.args}),
        )
        .await;
        assert_eq!(status, 200, "{tool}: {answer}");
        let result = &answer["result"];
        assert_eq!(
            is_error(result),
            REFUSED_STEPS.contains(tool),
            "{tool} must succeed here (or be refused, for a refusal step): {answer}"
        );
        assert!(request_ids.insert(request_id.clone()), "request id reused");
        expected.push(Expect {
            tool: step.tool,
            rpc_id: id.to_string(),
            request_id,
            status: match status_field(result) {
                Some(s) => s,
                None => "ok".into(),
            },
            kernel: step.kernel,
            path: step.path,
            code: step.code,
        });
    }
    // Resource requests, as tool-like records.
    for (n, (method, params, path)) in [
        ("resources/list", json!({}), None),
        (
            "resources/read",
            json!({"uri": "workspace:///f.txt"}),
            Some("workspace:///f.txt"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = json!(format!("res-{n}"));
        let (status, request_id, answer) = post(&server, a, id.clone(), method, params).await;
        assert_eq!(status, 200, "{method}: {answer}");
        assert!(answer.get("result").is_some(), "{method}: {answer}");
        assert!(request_ids.insert(request_id.clone()), "request id reused");
        expected.push(Expect {
            tool: method,
            rpc_id: "res-".to_string() + &n.to_string(),
            request_id,
            status: "ok".into(),
            kernel: None,
            path,
            code: vec![],
        });
    }
    // Argument errors: a missing required argument, an unknown one.
    for (n, (tool, args, kernel, path)) in [
        ("execute_code", json!({}), Some("default"), None),
        (
            "read_file",
            json!({"path": "f.txt", "bogus": 1}),
            None,
            Some("f.txt"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = json!(200 + n);
        let (status, request_id, answer) = post(
            &server,
            a,
            id.clone(),
            "tools/call",
            json!({"name": tool, "arguments": args}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(is_error(&answer["result"]), "{answer}");
        assert_eq!(
            status_field(&answer["result"]).as_deref(),
            Some("invalid_argument")
        );
        request_ids.insert(request_id.clone());
        expected.push(Expect {
            tool,
            rpc_id: id.to_string(),
            request_id,
            status: "invalid_argument".into(),
            kernel,
            path,
            code: vec![],
        });
    }
    // Refused: no key (a numeric id), a wrong key (a string id).
    let (s1, missing_rid, body) = post(&server, None, json!(901), "tools/list", json!({})).await;
    assert_eq!((s1, &body["id"]), (401, &json!(901)), "{body}");
    let bearer_wrong = Some(WRONG_KEY);
    let (s2, wrong_rid, body) =
        post(&server, bearer_wrong, json!("w-1"), "tools/list", json!({})).await;
    assert_eq!((s2, &body["id"]), (401, &json!("w-1")), "{body}");

    let all = records(&audit_path);
    let calls: Vec<&Value> = all.iter().filter(|r| r["event"] == "tool_call").collect();
    let recorded: Vec<&str> = calls.iter().map(|r| r["tool"].as_str().unwrap()).collect();
    let asked: Vec<&str> = expected.iter().map(|e| e.tool).collect();
    assert_eq!(recorded, asked, "one record per call, in order");
    for (r, e) in calls.iter().zip(&expected) {
        let what = format!("{}: {r}", e.tool);
        assert_eq!(r["principal"], "alice", "{what}");
        assert_eq!(r["auth"], "api_key", "{what}");
        assert_eq!(r["rpc_id"], e.rpc_id.trim_matches('"'), "{what}");
        assert_eq!(r["request_id"], e.request_id.as_str(), "{what}");
        assert_eq!(r["client_addr"], "127.0.0.1", "{what}");
        assert_eq!(r["kernel"], json!(e.kernel), "{what}");
        assert_eq!(r["path"], json!(e.path), "{what}");
        let (sha, count) = match e.code.as_slice() {
            [] => (Value::Null, 0),
            pieces => (json!(sha256_hex(&pieces.concat())), pieces.len()),
        };
        assert_eq!(r["code_sha256"], sha, "{what}");
        assert_eq!(r["code_count"], count, "{what}");
        assert!(
            r["code"].is_null(),
            "code kept without --audit-code: {what}"
        );
        let package = (e.tool == "install_package").then_some(PACKAGE);
        assert_eq!(r["package"], json!(package), "{what}");
        assert_eq!(r["status"], e.status.as_str(), "{what}");
        assert!(r["time"].is_string() && r["duration_ms"].is_u64(), "{what}");
        assert!(r["bytes_returned"].as_u64().unwrap() > 0, "{what}");
    }
    let refused: Vec<&Value> = all.iter().filter(|r| r["event"] == "refused").collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    for (r, (rpc_id, request_id, reason)) in refused.iter().zip([
        ("901", &missing_rid, "no credentials"),
        ("w-1", &wrong_rid, "not a known API key"),
    ]) {
        assert_eq!(r["rpc_id"], rpc_id, "{r}");
        assert_eq!(r["request_id"], request_id.as_str(), "{r}");
        assert_eq!(r["client_addr"], "127.0.0.1", "{r}");
        assert!(r["principal"].is_null(), "{r}");
        assert!(r["reason"].as_str().unwrap().contains(reason), "{r}");
    }
    // tools/list itself is no tool call: every record is accounted for.
    assert_eq!(all.len(), calls.len() + refused.len());

    // stdout carries the same records.
    let file = std::fs::read_to_string(&audit_path).unwrap();
    let stdout = server.stdout_lines(file.lines().count());
    assert_eq!(stdout, file.lines().collect::<Vec<_>>());
    let everything = format!("{file}\n{}\n{}", stdout.join("\n"), server.log_text());
    for secret in [ALICE_KEY, BOB_KEY, WRONG_KEY] {
        assert!(!everything.contains(secret), "{secret} was logged");
    }
}

/// The status a result shows: `structuredContent.status`, else a failure's `status:` line.
fn status_field(result: &Value) -> Option<String> {
    let s = status(result);
    (!s.is_empty()).then(|| s.to_string())
}

/// With `--audit-code`, a record holds the code itself, capped at 4096 bytes: a prefix of what
/// ran, whose digest covers all of it.
#[tokio::test]
async fn audit_code_keeps_a_capped_prefix_of_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let server = Server::start_with(
        &["--audit-code", "--audit-log", audit_path.to_str().unwrap()],
        &[],
    );
    let line = "x = 1  # padding to make five kibibytes of code\n";
    let mut code = line.repeat(5 * 1024 / line.len() + 1);
    code.truncate(5 * 1024 - "print(x)".len());
    code.push_str("print(x)");
    assert_eq!(code.len(), 5 * 1024);
    let r = server.call("execute_code", json!({"code": code})).await;
    assert_eq!(status(&r), "ok", "{r}");
    let all = records(&audit_path);
    let [record] = all.as_slice() else {
        panic!("one record expected: {all:?}")
    };
    let kept = record["code"].as_str().unwrap();
    assert!(kept.len() <= 4096 && kept.len() > 4000, "{}", kept.len());
    assert!(code.starts_with(kept), "not a prefix of the code");
    assert_eq!(record["code_sha256"], sha256_hex(&code));
}

/// The same 5 KiB without `--audit-code`: the digest, and `code` null.
#[tokio::test]
async fn without_audit_code_no_code_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let server = Server::start_with(&["--audit-log", audit_path.to_str().unwrap()], &[]);
    let code = format!("{}print(1)", "#".repeat(5 * 1024 - 9) + "\n");
    let r = server.call("execute_code", json!({"code": code})).await;
    assert_eq!(status(&r), "ok", "{r}");
    let all = records(&audit_path);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0]["code"].is_null(), "{}", all[0]);
    assert_eq!(all[0]["code_sha256"], sha256_hex(&code));
}

/// Two servers appending to one `--audit-log` at once, with records bigger than a pipe buffer
/// (with `--audit-code`, 4 KiB of each call's 6000-byte code): every line is one whole record,
/// and none is lost.
#[tokio::test(flavor = "multi_thread")]
async fn two_servers_appending_to_one_audit_log_keep_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let args = ["--audit-log", audit_path.to_str().unwrap(), "--audit-code"];
    let (one, two) = (
        Server::start_with(&args, &[]),
        Server::start_with(&args, &[]),
    );
    const CALLS: usize = 40;
    let code = format!("#{}", "p".repeat(6000));
    let burst = |server: &Server, tag: &'static str| {
        let code = code.clone();
        let url = server.url.clone();
        async move {
            let client = reqwest::Client::new();
            let calls = (0..CALLS).map(|n| {
                let body = json!({"jsonrpc": "2.0", "id": format!("{tag}-{n}"), "method": "tools/call",
                    "params": {"name": "execute_code", "arguments": {"code": code}}});
                mcp_post(&client, &url).body(body.to_string()).send()
            });
            for r in futures::future::join_all(calls).await {
                assert_eq!(r.unwrap().status().as_u16(), 200);
            }
        }
    };
    tokio::join!(burst(&one, "one"), burst(&two, "two"));
    let text = std::fs::read_to_string(&audit_path).unwrap();
    let mut ids: Vec<String> = text
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line ({e})"));
            assert_eq!(r["code"].as_str().map(str::len), Some(4096), "{l:.200}");
            assert!(l.len() > 4096, "a record over a pipe buffer: {}", l.len());
            r["rpc_id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    let mut want: Vec<String> = ["one", "two"]
        .iter()
        .flat_map(|tag| (0..CALLS).map(move |n| format!("{tag}-{n}")))
        .collect();
    want.sort();
    assert_eq!(ids, want);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&audit_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Every HTTP answer carries a fresh `x-request-id`, on a server without authentication too,
/// and a client's own `x-request-id` does not replace the server's.
#[tokio::test]
async fn every_http_answer_carries_its_own_request_id() {
    let server = Server::start();
    let (_, first, _) = post(&server, None, json!(1), "tools/list", json!({})).await;
    let (_, second, _) = post(&server, None, json!(2), "tools/list", json!({})).await;
    assert_ne!(first, second);
    assert_eq!(first.len(), 36, "a UUID: {first}");
    let response = mcp_post(&reqwest::Client::new(), &server.url)
        .header("x-request-id", "chosen-by-the-client")
        .body(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "chosen-by-the-client");
    let metadata = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        server.url.trim_end_matches("/mcp")
    ))
    .await
    .unwrap();
    assert!(metadata.headers().contains_key("x-request-id"));
}
