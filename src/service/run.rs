//! Running code in a kernel: a kernel's turn ([`Turn`]), a run's clock ([`Clock`]) and the run
//! itself, the one path every operation that sends code to a kernel takes (execute_code, the
//! notebook cells, restore): same statuses, output caps, images, timeout and cancel.

use std::time::{Duration, Instant};

use super::execution::{NO_INPUT, STDIN_ERROR, status_note};
use super::live::Tee;
use super::save::OriginalNames;
use super::{Call, Error, Execution, Service, Status};
use crate::config::MAX_EXEC_TIMEOUT_SECS;
use crate::kernel::{ExecOutcome, ExecStatus, OutputSink};
use crate::output::nbformat::Recorder;
use crate::output::{Collector, OutputItem, ProgressFn};
use crate::pool;
use crate::workspace::history::Record;

const NOT_RUN_BUSY: &str = "the kernel stayed busy with earlier calls (or was starting) for the whole timeout, so this code did not run. hint: interrupt_kernel stops the running cell; another kernel name runs in parallel";
const NOT_RUN_CANCELLED: &str =
    "cancelled by the client while waiting for the kernel's turn; the code did not run";

/// Bytes of nbformat outputs one run may save into a notebook (the notebook's own write cap
/// bounds the file as a whole).
const NOTEBOOK_OUTPUT_CAP_BYTES: usize = crate::notebook::MAX_WRITE_BYTES / 2;

/// What to run and how.
pub struct RunSpec<'a> {
    pub kernel: Option<&'a str>,
    pub code: &'a str,
    pub timeout: Option<f64>,
    /// Keep the outputs in nbformat form too, to save them in a notebook.
    pub record: bool,
    /// A per-call image size limit (at most the server's).
    pub max_image_px: Option<u32>,
}

/// One kernel's turn, taken by [`Service::take_turn`]: held for one run (execute_code), or for
/// all of a notebook's cells in a row, so no other call's code runs between them.
pub struct Turn {
    key: pool::KernelKey,
    lease: pool::Lease,
    /// The previous kernel of this name had died: said once, in the first run's note.
    replaced_dead: bool,
}

impl Turn {
    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.key.name
    }
}

/// When a run started, the deadline it must end by (the timeout also covers the wait for the
/// kernel's turn), and the timeout as asked, for the note.
#[derive(Clone, Copy)]
pub struct Clock {
    started: Instant,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

/// A run that did not reach the kernel: the kernel's name and why.
pub type NotRun = (String, Execution);

impl Service {
    /// The requested (or default) timeout, cut to what the Lambda invocation has left.
    fn exec_timeout(&self, call: &Call, requested: Option<f64>) -> Result<Duration, Error> {
        let timeout = match requested {
            None => self.settings.exec_timeout,
            Some(t) if t.is_finite() && t > 0.0 && t <= MAX_EXEC_TIMEOUT_SECS as f64 => {
                Duration::from_secs_f64(t)
            }
            Some(t) => {
                return Err(Error::invalid(format!(
                    "timeout must be between 0 and {MAX_EXEC_TIMEOUT_SECS} seconds, got {t}"
                )));
            }
        };
        call.limit(timeout)
    }

    /// Starts the clock of one run: its timeout (default, requested, cut to what a Lambda
    /// invocation has left) counts from now.
    pub fn start_clock(&self, call: &Call, timeout: Option<f64>) -> Result<Clock, Error> {
        let timeout = self.exec_timeout(call, timeout)?;
        Ok(Clock {
            started: Instant::now(),
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
        })
    }

    /// Waits for the kernel's turn (starting the kernel if needed) until the clock's deadline.
    /// `Err` is the run that did not happen, and why: the wait timed out, the caller cancelled,
    /// or the kernel was stopped on purpose meanwhile.
    pub async fn take_turn(
        &self,
        call: &Call,
        kernel: Option<&str>,
        clock: Clock,
    ) -> Result<Result<Turn, NotRun>, Error> {
        let key = self.key(call, kernel)?;
        let not_run = |key: pool::KernelKey, status, note: &str| {
            Ok(Err((
                key.name,
                Execution::not_run(status, clock.started, note),
            )))
        };
        let lease = tokio::select! {
            lease = self.pool.lease(&key) => match lease {
                Err(e @ pool::Error::StoppedWhileQueued(_)) => return not_run(key, ExecStatus::Cancelled, &e.to_string()),
                lease => lease?,
            },
            _ = call.cancel.cancelled() => return not_run(key, ExecStatus::Cancelled, NOT_RUN_CANCELLED),
            _ = tokio::time::sleep_until(clock.deadline) => return not_run(key, ExecStatus::Timeout, NOT_RUN_BUSY),
        };
        let replaced_dead = lease.replaced_dead;
        Ok(Ok(Turn {
            key,
            lease,
            replaced_dead,
        }))
    }

