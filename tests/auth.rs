//! Authentication, principals kept apart, and the audit log, against the real binary.
//!
//! Keys are made here and configured only as SHA-256 digests; every refusal is a named test.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::*;

const ALICE_KEY: &str = "jmcp_alice_0123456789abcdef0123456789abcdef";
const BOB_KEY: &str = "jmcp_bob_fedcba9876543210fedcba9876543210";

/// A server that knows alice (from a keys file) and bob (from the environment).
fn keyed_server(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!("# test keys\nalice {}\n", sha256_hex(ALICE_KEY)),
    )
    .unwrap();
    let inline = format!("bob:{}", sha256_hex(BOB_KEY));
    let mut args = vec!["--api-keys-file", keys.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = Server::start_with(&args, &[("JUPYTER_MCP_API_KEYS", &inline)]);
    (server, dir)
}

async fn post_with(server: &Server, headers: &[(&str, &str)]) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}});
    let mut req = mcp_post(&reqwest::Client::new(), &server.url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body.to_string()).send().await.unwrap()
}

/// 401, a JSON-RPC error body, and a challenge pointing at the resource metadata; returns the
/// challenge and the body.
async fn assert_unauthorized(server: &Server, headers: &[(&str, &str)]) -> (String, Value) {
    let resp = post_with(server, headers).await;
    assert_eq!(resp.status().as_u16(), 401, "{headers:?}");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        challenge.starts_with("Bearer resource_metadata=\"http://127.0.0.1:")
            && challenge.contains("/.well-known/oauth-protected-resource/mcp\""),
        "{challenge}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["code"], -32001, "{body}");
    assert_eq!(body["id"], 7, "the request's id is answered: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    for (_, v) in headers {
        if let Some(token) = v.strip_prefix("Bearer ").filter(|t| !t.is_empty()) {
            assert!(!message.contains(token), "the token is echoed: {message}");
        }
    }
    (challenge, body)
}

/// A bearer token refused as `invalid_token` (RFC 6750) for `reason`, never echoed.
async fn assert_invalid_token(server: &Server, token: &str, reason: &str) {
    let auth = format!("Bearer {token}");
    let (challenge, body) = assert_unauthorized(server, &[("authorization", &auth)]).await;
    assert!(
        challenge.ends_with(", error=\"invalid_token\""),
        "{reason}: {challenge}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(reason), "{reason}: {message}");
    assert!(!body.to_string().contains(token), "{reason}: token echoed");
}

/// Requests a keyed server must refuse with 401, one per `authorization` header (`None`: none).
/// `assert_unauthorized` names the headers; the test's own name is the case.
async fn unauthorized(_case: &str, authorizations: &[Option<String>]) {
    let (server, _keys) = keyed_server(&[]);
    for authorization in authorizations {
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|a| ("authorization", a.as_str()))
            .collect();
        assert_unauthorized(&server, &headers).await;
    }
}

cases!(unauthorized {
    a_missing_key_is_401: &[None];
    a_wrong_key_is_401: &[Some("Bearer jmcp_not_a_key".into())];
    the_digest_itself_is_not_a_key: &[Some(format!("Bearer {}", sha256_hex(ALICE_KEY)))];
    a_key_in_another_scheme_is_401: &[Some(format!("Basic {ALICE_KEY}")), Some("Bearer ".into())];
    a_key_with_a_suffix_is_401: &[Some(format!("Bearer {ALICE_KEY}x"))];
});

#[tokio::test]
async fn a_refused_request_never_reaches_a_kernel() {
    let (server, _keys) = keyed_server(&[]);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "execute_code", "arguments": {"code": "open('pwned','w').write('x')"}}});
    let (status, _) = server.post_raw(body.to_string(), &[]).await;
    assert_eq!(status, 401);
    let (status, _) = server
        .post_raw(body.to_string(), &[("authorization", "Bearer wrong")])
        .await;
    assert_eq!(status, 401);
    let files: Vec<_> = walk(server.workdir.path());
    assert!(
        files.iter().all(|p| !p.ends_with("pwned")),
        "a refused call ran code: {files:?}"
    );
    let r = server.call_as(ALICE_KEY, "list_kernels", json!({})).await;
    assert_eq!(r["structuredContent"]["kernels"], json!([]), "{r}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// RFC 9728: each document names the resource its well-known URL was formed from (§3.3): the
/// MCP endpoint for `.../oauth-protected-resource/mcp` (the one every 401 links), the server
/// for the path-less one.
#[tokio::test]
async fn the_resource_metadata_is_served_without_credentials() {
    let (server, _keys) = keyed_server(&[]);
    let base = server.url.trim_end_matches("/mcp");
    for (path, resource) in [
        ("/.well-known/oauth-protected-resource", base),
        (
            "/.well-known/oauth-protected-resource/mcp",
            server.url.as_str(),
        ),
    ] {
        let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["resource"], resource, "{doc}");
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(doc["authorization_servers"], json!([]));
    }
}

/// Behind a proxy the Host header is the proxy's: `--public-url` names the server in the
/// metadata and in every 401's challenge instead.
#[tokio::test]
async fn the_public_url_names_the_resource_behind_a_proxy() {
    let public = "https://jupyter.example.com/team";
    let (server, _keys) = keyed_server(&["--public-url", public]);
    let base = server.url.trim_end_matches("/mcp");
    let doc: Value = reqwest::get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], format!("{public}/mcp"), "{doc}");
    let resp = post_with(&server, &[]).await;
    assert_eq!(resp.status().as_u16(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{public}/.well-known/oauth-protected-resource/mcp\"")
    );
}

#[test]
fn a_bad_public_url_stops_start_up() {
    let (ok, _, err) = run_binary(&["--public-url", "jupyter.example.com"], &[], "");
    assert!(!ok && err.contains("--public-url"), "{err}");
}

