//! Turning kernel outputs into what a tool returns: text with ANSI codes stripped, images as
//! image content, HTML-only results as their `text/plain`, and a byte cap that keeps the head and
//! the tail of a flood with a note of what was cut.
//!
//! The cap is enforced while the cell runs (the [`Collector`] is the execution's sink), so the
//! server holds at most about `max_bytes` of a cell's output however much it prints.

pub mod fit;
pub mod nbformat;

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine;

use rmcp::model::ContentBlock;
use serde::Serialize;

use crate::kernel::{KernelOutput, OutputSink};

/// Longest `ename`/`evalue` kept (the traceback, which repeats them, is capped like any text).
const MAX_ERROR_FIELD_CHARS: usize = 500;
/// Images get their own budget, this many times the text cap: they are not repeated in
/// `structuredContent`, and a plot is worth more than its size in text. With the default cap a
/// full reply (text twice, images once) stays near 800 KB, under the 1 MiB the Python SDK takes
/// in one SSE event.
pub(crate) const IMAGE_BUDGET_FACTOR: usize = 4;
/// Most bytes of images left out over a call's image budget that the call keeps to save in
/// full; past it a left-out image is only named (the reply says how to get it).
const LEFT_OUT_KEEP_BYTES: usize = 32 << 20;

/// Largest slice of new output one progress notification carries.
const PROGRESS_CHUNK_BYTES: usize = 2048;

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
    fn unsaved(mime_type: &str, (width, height): (u32, u32), bytes: usize) -> OriginalImage {
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

    fn display_id(&self) -> Option<&str> {
        match self {
            OutputItem::DisplayData { display_id, .. }
            | OutputItem::Image { display_id, .. }
            | OutputItem::Svg { display_id, .. } => display_id.as_deref(),
            _ => None,
        }
    }

    fn with_display_id(mut self, id: Option<String>) -> Self {
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
    fn text_size(&self) -> usize {
        match self {
            OutputItem::Image { .. } => 0,
            other => other.size(),
        }
    }

    /// The text of a text-like item, for trimming.
    fn text_mut(&mut self) -> Option<&mut String> {
        match self {
            OutputItem::Stream { text, .. }
            | OutputItem::ExecuteResult { text }
            | OutputItem::DisplayData { text, .. } => Some(text),
            OutputItem::Error { traceback, .. } => Some(traceback),
            _ => None,
        }
    }

    /// A `resource_link` to the file this item saved (a downscaled image's full-size original,
    /// a large SVG, an image left out over the budget), sent right after it so nothing is lost.
    pub fn original_link(&self) -> Option<ContentBlock> {
        let (uri, path, mime_type, bytes, description) = match self {
            OutputItem::Svg {
                bytes,
                uri: Some(uri),
                path: Some(path),
                ..
            } => (
                uri,
                path,
                SVG_MIME.to_owned(),
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
                mime_type.clone(),
                *bytes,
                "image output left out of the reply: over the call's image budget".to_owned(),
            ),
            OutputItem::Image {
                original: Some(o), ..
            } => (
                o.uri.as_ref()?,
                o.path.as_ref()?,
                o.mime_type.clone(),
                o.bytes,
                format!(
                    "full-size original ({}x{} px), downscaled to fit the model",
                    o.width, o.height
                ),
            ),
            _ => return None,
        };
        Some(ContentBlock::resource_link(
            rmcp::model::Resource::new(uri.clone(), path.clone())
                .with_mime_type(mime_type)
                .with_size(bytes as u64)
                .with_description(description),
        ))
    }

    /// The MCP content block for this item.
    pub fn to_content(&self) -> ContentBlock {
        match self {
            OutputItem::Stream { text, .. }
            | OutputItem::ExecuteResult { text }
            | OutputItem::DisplayData { text, .. } => ContentBlock::text(text.clone()),
            OutputItem::Image {
                mime_type, data, ..
            } => ContentBlock::image(data.clone(), mime_type.clone()),
            OutputItem::Error {
                ename,
                evalue,
                traceback,
            } => {
                if traceback.is_empty() {
                    ContentBlock::text(format!("{ename}: {evalue}"))
                } else {
                    ContentBlock::text(traceback.clone())
                }
            }
            OutputItem::Truncated { note, .. } => ContentBlock::text(note.clone()),
            OutputItem::Svg {
                bytes,
                path: Some(path),
                ..
            } => ContentBlock::text(format!(
                "[SVG image of {bytes} bytes, too large to send as text: saved as {path} and linked]"
            )),
            OutputItem::Svg { bytes, .. } => ContentBlock::text(format!(
                "[SVG image of {bytes} bytes, too large to send as text, and it could not be saved. hint: use PNG output (set_matplotlib_formats('png'))]"
            )),
            OutputItem::ImageLeftOut {
                mime_type,
                bytes,
                budget,
                path,
                ..
            } => {
                let over = format!(
                    "[{mime_type} image of {bytes} bytes left out: over this call's image budget of {budget} bytes"
                );
                ContentBlock::text(match path {
                    Some(path) => format!("{over}; saved full-size as {path} and linked]"),
                    None => format!(
                        "{over}, and it was not saved (a call saves at most {} MiB of left-out images; a failed save is in the server's log). hint: save it with savefig() and show a smaller one (lower dpi or figsize), or raise --max-output-bytes]",
                        LEFT_OUT_KEEP_BYTES >> 20
                    ),
                })
            }
        }
    }
}

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

const SVG_MIME: &str = "image/svg+xml";
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

/// Removes ANSI escape sequences; text without any is returned as is, without a copy.
fn cap_chars(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s,
    }
}

