//! Executions: work that outlives the call that started it.
//!
//! Every run of execute_code, execute_cell and execute_notebook is an execution with an id (a
//! UUID v4), an owner, a kernel, its own cancel token, a live text log and, once it ends, its
//! outcome. The call that starts it waits up to its `wait`; when the work is not done by then,
//! the call answers `running` with the id and the work goes on in a task of its own, which no
//! request holds. `get_execution`, `cancel_execution` and `list_executions` are views of the
//! same record. Finished executions are kept for a bounded time and count per principal; an
//! id past that answers `not_found` saying it expired. Another principal's id answers exactly
//! like an unknown one.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::journal::{Continuity, Scope};
use super::live::{LiveLog, LiveText};
use super::{Call, Error, ExecuteCodeOutput, ExecuteNotebookOutput, Service, Status};
use crate::output::ProgressFn;

/// How long a finished execution's result is kept.
pub const KEEP_FINISHED: Duration = Duration::from_secs(3600);
/// Finished executions kept per principal (the oldest go first).
pub const KEEP_FINISHED_PER_PRINCIPAL: usize = 32;
/// Ids of expired executions remembered, to say "expired" rather than "unknown".
const EXPIRED_REMEMBERED: usize = 4096;

/// How an execution ended.
pub enum Outcome {
    /// execute_code and execute_cell.
    Code(ExecuteCodeOutput),
    /// execute_notebook.
    Notebook(ExecuteNotebookOutput),
    /// install_package.
    Install(crate::packages::Installed),
    /// The operation failed before or around the run (a bad path, a stale revision...).
    Failed(Error),
}

impl Outcome {
    /// The outcome of an execute_code or execute_cell run.
    pub fn of(result: Result<ExecuteCodeOutput, Error>) -> Outcome {
        match result {
            Ok(out) => Outcome::Code(out),
            Err(e) => Outcome::Failed(e),
        }
    }

    /// The status results carry (`ok`, `error`, `timeout`, ..., or the failure's status).
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Code(o) => o.status.as_str(),
            Outcome::Notebook(o) => o.status.as_str(),
            Outcome::Install(_) => "ok",
            Outcome::Failed(e) => e.status.as_str(),
        }
    }
}

/// Where an execution stands: running, or ended at an instant with its outcome.
#[derive(Clone)]
enum Phase {
    Running,
    Finished(Arc<Outcome>, Instant),
}

/// Progress of a notebook run, in cells.
#[derive(Debug, Clone, Copy, Default)]
pub struct CellProgress {
    pub done: u64,
    pub total: u64,
}

/// One execution.
pub struct Execution {
    pub id: String,
    pub owner: String,
    pub tool: &'static str,
    pub kernel: String,
    started: Instant,
    started_at: SystemTime,
    cancel: CancellationToken,
    /// Who stopped it on purpose (cancel_execution), said in its result.
    stopped_by: Mutex<Option<String>>,
    phase: watch::Sender<Phase>,
    pub live: LiveLog,
    cells: Mutex<CellProgress>,
    /// Set once the work took its kernel's turn (it is no longer queued).
    started_running: std::sync::atomic::AtomicBool,
    /// Every piece of code the work sent to its kernel, for its end record.
    code: super::CodeLog,
    /// Whether its call answered `running`, and whether it ended: whichever comes second writes
    /// the end record (`Audit::execution_end`). Std mutex, short sections.
    answered_and_ended: Mutex<(bool, bool)>,
    /// How the caller was authenticated, for that record.
    auth: crate::principal::Source,
}

