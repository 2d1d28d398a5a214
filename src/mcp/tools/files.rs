//! File tools: list_files, read_file, write_file, in the caller's directory with the notebooks'
//! confinement. Text comes back as text (a window of lines), images as image content within the
//! image budget, other binary files as a resource link with size and MIME type.

use base64::Engine;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::files::{FileEntry, FileRead, mime_from_name, uri_for};
use crate::mcp::JupyterMcp;
use crate::mcp::args::Parameters;
use crate::mcp::error::{respond, structured};
use crate::mcp::render::{self, OverBudget};
use crate::output::fit::{FileFit, dimensions};
use crate::output::image_fit_limits;

/// Lines read_file returns when no limit is given.
const DEFAULT_LINE_LIMIT: usize = 2000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFilesArgs {
    /// Directory to list, relative to the working directory (default: the top).
    pub path: Option<String>,
    /// List subdirectories' contents too (default false).
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FileList {
    pub entries: Vec<FileEntry>,
    /// True if the listing stopped at its entry limit.
    pub truncated: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileArgs {
    /// File path, relative to the working directory.
    pub path: String,
    /// Text files: the first line to return, 0-based (default 0).
    #[serde(default)]
    pub offset: usize,
    /// Text files: how many lines to return (default 2000; fewer if over the output cap).
    pub limit: Option<usize>,
    /// Images: longest side, in pixels, of the image sent back (default and maximum: the
    /// server's --max-image-px). A larger image is downscaled; the file itself is linked.
    pub max_image_px: Option<u32>,
}

/// The pixel and byte size of an image (bytes: the encoded image, not base64).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ImageSize {
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
}

/// An image file as read_file sent it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ImageSent {
    /// What was sent (equal to `original` when the file already fit).
    pub sent: ImageSize,
    /// The file itself.
    pub original: ImageSize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadFileOutput {
    pub path: String,
    /// text, image or binary.
    pub kind: &'static str,
    pub mime_type: String,
    pub size_bytes: u64,
    /// The file as an MCP resource (resources/read returns it whole, within its cap).
    pub uri: String,
    /// Text: the first line returned.
    pub offset: Option<usize>,
    /// Text: how many lines were returned.
    pub lines: Option<usize>,
    /// Text: lines in the whole file.
    pub total_lines: Option<usize>,
    /// Text: the offset to read on from, when lines were left.
    pub next_offset: Option<usize>,
    /// Images: the size sent and the file's own size (null when no image was sent: the file
    /// did not decode, or even fitted it was over the image budget, so it is linked).
    pub image: Option<ImageSent>,
    pub note: Option<String>,
}

/// How file content is sent to write_file.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text, written as is.
    #[default]
    Text,
    /// Standard base64 of the file's bytes (for binary files).
    Base64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    /// File path, relative to the working directory. Folders are created.
    pub path: String,
    /// The file's content, as `encoding` says.
    pub content: String,
    /// `text` (default) or `base64`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Replace an existing file (default false: an existing file is an error).
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteFileOutput {
    pub path: String,
    pub size_bytes: u64,
    pub uri: String,
}

#[tool_router(router = file_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// List files and folders in the working directory (or one of its folders), with size and
    /// MIME type. Hidden entries are not shown.
    #[tool(
        output_schema = schema_for_output::<FileList>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_files(
        &self,
        Parameters(a): Parameters<ListFilesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let listed = self
            .with_files(&ctx, move |f| f.list(a.path.as_deref(), a.recursive))
            .await;
        respond(
            listed.and_then(|(entries, truncated)| {
                structured(vec![], &FileList { entries, truncated })
            }),
        )
    }

    /// Read a file: text as text (a window of lines: `offset`, `limit`), PNG/JPEG/GIF/WebP as
    /// an image, other binary files as a resource link with size and type.
    #[tool(
        output_schema = schema_for_output::<ReadFileOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_file(
        &self,
        Parameters(a): Parameters<ReadFileArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = a.path.clone();
        let cap = self.service.settings.max_output_bytes;
        let limits = image_fit_limits(cap, self.max_image_px(a.max_image_px));
        // An image is fitted like a plot; the file itself is the original, linked.
        let read = self
            .with_files(&ctx, move |f| {
                let (read, size, path) = f.read(&path)?;
                let fitted = match &read {
                    FileRead::Image { bytes, .. } => Some(FileFit::of(bytes, limits)),
                    _ => None,
                };
                Ok((read, size, path, fitted))
            })
            .await;
        respond(read.and_then(|(read, size, path, fitted)| {
            let (out, content) = file_content(read, fitted, size, path, a.offset, a.limit, cap);
            structured(content, &out)
        }))
    }

    /// Write a file in the working directory (text, or base64 for binary), atomically. Refuses
    /// to replace an existing file unless `overwrite` is true.
    #[tool(
        output_schema = schema_for_output::<WriteFileOutput>(),
        annotations(destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn write_file(
        &self,
        Parameters(a): Parameters<WriteFileArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let written = self
            .with_files(&ctx, move |f| {
                let bytes = match a.encoding {
                    Encoding::Text => a.content.into_bytes(),
                    Encoding::Base64 => decode_base64(&a.content)?,
                };
                let path = f.write(&a.path, &bytes, a.overwrite)?;
                Ok(WriteFileOutput {
                    uri: uri_for(&path),
                    path,
                    size_bytes: bytes.len() as u64,
                })
            })
            .await;
        respond(written.and_then(|out| structured(vec![], &out)))
    }
}

fn decode_base64(content: &str) -> Result<Vec<u8>, crate::files::Error> {
    let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| crate::files::Error::BadBase64 {
            reason: e.to_string(),
        })
}

