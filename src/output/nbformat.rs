//! Kernel outputs in nbformat form, to be saved into a notebook cell.
//!
//! The [`Recorder`] sits in front of the execution's [`Collector`](super::Collector): the
//! collector shapes what the model sees (ANSI stripped, text capped), the recorder keeps what a
//! person opening the notebook should see (the outputs as Jupyter would store them: streams
//! merged, MIME bundles whole, tracebacks with their colours). Both see every output once.
//! The recorder has its own byte cap so a flood cannot grow a notebook past what it may write.

use serde_json::{Value, json};

use crate::kernel::{KernelOutput, OutputSink};

/// One output dict of an nbformat 4 code cell; `None` for the messages that change earlier
/// outputs instead (`update_display_data`, `clear_output`).
fn to_nbformat(output: KernelOutput) -> Option<Value> {
    Some(match output {
        KernelOutput::Stream { stderr, text } => json!({
            "output_type": "stream",
            "name": if stderr { "stderr" } else { "stdout" },
            "text": text,
        }),
        // The execution count is known only when the reply arrives; `finish` fills it in.
        KernelOutput::ExecuteResult { data, metadata } => json!({
            "output_type": "execute_result",
            "data": data,
            "metadata": metadata,
            "execution_count": null,
        }),
        KernelOutput::DisplayData { data, metadata, .. } => json!({
            "output_type": "display_data",
            "data": data,
            "metadata": metadata,
        }),
        KernelOutput::Error {
            ename,
            evalue,
            traceback,
        } => json!({
            "output_type": "error",
            "ename": ename,
            "evalue": evalue,
            "traceback": traceback,
        }),
        KernelOutput::UpdateDisplay { .. } | KernelOutput::ClearOutput { .. } => return None,
    })
}

/// Approximate bytes an output takes in the file (its strings).
fn weight(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(weight).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() + weight(v)).sum(),
        _ => 8,
    }
}

/// An [`OutputSink`] that records nbformat outputs (up to `cap` bytes) and passes every
/// output on to `inner`. With `cap == 0` it records nothing.
pub struct Recorder<S> {
    pub inner: S,
    outputs: Vec<Value>,
    /// The `display_id` of each output in `outputs` (same index), for `update_display_data`.
    display_ids: Vec<Option<String>>,
    /// A `clear_output(wait=True)` that applies at the next output.
    clear_pending: bool,
    bytes: usize,
    cap: usize,
    dropped_bytes: usize,
}

impl<S: OutputSink> Recorder<S> {
    pub fn new(inner: S, cap: usize) -> Self {
        Recorder {
            inner,
            outputs: Vec::new(),
            display_ids: Vec::new(),
            clear_pending: false,
            bytes: 0,
            cap,
            dropped_bytes: 0,
        }
    }

    /// The inner sink, and the recorded outputs with `execution_count` set on the
    /// execute_result and a note where outputs over the cap were left out.
    pub fn finish(self, execution_count: Option<u64>) -> (S, Vec<Value>) {
        let mut outputs = self.outputs;
        for o in &mut outputs {
            if o["output_type"] == "execute_result" {
                o["execution_count"] = execution_count.map_or(Value::Null, Value::from);
            }
        }
        if self.dropped_bytes > 0 {
            outputs.push(json!({
                "output_type": "stream",
                "name": "stderr",
                "text": format!("\n[{} bytes of output were not saved in the notebook: over its output cap]\n", self.dropped_bytes),
            }));
        }
        (self.inner, outputs)
    }

    /// Applies one kernel output to the saved ones, as Jupyter does: a display, stream or
    /// result is added; `clear_output` empties the list (now, or at the next output when it
    /// waits); `update_display_data` replaces every display with its id.
    fn apply(&mut self, output: KernelOutput) {
        match output {
            KernelOutput::ClearOutput { wait: true } => self.clear_pending = true,
            KernelOutput::ClearOutput { wait: false } => self.clear(),
            KernelOutput::UpdateDisplay {
                data,
                display_id,
                metadata,
            } => {
                let new = Value::Object(data);
                let metadata = Value::Object(metadata);
                for (o, id) in self.outputs.iter_mut().zip(&self.display_ids) {
                    if id.as_deref() != Some(display_id.as_str()) {
                        continue;
                    }
                    let old = weight(&o["data"]);
                    let size = weight(&new);
                    if self.bytes - old + size <= self.cap {
                        self.bytes = self.bytes - old + size;
                        o["data"] = new.clone();
                        o["metadata"] = metadata.clone();
                    }
                }
            }
            other => {
                if self.clear_pending {
                    self.clear();
                }
                let id = match &other {
                    KernelOutput::DisplayData { display_id, .. } => display_id.clone(),
                    _ => None,
                };
                if let Some(value) = to_nbformat(other) {
                    self.record(value, id);
                }
            }
        }
    }

    fn clear(&mut self) {
        self.outputs.clear();
        self.display_ids.clear();
        self.bytes = 0;
        self.clear_pending = false;
    }

    fn record(&mut self, output: Value, display_id: Option<String>) {
        let size = weight(&output);
        if self.bytes + size > self.cap {
            self.dropped_bytes += size;
            return;
        }
        self.bytes += size;
        // Jupyter stores consecutive writes to one stream as one output.
        if let (Some(last), Some(text)) = (self.outputs.last_mut(), output["text"].as_str())
            && last["output_type"] == "stream"
            && output["output_type"] == "stream"
            && last["name"] == output["name"]
            && let Some(Value::String(prev)) = last.get_mut("text")
        {
            prev.push_str(text);
            return;
        }
        self.outputs.push(output);
        self.display_ids.push(display_id);
    }
}

