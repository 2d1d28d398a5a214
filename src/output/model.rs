//! The output item model: one kernel output as a tool returns it ([`OutputItem`]), what it
//! counts against the caps, the text it shows the model, and the file it stands for when that
//! file is saved in the working directory and linked (a downscaled image's original, a large
//! SVG, an image left out over the budget).
//!
//! Kept free of any transport: `crate::mcp::render` turns items into MCP content.

use std::sync::Arc;

use serde::Serialize;

/// MIME type of SVG images.
pub(crate) const SVG_MIME: &str = "image/svg+xml";
/// Most bytes of images left out over a call's image budget that the call keeps to save in
/// full; past it a left-out image is only named (the reply says how to get it).
pub(crate) const LEFT_OUT_KEEP_BYTES: usize = 32 << 20;

/// One output as a tool returns it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// Text the code printed.
    Stream {
        /// `stdout` or `stderr`.
        name: String,
        text: String,
    },
    /// The value of the cell's last expression, as text.
    ExecuteResult { text: String },
    /// Rich output shown with `display()`, as text.
    DisplayData {
        text: String,
        /// The id `update_display_data` names it by.
        #[serde(skip)]
        #[schemars(skip)]
        display_id: Option<String>,
    },
    /// An image (returned as MCP image content; only its size is repeated here).
    Image {
        mime_type: String,
        /// Size of the base64 data.
        bytes: usize,
        /// Size of the image sent, in bytes (decoded, the unit of `original.bytes`).
        sent_bytes: usize,
        /// Pixel width sent, when known.
        width: Option<u32>,
        /// Pixel height sent, when known.
        height: Option<u32>,
        /// The image the kernel produced (null only when it does not decode). When it was
        /// downscaled to fit, it is saved in full and linked (`uri`, `path`); otherwise its
        /// size equals the size sent.
        original: Option<OriginalImage>,
        #[serde(skip)]
        #[schemars(skip)]
        data: String,
        /// The id `update_display_data` names it by.
        #[serde(skip)]
        #[schemars(skip)]
        display_id: Option<String>,
        /// The original's bytes, until the tool saves them.
        #[serde(skip)]
        #[schemars(skip)]
        original_data: Option<Arc<Vec<u8>>>,
    },
    /// A vector image (SVG) too large to be worth sending as text: saved in the working
    /// directory and linked (a `resource_link` follows it in the content). A small SVG comes
    /// as text instead.
    Svg {
        /// Size of the SVG, in bytes.
        bytes: usize,
        /// Where it was saved (a `workspace:///` resource), when it was.
        uri: Option<String>,
        /// Its path, relative to the working directory, when it was saved.
        path: Option<String>,
        /// The SVG's bytes, until the tool saves them.
        #[serde(skip)]
        #[schemars(skip)]
        data: Option<Arc<Vec<u8>>>,
        /// The id `update_display_data` names it by.
        #[serde(skip)]
        #[schemars(skip)]
        display_id: Option<String>,
    },
    /// An exception raised by the code.
    Error {
        ename: String,
        evalue: String,
        /// Traceback without ANSI colour codes.
        traceback: String,
    },
    /// Marks where output above the cap was cut.
    Truncated { omitted_bytes: u64, note: String },
    /// An image over this call's image budget: not sent, but saved in full in the working
    /// directory and linked (a `resource_link` follows its note), so nothing is lost.
    ImageLeftOut {
        /// The saved file's type.
        mime_type: String,
        /// Size of the saved image, in bytes.
        bytes: usize,
        /// This call's image budget, in bytes of base64, that the image did not fit.
        budget: usize,
        /// Where it was saved (a `workspace:///` resource), when it was.
        uri: Option<String>,
        /// Its path, relative to the working directory, when it was saved.
        path: Option<String>,
        /// The image's bytes, until the tool saves them.
        #[serde(skip)]
        #[schemars(skip)]
        data: Option<Arc<Vec<u8>>>,
    },
}

