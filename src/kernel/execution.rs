//! One execution: a cell's `execute_request` sent, then followed to its end.
//!
//! The execution is complete when both the shell `execute_reply` and the iopub `idle` status for
//! its msg_id arrived. Meanwhile it folds each routed message into its [`Progress`] and the
//! sink, and reacts to the timers: the timeout (interrupt, then kill after [`INTERRUPT_GRACE`]),
//! the caller's cancel (the same), and a periodic tick that lets the sink report progress and
//! notices an `idle` that was lost, or an output channel that is gone.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jupyter_protocol::{ExecuteRequest, JupyterMessage, JupyterMessageContent, ReplyStatus, Stdio};
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::reader::{Channel, Routed};
use super::{
    Error, ExecOutcome, ExecStatus, IDLE_AFTER_REPLY_GRACE, INTERRUPT_GRACE, IOPUB_SILENT_GRACE,
    Kernel, KernelOutput, OutputSink, StopReason, TICK,
};

/// Where a running execution stands.
struct Progress {
    /// When the wait acts next: the timeout, then (once stopping) the interrupt's grace.
    deadline: tokio::time::Instant,
    /// How the execution ends, once a timeout or a cancel interrupted it.
    stopping: Option<ExecStatus>,
    /// The `execute_reply`'s status and execution count, once it came.
    reply: Option<(ReplyStatus, u64)>,
    /// Whether the `idle` status came.
    idle: bool,
    /// When the last message of this cell, or of anyone (`Routes::seen` moved), was read.
    last_message: Instant,
    /// `Routes::seen` at the last tick.
    seen: u64,
    /// Whether anything of this cell came on iopub (its busy status comes first).
    iopub_heard: bool,
}

/// What the wait does after one event.
enum Next {
    /// Keep waiting for the reply and the `idle` status.
    Wait,
    /// Finish as if the `idle` came (it was dropped).
    Done,
    /// End now with this outcome.
    End(ExecOutcome),
}

impl Kernel {
    /// Runs `code`, streaming outputs into `sink`.
    ///
    /// On `timeout` the kernel is interrupted; if it does not finish within [`INTERRUPT_GRACE`]
    /// it is killed. `cancel` (the client gave up) interrupts the kernel the same way.
    pub async fn execute(
        &self,
        code: &str,
        store_history: bool,
        timeout: Duration,
        cancel: &CancellationToken,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome, Error> {
        if !self.is_alive() {
            return Ok(self.gone());
        }
        let request = ExecuteRequest {
            code: code.to_string(),
            silent: false,
            store_history,
            user_expressions: None,
            allow_stdin: false,
            stop_on_error: true,
        };
        let msg = JupyterMessage::new(request, None);
        let (_guard, mut rx) = self.routes.register(&msg.header.msg_id);
        if let Err(e) = self.shell.lock().await.send(msg).await {
            // A send fails when the kernel's sockets are gone: report a death as one.
            tokio::time::timeout(Duration::from_millis(500), self.exited())
                .await
                .ok();
            if !self.is_alive() {
                return Ok(self.gone());
            }
            return Err(e.into());
        }

        let mut p = Progress {
            deadline: tokio::time::Instant::now() + timeout,
            stopping: None,
            reply: None,
            idle: false,
            last_message: Instant::now(),
            seen: self.routes.seen(),
            iopub_heard: false,
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while p.reply.is_none() || !p.idle {
            let next = tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some((channel, msg)) => {
                        p.last_message = Instant::now();
                        p.iopub_heard |= matches!(channel, Channel::IoPub);
                        handle_message(channel, msg, sink, &mut p.reply, &mut p.idle);
                        Next::Wait
                    }
                    None => Next::End(self.gone()),
                },
                _ = self.group.exited.cancelled() => Next::End(self.died(&mut rx, sink, &mut p)),
                _ = sleep_until(p.deadline) => self.deadline_passed(&mut p).await,
                _ = cancel.cancelled(), if p.stopping.is_none() => {
                    self.begin_stop(&mut p, ExecStatus::Cancelled).await;
                    Next::Wait
                }
                _ = tick.tick() => {
                    sink.tick();
                    self.ticked(&mut p)
                }
            };
            match next {
                Next::Wait => {}
                Next::Done => break,
                Next::End(outcome) => return Ok(outcome),
            }
        }
        Ok(self.finish(p, store_history))
    }

    /// The kernel process exited during the execution: keeps whatever it said before it died.
    fn died(
        &self,
        rx: &mut mpsc::Receiver<Routed>,
        sink: &mut dyn OutputSink,
        p: &mut Progress,
    ) -> ExecOutcome {
        while let Ok((channel, msg)) = rx.try_recv() {
            handle_message(channel, msg, sink, &mut p.reply, &mut p.idle);
        }
        match p.stopping {
            Some(status) => killed(status),
            None => self.gone(),
        }
    }

    /// The deadline passed: the timeout interrupts the kernel, the interrupt's grace kills it.
    async fn deadline_passed(&self, p: &mut Progress) -> Next {
        match p.stopping {
            None => {
                self.begin_stop(p, ExecStatus::Timeout).await;
                Next::Wait
            }
            Some(status) => {
                tracing::warn!(kernel_id = %self.id, "kernel ignored the interrupt; killing it");
                self.kill();
                Next::End(killed(status))
            }
        }
    }

