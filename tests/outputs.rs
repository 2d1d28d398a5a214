//! Outputs people produce every day, through a real kernel: progress bars that redraw
//! themselves, `clear_output`, `update_display_data`, HTML-only results, Markdown and LaTeX, and
//! `input()`, which must fail at once with a clear message.

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn a_redrawn_progress_bar_leaves_its_last_state() {
    let server = Server::start();
    let code = "import sys, time\nfor i in range(11):\n    sys.stderr.write(f'\\r{i*10:3d}%|' + '#' * i)\n    sys.stderr.flush()\n    time.sleep(0.01)\nsys.stderr.write('\\n')\nprint('done')";
    let r = server.exec(code).await;
    assert_eq!(status(&r), "ok", "{r}");
    let t = text(&r);
    assert!(t.contains("100%|##########"), "{t}");
    assert!(!t.contains(" 50%"), "earlier states piled up: {t:?}");
}

#[tokio::test]
async fn clear_output_wait_keeps_only_the_last_step() {
    let server = Server::start();
    let code = "from IPython.display import clear_output\nfor i in range(5):\n    clear_output(wait=True)\n    print('step', i)";
    let r = server.exec(code).await;
    assert_eq!(status(&r), "ok", "{r}");
    assert_eq!(text(&r), "step 4\n", "{r}");
    let r = server
        .exec("from IPython.display import clear_output\nprint('gone')\nclear_output()\nprint('kept')")
        .await;
    assert_eq!(text(&r), "kept\n", "{r}");
}

#[tokio::test]
async fn update_display_replaces_the_display_it_names() {
    let server = Server::start();
    let code = "from IPython.display import display\nh = display('0 of 3', display_id=True)\nprint('working')\nfor i in range(1, 4):\n    h.update(f'{i} of 3')";
    let r = server.exec(code).await;
    assert_eq!(status(&r), "ok", "{r}");
    let t = text(&r);
    assert!(t.contains("'3 of 3'") && t.contains("working"), "{t}");
    assert!(!t.contains("0 of 3") && !t.contains("1 of 3"), "{t}");
    assert!(
        t.find("3 of 3") < t.find("working"),
        "the display keeps its place: {t}"
    );
}

#[tokio::test]
async fn html_only_results_become_readable_text() {
    let server = Server::start();
    let code = "from IPython.display import HTML\nHTML('<table><tr><th>city</th><th>people</th></tr><tr><td>Lyon</td><td>522250</td></tr></table>')";
    let r = server.exec(code).await;
    assert_eq!(status(&r), "ok", "{r}");
    let t = text(&r);
    assert!(!t.contains("IPython.core.display.HTML object"), "{t}");
    assert!(!t.contains("<td>"), "{t}");
    for cell in ["city", "people", "Lyon", "522250"] {
        assert!(t.contains(cell), "{t}");
    }
}

#[tokio::test]
async fn markdown_and_latex_pass_through() {
    let server = Server::start();
    let r = server
        .exec("from IPython.display import Markdown, Latex, display\ndisplay(Markdown('# Results\\n**bold**'))\ndisplay(Latex(r'$\\alpha^2$'))")
        .await;
    assert_eq!(status(&r), "ok", "{r}");
    let t = text(&r);
    assert!(t.contains("# Results\n**bold**"), "{t}");
    assert!(t.contains("$\\alpha^2$"), "{t}");
    assert!(!t.contains("object>"), "{t}");
}

#[tokio::test]
async fn input_fails_at_once_with_a_clear_message() {
    let server = Server::start();
    let r = server
        .call(
            "execute_code",
            json!({"code": "name = input('name? ')", "timeout": 30}),
        )
        .await;
    assert_eq!(status(&r), "error", "{r}");
    let t = text(&r);
    assert!(t.contains("input() and getpass() are not supported"), "{t}");
    assert!(t.contains("hint:"), "{t}");
}

/// Issue 12: an image over the call's image budget is not sent, but it is not lost either: it
/// is saved in full in the caller's directory, named in a note and linked, and the result's
/// `structuredContent` says where. Eight noise images (which compress badly) against a 4 KiB
/// output cap, so a 16 KiB image budget: some are sent (fitted), the rest are left out.
#[tokio::test]
async fn images_over_the_image_budget_are_saved_and_linked() {
    let server = Server::start_with(&["--max-output-bytes", "4096"], &[]);
    let code = "import numpy as np\nfrom PIL import Image as P\nfrom IPython.display import Image, display\n\
                rng = np.random.default_rng(7)\n\
                for i in range(8):\n    P.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(f'n{i}.png')\n    display(Image(filename=f'n{i}.png'))";
    let r = server.exec(code).await;
    assert_eq!(status(&r), "ok", "{r}");
    let outputs = r["structuredContent"]["outputs"].as_array().unwrap();
    let sent = outputs.iter().filter(|o| o["type"] == "image").count();
    let left: Vec<&Value> = outputs
        .iter()
        .filter(|o| o["type"] == "image_left_out")
        .collect();
    assert_eq!(sent + left.len(), 8, "every image sent or named: {r}");
    assert!(
        sent >= 1 && !left.is_empty(),
        "{sent} sent, {} left out",
        left.len()
    );
    let content = r["content"].as_array().unwrap();
    for item in &left {
        // Saved whole: the file is the image the kernel showed.
        let path = item["path"].as_str().expect("saved");
        let saved = std::fs::read(server.workdir.path().join(path)).unwrap();
        assert_eq!(
            saved.len() as u64,
            item["bytes"].as_u64().unwrap(),
            "{item}"
        );
        let shown: Vec<Vec<u8>> = (0..8)
            .map(|i| std::fs::read(server.workdir.path().join(format!("n{i}.png"))).unwrap())
            .collect();
        assert!(shown.contains(&saved), "{path} is none of the images shown");
        assert_eq!(item["mime_type"], "image/png");
        assert_eq!(item["budget"], 4 * 4096);
        // Named in the text and linked.
        assert!(
            content.iter().any(|c| c["type"] == "text"
                && c["text"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("saved full-size as {path}"))),
            "{r}"
        );
        assert!(
            content
                .iter()
                .any(|c| c["type"] == "resource_link" && c["uri"] == item["uri"]),
            "{r}"
        );
    }
    // The next call works and the link reads back.
    let read = server
        .rpc("resources/read", json!({"uri": left[0]["uri"]}))
        .await;
    assert_eq!(
        read["result"]["contents"][0]["mimeType"], "image/png",
        "{read}"
    );
}