pub fn strip_ansi(s: String) -> String {
    if !s.contains('\x1b') {
        return s;
    }
    String::from_utf8_lossy(&strip_ansi_escapes::strip(&s)).into_owned()
}

/// Progress callback: total output bytes seen so far and the newest output text.
pub type ProgressFn = Box<dyn FnMut(u64, String) + Send>;

/// Collects an execution's outputs under a byte cap, keeping the first half of the budget from
/// the start of the output and the second half from its end.
pub struct Collector {
    head: Vec<OutputItem>,
    head_bytes: usize,
    head_limit: usize,
    /// Once set, new output goes to the tail, which drops its oldest bytes past `tail_limit`.
    spilled: bool,
    tail: VecDeque<OutputItem>,
    tail_bytes: usize,
    tail_limit: usize,
    omitted_bytes: u64,
    seen_bytes: u64,
    /// Image bytes kept so far, against `image_limit`.
    image_bytes: usize,
    image_limit: usize,
    /// Bytes of images left out over the budget kept so far, to be saved.
    left_out_kept: usize,
    progress: Option<ProgressFn>,
    pending_progress: String,
    /// A `clear_output(wait=True)` waiting for the next output.
    clear_pending: bool,
    /// When set, images are fitted to these limits before the budget sees them.
    fit: Option<fit::FitLimits>,
}

impl Collector {
    pub fn new(max_bytes: usize, progress: Option<ProgressFn>) -> Self {
        let head_limit = max_bytes / 2;
        Collector {
            head: Vec::new(),
            head_bytes: 0,
            head_limit,
            spilled: false,
            tail: VecDeque::new(),
            tail_bytes: 0,
            tail_limit: max_bytes - head_limit,
            omitted_bytes: 0,
            seen_bytes: 0,
            image_bytes: 0,
            image_limit: max_bytes.saturating_mul(IMAGE_BUDGET_FACTOR),
            left_out_kept: 0,
            progress,
            pending_progress: String::new(),
            clear_pending: false,
            fit: None,
        }
    }

    /// Fits every image to `max_px` on its longest side and to half the image budget.
    pub fn with_image_fit(mut self, max_px: u32) -> Self {
        self.fit = Some(image_fit_limits(
            self.image_limit / IMAGE_BUDGET_FACTOR,
            max_px,
        ));
        self
    }

    /// The outputs in order, with a truncation marker where output was cut, and whether any was.
    pub fn finish(self) -> (Vec<OutputItem>, bool) {
        let truncated = self.omitted_bytes > 0;
        let mut items = self.head;
        let mut tail = self.tail;
        for item in items.iter_mut().chain(tail.iter_mut()) {
            if let OutputItem::Stream { text, .. } = item
                && text.contains('\r')
            {
                *text = apply_carriage_returns(text);
            }
        }
        if truncated {
            items.push(OutputItem::Truncated {
                omitted_bytes: self.omitted_bytes,
                note: format!(
                    "\n[... {} bytes of output cut: only the first and last parts are kept. hint: print less, write large results to a file, or raise --max-output-bytes ...]\n",
                    self.omitted_bytes
                ),
            });
        }
        items.extend(tail);
        (items, truncated)
    }

    /// `clear_output`: what the cell showed so far is gone, by its own request (not cut).
    fn clear(&mut self) {
        self.head.clear();
        self.tail.clear();
        self.head_bytes = 0;
        self.tail_bytes = 0;
        self.image_bytes = 0;
        self.left_out_kept = 0;
        self.omitted_bytes = 0;
        self.spilled = false;
    }

