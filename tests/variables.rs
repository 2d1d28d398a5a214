//! get_variables and inspect_variable, including names that try to be code.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn get_variables_lists_user_names_only() {
    let server = Server::start();
    let r = server.call("get_variables", json!({})).await;
    assert_eq!(
        r["structuredContent"]["variables"],
        json!([]),
        "no kernel started: {r}"
    );
    server
        .exec("import os, numpy as np, pandas as pd\nn = 3\ns = 'hello'\n_private = 1\narr = np.zeros((2, 3))\ndf = pd.DataFrame({'a': [1, 2]})\ndef f(): pass\n1 + 1")
        .await;
    let r = server.call("get_variables", json!({})).await;
    let vars = r["structuredContent"]["variables"].as_array().unwrap();
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["arr", "df", "f", "n", "s"], "{r}");
    let arr = &vars[0];
    assert_eq!(arr["type"], "numpy.ndarray");
    assert_eq!(arr["shape"], json!([2, 3]));
    assert_eq!(arr["dtype"], "float64");
    let s = vars.iter().find(|v| v["name"] == "s").unwrap();
    assert_eq!(s["repr"], "'hello'");
    assert_eq!(s["len"], 5);
    // Introspection leaves no trace in the user's namespace or history.
    let r = server
        .exec("print(sorted(k for k in globals() if 'jupyter' in k.lower()))")
        .await;
    assert_eq!(text(&r), "[]\n");
}

#[tokio::test]
async fn a_huge_value_gets_a_short_repr() {
    let server = Server::start();
    server.exec("big = list(range(1_000_000))").await;
    let r = server.call("get_variables", json!({})).await;
    let big = &r["structuredContent"]["variables"][0];
    assert!(big["repr"].as_str().unwrap().len() < 200, "{big}");
    assert_eq!(big["len"], 1_000_000);
}

#[tokio::test]
async fn inspect_pandas_and_numpy() {
    let server = Server::start();
    server
        .exec("import numpy as np, pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3], 'b': [0.5, 1.5, 2.5]})\narr = np.arange(10)")
        .await;
    let r = server.call("inspect_variable", json!({"name": "df"})).await;
    let s = &r["structuredContent"];
    assert!(!is_error(&r), "{r}");
    assert_eq!(s["type"], "pandas.DataFrame");
    assert_eq!(s["shape"], json!([3, 2]));
    assert_eq!(s["columns"], json!(["a", "b"]));
    assert_eq!(s["dtypes"]["b"], "float64");
    assert!(s["head"].as_str().unwrap().contains("2.5"));
    assert!(s["doc"].as_str().is_some());
    let r = server
        .call("inspect_variable", json!({"name": "arr"}))
        .await;
    assert_eq!(r["structuredContent"]["dtype"], "int64");
    assert_eq!(r["structuredContent"]["shape"], json!([10]));
    let r = server
        .call("inspect_variable", json!({"name": "df.columns"}))
        .await;
    assert!(
        r["structuredContent"]["type"]
            .as_str()
            .unwrap()
            .contains("Index"),
        "{r}"
    );
}

#[tokio::test]
async fn inspect_refuses_code_in_the_name() {
    let server = Server::start();
    server.exec("x = 1").await;
    let marker = server.workdir.path().join("pwned");
    for name in [
        "x; import os".to_string(),
        format!("__import__('os').system('touch {}')", marker.display()),
        "x[0]".into(),
        "x.__class__()".into(),
        "".into(),
        "x\nimport os".into(),
    ] {
        let r = server.call("inspect_variable", json!({"name": name})).await;
        assert!(is_error(&r), "{name}: {r}");
        assert_eq!(status(&r), "invalid_argument", "{name}");
        assert!(text(&r).contains("identifier"), "{r}");
    }
    assert!(!marker.exists());
}

#[tokio::test]
async fn inspect_of_a_missing_name_is_a_clear_error() {
    let server = Server::start();
    server.exec("x = 1").await;
    let r = server
        .call("inspect_variable", json!({"name": "nothere"}))
        .await;
    assert!(is_error(&r));
    assert_eq!(status(&r), "not_found");
    assert!(
        text(&r).contains("nothere") && text(&r).contains("get_variables"),
        "{r}"
    );
    let r = server
        .call("inspect_variable", json!({"name": "x.nope"}))
        .await;
    assert_eq!(status(&r), "not_found");
    assert!(text(&r).contains("no attribute 'nope'"), "{r}");
}

#[tokio::test]
async fn inspecting_a_kernel_that_is_not_running_does_not_start_one() {
    let server = Server::start();
    let r = server
        .call("inspect_variable", json!({"name": "x", "kernel": "never"}))
        .await;
    assert!(is_error(&r));
    assert_eq!(status(&r), "not_found", "{r}");
    assert!(text(&r).contains("execute_code"), "{r}");
    let r = server
        .call("get_kernel_status", json!({"kernel": "never"}))
        .await;
    assert_eq!(r["structuredContent"]["state"], "not_started", "{r}");
}
