//! A kernel's history in S3 (`PREFIX/<principal dir>/history/<kernel>.jsonl`): one JSON record
//! per line, in order: each kernel start (its generation, a random id per process), each cell
//! that ran without error, each package installed, each shutdown. Another execution
//! environment reads it to tell a caller that the state of a kernel lives elsewhere
//! (`state_lost`) and to rebuild it (`restore_kernel`).
//!
//! S3 has no append: a record is added by read, append, and write with `If-Match` on the ETag
//! read (`If-None-Match: *` for the first), retried when another environment wrote in between,
//! so no record is lost and none is written twice over another's. The first attempt starts from
//! what this process last read or wrote (`cache.rs`) without reading again: S3's precondition
//! tells whether that is still the history, and only when it is not does the append read.

use serde::{Deserialize, Serialize};

use super::cache::{Cached, ObjectCache};

/// Read-append-write attempts before giving up on a busy history.
const APPEND_ATTEMPTS: usize = 5;
/// A history larger than this is not appended to (the kernel's cells are still run; the note says
/// the history is full).
pub(crate) const MAX_HISTORY_BYTES: usize = 8 * 1024 * 1024;

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Record {
    /// A kernel process started (`generation` is its id).
    Start {
        generation: String,
        /// Seconds since the epoch.
        at: u64,
    },
    /// A cell that ran without error.
    Cell { generation: String, code: String },
    /// A package installed with install_package; `generation` is the kernel that was running
    /// then, if any (else it belongs to the next start).
    Install {
        generation: Option<String>,
        package: String,
    },
    /// The kernel was shut down on purpose: its state is gone everywhere, nothing is lost.
    Shutdown { generation: Option<String> },
}

/// What a history says about the latest generation of a kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Latest {
    pub generation: Option<String>,
    /// Cells and installs of that generation, in order (what `restore_kernel` replays).
    pub steps: Vec<Step>,
    /// True when the latest generation was shut down on purpose.
    pub ended: bool,
}

/// One step of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Cell(String),
    Install(String),
}

impl Latest {
    pub fn cells(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Cell(_)))
            .count()
    }

    pub fn installs(&self) -> usize {
        self.steps.len() - self.cells()
    }
}

/// The records of a history file; lines that do not parse are skipped (a newer server may write
/// events this one does not know).
pub(crate) fn parse(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The latest generation of `records` other than `skip` (the one running here, when a replay
/// must not restore a kernel onto itself).
pub(crate) fn latest(records: &[Record], skip: Option<&str>) -> Latest {
    let mut generations: Vec<Latest> = Vec::new();
    let mut pending: Vec<Step> = Vec::new();
    for r in records {
        match r {
            Record::Start { generation, .. } => generations.push(Latest {
                generation: Some(generation.clone()),
                steps: std::mem::take(&mut pending),
                ended: false,
            }),
            Record::Cell { generation, code } => {
                if let Some(g) = find(&mut generations, generation) {
                    g.steps.push(Step::Cell(code.clone()));
                }
            }
            Record::Install {
                generation: Some(generation),
                package,
            } => match find(&mut generations, generation) {
                Some(g) => g.steps.push(Step::Install(package.clone())),
                None => pending.push(Step::Install(package.clone())),
            },
            Record::Install {
                generation: None,
                package,
            } => pending.push(Step::Install(package.clone())),
            Record::Shutdown { generation } => {
                let target = match generation {
                    Some(g) => find(&mut generations, g),
                    None => generations.last_mut(),
                };
                if let Some(g) = target {
                    g.ended = true;
                }
            }
        }
    }
    generations
        .into_iter()
        .rev()
        .find(|g| skip.is_none() || g.generation.as_deref() != skip)
        .unwrap_or(Latest {
            generation: None,
            steps: pending,
            ended: false,
        })
}

fn find<'a>(generations: &'a mut [Latest], id: &str) -> Option<&'a mut Latest> {
    generations
        .iter_mut()
        .rev()
        .find(|g| g.generation.as_deref() == Some(id))
}

