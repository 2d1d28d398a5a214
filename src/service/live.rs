//! The live output of an execution that no request may be waiting for: what it has printed so
//! far, as text, kept within a head-and-tail cap whoever reads it (or nobody), with a read
//! cursor so that each poll returns what is new since the last one.
//!
//! Text only: streams, errors (name and value) and the `text/plain` of results and displays.
//! Images and rich displays reach the caller in the final result, fitted as a call's are; here
//! they leave a one-line placeholder, so a cell that draws a hundred plots costs a hundred lines.

use std::sync::Mutex;

use crate::kernel::{KernelOutput, OutputSink};

/// What a poll returns of the live output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LiveText {
    /// The text, in order.
    pub text: String,
    /// Bytes that were printed but are no longer kept (they fell between head and tail).
    pub dropped_bytes: u64,
    /// Every byte printed so far.
    pub total_bytes: u64,
}

/// The text log of one execution (see the module doc). Std mutex: short sections, never across
/// an await.
pub struct LiveLog {
    inner: Mutex<Ring>,
}

struct Ring {
    /// The first bytes ever printed, up to half the cap; never dropped.
    head: String,
    head_limit: usize,
    /// The latest bytes after the head, up to the other half; the oldest are dropped first.
    tail: String,
    tail_limit: usize,
    /// Bytes appended in all (head, dropped, tail).
    total: u64,
    /// Position (in `total` bytes) up to which the caller has read.
    read: u64,
}

impl Ring {
    /// Where the tail starts, in bytes since the first.
    fn tail_start(&self) -> u64 {
        self.total - self.tail.len() as u64
    }

    fn push(&mut self, mut text: &str) {
        self.total += text.len() as u64;
        if self.head.len() < self.head_limit {
            let room = floor_char_boundary(text, self.head_limit - self.head.len());
            self.head.push_str(&text[..room]);
            text = &text[room..];
        }
        self.tail.push_str(text);
        if self.tail.len() > self.tail_limit {
            let cut = ceil_char_boundary(&self.tail, self.tail.len() - self.tail_limit);
            self.tail.drain(..cut);
        }
    }

    /// The text kept from position `from` on, and the bytes after `from` no longer kept.
    fn since(&self, from: u64) -> LiveText {
        let head_len = self.head.len() as u64;
        let mut text = String::new();
        if from < head_len {
            text.push_str(&self.head[from as usize..]);
        }
        let tail_start = self.tail_start();
        let from_tail = from.max(head_len);
        let dropped = tail_start.saturating_sub(from_tail);
        if dropped > 0 {
            text.push_str(&format!("\n[... {dropped} bytes of output not kept ...]\n"));
        }
        let skip = from_tail.saturating_sub(tail_start) as usize;
        text.push_str(self.tail.get(skip..).unwrap_or_default());
        LiveText {
            text,
            dropped_bytes: dropped,
            total_bytes: self.total,
        }
    }
}

impl LiveLog {
    /// A log that keeps at most `cap` bytes (half head, half tail).
    pub fn new(cap: usize) -> LiveLog {
        let head_limit = cap / 2;
        LiveLog {
            inner: Mutex::new(Ring {
                head: String::new(),
                head_limit,
                tail: String::new(),
                tail_limit: cap - head_limit,
                total: 0,
                read: 0,
            }),
        }
    }

    pub fn push_text(&self, text: &str) {
        if let Ok(mut ring) = self.inner.lock() {
            ring.push(text);
        }
    }

    /// What is new since the last read, and moves the cursor to the end.
    pub fn read_new(&self) -> LiveText {
        let Ok(mut ring) = self.inner.lock() else {
            return LiveText::default();
        };
        let out = ring.since(ring.read);
        ring.read = ring.total;
        out
    }

    /// Everything still kept, from the first byte (does not move the cursor).
    pub fn read_all(&self) -> LiveText {
        self.inner
            .lock()
            .map(|ring| ring.since(0))
            .unwrap_or_default()
    }

    /// Notes one kernel output as text.
    pub fn push_output(&self, output: &KernelOutput) {
        match output {
            KernelOutput::Stream { text, .. } => self.push_text(text),
            KernelOutput::Error { ename, evalue, .. } => {
                self.push_text(&format!("{ename}: {evalue}\n"))
            }
            KernelOutput::ExecuteResult { data, .. } | KernelOutput::DisplayData { data, .. } => {
                match data.get("text/plain").and_then(|t| t.as_str()) {
                    Some(plain) if data.len() == 1 => self.push_text(&format!("{plain}\n")),
                    _ => {
                        let kinds: Vec<&str> = data.keys().map(String::as_str).collect();
                        let line =
                            format!("[display: {}; in the final result]\n", kinds.join(", "));
                        self.push_text(&line)
                    }
                }
            }
            KernelOutput::UpdateDisplay { .. } | KernelOutput::ClearOutput { .. } => {}
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

/// A sink that notes every output in a live log, then hands it on.
pub struct Tee<'a, S: OutputSink> {
    pub inner: &'a mut S,
    pub log: &'a LiveLog,
}

impl<S: OutputSink> OutputSink for Tee<'_, S> {
    fn push(&mut self, output: KernelOutput) {
        self.log.push_output(&output);
        self.inner.push(output);
    }

    fn tick(&mut self) {
        self.inner.tick();
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_read_returns_what_is_new() {
        let log = LiveLog::new(1000);
        log.push_text("one\n");
        assert_eq!(log.read_new().text, "one\n");
        assert_eq!(log.read_new().text, "");
        log.push_text("two\n");
        log.push_text("three\n");
        assert_eq!(log.read_new().text, "two\nthree\n");
        assert_eq!(log.read_all().text, "one\ntwo\nthree\n");
    }

    #[test]
    fn unread_output_past_the_cap_keeps_head_and_tail_and_says_what_was_dropped() {
        let log = LiveLog::new(20);
        for i in 0..100 {
            log.push_text(&format!("{i:03}\n"));
        }
        let read = log.read_new();
        assert!(read.text.starts_with("000\n001\n"), "{:?}", read.text);
        assert!(read.text.ends_with("098\n099\n"), "{:?}", read.text);
        assert_eq!(read.total_bytes, 400);
        assert_eq!(read.dropped_bytes, 380);
        assert!(read.text.contains("380 bytes of output not kept"));
        // Nothing new: nothing dropped either.
        assert_eq!(
            log.read_new(),
            LiveText {
                text: String::new(),
                dropped_bytes: 0,
                total_bytes: 400
            }
        );
    }

    #[test]
    fn memory_stays_within_the_cap_however_much_is_printed() {
        let log = LiveLog::new(1024);
        let line = "x".repeat(1000) + "\n";
        for _ in 0..10_000 {
            log.push_text(&line);
        }
        let ring = log.inner.lock().unwrap();
        assert!(ring.head.len() + ring.tail.len() <= 1024);
        assert!(ring.head.capacity() + ring.tail.capacity() <= 8 * 1024);
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let log = LiveLog::new(7);
        log.push_text("ééééééééé");
        let all = log.read_all();
        assert!(all.text.starts_with("é"));
        assert_eq!(all.total_bytes, 18);
    }
}
