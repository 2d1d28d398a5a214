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
    DisplayData { text: String },
    /// An image (returned as MCP image content; only its size is repeated here).
    Image {
        mime_type: String,
        /// Size of the base64 data.
        bytes: usize,
        /// Pixel width sent, when known.
        width: Option<u32>,
        /// Pixel height sent, when known.
        height: Option<u32>,
        /// Set when the image was downscaled to fit: the original, saved in full and linked.
        #[serde(skip_serializing_if = "Option::is_none")]
        original: Option<OriginalImage>,
        #[serde(skip)]
        #[schemars(skip)]
        data: String,
        /// The original's bytes, until the tool saves them.
        #[serde(skip)]
        #[schemars(skip)]
        original_data: Option<Arc<Vec<u8>>>,
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

impl OutputItem {
    /// Bytes this item counts against the output cap.
    pub fn size(&self) -> usize {
        match self {
            OutputItem::Stream { text, .. }
            | OutputItem::ExecuteResult { text }
            | OutputItem::DisplayData { text } => text.len(),
            OutputItem::Image { data, .. } => data.len(),
            OutputItem::Error {
                evalue, traceback, ..
            } => evalue.len() + traceback.len(),
            OutputItem::Truncated { note, .. } => note.len(),
        }
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
            | OutputItem::DisplayData { text } => Some(text),
            OutputItem::Error { traceback, .. } => Some(traceback),
            _ => None,
        }
    }

    /// The MCP content block for this item.
    pub fn to_content(&self) -> ContentBlock {
        match self {
            OutputItem::Stream { text, .. }
            | OutputItem::ExecuteResult { text }
            | OutputItem::DisplayData { text } => ContentBlock::text(text.clone()),
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
        }
    }
}