/// The full-size image an image sent to the model was made from.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OriginalImage {
    pub mime_type: String,
    pub width: u32,
    pub height: u32,
    /// Size of the original file, in bytes.
    pub bytes: usize,
    /// Where the original was saved (a `workspace:///` resource), when it was.
    pub uri: Option<String>,
    /// The original's path, relative to the working directory, when it was saved.
    pub path: Option<String>,
}

impl OriginalImage {
    /// An original of `bytes` bytes and `(width, height)` pixels, not (yet) saved.
    pub(super) fn unsaved(
        mime_type: &str,
        (width, height): (u32, u32),
        bytes: usize,
    ) -> OriginalImage {
        OriginalImage {
            mime_type: mime_type.to_owned(),
            width,
            height,
            bytes,
            uri: None,
            path: None,
        }
    }
}

impl OutputItem {
    /// Bytes this item counts against the output cap.
    pub fn size(&self) -> usize {
        match self {
            OutputItem::Stream { text, .. }
            | OutputItem::ExecuteResult { text }
            | OutputItem::DisplayData { text, .. } => text.len(),
            OutputItem::Image { data, .. } => data.len(),
            OutputItem::Error {
                evalue, traceback, ..
            } => evalue.len() + traceback.len(),
            OutputItem::Truncated { note, .. } => note.len(),
            // Sent as a link: only the few words of its note reach the model.
            OutputItem::Svg { .. } | OutputItem::ImageLeftOut { .. } => 0,
        }
    }

    pub(super) fn display_id(&self) -> Option<&str> {
        match self {
            OutputItem::DisplayData { display_id, .. }
            | OutputItem::Image { display_id, .. }
            | OutputItem::Svg { display_id, .. } => display_id.as_deref(),
            _ => None,
        }
    }

    pub(super) fn with_display_id(mut self, id: Option<String>) -> Self {
        if let OutputItem::DisplayData { display_id, .. }
        | OutputItem::Image { display_id, .. }
        | OutputItem::Svg { display_id, .. } = &mut self
        {
            *display_id = id;
        }
        self
    }

    /// The bytes of a file this item stands for that the tool has yet to save in the working
    /// directory (a downscaled image's original, a large SVG), and the file's extension.
    pub(crate) fn take_unsaved(&mut self) -> Option<(Arc<Vec<u8>>, &'static str)> {
        match self {
            OutputItem::Image {
                original: Some(original),
                original_data,
                ..
            } => Some((original_data.take()?, extension(&original.mime_type))),
            OutputItem::Svg { data, .. } => Some((data.take()?, "svg")),
            OutputItem::ImageLeftOut {
                mime_type, data, ..
            } => Some((data.take()?, extension(mime_type))),
            _ => None,
        }
    }

    /// Records where the file `take_unsaved` gave was saved.
    pub(crate) fn set_saved(&mut self, saved_path: String) {
        let (uri, path) = match self {
            OutputItem::Image {
                original: Some(o), ..
            } => (&mut o.uri, &mut o.path),
            OutputItem::Svg { uri, path, .. } | OutputItem::ImageLeftOut { uri, path, .. } => {
                (uri, path)
            }
            _ => return,
        };
        *uri = Some(crate::files::uri_for(&saved_path));
        *path = Some(saved_path);
    }

    /// Bytes this item counts against the text cap; images have their own budget.
    pub(super) fn text_size(&self) -> usize {
        match self {
            OutputItem::Image { .. } => 0,
            other => other.size(),
        }
    }

    /// The text of a text-like item, for trimming.
    pub(super) fn text_mut(&mut self) -> Option<&mut String> {
        match self {
            OutputItem::Stream { text, .. }
            | OutputItem::ExecuteResult { text }
            | OutputItem::DisplayData { text, .. } => Some(text),
            OutputItem::Error { traceback, .. } => Some(traceback),
            _ => None,
        }
    }