/// The structured description and the content blocks of a file read.
fn file_content(
    read: FileRead,
    fitted: Option<FileFit>,
    size: u64,
    path: String,
    offset: usize,
    limit: Option<usize>,
    cap: usize,
) -> (ReadFileOutput, Vec<ContentBlock>) {
    let mut out = ReadFileOutput {
        mime_type: mime_from_name(&path).to_owned(),
        uri: uri_for(&path),
        path,
        kind: "binary",
        size_bytes: size,
        offset: None,
        lines: None,
        total_lines: None,
        next_offset: None,
        image: None,
        note: None,
    };
    let content = match read {
        FileRead::Text { text } => {
            let limit = limit.unwrap_or(DEFAULT_LINE_LIMIT);
            text_content(&mut out, &text, offset, limit, cap)
        }
        FileRead::Image { mime_type, bytes } => {
            let fitted = fitted
                .unwrap_or_else(|| FileFit::Undecodable("it was not read as an image".into()));
            image_content(&mut out, mime_type, bytes, fitted, cap)
        }
        FileRead::Binary { .. } => vec![
            ContentBlock::text(format!(
                "{} is a binary file ({}, {} bytes); it is linked, not shown",
                out.path, out.mime_type, out.size_bytes
            )),
            link(&out),
        ],
    };
    (out, content)
}

/// A text file: the window of lines asked for (within the cap), and where to read on.
fn text_content(
    out: &mut ReadFileOutput,
    text: &str,
    offset: usize,
    limit: usize,
    cap: usize,
) -> Vec<ContentBlock> {
    out.kind = "text";
    let (window, taken, total, cut) = text_window(text, offset, limit, cap);
    out.offset = Some(offset);
    out.lines = Some(taken);
    out.total_lines = Some(total);
    out.next_offset = Some(offset + taken).filter(|n| *n < total);
    // No lines (an empty file, or an offset past the end) still says so in text.
    let mut content = vec![ContentBlock::text(if taken == 0 {
        format!(
            "[{} has {total} lines; none from offset {offset}]",
            out.path
        )
    } else {
        window
    })];
    if cut {
        out.note = Some("a line longer than the output cap was cut".into());
    }
    if let Some(n) = out.next_offset {
        content.push(ContentBlock::text(format!(
            "[lines {offset}..{n} of {total}; call read_file again with offset={n} for more]"
        )));
    }
    content
}

