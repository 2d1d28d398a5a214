//! MCP content from what the engine produced: output items as text and image blocks, each
//! followed by a `resource_link` to the file it saved (a downscaled image's original, a large
//! SVG, an image left out over the budget), and the image and link blocks read_file sends.
//!
//! The one place that builds content blocks from outputs, so execute results, notebooks read
//! back and files read look alike; the engine (`crate::output`) knows nothing of rmcp. The
//! results of the run tools (execute_code, execute_cell, execute_notebook) are rendered here
//! too, whether the call or a later get_execution delivers them.

use base64::Engine;
use rmcp::model::{CallToolResult, ContentBlock, Resource};

use crate::kernel::ExecStatus;
use crate::mcp::error::{ToolError, structured};
use crate::output::{OutputItem, SavedFile, image_budget};
use crate::service::{ExecuteCodeOutput, ExecuteNotebookOutput};

/// The content block for one item: an image as image content, anything else as its text.
pub(crate) fn item_content(item: &OutputItem) -> ContentBlock {
    match item {
        OutputItem::Image {
            mime_type, data, ..
        } => ContentBlock::image(data.clone(), mime_type.clone()),
        other => ContentBlock::text(other.shown_text().unwrap_or_default()),
    }
}

/// A `resource_link` to the file this item saved, sent right after it so nothing is lost.
pub(crate) fn original_link(item: &OutputItem) -> Option<ContentBlock> {
    let SavedFile {
        uri,
        path,
        mime_type,
        bytes,
        description,
    } = item.saved_file()?;
    Some(ContentBlock::resource_link(
        resource(uri, path, mime_type, bytes as u64).with_description(description),
    ))
}

/// A `resource_link` to a file in the working directory, with its type and size.
pub(crate) fn file_link(uri: &str, path: &str, mime_type: &str, bytes: u64) -> ContentBlock {
    ContentBlock::resource_link(resource(uri, path, mime_type, bytes))
}

fn resource(uri: &str, path: &str, mime_type: &str, bytes: u64) -> Resource {
    Resource::new(uri, path)
        .with_mime_type(mime_type)
        .with_size(bytes)
}

/// An image over the image budget: not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    /// Size of the image in base64, in bytes.
    pub base64_bytes: usize,
    /// The budget it did not fit.
    pub budget: usize,
}

/// The image `bytes` as image content, when its base64 fits the image budget that a text cap
/// of `max_output_bytes` gives.
pub(crate) fn image_within_budget(
    bytes: &[u8],
    mime_type: &str,
    max_output_bytes: usize,
) -> Result<ContentBlock, OverBudget> {
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    let budget = image_budget(max_output_bytes);
    if data.len() > budget {
        return Err(OverBudget {
            base64_bytes: data.len(),
            budget,
        });
    }
    Ok(ContentBlock::image(data, mime_type))
}

/// Content in output order (a note last), and the same outputs as structured content.
pub(crate) fn execution_result(out: &ExecuteCodeOutput) -> Result<CallToolResult, ToolError> {
    let mut content: Vec<ContentBlock> = Vec::new();
    for item in &out.outputs {
        content.push(item_content(item));
        content.extend(original_link(item));
    }
    if let Some(n) = &out.note {
        content.push(ContentBlock::text(format!("[{n}]")));
    } else if content.is_empty() {
        content.push(ContentBlock::text("[ran without output]"));
    }
    let mut result = structured(content, out)?;
    result.is_error = Some(out.status != ExecStatus::Ok);
    Ok(result)
}

/// One line per cell that ran, then the failing cell's outputs.
pub(crate) fn notebook_run_result(
    out: &ExecuteNotebookOutput,
) -> Result<CallToolResult, ToolError> {
    let mut lines: Vec<String> = out
        .cells
        .iter()
        .map(|c| {
            let count = c
                .execution_count
                .map(|n| format!(" [{n}]"))
                .unwrap_or_default();
            let note = c
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            format!("cell {}: {:?}{count}{note}", c.index, c.status)
        })
        .collect();
    if !out.not_run.is_empty() {
        lines.push(format!("not run: cells {:?}", out.not_run));
    }
    lines.push(format!("saved in {} (revision {})", out.path, out.revision));
    let mut content = vec![ContentBlock::text(lines.join("\n"))];
    if let Some(i) = out.failed_cell {
        content.push(ContentBlock::text(format!("[outputs of cell {i}]")));
        for item in &out.failed_outputs {
            content.push(item_content(item));
            content.extend(original_link(item));
        }
    }
    let mut result = structured(content, out)?;
    result.is_error = Some(out.status != ExecStatus::Ok);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelOutput;
    use crate::output::convert;

    fn display(mime: &str, value: String) -> OutputItem {
        let mut data = serde_json::Map::new();
        data.insert(mime.into(), value.into());
        convert(KernelOutput::DisplayData {
            metadata: Default::default(),
            data,
            display_id: None,
        })
        .unwrap()
    }

    #[test]
    fn an_image_is_image_content_and_text_is_text() {
        let image = item_content(&display("image/png", "iVBORw0KGgo=".into()));
        let image = image.as_image().expect("image content");
        assert_eq!(
            (image.data.as_str(), image.mime_type.as_str()),
            ("iVBORw0KGgo=", "image/png")
        );
        let text = item_content(&display("text/plain", "hello".into()));
        assert_eq!(text.as_text().unwrap().text, "hello");
    }

    #[test]
    fn a_saved_svg_is_linked_with_its_type_size_and_description() {
        let mut svg = display(
            "image/svg+xml",
            format!("<svg>{}</svg>", "<path/>".repeat(2000)),
        );
        assert!(
            original_link(&svg).is_none(),
            "nothing to link before it is saved"
        );
        let (data, _) = svg.take_unsaved().unwrap();
        svg.set_saved("images/p.svg".into());
        let link = original_link(&svg).expect("a resource link");
        let link = link.as_resource_link().expect("a resource link");
        assert_eq!(link.uri, "workspace:///images/p.svg");
        assert_eq!(link.name, "images/p.svg");
        assert_eq!(link.mime_type.as_deref(), Some("image/svg+xml"));
        assert_eq!(link.size, Some(data.len() as u64));
        assert_eq!(
            link.description.as_deref(),
            Some("SVG image output, too large to send as text")
        );
    }

    #[test]
    fn an_image_over_the_budget_is_not_sent() {
        let bytes = vec![0u8; 3000];
        // 3,000 bytes are 4,000 in base64: within a budget of 4 * 1000, over 4 * 999.
        assert!(image_within_budget(&bytes, "image/png", 1000).is_ok());
        assert_eq!(
            image_within_budget(&bytes, "image/png", 999),
            Err(OverBudget {
                base64_bytes: 4000,
                budget: 3996
            })
        );
    }
}
