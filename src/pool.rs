//! The kernel pool: (principal, kernel name) -> kernel.
//!
//! Kernel identity is never the MCP session: remote clients open a new session per call, so state
//! must survive them. The pool keeps one warm spare kernel so the first call on a new name does
//! not wait for Python start-up. The spare is principal-keyed: a kernel's Landlock ruleset, fixed
//! before exec, makes its principal's directory (and no other) writable, so a spare can only
//! serve the principal it was started for. The pool keeps a spare for the principal that last
//! started a kernel (at start-up, `PoolConfig::first_spare_for`, if any) and never hands one principal's
//! spare to another. It refuses more than `max_kernels` names, shuts idle kernels down,
//! and replaces a dead kernel on its next call. Calls on one kernel run one at a time in arrival
//! order (tokio's `Mutex` queues waiters fairly); calls on different kernels run in parallel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::kernel::{self, Kernel, KernelInfo, LaunchConfig, StopReason};

/// Longest kernel name accepted.
const MAX_KERNEL_NAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "kernel limit reached: {max} kernels are running ({names}).\nhint: reuse one of them, call shutdown_kernel on one you no longer need, or start the server with a higher --max-kernels"
    )]
    TooManyKernels { max: usize, names: String },
    #[error(
        "per-principal kernel limit reached: you have {max} kernels ({names}).\nhint: reuse one of them, call shutdown_kernel on one you no longer need, or ask for a higher --max-kernels-per-principal"
    )]
    TooManyKernelsForPrincipal { max: usize, names: String },
    #[error(
        "invalid kernel name {0:?}: use 1 to 64 characters of letters, digits, '-', '_' and '.'"
    )]
    InvalidName(String),
    #[error("no kernel named {0:?} is running; list_kernels shows the running ones")]
    NoSuchKernel(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The kernel this call queued for was stopped on purpose while it waited for its turn; the
    /// call did not run (running it in the fresh kernel would hide that its state is gone).
    #[error("{}; this call waited for its turn and did not run\nhint: the kernel's state is gone: run what the code needs first, then call again", stop_reason_text(*.0))]
    StoppedWhileQueued(StopReason),
    #[error(transparent)]
    Kernel(#[from] kernel::Error),
}

/// What happened to a kernel that was stopped on purpose, for messages.
pub fn stop_reason_text(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Restart => "restart_kernel restarted the kernel",
        StopReason::Shutdown => "shutdown_kernel stopped the kernel",
        StopReason::Idle => "the kernel was shut down as idle",
        StopReason::ServerShutdown => "the server stopped the kernel to shut down",
        StopReason::OutputLost => {
            "the kernel's output channel went silent (this cell's reply came, but no status or output), so its outputs were lost and the server stopped the kernel"
        }
    }
}

/// Who a kernel belongs to and what it is called.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelKey {
    pub principal: String,
    pub name: String,
}

impl KernelKey {
    pub fn new(principal: &str, name: &str) -> Result<KernelKey, Error> {
        let valid = !name.is_empty()
            && name.len() <= MAX_KERNEL_NAME_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(Error::InvalidName(name.chars().take(80).collect()));
        }
        Ok(KernelKey {
            principal: principal.to_string(),
            name: name.to_string(),
        })
    }
}

pub use crate::principal::PrincipalDirs;

/// Kernel state as reported to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KernelState {
    NotStarted,
    Starting,
    Idle,
    Busy,
    Dead,
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub launch: LaunchConfig,
    pub max_kernels: usize,
    /// Kernels one principal may have (at most `max_kernels`).
    pub max_kernels_per_principal: usize,
    pub idle_timeout: Option<Duration>,
    /// Keep a warm spare kernel.
    pub spare: bool,
    /// The principal the first spare is started for (then: whoever last started a kernel);
    /// none where no principal is known before the first call (an authenticated server).
    pub first_spare_for: Option<String>,
}