    /// Runs `spec.code`: the timeout covers the wait for the kernel's turn, outputs are capped,
    /// progress is forwarded, a cancel interrupts. With `record`, the outputs are also kept in
    /// nbformat form. Returns the kernel's name and how the run went.
    pub async fn run_code(
        &self,
        call: &Call,
        spec: RunSpec<'_>,
        progress: Option<ProgressFn>,
    ) -> Result<(String, Execution), Error> {
        let clock = self.start_clock(call, spec.timeout)?;
        let mut turn = match self.take_turn(call, spec.kernel, clock).await? {
            Ok(turn) => turn,
            Err(not_run) => return Ok(not_run),
        };
        let execution = self
            .run_in_turn(call, &mut turn, spec, clock, progress)
            .await?;
        Ok((turn.key.name, execution))
    }

    /// Runs `spec.code` (its `kernel` and `timeout` are already in `turn` and `clock`) on the
    /// kernel whose turn the caller holds, until the clock's deadline.
    pub async fn run_in_turn(
        &self,
        call: &Call,
        turn: &mut Turn,
        spec: RunSpec<'_>,
        clock: Clock,
        progress: Option<ProgressFn>,
    ) -> Result<Execution, Error> {
        let quota = self.quota(&turn.key.principal);
        if let Some(q) = &quota {
            q.check().await?;
        }
        let max_px = self.max_image_px(spec.max_image_px);
        let collector =
            Collector::new(self.settings.max_output_bytes, progress).with_image_fit(max_px);
        let cap = if spec.record {
            NOTEBOOK_OUTPUT_CAP_BYTES
        } else {
            0
        };
        let mut sink = Recorder::new(collector, cap);
        call.started();
        let replaced_dead = std::mem::take(&mut turn.replaced_dead);
        let generation = turn.lease.kernel.id().to_string();
        let outcome = match call.live() {
            Some(log) => {
                let mut tee = Tee {
                    inner: &mut sink,
                    log,
                };
                self.execute(call, turn, spec.code, clock, quota.as_ref(), &mut tee)
                    .await?
            }
            None => {
                self.execute(call, turn, spec.code, clock, quota.as_ref(), &mut sink)
                    .await?
            }
        };
        let (collector, nb_outputs) = sink.finish(outcome.execution_count);
        if outcome.status == ExecStatus::Ok {
            let code = spec.code.to_string();
            call.record(&turn.key.name, Record::Cell { generation, code });
        }
        let (mut outputs, truncated) = collector.finish();
        let names = OriginalNames::Run {
            kernel: &turn.key.name,
            count: outcome.execution_count,
        };
        self.save_originals(call, names, outputs.iter_mut().collect())
            .await;
        let note = run_note(&outcome, clock.timeout, replaced_dead, &quota, &outputs).await;
        Ok(Execution {
            status: outcome.status,
            execution_count: outcome.execution_count,
            started: clock.started,
            outputs,
            truncated,
            note,
            nb_outputs,
            ran: true,
        })
    }

    /// Sends the code to the kernel and waits for its outcome, stopping it at the deadline, on
    /// the caller's cancel, or when it writes past the disk quota.
    async fn execute(
        &self,
        call: &Call,
        turn: &Turn,
        code: &str,
        clock: Clock,
        quota: Option<&crate::quota::Quota>,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome, Error> {
        let left = clock
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        let kernel = &turn.lease.kernel;
        call.ran(code);
        let run = kernel.execute(code, true, left, &call.cancel, sink);
        Ok(match quota {
            Some(q) => tokio::select! {
                outcome = run => outcome?,
                _ = q.watch(kernel) => return Err(watch_stopped()),
            },
            None => run.await?,
        })
    }
}

/// `Quota::watch` never completes; this keeps the select arm typed without a panic.
fn watch_stopped() -> Error {
    Error::new(
        Status::Error,
        "the disk-quota watcher stopped unexpectedly; retry the call",
    )
}

/// The run's note: how it ended, the quota if it is now over, input() that cannot be answered.
async fn run_note(
    outcome: &ExecOutcome,
    timeout: Duration,
    replaced_dead: bool,
    quota: &Option<crate::quota::Quota>,
    outputs: &[OutputItem],
) -> Option<String> {
    let mut note = status_note(outcome, timeout, replaced_dead);
    if let Some(q) = quota
        && let Err(over) = q.check().await
    {
        note = Some(match note {
            Some(n) => format!("{n}; {over}"),
            None => over.to_string(),
        });
    }
    if outputs
        .iter()
        .any(|o| matches!(o, OutputItem::Error { ename, .. } if ename == STDIN_ERROR))
    {
        note = Some(match note {
            Some(n) => format!("{NO_INPUT}; {n}"),
            None => NO_INPUT.to_string(),
        });
    }
    note
}
