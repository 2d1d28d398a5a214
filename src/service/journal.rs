//! The durable workspace around one call (`workspace`): before, the principal's workspace is
//! restored on its first call here and the kernel the call names is checked against its
//! history (`state_lost`); after, what the call recorded (cells that ran, packages installed,
//! kernel starts) is appended to the history and the files it changed are written through.
//! Operations only record events into the call's [`Journal`] (`Call::record`); they never talk
//! to S3. How the outcome reaches a client (`_meta`, a last text block) is the door's business.

use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::Serialize;

use super::{Service, principal_dirs};
use crate::pool::{KernelKey, KernelState};
use crate::workspace::history::{self, Record};
use crate::workspace::{Report, Workspace};

/// A kernel with no live process here whose history has state (cells, installs) from elsewhere.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StateLost {
    /// Always true: present only when the state is lost.
    pub state_lost: bool,
    /// Kernel name.
    pub kernel: String,
    /// Cells that ran in the previous kernel and are not in this environment.
    pub cells_lost: usize,
    /// Packages installed for it that this environment does not have.
    pub installs_lost: usize,
    /// What to do.
    pub note: String,
}

impl StateLost {
    fn new(kernel: &str, latest: &history::Latest) -> StateLost {
        let (cells, installs) = (latest.cells(), latest.installs());
        StateLost {
            state_lost: true,
            kernel: kernel.to_string(),
            cells_lost: cells,
            installs_lost: installs,
            note: format!(
                "state_lost: kernel {kernel:?} has no live state in this execution environment; its previous state ({cells} cell(s), {installs} package install(s)) lives in another (or a recycled) execution environment. Call restore_kernel to re-run it, or start afresh"
            ),
        }
    }
}

/// What a call records for the kernel history; filled through `Call::record`, flushed by
/// [`Continuity::after`].
#[derive(Default)]
pub struct Journal {
    /// (kernel name, record), in order. Std mutex: pushes only.
    records: Mutex<Vec<(String, Record)>>,
    /// The state check's finding, for operations that show it (get_kernel_status).
    state_lost: Mutex<Option<StateLost>>,
}

impl Journal {
    pub(super) fn push(&self, kernel: &str, record: Record) {
        if let Ok(mut r) = self.records.lock() {
            r.push((kernel.to_string(), record));
        }
    }

    pub(super) fn state_lost(&self) -> Option<StateLost> {
        self.state_lost.lock().ok()?.clone()
    }

    fn take_records(&self) -> Vec<(String, Record)> {
        self.records
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

/// What a call does with the workspace, decided by the door from the tool it calls.
pub struct Scope<'a> {
    /// The call reads or writes the principal's files: refresh them before.
    pub files: bool,
    /// The call may change files: write them through after.
    pub writes: bool,
    /// The kernel whose earlier state the call relies on, to check against its history.
    pub kernel: Option<&'a str>,
}

/// The "before" of one call, carried to its "after".
pub struct Continuity {
    workspace: Option<Arc<Workspace>>,
    principal: String,
    /// The call's journal; `None` without a workspace (nothing is recorded then).
    pub journal: Option<Arc<Journal>>,
    report: Report,
    writes: bool,
    home: std::path::PathBuf,
}

impl Service {
    /// Restores the workspace if needed and checks the named kernel's state.
    pub async fn before_call(&self, principal: &str, scope: Scope<'_>) -> Continuity {
        let mut c = Continuity {
            workspace: self.workspace.clone(),
            principal: principal.to_string(),
            journal: None,
            report: Report::default(),
            writes: scope.writes,
            home: principal_dirs(&self.settings, principal).home,
        };
        let Some(ws) = c.workspace.clone() else {
            return c;
        };
        let journal = Arc::new(Journal::default());
        c.journal = Some(Arc::clone(&journal));
        if scope.files {
            c.report = ws.before_call(principal, &c.home).await;
        }
        if let Some(name) = scope.kernel {
            self.check_state(&ws, principal, name, &journal, &mut c.report)
                .await;
        }
        c
    }

    /// Notes in `journal` a kernel that has no live process here but state in its history.
    async fn check_state(
        &self,
        ws: &Workspace,
        principal: &str,
        name: &str,
        journal: &Journal,
        report: &mut Report,
    ) {
        let Ok(key) = KernelKey::new(principal, name) else {
            return;
        };
        let live = matches!(
            self.pool.status(&key).state,
            KernelState::Starting | KernelState::Idle | KernelState::Busy
        );
        if live {
            return;
        }
        match ws.history(principal, name).await {
            Ok(records) => {
                let latest = history::latest(&records, None);
                if !latest.ended
                    && !latest.steps.is_empty()
                    && let Ok(mut s) = journal.state_lost.lock()
                {
                    *s = Some(StateLost::new(name, &latest));
                }
            }
            Err(e) => report.notes.push(format!(
                "the history of kernel {name:?} could not be read, so whether its state lives elsewhere is unknown: {e}"
            )),
        }
    }
}

impl Continuity {
    /// The same "after", for the history records only: the files are written through by the
    /// call that will still run its own "after" (see `Service::spawn_execution`).
    pub fn records_only(mut self) -> Continuity {
        self.writes = false;
        self
    }

    /// Appends the call's records to the histories and writes changed files through; returns
    /// what happened, for the door to show.
    pub async fn after(mut self) -> (Report, Option<StateLost>) {
        let (Some(ws), Some(journal)) = (self.workspace.clone(), self.journal.clone()) else {
            return (self.report, None);
        };
        let records = journal.take_records();
        let mut kernels: Vec<String> = records.iter().map(|(k, _)| k.clone()).collect();
        kernels.sort();
        kernels.dedup();
        for kernel in kernels {
            let mine: Vec<Record> = records
                .iter()
                .filter(|(k, _)| *k == kernel)
                .map(|(_, r)| r.clone())
                .collect();
            if let Err(e) = ws.record(&self.principal, &kernel, &mine).await {
                tracing::warn!(kernel, error = %e, "kernel history not recorded");
                self.report.notes.push(format!(
                    "the history of kernel {kernel:?} was not recorded in {}: {e}",
                    ws.location()
                ));
            }
        }
        if self.writes {
            let after = ws.after_call(&self.principal, &self.home).await;
            self.report.merge(after);
        }
        (self.report, journal.state_lost())
    }
}