/// Appends `records` to the history at `key`. A record of a generation the history has never
/// seen is preceded by that generation's `Start`.
pub(crate) async fn append(
    store: &super::s3::Store,
    cache: &ObjectCache,
    key: &str,
    records: &[Record],
) -> Result<(), super::Error> {
    use super::s3::Error as S3;
    for attempt in 0..APPEND_ATTEMPTS {
        // First from the cache, unchecked (the write's precondition checks it); after a refused
        // write, from S3.
        let current = match cache.get(key) {
            Some(cached) if attempt == 0 => cached,
            _ => cache.read(store, key).await?,
        };
        let (mut text, etag) = match current {
            Cached::Object { etag, body } => {
                (String::from_utf8_lossy(&body).into_owned(), Some(etag))
            }
            Cached::Absent => (String::new(), None),
        };
        if text.len() > MAX_HISTORY_BYTES {
            return Err(super::Error::HistoryFull);
        }
        let mut known: Vec<String> = parse(&text)
            .into_iter()
            .filter_map(|r| match r {
                Record::Start { generation, .. } => Some(generation),
                _ => None,
            })
            .collect();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for r in records {
            let generation = match r {
                Record::Cell { generation, .. } => Some(generation),
                Record::Install {
                    generation: Some(g),
                    ..
                } => Some(g),
                _ => None,
            };
            if let Some(g) = generation
                && !known.contains(g)
            {
                push(
                    &mut text,
                    &Record::Start {
                        generation: g.clone(),
                        at: now_secs(),
                    },
                );
                known.push(g.clone());
            }
            if let Record::Start { generation, .. } = r {
                if known.contains(generation) {
                    continue;
                }
                known.push(generation.clone());
            }
            push(&mut text, r);
        }
        let body = text.into_bytes();
        match store.put(key, body.clone(), etag.as_deref()).await {
            Ok(etag) => {
                cache.set(key, Cached::object(etag, body));
                return Ok(());
            }
            Err(S3::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(super::Error::HistoryBusy)
}

fn push(text: &mut String, r: &Record) {
    if let Ok(line) = serde_json::to_string(r) {
        text.push_str(&line);
        text.push('\n');
    }
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(g: &str) -> Record {
        Record::Start {
            generation: g.into(),
            at: 1,
        }
    }
    fn cell(g: &str, c: &str) -> Record {
        Record::Cell {
            generation: g.into(),
            code: c.into(),
        }
    }

    #[test]
    fn the_latest_generation_holds_its_cells_and_installs_in_order() {
        let records = vec![
            start("g1"),
            cell("g1", "a = 1"),
            Record::Install {
                generation: None,
                package: "six".into(),
            },
            start("g2"),
            cell("g2", "import six"),
            cell("g1", "late = 1"),
        ];
        let l = latest(&records, None);
        assert_eq!(l.generation.as_deref(), Some("g2"));
        assert_eq!(
            l.steps,
            vec![Step::Install("six".into()), Step::Cell("import six".into())]
        );
        assert_eq!((l.cells(), l.installs()), (1, 1));
        let before = latest(&records, Some("g2"));
        assert_eq!(before.generation.as_deref(), Some("g1"));
        assert_eq!(before.cells(), 2);
    }

    #[test]
    fn a_shutdown_ends_the_generation_and_unknown_lines_are_skipped() {
        let text = format!(
            "{}\n{{\"event\":\"from_the_future\"}}\nnot json\n{}\n{}\n",
            serde_json::to_string(&start("g1")).unwrap(),
            serde_json::to_string(&cell("g1", "x")).unwrap(),
            serde_json::to_string(&Record::Shutdown { generation: None }).unwrap(),
        );
        let l = latest(&parse(&text), None);
        assert!(l.ended);
        assert_eq!(l.cells(), 1);
    }

    #[test]
    fn an_empty_history_has_no_generation() {
        assert_eq!(latest(&[], None), Latest::default());
    }
}
