//! Authentication, principals kept apart, and the audit log, against the real binary.
//!
//! Keys are made here and configured only as SHA-256 digests; every refusal is a named test.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::*;

const ALICE_KEY: &str = "jmcp_alice_0123456789abcdef0123456789abcdef";
const BOB_KEY: &str = "jmcp_bob_fedcba9876543210fedcba9876543210";

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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

/// 401, a JSON-RPC error body, and a challenge pointing at the resource metadata.
async fn assert_unauthorized(server: &Server, headers: &[(&str, &str)]) {
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
            && challenge.contains("/.well-known/oauth-protected-resource\""),
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
}

#[tokio::test]
async fn a_missing_key_is_401() {
    let (server, _keys) = keyed_server(&[]);
    assert_unauthorized(&server, &[]).await;
}

#[tokio::test]
async fn a_wrong_key_is_401() {
    let (server, _keys) = keyed_server(&[]);
    assert_unauthorized(&server, &[("authorization", "Bearer jmcp_not_a_key")]).await;
}

#[tokio::test]
async fn the_digest_itself_is_not_a_key() {
    let (server, _keys) = keyed_server(&[]);
    let digest = format!("Bearer {}", sha256_hex(ALICE_KEY));
    assert_unauthorized(&server, &[("authorization", &digest)]).await;
}

#[tokio::test]
async fn a_key_in_another_scheme_is_401() {
    let (server, _keys) = keyed_server(&[]);
    let basic = format!("Basic {ALICE_KEY}");
    assert_unauthorized(&server, &[("authorization", &basic)]).await;
    let empty = "Bearer ";
    assert_unauthorized(&server, &[("authorization", empty)]).await;
}

#[tokio::test]
async fn a_key_with_a_suffix_is_401() {
    let (server, _keys) = keyed_server(&[]);
    let longer = format!("Bearer {ALICE_KEY}x");
    assert_unauthorized(&server, &[("authorization", &longer)]).await;
}

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

#[tokio::test]
async fn the_resource_metadata_is_served_without_credentials() {
    let (server, _keys) = keyed_server(&[]);
    let base = server.url.trim_end_matches("/mcp");
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["resource"], server.url, "{doc}");
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
    let doc: Value = reqwest::get(format!("{base}/.well-known/oauth-protected-resource"))
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
        format!("Bearer resource_metadata=\"{public}/.well-known/oauth-protected-resource\"")
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

#[test]
fn it_refuses_to_start_on_0_0_0_0_without_auth() {
    let (ok, _, err) = run_binary(&["--host", "0.0.0.0"], &[], "");
    assert!(!ok, "started without auth on 0.0.0.0: {err}");
    assert!(
        err.contains("refusing to listen on 0.0.0.0 without authentication"),
        "{err}"
    );
    let (ok, _, err) = run_binary(&["--host", "::"], &[], "");
    assert!(!ok, "started without auth on [::]: {err}");
}

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
fn a_malformed_inline_key_stops_start_up() {
    let (ok, _, err) = run_binary(&[], &[("JUPYTER_MCP_API_KEYS", "alice:abc")], "");
    assert!(!ok);
    assert!(err.contains("JUPYTER_MCP_API_KEYS entry 1"), "{err}");
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
    let out = Command::new(python())
        .arg(script)
        .args([issuer, audience])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
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

/// RS256 and ES256 tokens from the issuer are accepted and name their principal; every forged,
/// expired, misdirected or algorithm-confused token is refused with 401.
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
        r["structuredContent"]["security"]["principal"], "carol",
        "{r}"
    );
    let r = server
        .call_as(&token("es256"), "get_kernel_status", json!({}))
        .await;
    assert_eq!(
        r["structuredContent"]["security"]["principal"], "dave",
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
        ("unknown_kid", "signing key the issuer does not publish"),
        ("no_sub", "no string claim \"sub\""),
    ] {
        let t = token(bad);
        let (code, body) = server.rpc_as(&t, "tools/list", json!({})).await;
        assert_eq!(code, 401, "{bad} was accepted: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{bad}: {message}");
        assert!(!body.to_string().contains(&t), "{bad}: token echoed");
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
        r["structuredContent"]["security"]["principal"], "erin",
        "{r}"
    );
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
}

#[test]
fn oidc_needs_an_audience_and_keys() {
    let (ok, _, err) = run_binary(&["--oidc-issuer", ISSUER], &[], "");
    assert!(!ok && err.contains("--oidc-audience"), "{err}");
    let (ok, _, err) = run_binary(&["--oidc-issuer", ISSUER, "--oidc-audience", "a"], &[], "");
    assert!(
        !ok && err.contains("--oidc-jwks-url or --oidc-jwks-file"),
        "{err}"
    );
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

/// A moto server (a real Secrets Manager HTTP API) on a free loopback port, stopped on drop.
struct Moto {
    endpoint: String,
    _child: ChildGuard,
}

fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(python())
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = ChildGuard(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "moto did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: child,
    }
}

const FAKE_AWS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

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
    let out = Command::new(python())
        .args(["-c", &script, id, &value.to_string()])
        .envs(FAKE_AWS.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

#[test]
fn uid_per_principal_and_kernel_user_conflict() {
    let (ok, _, err) = run_binary(
        &["--kernel-uid-per-principal", "--kernel-user", "nobody"],
        &[],
        "",
    );
    assert!(!ok && err.contains("cannot be used with"), "{err}");
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