    /// `update_display_data`: the display with this id takes the new content where it stands.
    /// An id no earlier output has (or one already cut away) changes nothing, as in Jupyter.
    fn update_display(&mut self, id: &str, item: OutputItem) {
        let shown = |i: &OutputItem| i.display_id() == Some(id);
        let (in_head, i) = match self.head.iter().position(shown) {
            Some(i) => (true, i),
            None => match self.tail.iter().position(shown) {
                Some(i) => (false, i),
                None => return,
            },
        };
        let old = if in_head {
            &self.head[i]
        } else {
            &self.tail[i]
        };
        let (old_text, freed) = (old.text_size(), image_size(old));
        // The new image takes the old one's place in the budget; over it, it is left out.
        let item = self.fitted(item);
        let item = self
            .within_image_budget(item, freed)
            .with_display_id(Some(id.to_owned()));
        let grown = item.text_size() as isize - old_text as isize;
        if in_head {
            self.head_bytes = self.head_bytes.saturating_add_signed(grown);
            self.head[i] = item;
        } else {
            self.tail_bytes = self.tail_bytes.saturating_add_signed(grown);
            self.tail[i] = item;
            self.trim_tail();
        }
    }

    fn add(&mut self, item: OutputItem) {
        let mut item = self.fitted(item);
        self.seen_bytes += item.size() as u64;
        item = self.within_image_budget(item, 0);
        if let OutputItem::Image { .. } = item {
            if self.spilled {
                self.tail.push_back(item);
            } else {
                self.head.push(item);
            }
            return;
        }
        if !self.spilled {
            let size = item.text_size();
            if self.head_bytes + size <= self.head_limit {
                self.head_bytes += size;
                push_merged(&mut self.head, item);
                return;
            }
            self.spilled = true;
            // Fill the head to its limit with the start of this item.
            let room = self.head_limit - self.head_bytes;
            if room > 0
                && let Some(text) = item.text_mut()
            {
                let cut = floor_char_boundary(text, room);
                let rest = text.split_off(cut);
                let head_part = std::mem::replace(text, rest);
                let mut first = item.clone();
                if let Some(t) = first.text_mut() {
                    *t = head_part;
                }
                self.head_bytes += first.text_size();
                push_merged(&mut self.head, first);
            }
        }
        self.tail_bytes += item.text_size();
        push_merged_back(&mut self.tail, item);
        self.trim_tail();
    }

    /// An image fitted to this call's limits, when it has any (other items pass through).
    fn fitted(&self, item: OutputItem) -> OutputItem {
        match self.fit {
            Some(limits) => fit_image(item, limits),
            None => item,
        }
    }

    /// An image as it will be sent: itself when it fits the image budget (once `freed` bytes,
    /// of an image it replaces, are given back), counted; otherwise an `ImageLeftOut` that
    /// keeps its full-size bytes to be saved and linked, while the call has kept less than
    /// [`LEFT_OUT_KEEP_BYTES`] of them. Other items pass through.
    fn within_image_budget(&mut self, item: OutputItem, freed: usize) -> OutputItem {
        let OutputItem::Image {
            mime_type,
            bytes,
            data,
            original,
            original_data,
            ..
        } = &item
        else {
            return item;
        };
        let kept = self.image_bytes.saturating_sub(freed);
        if kept + bytes <= self.image_limit {
            self.image_bytes = kept + bytes;
            return item;
        }
        self.image_bytes = kept;
        self.omitted_bytes += *bytes as u64;
        // The full-size bytes: the original a downscaled image was made from, else the image.
        let (mime_type, full) = match (original, original_data) {
            (Some(o), Some(raw)) => (o.mime_type.clone(), Some(Arc::clone(raw))),
            _ => {
                let b64 = base64::engine::general_purpose::STANDARD;
                (mime_type.clone(), b64.decode(data).ok().map(Arc::new))
            }
        };
        let size = full.as_ref().map_or_else(|| decoded_len(data), |f| f.len());
        let data = full.filter(|_| self.left_out_kept + size <= LEFT_OUT_KEEP_BYTES);
        if data.is_some() {
            self.left_out_kept += size;
        }
        OutputItem::ImageLeftOut {
            mime_type,
            bytes: size,
            budget: self.image_limit,
            uri: None,
            path: None,
            data,
        }
    }

