//! The capped collector: an execution's [`OutputSink`] that keeps what the tool will return
//! under a byte cap while the cell runs, so the server holds at most about `max_bytes` of a
//! cell's output however much it prints. It keeps the head and the tail of a flood with a note
//! of what was cut, gives images their own budget (fitting them first when asked), applies
//! `clear_output` and `update_display_data` as Jupyter does, and feeds progress notifications.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine;

use super::convert::convert;
use super::fit::{self, IMAGE_BUDGET_FACTOR, fit_image, image_budget, image_fit_limits};
use super::model::{LEFT_OUT_KEEP_BYTES, OutputItem, decoded_len};
use crate::kernel::{KernelOutput, OutputSink};

/// Largest slice of new output one progress notification carries.
const PROGRESS_CHUNK_BYTES: usize = 2048;

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
            image_limit: image_budget(max_bytes),
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
        item.shown_text().unwrap_or_default()
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
        let link = item.saved_file().expect("a saved file to link");
        assert!(link.uri.contains("workspace:///images/k-1-1-abc.png"));
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
            .map(|i| i.shown_text().unwrap_or_else(|| "<image>".into()))
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
}

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
