//! Conversion into output items: from the kernel's messages as they arrive ([`convert`]) and
//! from the nbformat dicts a notebook stores ([`convert_nbformat`]). Text has its ANSI codes
//! stripped, a MIME bundle gives the form a model reads best (an image, a real `text/plain`,
//! Markdown or LaTeX, HTML drawn as text), and a large SVG becomes a file to save and link.

use std::sync::Arc;

use super::model::{OutputItem, SVG_MIME, decoded_len};
use crate::kernel::KernelOutput;

/// Longest `ename`/`evalue` kept (the traceback, which repeats them, is capped like any text).
const MAX_ERROR_FIELD_CHARS: usize = 500;

/// Converts one kernel output (ANSI stripped, best MIME type chosen); `clear_output` has no
/// item of its own (the [`Collector`] applies it).
pub fn convert(output: KernelOutput) -> Option<OutputItem> {
    Some(match output {
        KernelOutput::Stream { stderr, text } => OutputItem::Stream {
            name: if stderr { "stderr" } else { "stdout" }.into(),
            text: strip_ansi(text),
        },
        KernelOutput::ExecuteResult { data, .. } => {
            from_bundle(&data, |text| OutputItem::ExecuteResult { text })
        }
        KernelOutput::DisplayData {
            data, display_id, ..
        } => from_bundle(&data, |text| OutputItem::DisplayData {
            text,
            display_id: None,
        })
        .with_display_id(display_id),
        KernelOutput::UpdateDisplay {
            data, display_id, ..
        } => from_bundle(&data, |text| OutputItem::DisplayData {
            text,
            display_id: None,
        })
        .with_display_id(Some(display_id)),
        KernelOutput::ClearOutput { .. } => return None,
        KernelOutput::Error {
            ename,
            evalue,
            traceback,
        } => OutputItem::Error {
            ename: cap_chars(strip_ansi(ename), MAX_ERROR_FIELD_CHARS),
            // The traceback repeats the value; this copy only needs to identify the error.
            evalue: cap_chars(strip_ansi(evalue), MAX_ERROR_FIELD_CHARS),
            traceback: strip_ansi(traceback.join("\n")),
        },
    })
}