    /// Drops the oldest tail text until the tail fits. Images, and the notes that stand for
    /// images left out, are never dropped here: images have their own budget, checked as they
    /// arrive. Each pass
    /// either cuts at least the excess from the oldest text item or removes it, so it ends.
    fn trim_tail(&mut self) {
        while self.tail_bytes > self.tail_limit {
            let excess = self.tail_bytes - self.tail_limit;
            let Some(i) = self.tail.iter().position(|item| {
                !matches!(
                    item,
                    OutputItem::Image { .. }
                        | OutputItem::Svg { .. }
                        | OutputItem::ImageLeftOut { .. }
                        | OutputItem::Truncated { .. }
                )
            }) else {
                break;
            };
            let oldest = &mut self.tail[i];
            let size = oldest.text_size();
            match oldest.text_mut() {
                Some(text) if text.len() > excess => {
                    let cut = ceil_char_boundary(text, excess);
                    text.drain(..cut);
                    self.tail_bytes -= cut;
                    self.omitted_bytes += cut as u64;
                }
                _ => {
                    if let Some(dropped) = self.tail.remove(i) {
                        self.omitted_bytes += dropped.size() as u64;
                    }
                    self.tail_bytes -= size;
                }
            }
        }
    }
}

impl OutputSink for Collector {
    fn push(&mut self, output: KernelOutput) {
        match output {
            KernelOutput::ClearOutput { wait: true } => {
                self.clear_pending = true;
                return;
            }
            KernelOutput::ClearOutput { wait: false } => {
                self.clear();
                return;
            }
            KernelOutput::UpdateDisplay { ref display_id, .. } => {
                let id = display_id.clone();
                if let Some(item) = convert(output) {
                    self.update_display(&id, item);
                }
                return;
            }
            _ => {}
        }
        if std::mem::take(&mut self.clear_pending) {
            self.clear();
        }
        let Some(item) = convert(output) else {
            return;
        };
        if self.progress.is_some()
            && let OutputItem::Stream { text, .. } = &item
        {
            self.pending_progress.push_str(text);
            if self.pending_progress.len() > PROGRESS_CHUNK_BYTES {
                let start = ceil_char_boundary(
                    &self.pending_progress,
                    self.pending_progress.len() - PROGRESS_CHUNK_BYTES,
                );
                self.pending_progress.drain(..start);
            }
        }
        self.add(item);
    }

    fn tick(&mut self) {
        if self.pending_progress.is_empty() {
            return;
        }
        let message = std::mem::take(&mut self.pending_progress);
        if let Some(progress) = self.progress.as_mut() {
            progress(self.seen_bytes, message);
        }
    }
}

fn image_size(item: &OutputItem) -> usize {
    match item {
        OutputItem::Image { bytes, .. } => *bytes,
        _ => 0,
    }
}

/// What a terminal shows for text with carriage returns: each `\r` goes back to the start of
/// the line, so a progress bar (tqdm) that redraws itself leaves only its last state.
fn apply_carriage_returns(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let last = line
            .rsplit('\r')
            .find(|part| !part.is_empty())
            .unwrap_or("");
        out.push_str(last);
    }
    out
}