/// An image file: sent fitted to the model within the image budget, with a caption (and a
/// link to the file when it was downscaled); linked instead when it does not decode or is
/// over the budget.
fn image_content(
    out: &mut ReadFileOutput,
    mime_type: &'static str,
    bytes: Vec<u8>,
    fitted: FileFit,
    cap: usize,
) -> Vec<ContentBlock> {
    out.kind = "image";
    out.mime_type = mime_type.to_owned();
    let (sent_mime, sent, image) = match image_sent(out, mime_type, bytes, fitted) {
        Ok(sent) => sent,
        Err(reason) => {
            let note = format!(
                "{} ({mime_type}, {} bytes) could not be decoded ({reason}), so it cannot be fitted to the model; it is linked, not shown",
                out.path, out.size_bytes
            );
            out.note = Some(note.clone());
            return vec![ContentBlock::text(note), link(out)];
        }
    };
    match render::image_within_budget(&sent, sent_mime, cap) {
        Ok(block) => {
            out.image = Some(image);
            let mut content = vec![caption(out), block];
            if out.note.is_some() {
                content.push(link(out));
            }
            content
        }
        Err(OverBudget {
            base64_bytes,
            budget,
        }) => {
            let note = format!(
                "the image is {base64_bytes} bytes in base64, over the image budget of {budget}; it is linked instead. hint: make a smaller copy in the kernel (PIL) and read that"
            );
            out.note = Some(note.clone());
            vec![ContentBlock::text(note), link(out)]
        }
    }
}

/// The image to send (its type and bytes) and both sizes, noting a downscale in `out`; the
/// reason when the file does not decode.
fn image_sent(
    out: &mut ReadFileOutput,
    mime_type: &'static str,
    bytes: Vec<u8>,
    fitted: FileFit,
) -> Result<(&'static str, Vec<u8>, ImageSent), String> {
    let size = |mime_type: &str, width, height, bytes| ImageSize {
        mime_type: mime_type.to_owned(),
        width,
        height,
        bytes,
    };
    match fitted {
        FileFit::Downscaled(f) => {
            out.note = Some(format!(
                "downscaled to {}x{} {} to fit the model; the full-size file is linked",
                f.width, f.height, f.mime_type
            ));
            let (w, h) = dimensions(&bytes).unwrap_or_default();
            let image = ImageSent {
                sent: size(f.mime_type, f.width, f.height, f.bytes.len()),
                original: size(mime_type, w, h, bytes.len()),
            };
            Ok((f.mime_type, f.bytes, image))
        }
        FileFit::AsIs { width, height } => {
            let image = ImageSent {
                sent: size(mime_type, width, height, bytes.len()),
                original: size(mime_type, width, height, bytes.len()),
            };
            Ok((mime_type, bytes, image))
        }
        FileFit::Undecodable(reason) => Err(reason),
    }
}

/// A caption in text for an image sent: many hosts show the model only text, and the results
/// convention (src/mcp/error.rs) puts the downscale note where the model reads it.
fn caption(out: &ReadFileOutput) -> ContentBlock {
    let mut caption = format!("{} ({}, {} bytes)", out.path, out.mime_type, out.size_bytes);
    if let Some(note) = &out.note {
        caption = format!("{caption}: {note}");
    }
    ContentBlock::text(caption)
}

/// A `resource_link` to the file read.
fn link(out: &ReadFileOutput) -> ContentBlock {
    render::file_link(&out.uri, &out.path, &out.mime_type, out.size_bytes)
}

/// Lines `offset..offset+limit` of `text` within `cap` bytes (at least one line, cut to the cap
/// if it alone is larger). Returns the window, lines taken, total lines, and whether one was cut.
fn text_window(
    text: &str,
    offset: usize,
    limit: usize,
    cap: usize,
) -> (String, usize, usize, bool) {
    let total = text.split_inclusive('\n').count();
    let mut window = String::new();
    let mut taken = 0;
    let mut cut = false;
    for line in text.split_inclusive('\n').skip(offset).take(limit) {
        if window.len() + line.len() > cap {
            if taken == 0 {
                let mut end = cap.min(line.len());
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                window.push_str(&line[..end]);
                taken = 1;
                cut = true;
            }
            break;
        }
        window.push_str(line);
        taken += 1;
    }
    (window, taken, total, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_window_pages_and_caps() {
        let text = "a\nb\nc\n";
        assert_eq!(text_window(text, 0, 2, 100), ("a\nb\n".into(), 2, 3, false));
        assert_eq!(text_window(text, 2, 10, 100), ("c\n".into(), 1, 3, false));
        assert_eq!(text_window(text, 0, 10, 3), ("a\n".into(), 1, 3, false));
        let long = "é".repeat(100);
        let (w, n, _, cut) = text_window(&long, 0, 10, 11);
        assert!(cut && n == 1 && w.len() <= 11);
    }
}