impl<S: OutputSink> OutputSink for Recorder<S> {
    fn push(&mut self, output: KernelOutput) {
        if self.cap > 0 {
            self.apply(output.clone());
        }
        self.inner.push(output);
    }

    fn tick(&mut self) {
        self.inner.tick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Count(usize);
    impl OutputSink for Count {
        fn push(&mut self, _: KernelOutput) {
            self.0 += 1;
        }
    }

    fn stream(stderr: bool, text: &str) -> KernelOutput {
        KernelOutput::Stream {
            stderr,
            text: text.into(),
        }
    }

    fn display(text: &str, id: Option<&str>) -> KernelOutput {
        let mut data = serde_json::Map::new();
        data.insert("text/plain".into(), text.into());
        KernelOutput::DisplayData {
            metadata: Default::default(),
            data,
            display_id: id.map(String::from),
        }
    }

    #[test]
    fn saved_outputs_follow_clear_output_and_display_updates() {
        let mut r = Recorder::new(Count::default(), 1 << 20);
        r.push(stream(false, "old\n"));
        r.push(KernelOutput::ClearOutput { wait: false });
        r.push(display("0%", Some("bar")));
        r.push(display("other", None));
        let mut data = serde_json::Map::new();
        data.insert("text/plain".into(), "100%".into());
        r.push(KernelOutput::UpdateDisplay {
            metadata: Default::default(),
            data,
            display_id: "bar".into(),
        });
        let (count, saved) = r.finish(None);
        assert_eq!(count.0, 5, "every output is passed on");
        let texts: Vec<&str> = saved
            .iter()
            .map(|o| o["data"]["text/plain"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(texts, ["100%", "other"]);

        let mut r = Recorder::new(Count::default(), 1 << 20);
        for i in 0..3 {
            r.push(KernelOutput::ClearOutput { wait: true });
            r.push(stream(false, &format!("step {i}\n")));
        }
        let (_, saved) = r.finish(None);
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0]["text"], "step 2\n");
    }

    #[test]
    fn records_nbformat_outputs_and_passes_everything_on() {
        let mut r = Recorder::new(Count::default(), 1 << 20);
        r.push(stream(false, "a"));
        r.push(stream(false, "b\n"));
        r.push(stream(true, "warn"));
        let mut data = serde_json::Map::new();
        data.insert("text/plain".into(), "42".into());
        r.push(KernelOutput::ExecuteResult {
            data,
            metadata: Default::default(),
        });
        r.push(KernelOutput::Error {
            ename: "E".into(),
            evalue: "v".into(),
            traceback: vec!["\x1b[31mE\x1b[0m: v".into()],
        });
        let (inner, outputs) = r.finish(Some(7));
        assert_eq!(inner.0, 5);
        assert_eq!(outputs.len(), 4);
        assert_eq!(
            outputs[0],
            json!({"output_type": "stream", "name": "stdout", "text": "ab\n"})
        );
        assert_eq!(outputs[1]["name"], "stderr");
        assert_eq!(outputs[2]["execution_count"], 7);
        assert_eq!(outputs[2]["data"]["text/plain"], "42");
        assert_eq!(outputs[3]["traceback"][0], "\x1b[31mE\x1b[0m: v");
    }

    #[test]
    fn display_metadata_is_kept_and_follows_updates() {
        let mut r = Recorder::new(Count::default(), 1 << 20);
        let meta = |w: u64| {
            let mut m = serde_json::Map::new();
            m.insert("image/png".into(), json!({"width": w}));
            m
        };
        let mut data = serde_json::Map::new();
        data.insert("text/plain".into(), "img".into());
        r.push(KernelOutput::DisplayData {
            data: data.clone(),
            metadata: meta(300),
            display_id: Some("d".into()),
        });
        r.push(KernelOutput::ExecuteResult {
            data: data.clone(),
            metadata: meta(50),
        });
        let (_, saved) = r.finish(Some(1));
        assert_eq!(saved[0]["metadata"]["image/png"]["width"], 300);
        assert_eq!(saved[1]["metadata"]["image/png"]["width"], 50);

        let mut r = Recorder::new(Count::default(), 1 << 20);
        r.push(KernelOutput::DisplayData {
            data: data.clone(),
            metadata: meta(300),
            display_id: Some("d".into()),
        });
        r.push(KernelOutput::UpdateDisplay {
            data,
            metadata: meta(10),
            display_id: "d".into(),
        });
        let (_, saved) = r.finish(None);
        assert_eq!(saved[0]["metadata"]["image/png"]["width"], 10);
    }

    #[test]
    fn output_over_the_cap_is_left_out_with_a_note() {
        let mut r = Recorder::new(Count::default(), 100);
        r.push(stream(false, &"x".repeat(50)));
        r.push(stream(true, &"y".repeat(500)));
        let (inner, outputs) = r.finish(None);
        assert_eq!(inner.0, 2);
        assert_eq!(outputs.len(), 2);
        assert!(outputs[1]["text"].as_str().unwrap().contains("not saved"));
    }

    #[test]
    fn cap_zero_records_nothing() {
        let mut r = Recorder::new(Count::default(), 0);
        r.push(stream(false, "x"));
        let (inner, outputs) = r.finish(None);
        assert_eq!((inner.0, outputs.len()), (1, 0));
    }
}