/// What every image a tool returns is fitted to: `max_px` on its longest side, and half of the
/// image budget that `max_output_bytes` gives (in encoded bytes: base64 adds a third), so two
/// full-size plots still fit one reply.
pub(crate) fn image_fit_limits(max_output_bytes: usize, max_px: u32) -> fit::FitLimits {
    let image_budget = max_output_bytes.saturating_mul(IMAGE_BUDGET_FACTOR);
    fit::FitLimits {
        max_px,
        max_bytes: image_budget / 2 * 3 / 4,
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
fn decoded_len(data: &str) -> usize {
    let pad = data.bytes().rev().take_while(|b| *b == b'=').count();
    (data.len() / 4 * 3).saturating_sub(pad)
}

/// Fits an image item to `limits` (other items pass through). An image that does not decode
/// is sent as it came.
pub(crate) fn fit_image(item: OutputItem, limits: fit::FitLimits) -> OutputItem {
    let OutputItem::Image {
        mime_type,
        data,
        display_id,
        ..
    } = &item
    else {
        return item;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(raw) = b64.decode(data) else {
        return item;
    };
    match run_blocking(|| fit::fit(&raw, limits)) {
        Ok(Some(fitted)) => {
            let (width, height) = fit::dimensions(&raw).unwrap_or_default();
            let data = b64.encode(&fitted.bytes);
            OutputItem::Image {
                mime_type: fitted.mime_type.into(),
                bytes: data.len(),
                sent_bytes: fitted.bytes.len(),
                width: Some(fitted.width),
                height: Some(fitted.height),
                original: Some(OriginalImage::unsaved(
                    mime_type,
                    (width, height),
                    raw.len(),
                )),
                data,
                original_data: Some(Arc::new(raw)),
                display_id: display_id.clone(),
            }
        }
        Ok(None) => {
            let size = fit::dimensions(&raw);
            match item {
                OutputItem::Image {
                    mime_type,
                    bytes,
                    data,
                    display_id,
                    ..
                } => OutputItem::Image {
                    original: size.map(|size| OriginalImage::unsaved(&mime_type, size, raw.len())),
                    mime_type,
                    bytes,
                    sent_bytes: raw.len(),
                    width: size.map(|s| s.0),
                    height: size.map(|s| s.1),
                    data,
                    original_data: None,
                    display_id,
                },
                other => other,
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "image did not decode; sent as it came");
            item
        }
    }
}

/// Runs CPU-heavy work on a runtime worker without stalling the others' tasks (a multi-thread
/// runtime moves them away); elsewhere it just runs it.
fn run_blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Appends, joining consecutive text of the same stream into one item.
/// Joins `item` onto `last` when both are text of the same stream; otherwise hands it back to
/// be stored as a new item.
fn merge_stream(last: Option<&mut OutputItem>, item: OutputItem) -> Option<OutputItem> {
    if let (
        Some(OutputItem::Stream { name: a, text: t }),
        OutputItem::Stream { name: b, text: new },
    ) = (last, &item)
        && a == b
    {
        t.push_str(new);
        return None;
    }
    Some(item)
}

fn push_merged(items: &mut Vec<OutputItem>, item: OutputItem) {
    if let Some(item) = merge_stream(items.last_mut(), item) {
        items.push(item);
    }
}

fn push_merged_back(items: &mut VecDeque<OutputItem>, item: OutputItem) {
    if let Some(item) = merge_stream(items.back_mut(), item) {
        items.push_back(item);
    }
}

/// nbformat and MIME bundles store text as a string or a list of lines.
fn joined_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(parts) => Some(parts.iter().filter_map(|p| p.as_str()).collect()),
        _ => None,
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> KernelOutput {
        KernelOutput::Stream {
            stderr: false,
            text: text.into(),
        }
    }

    fn content_text(item: &OutputItem) -> String {
        let content = item.to_content();
        content
            .as_text()
            .map(|t| t.text.clone())
            .unwrap_or_default()
    }

    /// Images left out over the budget are kept to be saved up to LEFT_OUT_KEEP_BYTES in all;
    /// past it they are only named. An update_display with an image over the budget is left
    /// out too, and gives back the bytes of the image it replaced.
    #[test]
    fn left_out_images_are_kept_to_a_bound_and_updates_keep_to_the_budget() {
        let image = |n: usize, id: Option<&str>| {
            let mut data = serde_json::Map::new();
            data.insert("image/png".into(), "A".repeat(n).into());
            match id {
                Some(id) => KernelOutput::UpdateDisplay {
                    metadata: Default::default(),
                    data,
                    display_id: id.into(),
                },
                None => KernelOutput::DisplayData {
                    metadata: Default::default(),
                    data,
                    display_id: None,
                },
            }
        };
        // 4 MiB of base64 each (3 MiB decoded): 10 fit in 32 MiB, the rest are named only.
        let mut c = Collector::new(1024, None);
        for _ in 0..14 {
            c.push(image(4 << 20, None));
        }
        let (items, _) = c.finish();
        let kept: Vec<bool> = items
            .iter()
            .filter_map(|i| match i {
                OutputItem::ImageLeftOut { data, bytes, .. } => {
                    assert_eq!(*bytes, 3 << 20);
                    Some(data.is_some())
                }
                _ => None,
            })
            .collect();
        assert_eq!(kept.len(), 14);
        assert_eq!(kept.iter().filter(|k| **k).count(), 10, "{kept:?}");
        assert!(kept[..10].iter().all(|k| *k), "{kept:?}");

        // A display of 3,000 bytes, updated to 5,000 (over the 4,096 budget), then to 2,000.
        let mut c = Collector::new(1024, None);
        let mut first = serde_json::Map::new();
        first.insert("image/png".into(), "A".repeat(3_000).into());
        c.push(KernelOutput::DisplayData {
            metadata: Default::default(),
            data: first,
            display_id: Some("d".into()),
        });
        c.push(image(5_000, Some("d")));
        assert_eq!(
            c.image_bytes, 0,
            "the replaced image's bytes are given back"
        );
        c.push(image(2_000, None));
        let (items, truncated) = c.finish();
        assert!(truncated);
        assert!(
            matches!(items[0], OutputItem::ImageLeftOut { bytes: 3_750, .. }),
            "{items:?}"
        );
        assert!(
            items
                .iter()
                .any(|i| matches!(i, OutputItem::Image { bytes: 2_000, .. }))
        );
    }

    fn text_of(items: &[OutputItem]) -> String {
        items
            .iter()
            .filter_map(|i| match i {
                OutputItem::Stream { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn small_output_is_kept_whole_and_merged() {
        let mut c = Collector::new(1024, None);
        c.push(stream("a"));
        c.push(stream("b"));
        let (items, truncated) = c.finish();
        assert!(!truncated);
        assert_eq!(items.len(), 1);
        assert_eq!(text_of(&items), "ab");
    }

    #[test]
    fn flood_keeps_head_and_tail_within_cap() {
        let mut c = Collector::new(1000, None);
        c.push(stream("START"));
        for i in 0..10_000 {
            c.push(stream(&format!("line {i}\n")));
        }
        c.push(stream("END"));
        let (items, truncated) = c.finish();
        assert!(truncated);
        let total: usize = items
            .iter()
            .filter(|i| !matches!(i, OutputItem::Truncated { .. }))
            .map(|i| i.size())
            .sum();
        assert!(total <= 1000, "{total}");
        let text = text_of(&items);
        assert!(text.starts_with("START"));
        assert!(text.ends_with("END"));
        let omitted = items.iter().find_map(|i| match i {
            OutputItem::Truncated { omitted_bytes, .. } => Some(*omitted_bytes),
            _ => None,
        });
        let produced: u64 = 8
            + (0..10_000)
                .map(|i| format!("line {i}\n").len() as u64)
                .sum::<u64>();
        assert_eq!(omitted.unwrap() + total as u64, produced);
    }

    #[test]
    fn one_huge_write_is_cut_on_char_boundaries() {
        let mut c = Collector::new(1001, None);
        c.push(stream(&"é".repeat(10_000)));
        let (items, truncated) = c.finish();
        assert!(truncated);
        assert!(text_of(&items).chars().all(|ch| ch == 'é'));
    }

    #[test]
    fn an_error_with_a_huge_value_is_capped_and_cannot_stall_the_cap() {
        let mut c = Collector::new(4096, None);
        c.push(KernelOutput::Error {
            ename: "ValueError".into(),
            evalue: "x".repeat(100_000),
            traceback: vec![format!("ValueError: {}", "x".repeat(100_000))],
        });
        c.push(stream("after"));
        let (items, truncated) = c.finish();
        assert!(truncated);
        let total: usize = items.iter().map(OutputItem::text_size).sum();
        assert!(total < 4096 + 1024, "{total}");
        assert!(text_of(&items).ends_with("after"));
    }

    #[test]
    fn images_have_their_own_budget_and_an_oversized_one_says_so() {
        let image = |n: usize| {
            let mut data = serde_json::Map::new();
            data.insert("image/png".into(), "A".repeat(n).into());
            KernelOutput::DisplayData {
                metadata: Default::default(),
                data,
                display_id: None,
            }
        };
        let mut c = Collector::new(4096, None);
        c.push(stream(&"t".repeat(3000)));
        c.push(image(10_000));
        c.push(image(20_000));
        let (items, truncated) = c.finish();
        assert!(truncated);
        let images: Vec<usize> = items
            .iter()
            .filter_map(|i| match i {
                OutputItem::Image { bytes, .. } => Some(*bytes),
                _ => None,
            })
            .collect();
        assert_eq!(
            images,
            [10_000],
            "the first image fits the image budget, the second does not"
        );
        // The second is kept whole (decoded: 20,000 base64 bytes are 15,000), to be saved and
        // linked; its note says where once saved, and how to get it when it could not be.
        let mut left_out: Vec<&mut OutputItem> = Vec::new();
        let mut items = items;
        for i in items.iter_mut() {
            if matches!(i, OutputItem::ImageLeftOut { .. }) {
                left_out.push(i);
            }
        }
        let [item] = left_out.as_mut_slice() else {
            panic!("one image left out: {left_out:?}")
        };
        let (data, ext) = item.take_unsaved().expect("its bytes kept to be saved");
        assert_eq!((data.len(), ext), (15_000, "png"));
        assert!(content_text(item).contains("was not saved"));
        assert!(content_text(item).contains("savefig"));
        item.set_saved("images/k-1-1-abc.png".into());
        assert!(content_text(item).contains("saved full-size as images/k-1-1-abc.png"));
        let link = item.original_link().expect("a resource link");
        assert!(format!("{link:?}").contains("workspace:///images/k-1-1-abc.png"));
    }

    /// Issue 12: an image that arrives after text spilled into the tail was trimmed away like
    /// text, silently, although it fit its own budget.
    #[test]
    fn an_image_in_the_tail_survives_later_floods_of_text() {
        let mut data = serde_json::Map::new();
        data.insert("image/png".into(), "A".repeat(5_000).into());
        let mut c = Collector::new(4096, None);
        c.push(stream(&"before ".repeat(1_000)));
        c.push(KernelOutput::DisplayData {
            metadata: Default::default(),
            data,
            display_id: None,
        });
        for i in 0..1_000 {
            c.push(stream(&format!("after {i}\n")));
        }
        let (items, truncated) = c.finish();
        assert!(truncated);
        let images = items
            .iter()
            .filter(|i| matches!(i, OutputItem::Image { bytes: 5_000, .. }))
            .count();
        assert_eq!(images, 1, "the image was dropped: {items:?}");
        assert!(text_of(&items).ends_with("after 999\n"));
        let text: usize = items.iter().map(OutputItem::text_size).sum();
        assert!(text <= 4096 + 200, "{text}");
    }

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
        assert_eq!(
            small.to_content().as_text().unwrap().text,
            "<svg><rect/></svg>"
        );
        let mut large = svg(&"<path d='M0 0'/>".repeat(1000));
        assert!(matches!(large, OutputItem::Svg { bytes, .. } if bytes > SVG_TEXT_MAX_BYTES));
        let (data, ext) = large.take_unsaved().unwrap();
        assert!(data.starts_with(b"<svg>") && ext == "svg");
        large.set_saved("images/p.svg".into());
        assert!(
            large
                .to_content()
                .as_text()
                .unwrap()
                .text
                .contains("images/p.svg")
        );
        assert!(large.original_link().is_some());
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
    fn progress_reports_new_text_on_tick() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&seen);
        let mut c = Collector::new(
            1024,
            Some(Box::new(move |n, m| sink.lock().unwrap().push((n, m)))),
        );
        c.push(stream("hello "));
        c.push(stream("world"));
        c.tick();
        c.tick();
        assert_eq!(*seen.lock().unwrap(), vec![(11, "hello world".to_string())]);
    }

    fn display(mime: &str, value: &str, id: Option<&str>) -> KernelOutput {
        let mut data = serde_json::Map::new();
        data.insert(mime.into(), value.into());
        KernelOutput::DisplayData {
            metadata: Default::default(),
            data,
            display_id: id.map(String::from),
        }
    }

    fn texts(c: Collector) -> Vec<String> {
        c.finish()
            .0
            .iter()
            .map(|i| match i.to_content().as_text() {
                Some(t) => t.text.clone(),
                None => "<image>".into(),
            })
            .collect()
    }

    #[test]
    fn clear_output_drops_what_came_before() {
        let mut c = Collector::new(4096, None);
        c.push(stream("one\n"));
        c.push(KernelOutput::ClearOutput { wait: false });
        c.push(stream("two\n"));
        assert_eq!(texts(c), ["two\n"]);
    }

    #[test]
    fn clear_output_wait_clears_at_the_next_output_only() {
        let mut c = Collector::new(4096, None);
        for i in 0..5 {
            c.push(KernelOutput::ClearOutput { wait: true });
            c.push(stream(&format!("step {i}\n")));
        }
        c.push(KernelOutput::ClearOutput { wait: true });
        // Nothing came after the last clear: the last step stays, as in Jupyter.
        assert_eq!(texts(c), ["step 4\n"]);
    }

    #[test]
    fn update_display_data_replaces_the_display_it_names() {
        let mut c = Collector::new(4096, None);
        c.push(display("text/plain", "0%", Some("bar")));
        c.push(stream("between\n"));
        c.push(display("text/plain", "other", Some("other")));
        let mut data = serde_json::Map::new();
        data.insert("text/plain".into(), "100%".into());
        c.push(KernelOutput::UpdateDisplay {
            metadata: Default::default(),
            data,
            display_id: "bar".into(),
        });
        let mut data = serde_json::Map::new();
        data.insert("text/plain".into(), "nobody".into());
        c.push(KernelOutput::UpdateDisplay {
            metadata: Default::default(),
            data,
            display_id: "unknown".into(),
        });
        assert_eq!(texts(c), ["100%", "between\n", "other"]);
    }

    #[test]
    fn carriage_returns_leave_a_progress_bar_at_its_last_state() {
        let mut c = Collector::new(4096, None);
        for i in 0..=10 {
            c.push(KernelOutput::Stream {
                stderr: true,
                text: format!("\r{:3}%|{}|", i * 10, "#".repeat(i)),
            });
        }
        c.push(KernelOutput::Stream {
            stderr: true,
            text: "\ndone\r\n".into(),
        });
        assert_eq!(texts(c), ["100%|##########|\ndone\n"]);
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
        let text = item.to_content().as_text().unwrap().text.clone();
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
            assert_eq!(item.to_content().as_text().unwrap().text, value);
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
        assert_eq!(item.to_content().as_text().unwrap().text, "   a\n0  1");
    }
}

/// Properties of the cap over generated outputs (issue 12): never over the cap, head and tail
/// kept, the note's byte count exact, images within their budget never dropped.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Out {
        Text(String),
        Image(usize),
    }

    fn outputs() -> impl Strategy<Value = Vec<Out>> {
        let text = prop_oneof!["[a-z\n]{0,50}", "[é😀x]{0,40}", "[a-z]{500,3000}",];
        let out = prop_oneof![
            8 => text.prop_map(Out::Text),
            1 => (1usize..6_000).prop_map(Out::Image),
        ];
        prop::collection::vec(out, 0..60)
    }

    fn push(c: &mut Collector, out: &Out) {
        match out {
            Out::Text(t) => c.push(KernelOutput::Stream {
                stderr: false,
                text: t.clone(),
            }),
            Out::Image(n) => {
                let mut data = serde_json::Map::new();
                data.insert("image/png".into(), "A".repeat(*n).into());
                c.push(KernelOutput::DisplayData {
                    metadata: Default::default(),
                    data,
                    display_id: None,
                });
            }
        }
    }

    proptest! {
        // Each case collects up to 60 outputs of up to 3 KB: 64 cases keep this under a second.
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_cap_holds_and_keeps_both_ends(outs in outputs(), max in 1024usize..8192) {
            let mut c = Collector::new(max, None);
            for out in &outs {
                push(&mut c, out);
            }
            let (items, truncated) = c.finish();
            let text: String = items.iter().filter_map(|i| match i {
                OutputItem::Stream { text, .. } => Some(text.as_str()),
                _ => None,
            }).collect();
            let produced: String = outs.iter().filter_map(|o| match o {
                Out::Text(t) => Some(t.as_str()),
                Out::Image(_) => None,
            }).collect();
            // Never over the cap (notes about left-out images count as text too).
            let kept: usize = items
                .iter()
                .filter(|i| !matches!(i, OutputItem::Truncated { .. }))
                .map(OutputItem::text_size)
                .sum();
            prop_assert!(kept <= max, "{kept} > {max}");
            if !truncated {
                prop_assert_eq!(&text, &produced);
            } else {
                // The start and the end of what was printed are kept.
                let head: String = produced.chars().take(20).collect();
                let tail: String = {
                    let cs: Vec<char> = produced.chars().collect();
                    cs[cs.len().saturating_sub(20)..].iter().collect()
                };
                let images_left_out = items.iter().any(|i| matches!(i, OutputItem::ImageLeftOut { .. }));
                if !images_left_out {
                    prop_assert!(text.starts_with(&head), "head lost");
                    prop_assert!(text.ends_with(&tail), "tail lost");
                    // The note's count is exact: kept + omitted = printed.
                    let omitted = items.iter().find_map(|i| match i {
                        OutputItem::Truncated { omitted_bytes, .. } => Some(*omitted_bytes),
                        _ => None,
                    }).unwrap_or(0);
                    prop_assert_eq!(omitted + text.len() as u64, produced.len() as u64);
                }
            }
            // Every image either arrives whole or is named in a note; within the budget none
            // is dropped.
            let image_budget = max * IMAGE_BUDGET_FACTOR;
            let sent: Vec<usize> = outs.iter().filter_map(|o| match o {
                Out::Image(n) => Some(*n),
                Out::Text(_) => None,
            }).collect();
            let kept_images = items.iter().filter(|i| matches!(i, OutputItem::Image { .. })).count();
            let notes = items.iter().filter(|i| matches!(i, OutputItem::ImageLeftOut { .. })).count();
            prop_assert_eq!(kept_images + notes, sent.len());
            if sent.iter().sum::<usize>() <= image_budget {
                prop_assert_eq!(kept_images, sent.len());
            }
        }
    }
}