/// Converts an nbformat output dict (as stored in a notebook) the same way.
pub fn convert_nbformat(output: &serde_json::Value) -> Option<OutputItem> {
    let text_of = |v: &serde_json::Value| joined_text(v).unwrap_or_default();
    let data = || {
        output
            .get("data")
            .and_then(|d| d.as_object())
            .cloned()
            .unwrap_or_default()
    };
    let kernel_output = match output.get("output_type")?.as_str()? {
        "stream" => KernelOutput::Stream {
            stderr: output.get("name").and_then(|n| n.as_str()) == Some("stderr"),
            text: text_of(output.get("text")?),
        },
        "execute_result" => KernelOutput::ExecuteResult {
            data: data(),
            metadata: Default::default(),
        },
        "display_data" => KernelOutput::DisplayData {
            metadata: Default::default(),
            data: data(),
            display_id: None,
        },
        "error" => KernelOutput::Error {
            ename: output.get("ename")?.as_str()?.to_string(),
            evalue: output.get("evalue")?.as_str()?.to_string(),
            traceback: output
                .get("traceback")
                .and_then(|t| t.as_array())
                .map(|t| {
                    t.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        },
        _ => return None,
    };
    convert(kernel_output)
}

fn from_bundle(
    data: &serde_json::Map<String, serde_json::Value>,
    text_item: impl Fn(String) -> OutputItem,
) -> OutputItem {
    for mime in ["image/png", "image/jpeg"] {
        if let Some(b64) = data.get(mime).and_then(|v| v.as_str()) {
            let data: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
            return OutputItem::Image {
                mime_type: mime.into(),
                bytes: data.len(),
                sent_bytes: decoded_len(&data),
                width: None,
                height: None,
                original: None,
                data,
                display_id: None,
                original_data: None,
            };
        }
    }
    let text = |v: &serde_json::Value| joined_text(v).unwrap_or_else(|| v.to_string());
    if let Some(svg) = data.get(SVG_MIME).map(text) {
        if svg.len() <= SVG_TEXT_MAX_BYTES {
            return text_item(svg);
        }
        return OutputItem::Svg {
            bytes: svg.len(),
            uri: None,
            path: None,
            data: Some(Arc::new(svg.into_bytes())),
            display_id: None,
        };
    }
    let plain = data.get("text/plain").map(text);
    // A real text/plain (a DataFrame's table, a repr) is what an LLM reads best; Markdown and
    // LaTeX are text already. HTML goes through html2text, which keeps tables as tables, when
    // the text/plain is only the default `<... object>` repr (pandas Styler, IPython.display.HTML).
    if let Some(p) = plain.as_ref().filter(|p| !is_default_repr(p)) {
        return text_item(strip_ansi(p.clone()));
    }
    for mime in ["text/markdown", "text/latex"] {
        if let Some(v) = data.get(mime) {
            return text_item(strip_ansi(text(v)));
        }
    }
    if let Some(html) = data.get("text/html").map(text) {
        return text_item(html_to_text(&html));
    }
    if let Some(p) = plain {
        return text_item(strip_ansi(p));
    }
    if let Some(v) = data.get("application/json") {
        return text_item(text(v));
    }
    let mimes: Vec<&str> = data.keys().map(String::as_str).collect();
    text_item(format!(
        "[output of type {} has no text form to show]",
        mimes.join(", ")
    ))
}

/// Largest SVG sent as its text (a small diagram or icon reads fine as markup). A larger one,
/// such as a matplotlib plot in SVG (tens of KB of paths), is saved and linked rather than
/// rasterized: `resvg` would draw it, but brings a font and text-shaping stack (usvg, fontdb,
/// rustybuzz, tiny-skia) into every build and into the Lambda function, for an output that
/// appears only when asked for; the link loses nothing, and PNG output remains the default.
const SVG_TEXT_MAX_BYTES: usize = 8 * 1024;

/// Width HTML is laid out in, in columns: wide enough for a table of a dozen short columns.
const HTML_TEXT_WIDTH: usize = 120;

/// An object's default repr (`<pandas.io.formats.style.Styler object at 0x...>`), which says
/// nothing a model can use.
fn is_default_repr(plain: &str) -> bool {
    let p = plain.trim();
    p.starts_with('<')
        && p.ends_with('>')
        && !p.contains('\n')
        && (p.contains(" object") || p.contains(" at 0x"))
}

/// HTML as readable text: tables drawn with box characters, links as footnotes.
fn html_to_text(html: &str) -> String {
    match html2text::from_read(html.as_bytes(), HTML_TEXT_WIDTH) {
        Ok(text) => text,
        Err(e) => format!("[HTML output that could not be rendered as text: {e}]"),
    }
}

/// `s` cut to its first `max` characters, with `...` when it was longer.
fn cap_chars(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s,
    }
}

/// Removes ANSI escape sequences; text without any is returned as is, without a copy.
pub fn strip_ansi(s: String) -> String {
    if !s.contains('\x1b') {
        return s;
    }
    String::from_utf8_lossy(&strip_ansi_escapes::strip(&s)).into_owned()
}

/// nbformat and MIME bundles store text as a string or a list of lines.
fn joined_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(parts) => Some(parts.iter().filter_map(|p| p.as_str()).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_codes_are_stripped_from_tracebacks() {
        let item = convert(KernelOutput::Error {
            ename: "ZeroDivisionError".into(),
            evalue: "division by zero".into(),
            traceback: vec!["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero".into()],
        })
        .unwrap();
        let OutputItem::Error { traceback, .. } = item else {
            panic!()
        };
        assert_eq!(traceback, "ZeroDivisionError: division by zero");
    }

    #[test]
    fn html_only_falls_back_to_text_plain() {
        let mut data = serde_json::Map::new();
        data.insert("text/html".into(), "<table></table>".into());
        data.insert("text/plain".into(), "   a\n0  1".into());
        let item = convert(KernelOutput::ExecuteResult {
            data,
            metadata: Default::default(),
        })
        .unwrap();
        assert!(matches!(item, OutputItem::ExecuteResult { text } if text == "   a\n0  1"));
    }

    #[test]
    fn a_small_svg_is_text_and_a_large_one_a_file_to_link() {
        let svg = |body: &str| {
            let mut data = serde_json::Map::new();
            data.insert(SVG_MIME.into(), format!("<svg>{body}</svg>").into());
            data.insert(
                "text/plain".into(),
                "<Figure size 640x480 with 1 Axes>".into(),
            );
            convert(KernelOutput::DisplayData {
                metadata: Default::default(),
                data,
                display_id: None,
            })
            .unwrap()
        };
        let small = svg("<rect/>");
        assert_eq!(small.shown_text().unwrap(), "<svg><rect/></svg>");
        let mut large = svg(&"<path d='M0 0'/>".repeat(1000));
        assert!(matches!(large, OutputItem::Svg { bytes, .. } if bytes > SVG_TEXT_MAX_BYTES));
        let (data, ext) = large.take_unsaved().unwrap();
        assert!(data.starts_with(b"<svg>") && ext == "svg");
        large.set_saved("images/p.svg".into());
        assert!(large.shown_text().unwrap().contains("images/p.svg"));
        assert!(large.saved_file().is_some());
    }

    #[test]
    fn png_becomes_an_image() {
        let mut data = serde_json::Map::new();
        data.insert("image/png".into(), "iVBORw0K\nGgo=".into());
        data.insert("text/plain".into(), "<Figure>".into());
        let item = convert(KernelOutput::DisplayData {
            metadata: Default::default(),
            data,
            display_id: None,
        })
        .unwrap();
        assert!(
            matches!(item, OutputItem::Image { mime_type, data, .. } if mime_type == "image/png" && data == "iVBORw0KGgo=")
        );
    }

    #[test]
    fn html_only_output_becomes_a_text_table() {
        let html = "<table><thead><tr><th>name</th><th>score</th></tr></thead><tbody><tr><td>ada</td><td>99</td></tr></tbody></table>";
        let mut data = serde_json::Map::new();
        data.insert("text/html".into(), html.into());
        data.insert(
            "text/plain".into(),
            "<pandas.io.formats.style.Styler object at 0x7f>".into(),
        );
        let item = convert(KernelOutput::ExecuteResult {
            data,
            metadata: Default::default(),
        })
        .unwrap();
        let text = item.shown_text().unwrap();
        assert!(!text.contains("Styler object"), "{text}");
        assert!(!text.contains("<td>"), "{text}");
        for cell in ["name", "score", "ada", "99"] {
            assert!(text.contains(cell), "{text}");
        }
        // Header and row on separate lines, in column order.
        let header = text.lines().position(|l| l.contains("name")).unwrap();
        let row = text.lines().position(|l| l.contains("ada")).unwrap();
        assert!(header < row, "{text}");
        assert!(
            text.lines().nth(row).unwrap().find("99") > text.lines().nth(row).unwrap().find("ada")
        );
    }

    #[test]
    fn markdown_and_latex_pass_through_and_a_real_plain_text_wins() {
        for (mime, value) in [("text/markdown", "# Title\n*x*"), ("text/latex", "$x^2$")] {
            let mut data = serde_json::Map::new();
            data.insert(mime.into(), value.into());
            data.insert(
                "text/plain".into(),
                "<IPython.core.display.Markdown object>".into(),
            );
            let item = convert(KernelOutput::DisplayData {
                metadata: Default::default(),
                data,
                display_id: None,
            })
            .unwrap();
            assert_eq!(item.shown_text().unwrap(), value);
        }
        let mut data = serde_json::Map::new();
        data.insert(
            "text/html".into(),
            "<table><tr><td>1</td></tr></table>".into(),
        );
        data.insert("text/plain".into(), "   a\n0  1".into());
        let item = convert(KernelOutput::ExecuteResult {
            data,
            metadata: Default::default(),
        })
        .unwrap();
        assert_eq!(item.shown_text().unwrap(), "   a\n0  1");
    }
}