/// One kernel name's place in the pool.
struct Slot {
    key: KernelKey,
    /// Serializes calls on this kernel in arrival order. Held for a whole call.
    queue: Arc<tokio::sync::Mutex<()>>,
    /// The current kernel; std mutex, never held across an await.
    kernel: Mutex<Option<Arc<Kernel>>>,
    starting: AtomicBool,
    last_used: Mutex<Instant>,
    /// Counts deliberate stops (restart, shutdown, idle). A call notes it when it joins the
    /// queue; if it changed by the time the call's turn comes, the kernel it queued for is gone.
    generation: AtomicU64,
    /// Why the last deliberate stop happened; std mutex, never held across an await.
    last_stop: Mutex<Option<StopReason>>,
}

impl Slot {
    fn current(&self) -> Option<Arc<Kernel>> {
        self.kernel.lock().ok().and_then(|k| k.clone())
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    fn stop(&self, reason: StopReason) {
        if let Ok(mut last) = self.last_stop.lock() {
            *last = Some(reason);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(k) = self.kernel.lock().ok().and_then(|mut k| k.take()) {
            k.stop(reason);
        }
    }

    /// The reason for the stops since `generation`, if there were any.
    fn stopped_since(&self, generation: u64) -> Option<StopReason> {
        if self.generation.load(Ordering::Acquire) == generation {
            return None;
        }
        let last = self.last_stop.lock().ok().and_then(|r| *r);
        Some(last.unwrap_or(StopReason::Restart))
    }
}

/// Marks a slot as starting a kernel for as long as it lives, so a start abandoned midway (the
/// caller timed out or went away) does not leave the slot reporting `starting` forever.
struct Starting<'a>(&'a AtomicBool);

impl<'a> Starting<'a> {
    fn new(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        Starting(flag)
    }
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Removes a slot that holds no kernel from the pool when dropped, so a start that failed or was
/// abandoned midway does not keep a place under the kernel limit. Harmless once a kernel is in.
struct ForgetIfEmpty<'a> {
    pool: &'a Pool,
    key: &'a KernelKey,
    slot: &'a Arc<Slot>,
}

impl Drop for ForgetIfEmpty<'_> {
    fn drop(&mut self) {
        self.pool.forget_if_empty(self.key, self.slot);
    }
}

/// Exclusive use of one kernel for one call; the next call on that name waits until it drops.
pub struct Lease {
    pub kernel: Arc<Kernel>,
    /// True when the previous kernel of this name had died and this one replaced it.
    pub replaced_dead: bool,
    slot: Arc<Slot>,
    _turn: OwnedMutexGuard<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.touch();
    }
}