    /// Interrupts the cell, which then ends as `status` (if it does not finish within the
    /// grace, the kernel is killed).
    async fn begin_stop(&self, p: &mut Progress, status: ExecStatus) {
        p.stopping = Some(status);
        p.deadline = tokio::time::Instant::now() + INTERRUPT_GRACE;
        self.interrupt().await;
    }

    /// A tick, once the sink had its own: after the reply, a long silence means the `idle` was
    /// dropped (done), or, when nothing of the cell ever came on iopub, that the kernel's
    /// output channel is gone (the kernel is stopped).
    fn ticked(&self, p: &mut Progress) -> Next {
        if self.routes.seen() != p.seen {
            p.seen = self.routes.seen();
            p.last_message = Instant::now();
        }
        if p.reply.is_none() || p.last_message.elapsed() <= IDLE_AFTER_REPLY_GRACE {
            return Next::Wait;
        }
        if !p.iopub_heard {
            if p.last_message.elapsed() <= IOPUB_SILENT_GRACE {
                // Most likely a late iopub on a loaded machine: wait longer before calling the
                // channel gone (that costs the kernel).
                return Next::Wait;
            }
            // Not a dropped idle: the channel is gone, and so is every output of this and
            // later cells. Stop the kernel; the next call gets a new one.
            tracing::warn!(kernel_id = %self.id, "a cell's reply came with nothing on iopub: the kernel's output channel is gone; stopping the kernel");
            self.stop(StopReason::OutputLost);
            return Next::End(ExecOutcome {
                status: ExecStatus::KernelDied,
                execution_count: p.reply.as_ref().map(|(_, count)| *count),
                killed: true,
                stopped_by: Some(StopReason::OutputLost),
                exit_status: None,
            });
        }
        tracing::warn!(kernel_id = %self.id, "no idle status after the reply; assuming it was dropped");
        Next::Done
    }

    /// The outcome of an execution that ran to its end (or was interrupted and then ended).
    fn finish(&self, p: Progress, store_history: bool) -> ExecOutcome {
        let (reply_status, count) = p.reply.unwrap_or((ReplyStatus::Error, 0));
        if store_history {
            self.execution_count.store(count, Ordering::Relaxed);
        }
        let status = match (p.stopping, reply_status) {
            (Some(s), _) => s,
            (None, ReplyStatus::Ok) => ExecStatus::Ok,
            (None, _) => ExecStatus::Error,
        };
        ExecOutcome {
            status,
            execution_count: Some(count),
            killed: false,
            stopped_by: None,
            exit_status: None,
        }
    }
}

/// The outcome of an execution that was stopping (`status`) when the kernel was killed or died.
fn killed(status: ExecStatus) -> ExecOutcome {
    ExecOutcome {
        status,
        execution_count: None,
        killed: true,
        stopped_by: None,
        exit_status: None,
    }
}

/// Folds one routed message into the execution's state and the sink.
fn handle_message(
    channel: Channel,
    msg: JupyterMessage,
    sink: &mut dyn OutputSink,
    reply: &mut Option<(ReplyStatus, u64)>,
    idle: &mut bool,
) {
    let bundle = |media: &jupyter_protocol::Media| match serde_json::to_value(media) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    match (channel, msg.content) {
        (Channel::Shell, JupyterMessageContent::ExecuteReply(r)) => {
            *reply = Some((r.status, r.execution_count.value() as u64));
        }
        (Channel::Shell, _) => {}
        (Channel::IoPub, content) => match content {
            JupyterMessageContent::Status(s)
                if s.execution_state == jupyter_protocol::ExecutionState::Idle =>
            {
                *idle = true;
            }
            JupyterMessageContent::StreamContent(s) => sink.push(KernelOutput::Stream {
                stderr: matches!(s.name, Stdio::Stderr),
                text: s.text,
            }),
            JupyterMessageContent::ExecuteResult(r) => sink.push(KernelOutput::ExecuteResult {
                data: bundle(&r.data),
                metadata: r.metadata,
            }),
            JupyterMessageContent::DisplayData(d) => sink.push(KernelOutput::DisplayData {
                data: bundle(&d.data),
                metadata: d.metadata,
                display_id: d.transient.and_then(|t| t.display_id),
            }),
            JupyterMessageContent::UpdateDisplayData(d) => {
                if let Some(display_id) = d.transient.display_id {
                    sink.push(KernelOutput::UpdateDisplay {
                        data: bundle(&d.data),
                        metadata: d.metadata,
                        display_id,
                    })
                }
            }
            JupyterMessageContent::ClearOutput(c) => {
                sink.push(KernelOutput::ClearOutput { wait: c.wait })
            }
            JupyterMessageContent::ErrorOutput(e) => sink.push(KernelOutput::Error {
                ename: e.ename,
                evalue: e.evalue,
                traceback: e.traceback,
            }),
            _ => {}
        },
    }
}