/// A refused batch or notification has no single id to answer: `id` is null.
#[tokio::test]
async fn a_refused_batch_is_answered_with_a_null_id() {
    let (server, _keys) = keyed_server(&[]);
    let body = json!([{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}]);
    let (status, resp) = server.post_raw(body.to_string(), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(resp["id"], Value::Null, "{resp}");
}

/// Two principals with their own keys: neither reaches the other's kernels, variables,
/// notebooks, files or packages through any tool, and each has its own 0700 directory.
#[tokio::test]
async fn two_principals_cannot_see_each_others_things() {
    let (server, _keys) = keyed_server(&[]);
    let (a, b) = (ALICE_KEY, BOB_KEY);
    let r = server
        .call_as(a, "execute_code", json!({"code": "secret = 'alice-secret'\nopen('alice.txt','w').write('x')\nimport os; print(os.getcwd())"}))
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let alice_cwd = text(&r).trim().to_string();
    server
        .call_as(
            a,
            "execute_code",
            json!({"code": "x = 1", "kernel": "work"}),
        )
        .await;
    let r = server
        .call_as(
            a,
            "create_notebook",
            json!({"path": "a.ipynb", "cells": [{"cell_type": "code", "source": "1"}]}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let r = server
        .call_as(a, "install_package", json!({"package": "termcolor==3.3.0"}))
        .await;
    assert!(!is_error(&r), "{r}");

    // Bob: same kernel names, none of alice's state.
    let r = server.call_as(b, "list_kernels", json!({})).await;
    assert_eq!(r["structuredContent"]["kernels"], json!([]), "{r}");
    let r = server
        .call_as(b, "get_kernel_status", json!({"kernel": "work"}))
        .await;
    assert_eq!(r["structuredContent"]["state"], "not_started", "{r}");
    assert_eq!(r["structuredContent"]["security"]["principal"], "bob");
    let r = server.call_as(b, "get_variables", json!({})).await;
    assert!(!r.to_string().contains("alice-secret"), "{r}");
    let r = server
        .call_as(b, "inspect_variable", json!({"name": "secret"}))
        .await;
    assert!(is_error(&r), "{r}");
    assert!(
        server
            .call_as(b, "interrupt_kernel", json!({"kernel": "work"}))
            .await["isError"]
            == true
    );
    assert!(
        server
            .call_as(b, "shutdown_kernel", json!({"kernel": "work"}))
            .await["isError"]
            == true
    );
    let r = server
        .call_as(b, "execute_code", json!({"code": "import os, importlib.util\nprint(repr(globals().get('secret')), os.path.exists('alice.txt'), importlib.util.find_spec('termcolor'))\nprint(os.getcwd())"}))
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let out = text(&r);
    assert!(out.starts_with("None False None\n"), "{out}");
    assert_ne!(out.lines().nth(1).unwrap(), alice_cwd);
    let r = server.call_as(b, "list_notebooks", json!({})).await;
    assert_eq!(r["structuredContent"]["notebooks"], json!([]), "{r}");
    let r = server
        .call_as(b, "read_notebook", json!({"path": "a.ipynb"}))
        .await;
    assert_eq!(status(&r), "not_found", "{r}");
    let alice_dir = std::path::Path::new(&alice_cwd)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for path in [
        format!("../{alice_dir}/a.ipynb"),
        format!("{alice_cwd}/a.ipynb"),
    ] {
        let r = server
            .call_as(b, "read_notebook", json!({"path": path}))
            .await;
        assert!(is_error(&r), "{path}: {r}");
        let r = server
            .call_as(
                b,
                "create_notebook",
                json!({"path": path, "cells": [], "overwrite": true}),
            )
            .await;
        assert!(is_error(&r), "{path}: {r}");
    }

    // Alice still has everything.
    let r = server.call_as(a, "list_kernels", json!({})).await;
    assert_eq!(
        r["structuredContent"]["kernels"].as_array().unwrap().len(),
        2,
        "{r}"
    );
    let r = server
        .call_as(
            a,
            "execute_code",
            json!({"code": "import termcolor; print(secret)"}),
        )
        .await;
    assert_eq!(text(&r), "alice-secret\n", "{r}");
    let r = server.call_as(a, "list_notebooks", json!({})).await;
    assert_eq!(
        r["structuredContent"]["notebooks"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{r}"
    );

    // Directories: one per principal, 0700, under the working directory, none in its root.
    use std::os::unix::fs::PermissionsExt;
    let root = std::fs::canonicalize(server.workdir.path()).unwrap();
    assert_eq!(std::path::Path::new(&alice_cwd).parent().unwrap(), root);
    assert!(alice_dir.ends_with("-alice"), "{alice_dir}");
    let mode = std::fs::metadata(&alice_cwd).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(!root.join("a.ipynb").exists() && !root.join(".packages").exists());
}

/// Bob's calls, remembering which tools he used, so the test can check it used every tool the
/// server lists.
struct Attacker<'a> {
    server: &'a Server,
    key: &'a str,
    used: std::collections::BTreeSet<String>,
}

impl Attacker<'_> {
    async fn call(&mut self, tool: &str, args: Value) -> Value {
        self.used.insert(tool.to_string());
        self.server.call_as(self.key, tool, args).await
    }

    /// A call that must fail (not found, refused): alice's things are not bob's to touch.
    async fn refused(&mut self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args.clone()).await;
        assert!(is_error(&r), "bob's {tool} {args} worked: {r}");
        r
    }
}

/// Every tool the server lists, called by bob against alice's kernel, variables, notebook, files
/// and packages, by plain name, by `../<alice's dir>/` and by absolute path, plus MCP resources:
/// nothing of alice's is shown, changed, stopped or run. A tool added to the server fails this
/// test until it is attacked here too.
#[tokio::test(flavor = "multi_thread")]
async fn two_principals_are_kept_apart_through_every_tool() {
    let index = LocalIndex::start(&["jmcp-alicepkg==1.0", "jmcp-bobpkg==1.0"]);
    let (server, _keys) = keyed_server(&["--package-index-url", &index.url]);
    let a = ALICE_KEY;

    // Alice: a variable in kernel `work`, a file, a notebook with outputs, a package.
    let r = server
        .call_as(a, "execute_code", json!({"kernel": "work", "code":
            "import os\nx = 'alice-var'\nopen('alice.txt', 'w').write('alice-file')\nprint(os.getpid(), os.getcwd())"}))
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let (alice_pid, alice_cwd) = text(&r)
        .trim()
        .split_once(' ')
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .unwrap();
    let alice_dir = std::path::Path::new(&alice_cwd)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let cells = json!([{"cell_type": "code", "source": "print('alice-out')"},
                       {"cell_type": "markdown", "source": "alice notes"}]);
    let r = server
        .call_as(
            a,
            "create_notebook",
            json!({"path": "a.ipynb", "cells": cells}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let r = server
        .call_as(
            a,
            "execute_notebook",
            json!({"path": "a.ipynb", "kernel": "work"}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let r = server
        .call_as(
            a,
            "install_package",
            json!({"package": "jmcp-alicepkg==1.0", "kernel": "work"}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let alice_file = std::path::Path::new(&alice_cwd).join("alice.txt");
    let alice_nb = std::path::Path::new(&alice_cwd).join("a.ipynb");
    let file_before = std::fs::read(&alice_file).unwrap();
    let nb_before = std::fs::read(&alice_nb).unwrap();
    assert!(String::from_utf8_lossy(&nb_before).contains("alice-out"));

    let mut bob = Attacker {
        server: &server,
        key: BOB_KEY,
        used: Default::default(),
    };
    let (_, listed) = server.rpc_as(BOB_KEY, "tools/list", json!({})).await;
    let tools: Vec<String> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(tools.len() >= 23, "{listed}");
    let files = [
        "alice.txt".to_string(),
        format!("../{alice_dir}/alice.txt"),
        format!("{alice_cwd}/alice.txt"),
    ];
    let notebooks = [
        "a.ipynb".to_string(),
        format!("../{alice_dir}/a.ipynb"),
        format!("{alice_cwd}/a.ipynb"),
    ];
    // What alice has; a refusal may echo the path bob gave, but nothing of these.
    let secrets = [
        "alice-file",
        "alice-out",
        "alice notes",
        "alice-var",
        "alicepkg",
    ];
    let shows_nothing_of_alice = |what: &str, r: &Value| {
        let s = r.to_string();
        for secret in secrets {
            assert!(!s.contains(secret), "{what} shows {secret:?}: {s}");
        }
    };
    let lists_nothing_of_alice = |what: &str, r: &Value| {
        shows_nothing_of_alice(what, r);
        let s = r.to_string();
        for name in [alice_dir.as_str(), "alice.txt", "a.ipynb"] {
            assert!(!s.contains(name), "{what} lists {name:?}: {s}");
        }
    };

    // MCP resources: no URI of alice's, and none of her files read by any path.
    let (code, r) = server.rpc_as(BOB_KEY, "resources/list", json!({})).await;
    assert_eq!(code, 200, "{r}");
    assert!(r["result"]["resources"].is_array(), "{r}");
    lists_nothing_of_alice("resources/list", &r);
    for path in &files {
        let uri = format!("workspace:///{path}");
        let (_, r) = server
            .rpc_as(BOB_KEY, "resources/read", json!({"uri": uri}))
            .await;
        assert!(r.get("error").is_some(), "resources/read {uri}: {r}");
        shows_nothing_of_alice(&uri, &r);
    }

    // Files.
    let r = bob.call("list_files", json!({"recursive": true})).await;
    assert!(!is_error(&r), "{r}");
    lists_nothing_of_alice("list_files", &r);
    for dir in [format!("../{alice_dir}"), alice_cwd.clone(), "..".into()] {
        let r = bob
            .refused("list_files", json!({"path": dir, "recursive": true}))
            .await;
        shows_nothing_of_alice("list_files", &r);
    }
    for path in &files {
        let r = bob.refused("read_file", json!({"path": path})).await;
        shows_nothing_of_alice("read_file", &r);
    }

    // Kernels: bob's `work` is not alice's.
    let r = bob.call("list_kernels", json!({})).await;
    assert_eq!(r["structuredContent"]["kernels"], json!([]), "{r}");
    let r = bob
        .call("get_kernel_status", json!({"kernel": "work"}))
        .await;
    assert_eq!(r["structuredContent"]["state"], "not_started", "{r}");
    assert_eq!(r["structuredContent"]["security"]["principal"], "bob");
    bob.refused("interrupt_kernel", json!({"kernel": "work"}))
        .await;
    bob.refused("shutdown_kernel", json!({"kernel": "work"}))
        .await;
    let r = bob.call("restore_kernel", json!({"kernel": "work"})).await;
    shows_nothing_of_alice("restore_kernel", &r);
    assert!(
        is_error(&r) || r["structuredContent"]["steps_total"] == 0,
        "bob restored something: {r}"
    );
    let r = bob.call("restart_kernel", json!({"kernel": "work"})).await;
    shows_nothing_of_alice("restart_kernel", &r);
    let r = bob.call("get_variables", json!({"kernel": "work"})).await;
    shows_nothing_of_alice("get_variables", &r);
    let r = bob
        .call("inspect_variable", json!({"kernel": "work", "name": "x"}))
        .await;
    shows_nothing_of_alice("inspect_variable", &r);

    // Alice's notebook, by every path, with every notebook tool (bob has no `a.ipynb` yet).
    let r = bob.call("list_notebooks", json!({})).await;
    assert_eq!(r["structuredContent"]["notebooks"], json!([]), "{r}");
    for path in &notebooks {
        let attacks = [
            ("read_notebook", json!({"path": path})),
            (
                "insert_cell",
                json!({"path": path, "cell_type": "code", "source": "print('bob')"}),
            ),
            (
                "edit_cell",
                json!({"path": path, "cell": 0, "source": "print('bob')"}),
            ),
            ("delete_cell", json!({"path": path, "cell": 0})),
            ("move_cell", json!({"path": path, "cell": 0, "to": 1})),
            ("clear_outputs", json!({"path": path})),
            (
                "execute_cell",
                json!({"path": path, "cell": 0, "kernel": "work"}),
            ),
            ("execute_notebook", json!({"path": path, "kernel": "work"})),
        ];
        for (tool, args) in attacks {
            let r = bob.refused(tool, args).await;
            shows_nothing_of_alice(tool, &r);
        }
    }
    for path in &notebooks[1..] {
        let r = bob
            .refused(
                "execute_code",
                json!({"code": "print('bob')", "notebook": path}),
            )
            .await;
        shows_nothing_of_alice("execute_code", &r);
        bob.refused(
            "create_notebook",
            json!({"path": path, "cells": [], "overwrite": true}),
        )
        .await;
    }
    for path in &files[1..] {
        bob.refused(
            "write_file",
            json!({"path": path, "content": "bob", "overwrite": true}),
        )
        .await;
    }
    // By plain name they are bob's own, in bob's directory.
    let r = bob
        .call(
            "write_file",
            json!({"path": "alice.txt", "content": "bob", "overwrite": true}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let r = bob
        .call(
            "create_notebook",
            json!({"path": "a.ipynb", "cells": [], "overwrite": true}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let r = bob
        .call(
            "execute_code",
            json!({"code": "print('bob')", "notebook": "a.ipynb"}),
        )
        .await;
    assert!(!is_error(&r), "{r}");

    // Packages: each principal's install is its own.
    let r = bob
        .call(
            "install_package",
            json!({"package": "jmcp-bobpkg==1.0", "kernel": "work"}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let probe = "import importlib, importlib.util, os\nimportlib.invalidate_caches()\nprint(os.getpid(), globals().get('x'), importlib.util.find_spec('jmcp_alicepkg') is not None, importlib.util.find_spec('jmcp_bobpkg') is not None, open('alice.txt').read())";
    let r = bob
        .call("execute_code", json!({"code": probe, "kernel": "work"}))
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let out = text(&r);
    assert!(out.ends_with(" None False True bob\n"), "{out}");
    assert!(!out.starts_with(&format!("{alice_pid} ")), "{out}");

    // Executions: alice's running one is not bob's to see, read or stop.
    let r = server
        .call_as(
            a,
            "execute_code",
            json!({"kernel": "long", "code": "import time\ntime.sleep(30)", "wait": 0.5}),
        )
        .await;
    assert_eq!(status(&r), "running", "{r}");
    let id = r["structuredContent"]["execution_id"].clone();
    let r = bob.call("list_executions", json!({})).await;
    assert_eq!(r["structuredContent"]["executions"], json!([]), "{r}");
    let r = bob
        .refused("get_execution", json!({"execution_id": id, "wait": 0}))
        .await;
    shows_nothing_of_alice("get_execution", &r);
    assert_eq!(status(&r), "not_found", "{r}");
    let r = bob
        .refused("cancel_execution", json!({"execution_id": id}))
        .await;
    assert_eq!(status(&r), "not_found", "{r}");
    let r = server
        .call_as(a, "get_execution", json!({"execution_id": id, "wait": 0}))
        .await;
    assert_eq!(
        r["structuredContent"]["status"], "running",
        "bob stopped it: {r}"
    );
    server
        .call_as(a, "cancel_execution", json!({"execution_id": id}))
        .await;

    let missing: Vec<&String> = tools.iter().filter(|t| !bob.used.contains(*t)).collect();
    assert!(
        missing.is_empty(),
        "tools not attacked across principals: {missing:?}; add them to this test"
    );

    // Alice: same kernel, same variable, her package only, her file and notebook byte-identical.
    let r = server
        .call_as(a, "execute_code", json!({"code": probe, "kernel": "work"}))
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    assert_eq!(
        text(&r),
        format!("{alice_pid} alice-var True False alice-file\n"),
        "{r}"
    );
    assert_eq!(std::fs::read(&alice_file).unwrap(), file_before);
    assert_eq!(std::fs::read(&alice_nb).unwrap(), nb_before);
    let r = server.call_as(a, "list_notebooks", json!({})).await;
    assert_eq!(
        r["structuredContent"]["notebooks"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{r}"
    );
}

#[tokio::test]
async fn without_auth_on_loopback_local_keeps_the_working_dir() {
    let server = Server::start();
    let r = server.exec("import os; print(os.getcwd())").await;
    let root = std::fs::canonicalize(server.workdir.path()).unwrap();
    assert_eq!(text(&r).trim(), root.to_str().unwrap());
    let r = server.call("get_kernel_status", json!({})).await;
    let security = &r["structuredContent"]["security"];
    assert_eq!(security["principal"], "local");
    assert!(
        security["authentication"]
            .as_str()
            .unwrap()
            .starts_with("none"),
        "{security}"
    );
    // A token is ignored when no source is configured.
    let (code, _) = server.rpc_as("anything", "tools/list", json!({})).await;
    assert_eq!(code, 200);
}

/// Where credentials are required, `local` never calls, so no spare is started for it (a
/// kernel nobody could use, and on Lambda an init that waited for it). The first caller's
/// kernel starts in its first call, and its own spare follows.
#[tokio::test]
async fn an_authenticated_server_starts_no_spare_for_local() {
    let (keyed, _dir) = keyed_server(&[]);
    let open = Server::start();
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    // Started after the keyed server, the open one has its spare: time enough for one.
    until("the open server's spare", &|| {
        !children_of(open.pid()).is_empty()
    });
    assert_eq!(
        children_of(keyed.pid()),
        Vec::<u32>::new(),
        "a spare for local"
    );
    let r = keyed
        .call_as(ALICE_KEY, "execute_code", json!({"code": "1+1"}))
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    until("alice's kernel and her spare", &|| {
        children_of(keyed.pid()).len() == 2
    });
}

#[tokio::test]
async fn insecure_no_auth_is_reported_by_get_kernel_status() {
    let server = Server::start_with(&["--insecure-no-auth"], &[]);
    let r = server.call("get_kernel_status", json!({})).await;
    let auth = r["structuredContent"]["security"]["authentication"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(auth.contains("--insecure-no-auth"), "{auth}");
    assert!(server.log_text().contains("--insecure-no-auth"));
}

/// Runs the binary to completion with some arguments; returns (success, stderr).
fn run_binary(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (bool, String, String) {
    let workdir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jupyter-mcp-server"));
    cmd.args(["--port", "0", "--working-dir"])
        .arg(workdir.path())
        .arg("--python")
        .arg(python())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = ChildGuard(cmd.spawn().unwrap());
    child
        .0
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the binary did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let ok = child.0.wait().unwrap().success();
    (ok, out, err)
}

/// A start-up the binary must refuse: its arguments and environment, and what stderr must
/// mention (`""`: only that it does not start). The refusals that need a keys or JWKS file
/// written first, or that loop over values, stay tests of their own.
struct StartUp<'a> {
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    mentions: &'a str,
}

fn refuses_to_start(case: &str, runs: &[StartUp<'_>]) {
    for run in runs {
        let (ok, _, err) = run_binary(run.args, run.env, "");
        assert!(
            !ok,
            "{case}: started with {:?} {:?}: {err}",
            run.args, run.env
        );
        assert!(err.contains(run.mentions), "{case}: {:?}: {err}", run.args);
    }
}

cases!(sync refuses_to_start {
    it_refuses_to_start_on_0_0_0_0_without_auth: &[
        StartUp {
            args: &["--host", "0.0.0.0"],
            env: &[],
            mentions: "refusing to listen on 0.0.0.0 without authentication",
        },
        StartUp { args: &["--host", "::"], env: &[], mentions: "" },
    ];
    a_malformed_inline_key_stops_start_up: &[StartUp {
        args: &[],
        env: &[("JUPYTER_MCP_API_KEYS", "alice:abc")],
        mentions: "JUPYTER_MCP_API_KEYS entry 1",
    }];
    oidc_needs_an_audience_and_keys: &[
        StartUp { args: &["--oidc-issuer", ISSUER], env: &[], mentions: "--oidc-audience" },
        StartUp {
            args: &["--oidc-issuer", ISSUER, "--oidc-audience", "a"],
            env: &[],
            mentions: "--oidc-jwks-url or --oidc-jwks-file",
        },
    ];
    uid_per_principal_and_kernel_user_conflict: &[StartUp {
        args: &["--kernel-uid-per-principal", "--kernel-user", "nobody"],
        env: &[],
        mentions: "cannot be used with",
    }];
});

#[test]
fn a_malformed_keys_file_stops_start_up_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!(
            "alice {}\n\nbob raw-secret-pasted-by-mistake\n",
            sha256_hex(ALICE_KEY)
        ),
    )
    .unwrap();
    let (ok, _, err) = run_binary(&["--api-keys-file", keys.to_str().unwrap()], &[], "");
    assert!(!ok);
    assert!(err.contains(&format!("{}:3:", keys.display())), "{err}");
    assert!(!err.contains("raw-secret-pasted-by-mistake"), "{err}");
}

#[test]
fn hash_key_prints_the_digest_of_a_key_from_stdin() {
    let (ok, out, _) = run_binary(&["hash-key"], &[], "my-key\n");
    assert!(ok);
    assert!(out.contains(&sha256_hex("my-key")), "{out}");
    assert!(!out.contains("my-key"), "the key is printed back: {out}");
}

#[test]
fn hash_key_generates_a_key_when_stdin_is_empty() {
    let (ok, out, _) = run_binary(&["hash-key"], &[], "");
    assert!(ok);
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(out.contains(&sha256_hex(&key)), "{out}");
}

/// Past the per-principal kernel limit a call is refused with a message naming the limit, and
/// another principal is not held back by it.
#[tokio::test]
async fn the_per_principal_kernel_limit_names_itself() {
    let (server, _keys) = keyed_server(&["--max-kernels-per-principal", "1"]);
    let r = server
        .call_as(ALICE_KEY, "execute_code", json!({"code": "1"}))
        .await;
    assert_eq!(status(&r), "ok");
    let r = server
        .call_as(
            ALICE_KEY,
            "execute_code",
            json!({"code": "1", "kernel": "two"}),
        )
        .await;
    assert_eq!(status(&r), "limit_reached", "{r}");
    assert!(text(&r).contains("--max-kernels-per-principal"), "{r}");
    let r = server
        .call_as(BOB_KEY, "execute_code", json!({"code": "1"}))
        .await;
    assert_eq!(status(&r), "ok", "{r}");
}

/// Keys and tokens from `tests/fixtures/make_jwts.py` (PyJWT and `cryptography`).
fn make_jwts(issuer: &str, audience: &str) -> Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_jwts.py");
    let out = run_python(
        &[script.as_os_str(), issuer.as_ref(), audience.as_ref()],
        &[],
        "make_jwts.py",
    );
    serde_json::from_slice(&out).unwrap()
}

/// A JWKS endpoint on 127.0.0.1 whose document the test can swap; counts its fetches.
struct JwksServer {
    url: String,
    doc: std::sync::Arc<std::sync::Mutex<Value>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

async fn jwks_server(doc: Value) -> JwksServer {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let doc = Arc::new(Mutex::new(doc));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (d, f) = (Arc::clone(&doc), Arc::clone(&fetches));
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (d, f) = (Arc::clone(&d), Arc::clone(&f));
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                axum::Json(d.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    JwksServer {
        url,
        doc,
        fetches,
        _task: task,
    }
}

const ISSUER: &str = "https://idp.test.invalid";
const AUDIENCE: &str = "https://jupyter-mcp.test.invalid";

fn oidc_server(jwks_url: &str, audit: &std::path::Path) -> Server {
    Server::start_with(
        &[
            "--oidc-issuer",
            ISSUER,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-jwks-url",
            jwks_url,
            "--audit-log",
            audit.to_str().unwrap(),
        ],
        &[],
    )
}

/// RS256 and ES256 tokens from the issuer are accepted and name their principal (`oidc:<sub>`);
/// every forged, expired, misdirected or algorithm-confused token is refused with 401 and
/// `error="invalid_token"`.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_tokens_are_verified_and_every_bad_one_is_401() {
    let made = make_jwts(ISSUER, AUDIENCE);
    let jwks = jwks_server(made["jwks"].clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = oidc_server(&jwks.url, &dir.path().join("audit"));
    let token = |name: &str| made["tokens"][name].as_str().unwrap().to_string();

    let r = server
        .call_as(&token("rs256"), "get_kernel_status", json!({}))
        .await;
    assert_eq!(
        r["structuredContent"]["security"]["principal"], "oidc:carol",
        "{r}"
    );
    let r = server
        .call_as(&token("es256"), "get_kernel_status", json!({}))
        .await;
    assert_eq!(
        r["structuredContent"]["security"]["principal"], "oidc:dave",
        "{r}"
    );

    // Each refused for its own reason, not by accident.
    for (bad, reason) in [
        ("forged", "signature does not verify"),
        ("expired", "expired"),
        ("not_yet_valid", "not valid yet"),
        ("wrong_aud", "another audience"),
        ("wrong_iss", "another issuer"),
        ("no_exp", "lacks a required claim"),
        ("alg_none", "not a well-formed JWT"),
        ("hs256_public_key", "HS256 is not accepted"),
        ("rs256_with_ec_kid", "not a RSA key"),
        ("es256_with_rsa_kid", "not a P-256 key"),
        ("unknown_kid", "signing key the issuer does not publish"),
        ("no_sub", "no string claim \"sub\""),
    ] {
        assert_invalid_token(&server, &token(bad), reason).await;
    }
    let metadata: Value = reqwest::get(
        server
            .url
            .replace("/mcp", "/.well-known/oauth-protected-resource"),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["authorization_servers"], json!([ISSUER]));
    let logs = format!(
        "{}\n{}\n{}",
        server.log_text(),
        server.stdout.lock().unwrap().join("\n"),
        std::fs::read_to_string(dir.path().join("audit")).unwrap()
    );
    for t in made["tokens"].as_object().unwrap().values() {
        let t = t.as_str().unwrap();
        // The signature is the secret-bearing part a log might show.
        let sig = t.rsplit('.').next().unwrap();
        assert!(
            sig.is_empty() || !logs.contains(sig),
            "a token reached the logs"
        );
    }
}

/// A key the issuer publishes after start-up is picked up by one refetch on its unknown kid,
/// and made-up kids do not make the server fetch again and again.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_refetches_the_jwks_on_an_unknown_kid_at_most_every_30_s() {
    use std::sync::atomic::Ordering;
    let made = make_jwts(ISSUER, AUDIENCE);
    let jwks = jwks_server(made["jwks"].clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = oidc_server(&jwks.url, &dir.path().join("audit"));
    let token = |name: &str| made["tokens"][name].as_str().unwrap().to_string();
    let r = server
        .call_as(&token("rs256"), "list_kernels", json!({}))
        .await;
    assert!(!is_error(&r));
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
    *jwks.doc.lock().unwrap() = made["rotated_jwks"].clone();
    // Within 30 s of the first fetch the unknown kid is refused without a fetch...
    let (code, _) = server
        .rpc_as(&token("rotated"), "tools/list", json!({}))
        .await;
    assert_eq!(code, 401);
    for _ in 0..5 {
        let (code, _) = server
            .rpc_as(&token("unknown_kid"), "tools/list", json!({}))
            .await;
        assert_eq!(code, 401);
    }
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        1,
        "refetch not rate-limited"
    );
    // ...and after it, one fetch picks the new key up.
    tokio::time::sleep(std::time::Duration::from_secs(31)).await;
    let r = server
        .call_as(&token("rotated"), "get_kernel_status", json!({}))
        .await;
    assert_eq!(
        r["structuredContent"]["security"]["principal"], "oidc:erin",
        "{r}"
    );
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
}

/// The principal of a token, as get_kernel_status reports it.
async fn principal_of(server: &Server, token: &str) -> Value {
    let r = server.call_as(token, "get_kernel_status", json!({})).await;
    r["structuredContent"]["security"]["principal"].clone()
}

/// Clock skew: `exp` 10 s past and `nbf` 10 s ahead are inside the 30 s leeway (`LEEWAY_SECS`
/// in src/auth/oidc.rs) and accepted; `exp` 60 s past is refused. The tokens are made after the
/// server is up (the JWKS is fetched on first use), so the 20 s margin is not spent starting it.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_tolerates_30_s_of_clock_skew_and_no_more() {
    let jwks = jwks_server(json!({"keys": []})).await;
    let dir = tempfile::tempdir().unwrap();
    let server = oidc_server(&jwks.url, &dir.path().join("audit"));
    let made = make_jwts(ISSUER, AUDIENCE);
    *jwks.doc.lock().unwrap() = made["jwks"].clone();
    let token = |name: &str| made["tokens"][name].as_str().unwrap().to_string();
    for ok in ["expired_within_leeway", "nbf_within_leeway"] {
        assert_eq!(
            principal_of(&server, &token(ok)).await,
            "oidc:carol",
            "{ok}"
        );
    }
    assert_invalid_token(&server, &token("expired_past_leeway"), "expired").await;
}

/// `--oidc-jwks-file`: the keys come from the file, read at start-up; a token naming a key that
/// is not in it is refused without any fetch (there is nothing to fetch from).
#[tokio::test(flavor = "multi_thread")]
async fn oidc_keys_from_a_jwks_file_work_without_a_fetch() {
    let made = make_jwts(ISSUER, AUDIENCE);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, made["jwks"].to_string()).unwrap();
    let server = Server::start_with(
        &[
            "--oidc-issuer",
            ISSUER,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-jwks-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let token = |name: &str| made["tokens"][name].as_str().unwrap().to_string();
    assert_eq!(principal_of(&server, &token("rs256")).await, "oidc:carol");
    assert_eq!(principal_of(&server, &token("es256")).await, "oidc:dave");
    assert_invalid_token(&server, &token("rotated"), "does not publish").await;
    assert!(
        !server.log_text().contains("fetched the OIDC issuer's keys"),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_malformed_jwks_file_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, "{\"keys\": [{\"kty\": ").unwrap();
    let missing = dir.path().join("missing.json");
    for path in [&file, &missing] {
        let (ok, _, err) = run_binary(
            &[
                "--oidc-issuer",
                ISSUER,
                "--oidc-audience",
                AUDIENCE,
                "--oidc-jwks-file",
                path.to_str().unwrap(),
            ],
            &[],
            "",
        );
        assert!(!ok, "started with {}: {err}", path.display());
        assert!(
            err.contains(&format!("cannot read the JWKS file {}", path.display())),
            "{err}"
        );
    }
}

/// `--oidc-principal-claim email`: the email claim names the principal; a token without one is
/// refused.
#[tokio::test(flavor = "multi_thread")]
async fn oidc_principal_claim_names_the_principal() {
    let made = make_jwts(ISSUER, AUDIENCE);
    let jwks = jwks_server(made["jwks"].clone()).await;
    let server = Server::start_with(
        &[
            "--oidc-issuer",
            ISSUER,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-jwks-url",
            &jwks.url,
            "--oidc-principal-claim",
            "email",
        ],
        &[],
    );
    let token = |name: &str| made["tokens"][name].as_str().unwrap().to_string();
    assert_eq!(
        principal_of(&server, &token("with_email")).await,
        "oidc:carol@example.com"
    );
    assert_invalid_token(&server, &token("rs256"), "no string claim \"email\"").await;
}

/// A token's claim never names an API key holder or the unauthenticated caller: OIDC principals
/// are `oidc:<claim>`, so the key holder `alice` and a token with `sub: alice` have their own
/// directories and kernels.
#[tokio::test(flavor = "multi_thread")]
async fn an_oidc_subject_cannot_become_an_api_key_principal() {
    let made = make_jwts(ISSUER, AUDIENCE);
    let jwks = jwks_server(made["jwks"].clone()).await;
    let (server, _keys) = keyed_server(&[
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-jwks-url",
        &jwks.url,
    ]);
    let token = |name: &str| made["tokens"][name].as_str().unwrap().to_string();
    let (oidc_alice, oidc_local) = (token("sub_alice"), token("sub_local"));
    let who = "import os\nprint(os.getpid(), os.getcwd(), globals().get('mine'))\nmine = 1";
    let run = |key: String| {
        let server = &server;
        async move {
            let r = server
                .call_as(&key, "execute_code", json!({"code": who}))
                .await;
            assert_eq!(status(&r), "ok", "{r}");
            text(&r)
        }
    };
    let key_alice = run(ALICE_KEY.to_string()).await;
    let token_alice = run(oidc_alice.clone()).await;
    let token_local = run(oidc_local.clone()).await;
    let fields = |s: &str| -> (String, String, String) {
        let v: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(v.len(), 3, "{s}");
        (v[0].into(), v[1].into(), v[2].into())
    };
    let (key_pid, key_cwd, key_seen) = fields(&key_alice);
    let (tok_pid, tok_cwd, tok_seen) = fields(&token_alice);
    let (loc_pid, loc_cwd, _) = fields(&token_local);
    assert_eq!((key_seen.as_str(), tok_seen.as_str()), ("None", "None"));
    assert_ne!(key_pid, tok_pid, "one kernel for both");
    assert_ne!(key_cwd, tok_cwd, "one directory for both");
    assert_ne!(loc_pid, key_pid);
    assert_ne!(
        loc_cwd,
        std::fs::canonicalize(server.workdir.path())
            .unwrap()
            .to_str()
            .unwrap()
    );
    assert_eq!(principal_of(&server, &oidc_alice).await, "oidc:alice");
    assert_eq!(principal_of(&server, &oidc_local).await, "oidc:local");
    assert_eq!(principal_of(&server, ALICE_KEY).await, "alice");
    let r = server.call_as(ALICE_KEY, "list_kernels", json!({})).await;
    assert_eq!(
        r["structuredContent"]["kernels"].as_array().unwrap().len(),
        1,
        "{r}"
    );
}

/// `local` (the unauthenticated caller) and names with `:` (OIDC and IAM names) are not API key
/// principals: a keys-file line or an inline entry with one stops start-up, naming where.
#[test]
fn a_reserved_key_principal_name_stops_start_up_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    for (i, name) in ["local", "a:b", "oidc:alice", "arn:aws:iam::1:user/x"]
        .iter()
        .enumerate()
    {
        let other = sha256_hex(&format!("other-{i}"));
        std::fs::write(
            &keys,
            format!("# keys\nalice {}\n{name} {other}\n", sha256_hex(ALICE_KEY)),
        )
        .unwrap();
        let (ok, _, err) = run_binary(&["--api-keys-file", keys.to_str().unwrap()], &[], "");
        assert!(!ok, "{name}: started");
        assert!(
            err.contains(&format!("{}:3:", keys.display())),
            "{name}: {err}"
        );
        assert!(
            err.contains("cannot contain `:` or be `local`"),
            "{name}: {err}"
        );
    }
    let inline = format!("alice:{},local:{}", sha256_hex(ALICE_KEY), sha256_hex("x"));
    let (ok, _, err) = run_binary(&[], &[("JUPYTER_MCP_API_KEYS", &inline)], "");
    assert!(!ok && err.contains("JUPYTER_MCP_API_KEYS entry 2"), "{err}");
}

/// Past its request rate a principal gets 429 naming the limit; another principal does not.
#[tokio::test]
async fn the_per_principal_request_rate_is_refused_with_429() {
    let (server, _keys) = keyed_server(&["--requests-per-minute-per-principal", "3"]);
    for _ in 0..3 {
        let (code, body) = server.rpc_as(ALICE_KEY, "tools/list", json!({})).await;
        assert_eq!(code, 200, "{body}");
    }
    let (code, body) = server.rpc_as(ALICE_KEY, "tools/list", json!({})).await;
    assert_eq!(code, 429, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("--requests-per-minute-per-principal"),
        "{message}"
    );
    let (code, _) = server.rpc_as(BOB_KEY, "tools/list", json!({})).await;
    assert_eq!(code, 200);
}

/// Past its budget of refused requests an address gets 429 with Retry-After, even with a right
/// key (so a guess cannot be told right or wrong); every refusal keeps its audit record; another
/// address is not affected.
#[tokio::test]
async fn refused_requests_are_limited_per_client_address() {
    let (server, _keys) = keyed_server(&["--unauthenticated-per-minute-per-address", "3"]);
    for _ in 0..3 {
        let (code, _) = server.rpc_as("wrong-key", "tools/list", json!({})).await;
        assert_eq!(code, 401);
    }
    let over = mcp_post(&reqwest::Client::new(), &server.url)
        .header("authorization", "Bearer wrong-key")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(over.status().as_u16(), 429);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = over.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--unauthenticated-per-minute-per-address"),
        "{body}"
    );
    let (code, _) = server.rpc_as(ALICE_KEY, "tools/list", json!({})).await;
    assert_eq!(
        code, 429,
        "a blocked address is refused before its key is checked"
    );
    // Another loopback address still gets in.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let ok = mcp_post(&other, &server.url)
        .header("authorization", format!("Bearer {ALICE_KEY}"))
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let refused = server
        .stdout
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("\"refused\""))
        .count();
    assert_eq!(refused, 5, "3 wrong keys + 1 over the budget + 1 blocked");
}

/// While one call of a principal runs, a second is refused naming the limit; another principal
/// is served, and the place comes back when the call ends.
#[tokio::test(flavor = "multi_thread")]
async fn the_per_principal_concurrent_calls_are_limited() {
    let (server, _keys) = keyed_server(&["--max-calls-per-principal", "1"]);
    let server = std::sync::Arc::new(server);
    let r = server
        .call_as(
            ALICE_KEY,
            "execute_code",
            json!({"code": "import os; print(os.getcwd())"}),
        )
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let marker = std::path::Path::new(text(&r).trim()).join("running");
    let long = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move {
            server
                .call_as(
                    ALICE_KEY,
                    "execute_code",
                    json!({"code": "open('running', 'w').close(); import time; time.sleep(8)"}),
                )
                .await
        })
    };
    // Wait until the long call runs (its cell made the marker), so it holds alice's only place;
    // polling with calls before that could take the place first and get the long call refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the long call never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let r = server.call_as(ALICE_KEY, "list_kernels", json!({})).await;
    let refused = (status(&r) == "limit_reached").then_some(r);
    let refused = refused.expect("a second concurrent call was never refused");
    assert!(
        text(&refused).contains("--max-calls-per-principal"),
        "{refused}"
    );
    let r = server.call_as(BOB_KEY, "list_kernels", json!({})).await;
    assert!(!is_error(&r), "{r}");
    let r = long.await.unwrap();
    assert_eq!(status(&r), "ok", "{r}");
    let r = server.call_as(ALICE_KEY, "list_kernels", json!({})).await;
    assert!(!is_error(&r), "{r}");
}

/// Writes the secret through boto3 (moto's own client library) against the moto server.
fn put_secret(endpoint: &str, id: &str, value: &Value, create: bool) {
    let op = if create {
        "create_secret(Name=id, SecretString=value)"
    } else {
        "put_secret_value(SecretId=id, SecretString=value)"
    };
    let script = format!(
        "import boto3, sys\nid, value = sys.argv[1], sys.argv[2]\nboto3.client('secretsmanager', endpoint_url={endpoint:?}).{op}"
    );
    boto3(&script, &[id, &value.to_string()]);
}

/// Keys from a Secrets Manager secret (moto on loopback): they work, a wrong one is 401, and a
/// rotated key works at once through the re-read on an unknown key, while the old one stops.
#[tokio::test(flavor = "multi_thread")]
async fn api_keys_from_secrets_manager_work_and_rotation_is_picked_up() {
    let moto = moto();
    let old = "jmcp_secret_alice_old_0000000000000000";
    let new = "jmcp_secret_alice_new_1111111111111111";
    put_secret(
        &moto.endpoint,
        "jmcp/keys",
        &json!({"alice": sha256_hex(old)}),
        true,
    );
    let mut env: Vec<(&str, &str)> = FAKE_AWS.to_vec();
    env.push(("AWS_ENDPOINT_URL", &moto.endpoint));
    let server = Server::start_with(&["--api-keys-secret-id", "jmcp/keys"], &env);
    let r = server.call_as(old, "get_kernel_status", json!({})).await;
    assert_eq!(
        r["structuredContent"]["security"]["principal"], "alice",
        "{r}"
    );
    let (code, _) = server.rpc_as("jmcp_wrong", "tools/list", json!({})).await;
    assert_eq!(code, 401);

    // Rotation: the new key is unknown to the cache, which was re-read for the wrong key just
    // now; re-reads for unknown keys come at most once a minute, so it waits for that.
    put_secret(
        &moto.endpoint,
        "jmcp/keys",
        &json!({"alice": sha256_hex(new)}),
        false,
    );
    let (code, _) = server.rpc_as(new, "tools/list", json!({})).await;
    assert_eq!(code, 401, "re-read twice within a minute");
    tokio::time::sleep(std::time::Duration::from_secs(61)).await;
    let r = server.call_as(new, "get_kernel_status", json!({})).await;
    assert_eq!(
        r["structuredContent"]["security"]["principal"], "alice",
        "{r}"
    );
    let (code, _) = server.rpc_as(old, "tools/list", json!({})).await;
    assert_eq!(code, 401, "the rotated-out key still works");
    // The server logs before it answers, but the test reads its stderr on another thread:
    // give that thread a moment to catch up before counting.
    let count_reads = || {
        server
            .log_text()
            .matches("read the API keys secret")
            .count()
    };
    for _ in 0..50 {
        if count_reads() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reads = count_reads();
    assert_eq!(
        reads,
        3,
        "initial, the wrong key, the new key:\n{}",
        server.log_text()
    );
    for secret in [old, new] {
        assert!(!server.log_text().contains(secret));
    }
}

/// Waits until the server's log (read on another thread) holds `needle` at least `n` times,
/// and returns how many times it does.
async fn log_count(server: &Server, needle: &str, n: usize) -> usize {
    for _ in 0..50 {
        if server.log_text().matches(needle).count() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.log_text().matches(needle).count()
}

/// A key removed from the secret stops working once the cached table is older than
/// --api-keys-cache-seconds: the next request re-reads the secret (one read), the removed key
/// is 401, the key still in the secret works.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_removed_from_the_secret_stops_working_when_the_cache_expires() {
    let moto = moto();
    let (alice, bob) = (
        "jmcp_secret_alice_2222222222222222",
        "jmcp_secret_bob_3333333333333333",
    );
    let both = json!({"alice": sha256_hex(alice), "bob": sha256_hex(bob)});
    put_secret(&moto.endpoint, "jmcp/keys", &both, true);
    let mut env: Vec<(&str, &str)> = FAKE_AWS.to_vec();
    env.push(("AWS_ENDPOINT_URL", &moto.endpoint));
    let server = Server::start_with(
        &[
            "--api-keys-secret-id",
            "jmcp/keys",
            "--api-keys-cache-seconds",
            "2",
        ],
        &env,
    );
    for key in [alice, bob] {
        let (code, _) = server.rpc_as(key, "tools/list", json!({})).await;
        assert_eq!(code, 200);
    }
    put_secret(
        &moto.endpoint,
        "jmcp/keys",
        &json!({"bob": sha256_hex(bob)}),
        false,
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (code, _) = server.rpc_as(alice, "tools/list", json!({})).await;
    assert_eq!(
        code, 401,
        "a key removed from the secret still works after the cache time"
    );
    let (code, _) = server.rpc_as(bob, "tools/list", json!({})).await;
    assert_eq!(code, 200);
    // The first read, one after expiry, and one for alice's key now unknown (the rotation
    // re-read, at most once a minute).
    let reads = log_count(&server, "read the API keys secret", 3).await;
    assert_eq!(reads, 3, "{}", server.log_text());
}

/// Fail closed: when the cached table is older than --api-keys-cache-seconds and Secrets
/// Manager cannot be read, its keys are refused (401), and the outage costs one read attempt per
/// retry interval, not one per request. When the API is back, the keys work again.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_table_is_refused_while_the_secret_cannot_be_read() {
    let moto = moto();
    let port: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let alice = "jmcp_secret_alice_4444444444444444";
    let table = json!({"alice": sha256_hex(alice)});
    put_secret(&moto.endpoint, "jmcp/keys", &table, true);
    let mut env: Vec<(&str, &str)> = FAKE_AWS.to_vec();
    env.push(("AWS_ENDPOINT_URL", &moto.endpoint));
    let server = Server::start_with(
        &[
            "--api-keys-secret-id",
            "jmcp/keys",
            "--api-keys-cache-seconds",
            "2",
        ],
        &env,
    );
    let (code, _) = server.rpc_as(alice, "tools/list", json!({})).await;
    assert_eq!(code, 200);

    drop(moto); // Secrets Manager is down
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    for _ in 0..5 {
        let (code, body) = server.rpc_as(alice, "tools/list", json!({})).await;
        assert_eq!(
            code, 401,
            "a stale table was used while the secret is unreadable: {body}"
        );
    }
    let stale = "older than --api-keys-cache-seconds";
    let failures = log_count(&server, stale, 1).await;
    assert!(
        (1..=2).contains(&failures),
        "one read attempt per retry interval, not one per request ({failures}):\n{}",
        server.log_text()
    );

    let moto = moto_on(port);
    put_secret(&moto.endpoint, "jmcp/keys", &table, true);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await; // past the retry interval
    let (code, _) = server.rpc_as(alice, "tools/list", json!({})).await;
    assert_eq!(code, 200, "the keys work again once the secret can be read");
    assert!(!server.log_text().contains(alice));
}

/// Under 2025-03-26 a JSON-RPC batch is split into one request per message: each carries the
/// caller's principal (and a batch without a key is refused as a whole).
#[tokio::test]
async fn each_message_of_a_batch_runs_as_the_caller() {
    let (server, _keys) = keyed_server(&[]);
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
         "params": {"name": "get_kernel_status", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "list_kernels", "arguments": {}}},
    ]);
    let post = |key: Option<&str>| {
        let mut req = reqwest::Client::new()
            .post(&server.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-03-26");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        req.body(batch.to_string()).send()
    };
    let resp = post(Some(BOB_KEY)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    let answers = body.as_array().unwrap();
    assert_eq!(answers.len(), 2, "{body}");
    assert_eq!(
        answers[0]["result"]["structuredContent"]["security"]["principal"], "bob",
        "{body}"
    );
    assert_eq!(post(None).await.unwrap().status().as_u16(), 401);
}

/// Attack: kernel code of one principal goes around the tools and opens another principal's
/// directory with plain file calls. Landlock gives a kernel its own principal's directory only,
/// so both the read and the write are refused; without Landlock on this Linux the test says so
/// and checks that get_kernel_status reports it as not applied.
#[tokio::test]
async fn kernel_code_cannot_open_another_principals_directory() {
    let (server, _keys) = keyed_server(&[]);
    let r = server
        .call_as(
            BOB_KEY,
            "execute_code",
            json!({"code": "open('bob-secret.txt','w').write('bob-secret-value')\nimport os; print(os.getcwd())"}),
        )
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let bob_dir = text(&r).trim().to_string();
    let status_r = server
        .call_as(ALICE_KEY, "get_kernel_status", json!({}))
        .await;
    let landlock_off = status_r["structuredContent"]["security"]["not_applied"]
        .to_string()
        .contains("landlock");
    let attack = format!(
        "import os\nout = []\nfor what, f in [('read', lambda: open({p:?}).read()), ('write', lambda: open({w:?}, 'w').write('x')), ('list', lambda: os.listdir({d:?}))]:\n    try:\n        f(); out.append(what + ' ok')\n    except OSError as e:\n        out.append(what + ' refused ' + type(e).__name__)\nprint(out)",
        p = format!("{bob_dir}/bob-secret.txt"),
        w = format!("{bob_dir}/planted.py"),
        d = bob_dir,
    );
    let r = server
        .call_as(ALICE_KEY, "execute_code", json!({"code": attack}))
        .await;
    let out = text(&r);
    if landlock_off {
        println!(
            "attack: open another principal's directory: not applicable (Landlock not applied here)"
        );
        return;
    }
    assert!(
        out.contains("read refused")
            && out.contains("write refused")
            && out.contains("list refused"),
        "alice's kernel reached bob's directory: {out}"
    );
    assert!(!out.contains("bob-secret-value"), "{out}");
    assert!(!std::path::Path::new(&bob_dir).join("planted.py").exists());
    println!("attack: open another principal's directory: blocked (Landlock)");
    // Both principals still work.
    let r = server
        .call_as(
            BOB_KEY,
            "execute_code",
            json!({"code": "print(open('bob-secret.txt').read())"}),
        )
        .await;
    assert_eq!(text(&r).trim(), "bob-secret-value", "{r}");
}

/// A python stand-in in a 0700 directory of root's: no other uid can run it.
fn python_only_root_can_run() -> (tempfile::TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let py = dir.path().join("python");
    std::fs::write(&py, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = py.display().to_string();
    (dir, path)
}

#[test]
fn uid_per_principal_refuses_an_interpreter_its_uids_cannot_run() {
    let (dir, py) = python_only_root_can_run();
    let out = Command::new(env!("CARGO_BIN_EXE_jupyter-mcp-server"))
        .args(["--port", "0", "--kernel-uid-per-principal", "--python", &py])
        .arg("--working-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    if nix::unistd::geteuid().is_root() {
        assert!(
            err.contains("--kernel-uid-per-principal: uid 200000") && err.contains("cannot run"),
            "{err}"
        );
    } else {
        assert!(err.contains("needs the server to run as root"), "{err}");
    }
}

#[test]
fn uid_per_principal_refuses_a_bad_range() {
    for range in ["0-10", "10-5", "abc", "5"] {
        let (ok, _, err) = run_binary(
            &["--kernel-uid-per-principal", "--kernel-uid-range", range],
            &[],
            "",
        );
        assert!(!ok, "{range}: started");
        assert!(err.contains("--kernel-uid-range"), "{range}: {err}");
    }
}

/// As root, kernels drop to uid 65534; the operator's working directory (the `local`
/// principal's) keeps its owner and mode, and the server says kernels cannot use it. Only the
/// directories the server creates (`.packages`) are the kernel uid's.
#[tokio::test]
async fn the_operators_working_dir_is_never_handed_to_the_kernel_uid() {
    use std::os::unix::fs::MetadataExt;
    let Some(wrapper) = readable_python_wrapper(65534) else {
        println!("not applicable: not root, or no interpreter uid 65534 can run here");
        return;
    };
    if in_lambda_like() {
        return;
    }
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let server = Server::start_wrapped(&wrapper, &[], &[]);
    let before = std::fs::metadata(server.workdir.path()).unwrap();
    let r = server.exec("import os; print(os.getuid())").await;
    assert_eq!(text(&r).trim(), "65534", "{r}");
    let after = std::fs::metadata(server.workdir.path()).unwrap();
    assert_eq!((after.uid(), after.mode()), (before.uid(), before.mode()));
    assert_eq!(after.uid(), 0);
    let packages = std::fs::metadata(server.workdir.path().join(".packages")).unwrap();
    assert_eq!(packages.uid(), 65534);
    assert!(
        server
            .log_text()
            .contains("cannot read or write the working directory"),
        "{}",
        server.log_text()
    );
}