/// Converts one kernel output (ANSI stripped, best MIME type chosen).
pub fn convert(output: KernelOutput) -> OutputItem {
    match output {
        KernelOutput::Stream { stderr, text } => OutputItem::Stream {
            name: if stderr { "stderr" } else { "stdout" }.into(),
            text: strip_ansi(text),
        },
        KernelOutput::ExecuteResult { data } => {
            from_bundle(&data, |text| OutputItem::ExecuteResult { text })
        }
        KernelOutput::DisplayData { data } => {
            from_bundle(&data, |text| OutputItem::DisplayData { text })
        }
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
    }
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
        "execute_result" => KernelOutput::ExecuteResult { data: data() },
        "display_data" => KernelOutput::DisplayData { data: data() },
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
    Some(convert(kernel_output))
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
                width: None,
                height: None,
                original: None,
                data,
                original_data: None,
            };
        }
    }
    let text = |v: &serde_json::Value| joined_text(v).unwrap_or_else(|| v.to_string());
    // HTML-only renderers (a DataFrame, say) also send text/plain, which an LLM reads best.
    for mime in ["text/plain", "text/markdown", "application/json"] {
        if let Some(v) = data.get(mime) {
            return text_item(strip_ansi(text(v)));
        }
    }
    let mimes: Vec<&str> = data.keys().map(String::as_str).collect();
    text_item(format!(
        "[output of type {} has no text form to show]",
        mimes.join(", ")
    ))
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
    progress: Option<ProgressFn>,
    pending_progress: String,
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
            progress,
            pending_progress: String::new(),
            fit: None,
        }
    }

    /// Fits every image to `max_px` on its longest side and to half the image budget.
    pub fn with_image_fit(mut self, max_px: u32) -> Self {
        // Half the (base64) image budget, in encoded bytes.
        let max_bytes = self.image_limit / 2 * 3 / 4;
        self.fit = Some(fit::FitLimits { max_px, max_bytes });
        self
    }

    /// The outputs in order, with a truncation marker where output was cut, and whether any was.
    pub fn finish(self) -> (Vec<OutputItem>, bool) {
        let truncated = self.omitted_bytes > 0;
        let mut items = self.head;
        if truncated {
            items.push(OutputItem::Truncated {
                omitted_bytes: self.omitted_bytes,
                note: format!(
                    "\n[... {} bytes of output cut: only the first and last parts are kept. hint: print less, write large results to a file, or raise --max-output-bytes ...]\n",
                    self.omitted_bytes
                ),
            });
        }
        items.extend(self.tail);
        (items, truncated)
    }

    fn add(&mut self, mut item: OutputItem) {
        if let Some(limits) = self.fit {
            item = fit_image(item, limits);
        }
        self.seen_bytes += item.size() as u64;
        if let OutputItem::Image {
            mime_type, bytes, ..
        } = &item
        {
            if self.image_bytes + bytes <= self.image_limit {
                self.image_bytes += bytes;
                if self.spilled {
                    self.tail.push_back(item);
                } else {
                    self.head.push(item);
                }
                return;
            }
            self.omitted_bytes += *bytes as u64;
            item = OutputItem::DisplayData {
                text: format!(
                    "[{mime_type} image of {bytes} bytes left out: over this call's image budget of {} bytes. hint: save it with savefig() and show a smaller one (lower dpi or figsize), or raise --max-output-bytes]",
                    self.image_limit
                ),
            };
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

    /// Drops the oldest tail bytes until the tail fits. Each pass either cuts at least the
    /// excess from the front item's text or removes the front item, so it always ends.
    fn trim_tail(&mut self) {
        while self.tail_bytes > self.tail_limit {
            let excess = self.tail_bytes - self.tail_limit;
            let Some(front) = self.tail.front_mut() else {
                break;
            };
            let size = front.text_size();
            match front.text_mut() {
                Some(text) if text.len() > excess => {
                    let cut = ceil_char_boundary(text, excess);
                    text.drain(..cut);
                    self.tail_bytes -= cut;
                    self.omitted_bytes += cut as u64;
                }
                _ => {
                    if let Some(dropped) = self.tail.pop_front() {
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
        let item = convert(output);
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

/// Fits an image item to `limits` (other items pass through). An image that does not decode
/// is sent as it came.
fn fit_image(item: OutputItem, limits: fit::FitLimits) -> OutputItem {
    let OutputItem::Image {
        mime_type, data, ..
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
                width: Some(fitted.width),
                height: Some(fitted.height),
                original: Some(OriginalImage {
                    mime_type: mime_type.clone(),
                    width,
                    height,
                    bytes: raw.len(),
                    uri: None,
                    path: None,
                }),
                data,
                original_data: Some(Arc::new(raw)),
            }
        }
        Ok(None) => {
            let size = fit::dimensions(&raw);
            match item {
                OutputItem::Image {
                    mime_type,
                    bytes,
                    data,
                    ..
                } => OutputItem::Image {
                    mime_type,
                    bytes,
                    width: size.map(|s| s.0),
                    height: size.map(|s| s.1),
                    original: None,
                    data,
                    original_data: None,
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
            KernelOutput::DisplayData { data }
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
        assert!(items.iter().any(|i| matches!(i, OutputItem::DisplayData { text } if text.contains("left out") && text.contains("savefig"))));
    }

    #[test]
    fn ansi_codes_are_stripped_from_tracebacks() {
        let item = convert(KernelOutput::Error {
            ename: "ZeroDivisionError".into(),
            evalue: "division by zero".into(),
            traceback: vec!["\x1b[0;31mZeroDivisionError\x1b[0m: division by zero".into()],
        });
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
        let item = convert(KernelOutput::ExecuteResult { data });
        assert!(matches!(item, OutputItem::ExecuteResult { text } if text == "   a\n0  1"));
    }

    #[test]
    fn png_becomes_an_image() {
        let mut data = serde_json::Map::new();
        data.insert("image/png".into(), "iVBORw0K\nGgo=".into());
        data.insert("text/plain".into(), "<Figure>".into());
        let item = convert(KernelOutput::DisplayData { data });
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
}