    /// The text this item shows the model: the item itself for text, a traceback (or
    /// `ename: evalue` without one), a note for what was cut or saved instead of sent. `None`
    /// for an image, which is sent as an image.
    pub fn shown_text(&self) -> Option<String> {
        Some(match self {
            OutputItem::Stream { text, .. }
            | OutputItem::ExecuteResult { text }
            | OutputItem::DisplayData { text, .. } => text.clone(),
            OutputItem::Image { .. } => return None,
            OutputItem::Error {
                ename,
                evalue,
                traceback,
            } => {
                if traceback.is_empty() {
                    format!("{ename}: {evalue}")
                } else {
                    traceback.clone()
                }
            }
            OutputItem::Truncated { note, .. } => note.clone(),
            OutputItem::Svg {
                bytes,
                path: Some(path),
                ..
            } => format!(
                "[SVG image of {bytes} bytes, too large to send as text: saved as {path} and linked]"
            ),
            OutputItem::Svg { bytes, .. } => format!(
                "[SVG image of {bytes} bytes, too large to send as text, and it could not be saved. hint: use PNG output (set_matplotlib_formats('png'))]"
            ),
            OutputItem::ImageLeftOut {
                mime_type,
                bytes,
                budget,
                path,
                ..
            } => left_out_note(mime_type, *bytes, *budget, path.as_deref()),
        })
    }

    /// The file this item saved (a downscaled image's full-size original, a large SVG, an image
    /// left out over the budget), to be linked right after it so nothing is lost.
    pub fn saved_file(&self) -> Option<SavedFile<'_>> {
        let (uri, path, mime_type, bytes, description) = match self {
            OutputItem::Svg {
                bytes,
                uri: Some(uri),
                path: Some(path),
                ..
            } => (
                uri,
                path,
                SVG_MIME,
                *bytes,
                "SVG image output, too large to send as text".to_owned(),
            ),
            OutputItem::ImageLeftOut {
                mime_type,
                bytes,
                uri: Some(uri),
                path: Some(path),
                ..
            } => (
                uri,
                path,
                mime_type.as_str(),
                *bytes,
                "image output left out of the reply: over the call's image budget".to_owned(),
            ),
            OutputItem::Image {
                original: Some(o), ..
            } => (
                o.uri.as_ref()?,
                o.path.as_ref()?,
                o.mime_type.as_str(),
                o.bytes,
                format!(
                    "full-size original ({}x{} px), downscaled to fit the model",
                    o.width, o.height
                ),
            ),
            _ => return None,
        };
        Some(SavedFile {
            uri,
            path,
            mime_type,
            bytes,
            description,
        })
    }
}

/// A file an item saved in the working directory, as it is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFile<'a> {
    /// Its `workspace:///` resource.
    pub uri: &'a str,
    /// Its path, relative to the working directory.
    pub path: &'a str,
    pub mime_type: &'a str,
    /// Its size, in bytes.
    pub bytes: usize,
    /// What it is, for the link's description.
    pub description: String,
}

/// What an image left out over the budget shows: where it was saved, or how to get it.
fn left_out_note(mime_type: &str, bytes: usize, budget: usize, path: Option<&str>) -> String {
    let over = format!(
        "[{mime_type} image of {bytes} bytes left out: over this call's image budget of {budget} bytes"
    );
    match path {
        Some(path) => format!("{over}; saved full-size as {path} and linked]"),
        None => format!(
            "{over}, and it was not saved (a call saves at most {} MiB of left-out images; a failed save is in the server's log). hint: save it with savefig() and show a smaller one (lower dpi or figsize), or raise --max-output-bytes]",
            LEFT_OUT_KEEP_BYTES >> 20
        ),
    }
}

/// The file extension for an image MIME type.
fn extension(mime_type: &str) -> &'static str {
    match mime_type {
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => "png",
    }
}

/// Bytes that standard base64 `data` (no whitespace) decodes to.
pub(super) fn decoded_len(data: &str) -> usize {
    let pad = data.bytes().rev().take_while(|b| *b == b'=').count();
    (data.len() / 4 * 3).saturating_sub(pad)
}
