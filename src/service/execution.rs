//! How one run of code went ([`Execution`]), its output type ([`ExecuteCodeOutput`]) and the
//! notes that explain a run that did not end ok.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use crate::kernel::{ExecOutcome, ExecStatus};
use crate::output::OutputItem;
use crate::pool;

/// What ipykernel raises when code asks for input and the client allows none (never here).
pub(super) const STDIN_ERROR: &str = "StdinNotImplementedError";
pub(super) const NO_INPUT: &str = "input() and getpass() are not supported: nobody can type into this kernel. hint: put the value in the code (e.g. name = \"Ada\") instead of asking for it";

/// Where a run's outputs were saved in a notebook.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SavedCell {
    /// Notebook path, relative to the working directory.
    pub path: String,
    /// Index of the cell holding the outputs.
    pub index: usize,
    /// Id of that cell (absent in notebooks older than nbformat 4.5).
    pub id: Option<String>,
    /// The notebook's revision after the save.
    pub revision: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecuteCodeOutput {
    /// ok, error (the code raised), timeout, kernel_died or cancelled; `running` when the work
    /// goes on after `wait` (poll it with get_execution and `execution_id`).
    pub status: ExecStatus,
    /// Kernel name.
    pub kernel: String,
    /// The cell's number in the kernel's history.
    pub execution_count: Option<u64>,
    pub duration_ms: u64,
    /// Outputs in the order the code produced them.
    pub outputs: Vec<OutputItem>,
    /// True if output above the server's cap was cut (head and tail kept).
    pub truncated: bool,
    /// What happened to the kernel, when it matters (restarts, kills).
    pub note: Option<String>,
    /// Where the outputs were saved, when the call saves them into a notebook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notebook: Option<SavedCell>,
    /// With status `running`: the id get_execution and cancel_execution take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
}

/// How an execution went, before a door renders it.
pub struct Execution {
    pub status: ExecStatus,
    pub execution_count: Option<u64>,
    pub(super) started: Instant,
    pub outputs: Vec<OutputItem>,
    pub truncated: bool,
    pub note: Option<String>,
    /// The outputs in nbformat form, when the run was asked to record them.
    pub(super) nb_outputs: Vec<serde_json::Value>,
    /// False when the code never reached the kernel (the wait for its turn ended first):
    /// there is nothing to save, and a cell's saved outputs must stay as they were.
    pub(super) ran: bool,
}

impl Execution {
    pub(super) fn not_run(status: ExecStatus, started: Instant, note: &str) -> Self {
        Execution {
            status,
            execution_count: None,
            started,
            outputs: Vec::new(),
            truncated: false,
            note: Some(note.to_string()),
            nb_outputs: Vec::new(),
            ran: false,
        }
    }

    /// Adds a sentence to the note.
    pub(super) fn add_note(&mut self, more: String) {
        self.note = Some(match self.note.take() {
            Some(n) => format!("{n}; {more}"),
            None => more,
        });
    }

    pub fn duration_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The output type, for a run in `kernel` whose outputs were saved at `notebook`.
    pub fn into_output(self, kernel: String, notebook: Option<SavedCell>) -> ExecuteCodeOutput {
        ExecuteCodeOutput {
            status: self.status,
            kernel,
            execution_count: self.execution_count,
            duration_ms: self.duration_ms(),
            outputs: self.outputs,
            truncated: self.truncated,
            note: self.note,
            notebook,
            execution_id: None,
        }
    }
}

/// Names the limit a kernel's death points to, from its exit status.
fn death_cause(exit_status: Option<&str>) -> String {
    let status = exit_status.unwrap_or("");
    if status.contains("SIGXCPU") {
        format!("{status}: it used up its CPU time, the RLIMIT_CPU set by --kernel-cpu-secs")
    } else if status.contains("SIGXFSZ") {
        format!("{status}: it wrote past the file-size limit, --kernel-file-size-mb")
    } else if status.contains("SIGKILL") {
        format!(
            "{status}: killed, e.g. by the memory limit (--kernel-memory-mb), the CPU hard limit, or os.kill"
        )
    } else if status.is_empty() {
        "crash, os._exit, or out of memory".to_string()
    } else {
        status.to_string()
    }
}

/// What the note of a run says about how it ended and what happened to its kernel.
pub(super) fn status_note(
    outcome: &ExecOutcome,
    timeout: Duration,
    replaced_dead: bool,
) -> Option<String> {
    let (status, killed) = (outcome.status, outcome.killed);
    if let Some(reason) = outcome.stopped_by {
        let why = pool::stop_reason_text(reason);
        return Some(format!("{why} while this ran; variables are lost"));
    }
    let mut note = match (status, killed) {
        (ExecStatus::Timeout, false) => Some(format!(
            "timed out after {:.1} s: the code was interrupted; the kernel and its variables are kept",
            timeout.as_secs_f64()
        )),
        (ExecStatus::Timeout, true) | (ExecStatus::Cancelled, true) => Some(
            "the code did not stop on interrupt, so the kernel was killed; the next call starts a fresh kernel (variables are lost)".into(),
        ),
        (ExecStatus::KernelDied, _) => Some(format!(
            "the kernel process died while running this code ({}); the next call starts a fresh kernel (variables are lost)",
            death_cause(outcome.exit_status.as_deref())
        )),
        (ExecStatus::Cancelled, false) => Some("cancelled by the client; the code was interrupted".into()),
        _ => None,
    };
    if replaced_dead {
        let restarted = "the previous kernel of this name had died, so this ran in a fresh kernel";
        note = Some(match note {
            Some(n) => format!("{restarted}; {n}"),
            None => restarted.into(),
        });
    }
    note
}
