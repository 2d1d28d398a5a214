//! Notebook tools: nbformat-valid files, paging, outputs, overwrite and path confinement.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn create_read_and_list_round_trip_with_valid_nbformat() {
    let server = Server::start();
    let cells = json!([
        {"cell_type": "markdown", "source": "# Title"},
        {"cell_type": "code", "source": "x = 1\nprint(x)"},
        {"cell_type": "raw", "source": "raw text"}
    ]);
    let r = server
        .call(
            "create_notebook",
            json!({"path": "sub/dir/a.ipynb", "cells": cells}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    assert_eq!(r["structuredContent"]["cell_count"], 3);
    let file = server.workdir.path().join("sub/dir/a.ipynb");
    assert_nbformat_valid(&file);
    let nb: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(nb["nbformat"], 4);
    assert_eq!(nb["nbformat_minor"], 5);
    assert_eq!(nb["metadata"]["kernelspec"]["name"], "python3");

    let r = server
        .call("read_notebook", json!({"path": "sub/dir/a.ipynb"}))
        .await;
    let s = &r["structuredContent"];
    assert_eq!(s["total_cells"], 3);
    assert_eq!(s["cells"][1]["source"], "x = 1\nprint(x)");
    assert_eq!(s["cells"][1]["cell_type"], "code");
    assert_eq!(s["cells"][2]["index"], 2);
    assert!(s["cells"][0]["id"].as_str().unwrap().len() >= 8);

    let r = server
        .call(
            "read_notebook",
            json!({"path": "sub/dir/a.ipynb", "start": 1, "limit": 1}),
        )
        .await;
    let cells = r["structuredContent"]["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0]["index"], 1);

    server
        .call("create_notebook", json!({"path": "b.ipynb"}))
        .await;
    let r = server.call("list_notebooks", json!({})).await;
    let paths: Vec<&str> = r["structuredContent"]["notebooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["b.ipynb", "sub/dir/a.ipynb"]);
}

#[tokio::test]
async fn read_notebook_returns_saved_outputs_and_images() {
    let server = Server::start();
    // A notebook as Jupyter saves it, with a stream, a result and a PNG.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let nb = json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{
            "cell_type": "code", "id": "c1", "metadata": {}, "execution_count": 1,
            "source": ["print('hi')\n", "2"],
            "outputs": [
                {"output_type": "stream", "name": "stdout", "text": ["hi\n"]},
                {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                 "data": {"text/plain": "2", "text/html": "<b>2</b>"}},
                {"output_type": "display_data", "metadata": {}, "data": {"image/png": png, "text/plain": "<Figure>"}}
            ]
        }]
    });
    std::fs::write(server.workdir.path().join("saved.ipynb"), nb.to_string()).unwrap();
    let r = server
        .call("read_notebook", json!({"path": "saved.ipynb"}))
        .await;
    assert!(!is_error(&r), "{r}");
    let cell = &r["structuredContent"]["cells"][0];
    assert_eq!(cell["source"], "print('hi')\n2");
    assert_eq!(cell["outputs"][0]["text"], "hi\n");
    assert_eq!(cell["outputs"][1]["text"], "2");
    assert_eq!(cell["outputs"][2]["type"], "image");
    let image = image_block(&r).unwrap();
    assert_eq!(image["data"], png);
    let r = server
        .call(
            "read_notebook",
            json!({"path": "saved.ipynb", "include_outputs": false}),
        )
        .await;
    assert_eq!(r["structuredContent"]["cells"][0]["outputs"], json!([]));
}

