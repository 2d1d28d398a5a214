//! Restoring a kernel's state from its history (`workspace::history`) in a fresh kernel, for a
//! caller whose previous kernel lives in another execution environment.

use schemars::JsonSchema;
use serde::Serialize;

use super::{Call, Error, Execution, RunSpec, Service, Status};
use crate::kernel::ExecStatus;
use crate::output::ProgressFn;
use crate::pool::KernelKey;
use crate::workspace::history::{self, Record, Step, now_secs};

/// The first step that failed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RestoreFailure {
    /// 1-based position of the step in the replay.
    pub step: usize,
    /// The cell's code or the package's requirement.
    pub what: String,
    /// The error, as the cell or pip reported it.
    pub error: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RestoreKernelOutput {
    /// Kernel name.
    pub kernel: String,
    /// Steps (cells and installs) recorded for the restored generation, after `upto`.
    pub steps_total: usize,
    /// Cells re-run without error.
    pub cells_run: usize,
    /// Packages reinstalled.
    pub installs_run: usize,
    /// The first failure; the replay stops there.
    pub failed: Option<RestoreFailure>,
    /// What happened, in one sentence.
    pub note: String,
}

impl RestoreKernelOutput {
    fn nothing(kernel: &str, note: String) -> Self {
        RestoreKernelOutput {
            kernel: kernel.to_string(),
            steps_total: 0,
            cells_run: 0,
            installs_run: 0,
            failed: None,
            note,
        }
    }
}

/// A replay ready to run: the kernel and the steps to replay in it.
pub struct PreparedRestore {
    key: KernelKey,
    steps: Vec<Step>,
}

impl PreparedRestore {
    /// How many steps the replay has.
    pub fn total(&self) -> u64 {
        self.steps.len() as u64
    }
}

impl Service {
    /// Reads the kernel's history and picks what to replay (the first `upto` cells, or all).
    /// `Err(output)` when there is nothing to replay, with the reason.
    pub async fn prepare_restore(
        &self,
        call: &Call,
        kernel: Option<&str>,
        upto: Option<usize>,
    ) -> Result<Result<PreparedRestore, RestoreKernelOutput>, Error> {
        let key = self.key(call, kernel)?;
        let Some(ws) = self.workspace.clone() else {
            let note = "no kernel history is kept without --workspace-bucket, so there is nothing to restore".to_string();
            return Ok(Err(RestoreKernelOutput::nothing(&key.name, note)));
        };
        let records = ws.history(&key.principal, &key.name).await.map_err(|e| {
            Error::new(
                Status::Unavailable,
                format!("the kernel's history cannot be read: {e}"),
            )
        })?;
        let live = self
            .pool
            .status(&key)
            .info
            .filter(|i| i.alive)
            .map(|i| i.id);
        let mut steps = history::latest(&records, live.as_deref()).steps;
        if let Some(n) = upto {
            let mut cells = 0;
            steps.retain(|s| {
                let keep = cells < n;
                cells += usize::from(matches!(s, Step::Cell(_)));
                keep
            });
        }
        Ok(Ok(PreparedRestore { key, steps }))
    }

    /// Starts a fresh kernel and replays the steps in order, stopping at the first failure.
    /// `progress` gets one line per step.
    pub async fn restore(
        &self,
        call: &Call,
        prepared: PreparedRestore,
        mut progress: Option<ProgressFn>,
    ) -> Result<RestoreKernelOutput, Error> {
        let PreparedRestore { key, steps } = prepared;
        let lease = self.pool.restart(&key).await?;
        let generation = lease.kernel.id().to_string();
        drop(lease);
        let start = Record::Start {
            generation,
            at: now_secs(),
        };
        call.record(&key.name, start);
        let (total, mut cells, mut installs) = (steps.len(), 0, 0);
        let mut out = RestoreKernelOutput::nothing(&key.name, String::new());
        out.steps_total = total;
        for (i, step) in steps.into_iter().enumerate() {
            if let Some(p) = progress.as_mut() {
                p(
                    i as u64,
                    format!("{} {}/{total}\n", step_name(&step), i + 1),
                );
            }
            let is_install = matches!(step, Step::Install(_));
            if let Some((what, error)) = self.replay(call, &key, step).await? {
                out.note = format!(
                    "restored {cells} cell(s) and {installs} install(s); step {} failed, the rest was not run",
                    i + 1
                );
                out.failed = Some(RestoreFailure {
                    step: i + 1,
                    what,
                    error,
                });
                (out.cells_run, out.installs_run) = (cells, installs);
                return Ok(out);
            }
            if is_install {
                installs += 1;
            } else {
                cells += 1;
            }
        }
        out.note = format!("restored {cells} cell(s) and {installs} install(s) in a fresh kernel");
        (out.cells_run, out.installs_run) = (cells, installs);
        Ok(out)
    }

    /// Replays one step; `Some((what, error))` when it failed.
    async fn replay(
        &self,
        call: &Call,
        key: &KernelKey,
        step: Step,
    ) -> Result<Option<(String, String)>, Error> {
        Ok(match step {
            Step::Install(package) => match self.install(call, key, package.clone()).await {
                Ok(_) => None,
                Err(e) => Some((package, e.message)),
            },
            Step::Cell(code) => {
                let spec = RunSpec {
                    kernel: Some(&key.name),
                    code: &code,
                    timeout: None,
                    record: false,
                    max_image_px: None,
                };
                let (_, run) = self.run_code(call, spec, None).await?;
                (run.status != ExecStatus::Ok).then(|| (code, error_text(&run)))
            }
        })
    }
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Cell(_) => "re-running cell",
        Step::Install(_) => "reinstalling package",
    }
}

/// The error of a cell that did not run cleanly: its exception, else the run's note.
fn error_text(run: &Execution) -> String {
    run.outputs
        .iter()
        .find_map(|o| match o {
            crate::output::OutputItem::Error { ename, evalue, .. } => {
                Some(format!("{ename}: {evalue}"))
            }
            _ => None,
        })
        .or_else(|| run.note.clone())
        .unwrap_or_else(|| format!("{:?}", run.status))
}