pub struct Pool {
    cfg: PoolConfig,
    dirs: Box<dyn Fn(&str) -> PrincipalDirs + Send + Sync>,
    /// Slots by key; std mutex, held only for map operations.
    slots: Mutex<HashMap<KernelKey, Arc<Slot>>>,
    /// The warm spare and the principal it was started for.
    spare: Mutex<Option<(String, Kernel)>>,
    refilling: AtomicBool,
    /// Counts `retire_all` calls: a spare whose start began before one is not kept.
    spare_epoch: AtomicU64,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// A status snapshot of one kernel name.
#[derive(Debug, Clone)]
pub struct Status {
    pub name: String,
    pub state: KernelState,
    pub info: Option<KernelInfo>,
}

impl Pool {
    /// Creates the pool, starts the spare and the idle reaper. `stop` ends both.
    pub fn new(
        cfg: PoolConfig,
        dirs: impl Fn(&str) -> PrincipalDirs + Send + Sync + 'static,
        stop: CancellationToken,
    ) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            cfg,
            dirs: Box::new(dirs),
            slots: Mutex::new(HashMap::new()),
            spare: Mutex::new(None),
            refilling: AtomicBool::new(false),
            spare_epoch: AtomicU64::new(0),
            stop,
            tasks: TaskTracker::new(),
        });
        if let Some(first) = pool.cfg.first_spare_for.clone() {
            pool.refill_spare(&first);
        }
        if let Some(idle) = pool.cfg.idle_timeout {
            let weak = Arc::downgrade(&pool);
            let stop = pool.stop.clone();
            pool.tasks.spawn(async move {
                let period = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
                let mut interval = tokio::time::interval(period);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = interval.tick() => match weak.upgrade() {
                            Some(pool) => pool.reap_idle(idle),
                            None => break,
                        },
                    }
                }
            });
        }
        pool
    }

    /// Waits until the warm spare is ready; false at once when none is starting (none was
    /// asked for, or its start failed) and after `timeout`. For start-up and tests.
    pub async fn wait_spare_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.spare.lock().map(|s| s.is_some()).unwrap_or(false) {
                return true;
            }
            if !self.refilling.load(Ordering::Acquire) || Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a spare for `principal` in the background (one start at a time; a spare for
    /// another principal already warm is replaced).
    fn refill_spare(self: &Arc<Self>, principal: &str) {
        if !self.cfg.spare
            || self.stop.is_cancelled()
            || self.refilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let pool = Arc::clone(self);
        let principal = principal.to_string();
        let epoch = self.spare_epoch.load(Ordering::Acquire);
        self.tasks.spawn(async move {
            let dirs = (pool.dirs)(&principal);
            let started = tokio::select! {
                _ = pool.stop.cancelled() => None,
                k = Kernel::start(&pool.cfg.launch, &dirs.home, &dirs.packages) => Some(k),
            };
            let retired = pool.spare_epoch.load(Ordering::Acquire) != epoch;
            match started {
                // Started for a tenant that is gone (`retire_all`): dropped, so killed.
                Some(Ok(_)) if retired => {}
                Some(Ok(kernel)) if !pool.stop.is_cancelled() => {
                    if let Ok(mut spare) = pool.spare.lock() {
                        *spare = Some((principal, kernel));
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "could not start the warm spare kernel"),
                _ => {}
            }
            pool.refilling.store(false, Ordering::Release);
        });
    }

    /// The spare, if it was started for `principal`; a spare for anyone else stays unused
    /// (its Landlock rules name the other principal's directory) and is replaced by one for
    /// `principal`, the most recent to start a kernel.
    fn take_spare(self: &Arc<Self>, principal: &str) -> Option<Kernel> {
        let taken = self.spare.lock().ok()?.take();
        // Another principal's spare is dropped (killed) here, outside the lock.
        let spare = match taken {
            Some((owner, kernel)) if owner == principal => Some(kernel),
            _ => None,
        };
        self.refill_spare(principal);
        spare.filter(|k| k.is_alive())
    }

    fn slot(&self, key: &KernelKey, create: bool) -> Result<Option<Arc<Slot>>, Error> {
        if self.stop.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let mut slots = self.slots.lock().map_err(|_| Error::ShuttingDown)?;
        if let Some(slot) = slots.get(key) {
            return Ok(Some(Arc::clone(slot)));
        }
        if !create {
            return Ok(None);
        }
        // Only the caller's own kernel names: others' are not theirs to see.
        let mut names: Vec<&str> = slots
            .keys()
            .filter(|k| k.principal == key.principal)
            .map(|k| k.name.as_str())
            .collect();
        names.sort_unstable();
        if names.len() >= self.cfg.max_kernels_per_principal {
            return Err(Error::TooManyKernelsForPrincipal {
                max: self.cfg.max_kernels_per_principal,
                names: names.join(", "),
            });
        }
        if slots.len() >= self.cfg.max_kernels {
            return Err(Error::TooManyKernels {
                max: self.cfg.max_kernels,
                names: names.join(", "),
            });
        }
        let slot = Arc::new(Slot {
            key: key.clone(),
            queue: Arc::new(tokio::sync::Mutex::new(())),
            kernel: Mutex::new(None),
            starting: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
            generation: AtomicU64::new(0),
            last_stop: Mutex::new(None),
        });
        slots.insert(key.clone(), Arc::clone(&slot));
        Ok(Some(slot))
    }

    /// Waits for this kernel's turn, starting (or replacing a dead) kernel as needed.
    ///
    /// A kernel stopped on purpose (restart, shutdown) while the call waited fails the call with
    /// `StoppedWhileQueued` instead of running it in a fresh kernel that lacks the state it expects.
    pub async fn lease(self: &Arc<Self>, key: &KernelKey) -> Result<Lease, Error> {
        loop {
            let Some(slot) = self.slot(key, true)? else {
                return Err(Error::ShuttingDown);
            };
            let generation = slot.generation.load(Ordering::Acquire);
            let turn = Arc::clone(&slot.queue).lock_owned().await;
            if let Some(reason) = slot.stopped_since(generation) {
                return Err(Error::StoppedWhileQueued(reason));
            }
            // The slot was forgotten while this call waited (a start before it failed or was
            // abandoned): a kernel started in it now would be invisible and uncounted. Start over.
            if !self.holds(key, &slot) {
                continue;
            }
            slot.touch();
            let current = slot.current();
            let replaced_dead = current.as_ref().is_some_and(|k| !k.is_alive());
            let kernel = match current.filter(|k| k.is_alive()) {
                Some(k) => k,
                None => {
                    // If this future is dropped mid-start (the caller timed out or went away),
                    // the guard frees the name's place under the kernel limit.
                    let forget = ForgetIfEmpty {
                        pool: self,
                        key,
                        slot: &slot,
                    };
                    let started = {
                        let _starting = Starting::new(&slot.starting);
                        self.fresh_kernel(&key.principal).await
                    };
                    let kernel = Arc::new(started?);
                    if let Ok(mut k) = slot.kernel.lock() {
                        *k = Some(Arc::clone(&kernel));
                    }
                    drop(forget);
                    kernel
                }
            };
            return Ok(Lease {
                kernel,
                replaced_dead,
                slot,
                _turn: turn,
            });
        }
    }

    /// Like `lease`, but only for a kernel that is running: `None` if the name has none (a
    /// read-only tool has nothing to show then, and must not start one).
    pub async fn lease_running(self: &Arc<Self>, key: &KernelKey) -> Result<Option<Lease>, Error> {
        let Some(slot) = self.slot(key, false)? else {
            return Ok(None);
        };
        let turn = Arc::clone(&slot.queue).lock_owned().await;
        let kernel = slot.current().filter(|k| k.is_alive());
        Ok(kernel
            .filter(|_| self.holds(key, &slot))
            .map(|kernel| Lease {
                kernel,
                replaced_dead: false,
                slot,
                _turn: turn,
            }))
    }

    /// The running kernel of `key` if it is free right now; never waits.
    pub fn try_lease_idle(&self, key: &KernelKey) -> Option<Lease> {
        let slot = self.slot(key, false).ok().flatten()?;
        let turn = Arc::clone(&slot.queue).try_lock_owned().ok()?;
        let kernel = slot.current().filter(|k| k.is_alive())?;
        Some(Lease {
            kernel,
            replaced_dead: false,
            slot,
            _turn: turn,
        })
    }

    /// Whether `slot` is still the pool's slot for `key`.
    fn holds(&self, key: &KernelKey, slot: &Arc<Slot>) -> bool {
        self.slots
            .lock()
            .map(|s| s.get(key).is_some_and(|current| Arc::ptr_eq(current, slot)))
            .unwrap_or(false)
    }

    fn forget_if_empty(&self, key: &KernelKey, slot: &Arc<Slot>) {
        if slot.current().is_some() {
            return;
        }
        if let Ok(mut slots) = self.slots.lock()
            && slots
                .get(key)
                .is_some_and(|current| Arc::ptr_eq(current, slot))
        {
            slots.remove(key);
        }
    }

    /// A kernel bound to the principal: the spare if one is warm, else a new one.
    async fn fresh_kernel(self: &Arc<Self>, principal: &str) -> Result<Kernel, Error> {
        let dirs = (self.dirs)(principal);
        let kernel = match self.take_spare(principal) {
            Some(k) => k,
            None => Kernel::start(&self.cfg.launch, &dirs.home, &dirs.packages).await?,
        };
        kernel::introspect::bind_principal(&kernel, &dirs.home, &dirs.packages).await?;
        Ok(kernel)
    }

    /// State of one kernel name, without waiting for a running call.
    pub fn status(&self, key: &KernelKey) -> Status {
        let slot = self.slot(key, false).ok().flatten();
        slot_status(&key.name, slot.as_deref())
    }

    /// Every kernel of a principal.
    pub fn list(&self, principal: &str) -> Vec<Status> {
        let slots: Vec<Arc<Slot>> = self
            .slots
            .lock()
            .map(|s| {
                s.values()
                    .filter(|s| s.key.principal == principal)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut out: Vec<Status> = slots
            .iter()
            .map(|s| slot_status(&s.key.name, Some(s)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Interrupts whatever runs on the kernel. Does not wait for the call in progress.
    pub async fn interrupt(&self, key: &KernelKey) -> Result<(), Error> {
        let kernel = self
            .slot(key, false)?
            .and_then(|s| s.current())
            .ok_or_else(|| Error::NoSuchKernel(key.name.clone()))?;
        kernel.interrupt().await;
        Ok(())
    }

    /// Kills the kernel (a running call ends with `kernel_died`) and starts a fresh one.
    pub async fn restart(self: &Arc<Self>, key: &KernelKey) -> Result<Lease, Error> {
        if let Some(slot) = self.slot(key, false)? {
            slot.stop(StopReason::Restart);
        }
        self.lease(key).await
    }

    /// Stops the kernel and forgets its name, freeing its place under the kernel limit.
    pub fn shutdown_kernel(&self, key: &KernelKey) -> Result<(), Error> {
        let slot = self
            .slots
            .lock()
            .map_err(|_| Error::ShuttingDown)?
            .remove(key)
            .ok_or_else(|| Error::NoSuchKernel(key.name.clone()))?;
        slot.stop(StopReason::Shutdown);
        Ok(())
    }

    /// Stops every kernel and the warm spare, whoever they belong to, and removes everything
    /// under the kernels' runtime root but its lock: runtime and temp directories, and anything
    /// else a kernel managed to leave there. For Lambda's single tenancy, before the execution
    /// environment serves another principal. A spare being started now is dropped when ready.
    /// Returns how many named kernels were stopped and whether a spare was.
    pub fn retire_all(&self) -> (usize, bool) {
        self.spare_epoch.fetch_add(1, Ordering::AcqRel);
        let stopped = self.stop_all(StopReason::Shutdown);
        kernel::remove_runtime_leftovers(&self.cfg.launch.runtime_root);
        stopped
    }

    /// Stops every named kernel for `reason` and drops the warm spare. Returns how many
    /// kernels were stopped and whether there was a spare.
    fn stop_all(&self, reason: StopReason) -> (usize, bool) {
        let slots: Vec<Arc<Slot>> = self
            .slots
            .lock()
            .map(|mut s| s.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        for slot in &slots {
            slot.stop(reason);
        }
        let spare = self.spare.lock().ok().and_then(|mut s| s.take());
        (slots.len(), spare.is_some())
    }

    fn reap_idle(&self, idle: Duration) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        slots.retain(|key, slot| {
            let idle_for = slot.last_used.lock().map(|t| t.elapsed()).unwrap_or_default();
            // A kernel whose queue is taken is in use, however long ago its call began.
            let in_use = slot.queue.try_lock().is_err();
            if idle_for < idle || in_use {
                return true;
            }
            tracing::info!(kernel = %key.name, principal = %key.principal, idle_secs = idle_for.as_secs(), "shutting down idle kernel");
            slot.stop(StopReason::Idle);
            false
        });
    }

    /// Stops every kernel and the spare, and waits for the pool's tasks.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.stop_all(StopReason::ServerShutdown);
        self.tasks.close();
        self.tasks.wait().await;
    }
}

fn slot_status(name: &str, slot: Option<&Slot>) -> Status {
    let Some(slot) = slot else {
        return Status {
            name: name.to_string(),
            state: KernelState::NotStarted,
            info: None,
        };
    };
    let info = slot.current().map(|k| k.info());
    let state = match &info {
        _ if slot.starting.load(Ordering::Acquire) => KernelState::Starting,
        None => KernelState::NotStarted,
        Some(i) if !i.alive => KernelState::Dead,
        Some(i) if i.busy => KernelState::Busy,
        Some(_) => KernelState::Idle,
    };
    Status {
        name: name.to_string(),
        state,
        info,
    }
}