#[tokio::test]
async fn create_refuses_to_overwrite_unless_asked() {
    let server = Server::start();
    server
        .call(
            "create_notebook",
            json!({"path": "n.ipynb", "cells": [{"cell_type": "code", "source": "1"}]}),
        )
        .await;
    let r = server
        .call("create_notebook", json!({"path": "n.ipynb"}))
        .await;
    assert!(is_error(&r));
    assert_eq!(status(&r), "already_exists");
    assert!(text(&r).contains("overwrite"), "{r}");
    let kept = server
        .call("read_notebook", json!({"path": "n.ipynb"}))
        .await;
    assert_eq!(
        kept["structuredContent"]["total_cells"], 1,
        "the first file is intact"
    );
    let r = server
        .call(
            "create_notebook",
            json!({"path": "n.ipynb", "overwrite": true}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
}

#[tokio::test]
async fn paths_that_leave_the_working_directory_are_refused() {
    let server = Server::start();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.ipynb"), "{}").unwrap();
    std::os::unix::fs::symlink(outside.path(), server.workdir.path().join("link")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.ipynb"),
        server.workdir.path().join("file.ipynb"),
    )
    .unwrap();
    let bad = [
        "../x.ipynb",
        "a/../../x.ipynb",
        "/etc/passwd.ipynb",
        "link/secret.ipynb",
        "file.ipynb",
        "nul\0.ipynb",
        "",
        "notes.txt",
    ];
    for path in bad {
        for (tool, args) in [
            ("create_notebook", json!({"path": path, "overwrite": true})),
            ("read_notebook", json!({"path": path})),
        ] {
            let r = server.call(tool, args).await;
            assert!(is_error(&r), "{tool} {path:?}: {r}");
            assert_eq!(status(&r), "invalid_argument", "{tool} {path:?}: {r}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.ipynb")).unwrap(),
        "{}"
    );
    assert!(!outside.path().join("x.ipynb").exists());
    // The server keeps serving.
    assert!(!is_error(&server.call("list_notebooks", json!({})).await));
}

#[tokio::test]
async fn reading_a_broken_or_missing_notebook_is_a_clear_error() {
    let server = Server::start();
    std::fs::write(server.workdir.path().join("broken.ipynb"), "{not json").unwrap();
    let r = server
        .call("read_notebook", json!({"path": "broken.ipynb"}))
        .await;
    assert!(is_error(&r), "{r}");
    let r = server
        .call("read_notebook", json!({"path": "missing.ipynb"}))
        .await;
    assert_eq!(status(&r), "not_found", "{r}");
}

#[tokio::test]
async fn a_huge_notebook_is_read_in_pages_under_the_cap() {
    let server = Server::start_with(&["--max-output-bytes", "8192"], &[]);
    let cells: Vec<serde_json::Value> = (0..20)
        .map(|i| json!({"cell_type": "code", "source": format!("# cell {i}\n{}", "x = 1\n".repeat(300))}))
        .collect();
    let r = server
        .call(
            "create_notebook",
            json!({"path": "big.ipynb", "cells": cells}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    let r = server
        .call("read_notebook", json!({"path": "big.ipynb"}))
        .await;
    assert!(
        r.to_string().len() < 40_000,
        "{} bytes",
        r.to_string().len()
    );
    let s = &r["structuredContent"];
    let next = s["next_start"].as_u64().expect("a next_start");
    assert_eq!(s["cells"].as_array().unwrap().len() as u64, next);
    assert!(text(&r).contains(&format!("start={next}")));
    let r = server
        .call("read_notebook", json!({"path": "big.ipynb", "start": next}))
        .await;
    assert_eq!(r["structuredContent"]["cells"][0]["index"], next);
}

/// A 4000x2000 PNG line plot: white with a thin blue line.
fn big_png() -> Vec<u8> {
    let mut img = image::RgbImage::from_pixel(4000, 2000, image::Rgb([255, 255, 255]));
    for x in 0..4000 {
        img.put_pixel(x, 1000 + (x % 7), image::Rgb([0, 0, 255]));
    }
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// Issue 10: read_notebook sent saved images as they were stored, at full size, while
/// execute_code fitted its own.
#[tokio::test]
async fn read_notebook_fits_saved_images_and_links_the_original() {
    use base64::Engine;
    let server = Server::start();
    let raw = big_png();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let nb = json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{
            "cell_type": "code", "id": "c1", "metadata": {}, "execution_count": 1,
            "source": "plot()",
            "outputs": [{"output_type": "display_data", "metadata": {},
                         "data": {"image/png": b64, "text/plain": "<Figure>"}}]
        }]
    });
    std::fs::write(server.workdir.path().join("big.ipynb"), nb.to_string()).unwrap();
    let r = server
        .call("read_notebook", json!({"path": "big.ipynb"}))
        .await;
    assert!(!is_error(&r), "{r}");
    let img = &r["structuredContent"]["cells"][0]["outputs"][0];
    assert_eq!(img["type"], "image", "{img}");
    assert_eq!(
        (img["width"].as_u64(), img["height"].as_u64()),
        (Some(1568), Some(784)),
        "{img}"
    );
    let sent = image_block(&r).unwrap()["data"].as_str().unwrap().len();
    assert_eq!(img["bytes"].as_u64(), Some(sent as u64));
    let original = &img["original"];
    assert_eq!(
        (original["width"].as_u64(), original["height"].as_u64()),
        (Some(4000), Some(2000))
    );
    assert_eq!(original["bytes"].as_u64(), Some(raw.len() as u64));
    let path = original["path"].as_str().unwrap();
    assert_eq!(
        std::fs::read(server.workdir.path().join(path)).unwrap(),
        raw
    );
    let link = r["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "resource_link")
        .unwrap_or_else(|| panic!("no link to the original: {r}"));
    assert_eq!(link["uri"], original["uri"]);

    // A second read links the same file rather than saving another copy; a per-call limit
    // asks for less.
    let r = server
        .call(
            "read_notebook",
            json!({"path": "big.ipynb", "max_image_px": 400}),
        )
        .await;
    let img = &r["structuredContent"]["cells"][0]["outputs"][0];
    assert_eq!(img["width"], 400, "{img}");
    assert_eq!(img["original"]["path"], path);
    let saved = std::fs::read_dir(server.workdir.path().join("images"))
        .unwrap()
        .count();
    assert_eq!(saved, 1);
}