impl Execution {
    /// Notes that the work took its kernel's turn.
    pub(super) fn mark_started(&self) {
        self.started_running
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub(super) fn has_started(&self) -> bool {
        self.started_running
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The outcome, once it ended.
    pub fn outcome(&self) -> Option<Arc<Outcome>> {
        match &*self.phase.borrow() {
            Phase::Running => None,
            Phase::Finished(o, _) => Some(Arc::clone(o)),
        }
    }

    /// When it ended.
    fn finished_at(&self) -> Option<Instant> {
        match &*self.phase.borrow() {
            Phase::Running => None,
            Phase::Finished(_, at) => Some(*at),
        }
    }

    /// Waits until it ends.
    pub async fn finished(&self) -> Arc<Outcome> {
        let mut rx = self.phase.subscribe();
        loop {
            if let Phase::Finished(o, _) = &*rx.borrow_and_update() {
                return Arc::clone(o);
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`; this cannot happen while we borrow it.
                return Arc::new(Outcome::Failed(Error::new(
                    Status::InternalError,
                    "the execution's record went away",
                )));
            }
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn started_wall(&self) -> SystemTime {
        self.started_at
    }

    /// The wall-clock time it ended, from its start's and the monotonic time between.
    pub fn finished_wall(&self) -> Option<SystemTime> {
        let at = self.finished_at()?;
        Some(self.started_at + at.duration_since(self.started))
    }

    pub fn started_unix_secs(&self) -> u64 {
        self.started_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    pub fn cells(&self) -> Option<CellProgress> {
        self.cells.lock().ok().map(|c| *c).filter(|c| c.total > 0)
    }

    pub fn stopped_by(&self) -> Option<String> {
        self.stopped_by.lock().ok()?.clone()
    }

    /// Stops the work on purpose: the same interrupt, then kill, as a timeout.
    pub fn cancel(&self, by: &str) {
        if let Ok(mut s) = self.stopped_by.lock() {
            s.get_or_insert_with(|| by.to_string());
        }
        self.cancel.cancel();
    }
}

/// Every execution of this process: running, and finished within the bounds.
#[derive(Default)]
pub struct Executions {
    /// Std mutex: map access only.
    all: Mutex<HashMap<String, Arc<Execution>>>,
    /// Ids that expired, with their owner, oldest first.
    expired: Mutex<VecDeque<(String, String)>>,
}

impl Executions {
    /// Adds a new execution, first dropping the finished ones past their bounds: the bounds
    /// hold for a principal who never polls or lists too.
    fn insert(&self, e: Arc<Execution>) {
        self.prune();
        if let Ok(mut all) = self.all.lock() {
            all.insert(e.id.clone(), e);
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut all) = self.all.lock() {
            all.remove(id);
        }
    }

    /// Drops finished executions past their time, and the oldest past the count per owner.
    fn prune(&self) {
        let Ok(mut all) = self.all.lock() else {
            return;
        };
        let mut finished: HashMap<String, Vec<(Instant, String)>> = HashMap::new();
        let mut gone = Vec::new();
        for (id, e) in all.iter() {
            let Some(at) = e.finished_at() else {
                continue;
            };
            if at.elapsed() > KEEP_FINISHED {
                gone.push((id.clone(), e.owner.clone()));
            } else {
                finished
                    .entry(e.owner.clone())
                    .or_default()
                    .push((at, id.clone()));
            }
        }
        for (owner, mut list) in finished {
            if list.len() > KEEP_FINISHED_PER_PRINCIPAL {
                list.sort();
                let extra = list.len() - KEEP_FINISHED_PER_PRINCIPAL;
                gone.extend(
                    list.into_iter()
                        .take(extra)
                        .map(|(_, id)| (id, owner.clone())),
                );
            }
        }
        for (id, _) in &gone {
            all.remove(id);
        }
        drop(all);
        if let Ok(mut expired) = self.expired.lock() {
            expired.extend(gone);
            while expired.len() > EXPIRED_REMEMBERED {
                expired.pop_front();
            }
        }
    }

    /// The owner's execution with this id. `on_lambda`: an id this process does not know may
    /// live in another execution environment, and the answer says so.
    pub fn get(&self, owner: &str, id: &str, on_lambda: bool) -> Result<Arc<Execution>, Error> {
        self.prune();
        let found = self
            .all
            .lock()
            .ok()
            .and_then(|all| all.get(id).cloned())
            .filter(|e| e.owner == owner);
        if let Some(e) = found {
            return Ok(e);
        }
        let expired = self
            .expired
            .lock()
            .is_ok_and(|x| x.iter().any(|(i, o)| i == id && o == owner));
        Err(if expired {
            Error::new(
                Status::NotFound,
                format!(
                    "execution {id} finished more than {} s ago or was one of more than {KEEP_FINISHED_PER_PRINCIPAL} finished ones, so its result has expired\nhint: outputs saved in notebooks stay there; run the code again for its output",
                    KEEP_FINISHED.as_secs()
                ),
            )
        } else if on_lambda {
            Error::new(
                Status::Elsewhere,
                format!(
                    "execution {id} is not in this execution environment: on Lambda an execution runs in the environment that started it, and this request was routed to another one (or that one was recycled, and the execution with it)\nhint: call get_execution again (the next request may reach it); list_executions lists the ones here; a notebook run saves each cell as it finishes, so read_notebook shows what ran"
                ),
            )
        } else {
            Error::new(
                Status::NotFound,
                format!("no execution {id} in this server\nhint: list_executions lists yours"),
            )
        })
    }

    /// Drops every execution of `owner`, running or not (single tenancy on Lambda: nothing of
    /// the previous principal stays). Running ones are stopped first.
    pub fn forget_owner(&self, owner: &str) -> usize {
        let Ok(mut all) = self.all.lock() else {
            return 0;
        };
        let before = all.len();
        all.retain(|_, e| {
            let keep = e.owner != owner;
            if !keep {
                e.cancel("the switch to another principal");
            }
            keep
        });
        before - all.len()
    }

    /// The owner's executions, newest first.
    pub fn list(&self, owner: &str) -> Vec<Arc<Execution>> {
        self.prune();
        let mut mine: Vec<Arc<Execution>> = self
            .all
            .lock()
            .map(|all| all.values().filter(|e| e.owner == owner).cloned().collect())
            .unwrap_or_default();
        mine.sort_by_key(|e| std::cmp::Reverse(e.started));
        mine
    }

    /// The owner's execution that holds `kernel`'s turn and runs, if any.
    pub fn running_on(&self, owner: &str, kernel: &str) -> Option<Arc<Execution>> {
        self.all.lock().ok().and_then(|all| {
            all.values()
                .find(|e| {
                    e.owner == owner
                        && e.kernel == kernel
                        && e.has_started()
                        && e.outcome().is_none()
                })
                .cloned()
        })
    }
}

/// What a call that started (or polls) an execution answers.
pub enum Answer {
    /// The work ended within the wait: its outcome, as the tool answers today.
    Done(Arc<Outcome>),
    /// The work goes on.
    Running(Arc<Execution>),
}

/// What to start: the tool, its kernel, how long the call waits, and the work.
pub struct Start {
    pub tool: &'static str,
    pub kernel: String,
    pub wait: Duration,
    /// The cells a notebook run has, for its progress.
    pub total_cells: Option<u64>,
}

impl Service {
    /// How long a call waits for its work: `wait` as asked (seconds, at most `--call-wait`), or
    /// `--call-wait`.
    pub fn call_wait(&self, wait: Option<f64>) -> Result<Duration, Error> {
        let max = self.settings.call_wait;
        match wait {
            None => Ok(max),
            Some(w) if w.is_finite() && w >= 0.0 && w <= max.as_secs_f64() => {
                Ok(Duration::from_secs_f64(w))
            }
            Some(w) => Err(Error::invalid(format!(
                "wait must be between 0 and {} seconds (the server's --call-wait), got {w}",
                max.as_secs()
            ))),
        }
    }

    /// What a run tool starts: its kernel (checked) and how long the call waits.
    pub fn start_for(
        &self,
        call: &Call,
        tool: &'static str,
        kernel: Option<&str>,
        wait: Option<f64>,
        total_cells: Option<u64>,
    ) -> Result<Start, Error> {
        Ok(Start {
            tool,
            kernel: self.key(call, kernel)?.name,
            wait: self.call_wait(wait)?,
            total_cells,
        })
    }

    /// Starts `work` as an execution owned by the caller and waits up to `start.wait` for it.
    /// While the call waits, the caller's cancel interrupts the work (as a call's cancel always
    /// did); once it has answered `running`, only `cancel_execution` (or the kernel tools) stop it.
    /// Work still queued behind another execution on its kernel when the wait ends is
    /// withdrawn, and the call answers `busy`, naming that execution; work queued behind the
    /// kernel's start goes on (its timeout covers the wait for the turn).
    pub async fn start_execution<W, F>(
        self: &Arc<Self>,
        call: &Call,
        start: Start,
        progress: Option<ProgressFn>,
        work: W,
    ) -> Result<Answer, Error>
    where
        W: FnOnce(Arc<Service>, Call, Option<ProgressFn>) -> F,
        F: Future<Output = Outcome> + Send + 'static,
    {
        let owner = call.principal.name().to_string();
        let deadline = tokio::time::Instant::now() + call.limit(start.wait)?;
        let execution = self.new_execution(call, start.tool, &start.kernel);
        if let Some(total) = start.total_cells {
            execution.set_total_cells(total);
        }
        // The work records its history events into a journal of its own, flushed when it
        // ends (the call may have answered long before); it writes the files through only if
        // its call answered `running` first (see `spawn_execution`).
        let scope = Scope {
            files: false,
            writes: true,
            kernel: None,
        };
        let continuity = self.before_call(&owner, scope).await;
        let background = call
            .detached(execution.cancel.clone())
            .with_journal(continuity.journal.clone())
            .with_live(Arc::clone(&execution));
        let (progress, client) = tee_progress(&execution, progress);
        let task = work(Arc::clone(self), background, Some(progress));
        self.spawn_execution(Arc::clone(&execution), continuity, task);
        let answer = tokio::select! {
            outcome = execution.finished() => Answer::Done(outcome),
            _ = tokio::time::sleep_until(deadline) => {
                if self.queued_behind_another(&execution) {
                    if let Ok(mut c) = client.lock() {
                        c.take();
                    }
                    return self.withdraw(&execution).await;
                }
                Answer::Running(Arc::clone(&execution))
            }
            _ = call.cancel.cancelled() => {
                execution.cancel("the client");
                Answer::Done(execution.finished().await)
            }
        };
        // From here on, nothing of the work is sent on this call's progress token.
        if let Ok(mut c) = client.lock() {
            c.take();
        }
        match &answer {
            // Nobody will ask for it again: the answer carries it.
            Answer::Done(_) => self.executions.remove(&execution.id),
            Answer::Running(e) => {
                if e.note(|s| s.0 = true)
                    && let Some(outcome) = e.outcome()
                {
                    e.record_end(&self.audit, &outcome);
                }
            }
        }
        Ok(answer)
    }

    /// Whether the work still waits for its kernel's turn behind another execution of the
    /// caller's (rather than behind the kernel's start, which it will soon follow).
    fn queued_behind_another(&self, execution: &Execution) -> bool {
        !execution.has_started()
            && self
                .executions
                .running_on(&execution.owner, &execution.kernel)
                .is_some_and(|other| other.id != execution.id)
    }

    /// The answer of a call whose work was still waiting for the kernel's turn when its wait
    /// ended: the work is withdrawn (nothing queues past a caller's wait) and the call answers
    /// `busy`, naming what holds the kernel. Work that took the turn meanwhile is answered as
    /// it went.
    async fn withdraw(&self, execution: &Arc<Execution>) -> Result<Answer, Error> {
        execution.cancel.cancel();
        let outcome = execution.finished().await;
        self.executions.remove(&execution.id);
        if execution.has_started() {
            return Ok(Answer::Done(outcome));
        }
        let holder = self
            .executions
            .running_on(&execution.owner, &execution.kernel)
            .filter(|other| other.id != execution.id);
        let kernel = &execution.kernel;
        let message = match holder {
            Some(h) => format!(
                "kernel {kernel:?} is running execution {} ({}, started {:.0} s ago), so this did not run\nhint: get_execution with that id waits for it; cancel_execution stops it; another kernel name runs in parallel",
                h.id,
                h.tool,
                h.elapsed().as_secs_f64()
            ),
            None => format!(
                "kernel {kernel:?} stayed busy with an earlier call (or was still starting) for the whole wait, so this did not run\nhint: call again with a longer wait; interrupt_kernel stops the running cell; another kernel name runs in parallel"
            ),
        };
        Err(Error::new(Status::Busy, message))
    }

    fn new_execution(&self, call: &Call, tool: &'static str, kernel: &str) -> Arc<Execution> {
        let owner = call.principal.name();
        let (phase, _) = watch::channel(Phase::Running);
        let execution = Arc::new(Execution {
            id: uuid::Uuid::new_v4().to_string(),
            owner: owner.to_string(),
            tool,
            kernel: kernel.to_string(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            cancel: CancellationToken::new(),
            stopped_by: Mutex::new(None),
            phase,
            live: LiveLog::new(self.settings.max_output_bytes),
            cells: Mutex::new(CellProgress::default()),
            started_running: Default::default(),
            code: Default::default(),
            answered_and_ended: Mutex::new((false, false)),
            auth: call.principal.source(),
        });
        self.executions.insert(Arc::clone(&execution));
        execution
    }

    /// Runs the work in a task of its own and records its outcome when it ends.
    fn spawn_execution(
        &self,
        execution: Arc<Execution>,
        continuity: Continuity,
        task: impl Future<Output = Outcome> + Send + 'static,
    ) {
        let audit = Arc::clone(&self.audit);
        tokio::spawn(async move {
            let mut outcome = task.await;
            // A call that has not answered yet writes the files through in its own "after",
            // which runs once it answers, past every change the work made: walking the
            // directory here too would do the same work twice.
            let continuity = if execution.answered_running() {
                continuity
            } else {
                continuity.records_only()
            };
            let (report, _) = continuity.after().await;
            if let Some(text) = report.text() {
                tracing::info!(execution = %execution.id, report = %text, "workspace after an execution");
            }
            if let Some(by) = execution.stopped_by() {
                note_stop(&mut outcome, &by);
            }
            let outcome = Arc::new(outcome);
            let ended = Phase::Finished(Arc::clone(&outcome), Instant::now());
            execution.phase.send_replace(ended);
            if execution.note(|s| s.1 = true) {
                execution.record_end(&audit, &outcome);
            }
        });
    }

    /// The caller's execution `id`, after waiting up to `wait` for it to end.
    pub async fn get_execution(
        &self,
        call: &Call,
        id: &str,
        wait: Duration,
    ) -> Result<Arc<Execution>, Error> {
        let on_lambda = self.settings.lambda.is_some();
        let execution = self.executions.get(call.principal.name(), id, on_lambda)?;
        let wait = call.limit(wait)?;
        tokio::select! {
            _ = execution.finished() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = call.cancel.cancelled() => {}
        }
        Ok(execution)
    }

    /// Stops the caller's execution `id` and waits for its result (the interrupt, then the
    /// kill, take at most a few seconds).
    pub async fn cancel_execution(
        &self,
        call: &Call,
        id: &str,
        by: &str,
    ) -> Result<Arc<Execution>, Error> {
        let on_lambda = self.settings.lambda.is_some();
        let execution = self.executions.get(call.principal.name(), id, on_lambda)?;
        if execution.outcome().is_none() {
            execution.cancel(by);
            let limit = call.limit(self.settings.wait_timeout)?;
            let _ = tokio::time::timeout(limit, execution.finished()).await;
        }
        Ok(execution)
    }

    /// The caller's executions, newest first.
    pub fn list_executions(&self, call: &Call) -> Vec<Arc<Execution>> {
        self.executions.list(call.principal.name())
    }
}

/// Says in the result who stopped the work, when someone did on purpose.
fn note_stop(outcome: &mut Outcome, by: &str) {
    let said = format!("stopped by {by}");
    let add = |note: &mut Option<String>| {
        *note = Some(match note.take() {
            Some(n) => format!("{said}: {n}"),
            None => said.clone(),
        });
    };
    match outcome {
        Outcome::Code(o) => add(&mut o.note),
        Outcome::Notebook(o) => {
            if let Some(last) = o.cells.last_mut() {
                add(&mut last.note);
            }
        }
        // An install that ended despite the stop has nothing to add.
        Outcome::Install(_) => {}
        Outcome::Failed(e) => e.message = format!("{said}: {}", e.message),
    }
}

/// The progress function the work gets: it counts a notebook's cells on the execution, and
/// forwards to the caller's progress while the call waits (the second value: emptied when the
/// call answers).
fn tee_progress(
    execution: &Arc<Execution>,
    client: Option<ProgressFn>,
) -> (ProgressFn, Arc<Mutex<Option<ProgressFn>>>) {
    let client = Arc::new(Mutex::new(client));
    let forward = Arc::clone(&client);
    let execution = Arc::clone(execution);
    let progress: ProgressFn = Box::new(move |n, message| {
        if execution.tool == "execute_notebook"
            && let Ok(mut c) = execution.cells.lock()
        {
            c.done = n;
        }
        if let Ok(mut c) = forward.lock()
            && let Some(p) = c.as_mut()
        {
            p(n, message);
        }
    });
    (progress, client)
}

impl Execution {
    /// Notes that the call answered `running` or that the work ended; true when both now hold
    /// (the second of the two writes the end record).
    fn note(&self, set: impl FnOnce(&mut (bool, bool))) -> bool {
        self.answered_and_ended.lock().is_ok_and(|mut s| {
            set(&mut s);
            s.0 && s.1
        })
    }

    /// Whether its call has answered `running`.
    fn answered_running(&self) -> bool {
        self.answered_and_ended.lock().is_ok_and(|s| s.0)
    }

    /// Notes a piece of code the work sent to its kernel.
    pub(super) fn ran(&self, code: &str) {
        self.code.push(code);
    }

    /// The audit record of an execution that outlived its call.
    fn record_end(&self, audit: &crate::audit::Audit, outcome: &Outcome) {
        let pieces = self.code.take();
        let (code_sha256, code) = audit.code_fields(&pieces);
        let status = outcome.status();
        audit.execution_end(&crate::audit::ExecutionEnd {
            principal: &self.owner,
            auth: Some(self.auth),
            execution_id: &self.id,
            tool: self.tool,
            kernel: Some(&self.kernel),
            code_sha256,
            code_count: pieces.len(),
            code,
            status,
            // From its start to its end, whichever side writes the record.
            duration_ms: self
                .finished_at()
                .map_or_else(|| self.elapsed(), |at| at.duration_since(self.started))
                .as_millis() as u64,
        });
    }

    /// Sets the number of cells a notebook run has.
    pub fn set_total_cells(&self, total: u64) {
        if let Ok(mut c) = self.cells.lock() {
            c.total = total;
        }
    }

    /// The live text new since the caller's last read, or all of it again.
    pub fn read(&self, all: bool) -> LiveText {
        if all {
            self.live.read_all()
        } else {
            self.live.read_new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::ExecStatus;

    /// An execution of `owner` that ended at `at`.
    fn ended(owner: &str, at: Instant) -> Arc<Execution> {
        let outcome = Arc::new(Outcome::Failed(Error::invalid("test")));
        let (phase, _) = watch::channel(Phase::Finished(outcome, at));
        Arc::new(Execution {
            id: uuid::Uuid::new_v4().to_string(),
            owner: owner.into(),
            tool: "execute_code",
            kernel: "default".into(),
            started: at,
            started_at: SystemTime::now(),
            cancel: CancellationToken::new(),
            stopped_by: Mutex::new(None),
            phase,
            live: LiveLog::new(1024),
            cells: Mutex::new(CellProgress::default()),
            started_running: Default::default(),
            code: Default::default(),
            answered_and_ended: Mutex::new((true, true)),
            auth: crate::principal::Principal::local().source(),
        })
    }

    #[test]
    fn finished_results_are_kept_to_the_count_then_expire_for_their_owner_only() {
        let all = Executions::default();
        let start = Instant::now();
        let ids: Vec<String> = (0..KEEP_FINISHED_PER_PRINCIPAL + 2)
            .map(|n| {
                let e = ended("alice", start + Duration::from_millis(n as u64));
                all.insert(Arc::clone(&e));
                e.id.clone()
            })
            .collect();
        // Pruned at the next insert, whoever's it is.
        all.insert(ended("bob", start));
        assert_eq!(all.list("alice").len(), KEEP_FINISHED_PER_PRINCIPAL);
        for old in &ids[..2] {
            let e = all.get("alice", old, false).err().unwrap();
            assert_eq!(e.status, Status::NotFound);
            assert!(e.message.contains("expired"), "{}", e.message);
            // To anyone else, the same id is simply unknown.
            let other = all.get("bob", old, false).err().unwrap();
            assert!(!other.message.contains("expired"), "{}", other.message);
        }
        assert!(all.get("alice", &ids[2], false).is_ok());
        let unknown = all.get("alice", "nope", true).err().unwrap();
        assert_eq!(unknown.status, Status::Elsewhere, "on Lambda");
    }

    #[test]
    fn a_status_name_is_the_name_results_carry() {
        use ExecStatus::*;
        for s in [Ok, Error, Timeout, KernelDied, Cancelled, Running] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str(), "{s:?}");
        }
    }
}
