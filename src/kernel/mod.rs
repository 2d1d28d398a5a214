//! One Jupyter kernel: an ipykernel child process, its ZeroMQ sockets and one reader task.
//!
//! This layer knows nothing of MCP. It starts a kernel ([`Kernel::start`]), runs code while
//! streaming outputs into an [`OutputSink`] ([`Kernel::execute`]), interrupts and kills it, and
//! reports its state. An execution is complete when both the shell `execute_reply` and the iopub
//! `idle` status for its msg_id arrived (`execution`). A watcher task waits on the child process,
//! so a dead kernel fails the call at once instead of hanging it. The runtime root that holds
//! every kernel's directories is `runtime_root`'s.

mod error;
mod execution;
pub mod introspect;
pub mod launch;
mod reader;
mod runtime_root;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jupyter_protocol::{
    InterruptRequest, JupyterMessage, JupyterMessageContent, KernelInfoRequest,
};
use jupyter_zmq_client::{ClientControlConnection, DealerSendConnection};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::sleep;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use error::Error;
pub use launch::LaunchConfig;
use reader::{Channel, Routes};
pub use runtime_root::{RuntimeRoot, remove_runtime_leftovers};

/// After a timeout's interrupt, how long the kernel has to finish before it is killed.
pub const INTERRUPT_GRACE: Duration = Duration::from_millis(1500);
/// How often a running execution lets its sink emit progress.
const TICK: Duration = Duration::from_millis(250);
/// After the execute_reply, how long iopub may stay silent before the missing `idle` is taken
/// as lost (a kernel's publisher drops messages past its high-water mark during a flood).
const IDLE_AFTER_REPLY_GRACE: Duration = Duration::from_secs(2);
/// How long after a cell's reply nothing of it on iopub (not even its busy status, which
/// ipykernel sends first) means the kernel's output channel is gone, not late.
const IOPUB_SILENT_GRACE: Duration = Duration::from_secs(8);
/// Time limit for the server's own short requests (kernel_info, introspection).
const INTERNAL_TIMEOUT: Duration = Duration::from_secs(15);

/// One output of an execution, in the order the kernel produced it.
#[derive(Debug, Clone)]
pub enum KernelOutput {
    Stream {
        stderr: bool,
        text: String,
    },
    /// The value of the cell's last expression; `data` is the MIME bundle.
    ExecuteResult {
        data: serde_json::Map<String, serde_json::Value>,
        /// Per-MIME-type metadata (an image's width and height), kept in saved notebooks.
        metadata: serde_json::Map<String, serde_json::Value>,
    },
    /// `display()` output, plots among them; `display_id` when it may be updated later.
    DisplayData {
        data: serde_json::Map<String, serde_json::Value>,
        metadata: serde_json::Map<String, serde_json::Value>,
        display_id: Option<String>,
    },
    /// `update_display_data`: new content for the earlier display with this id.
    UpdateDisplay {
        data: serde_json::Map<String, serde_json::Value>,
        metadata: serde_json::Map<String, serde_json::Value>,
        display_id: String,
    },
    /// `clear_output`: drop what the cell showed so far, now or (`wait`) at the next output.
    ClearOutput {
        wait: bool,
    },
    Error {
        ename: String,
        evalue: String,
        traceback: Vec<String>,
    },
}

/// Receives outputs while a cell runs. `tick` is called periodically so a sink can emit progress.
pub trait OutputSink: Send {
    fn push(&mut self, output: KernelOutput);
    fn tick(&mut self) {}
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecStatus {
    Ok,
    Error,
    Timeout,
    KernelDied,
    Cancelled,
    /// Not an end: the work goes on after the call that started it answered (see
    /// `service::executions`). A kernel's own run never ends with it.
    Running,
}

impl ExecStatus {
    /// The name results carry (`ok`, `kernel_died`), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Ok => "ok",
            ExecStatus::Error => "error",
            ExecStatus::Timeout => "timeout",
            ExecStatus::KernelDied => "kernel_died",
            ExecStatus::Cancelled => "cancelled",
            ExecStatus::Running => "running",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExecOutcome {
    pub status: ExecStatus,
    pub execution_count: Option<u64>,
    /// After a timeout: true if the kernel had to be killed (its state is lost).
    pub killed: bool,
    /// Set when the kernel was stopped on purpose while this ran (status `Cancelled`).
    pub stopped_by: Option<StopReason>,
    /// How the kernel process ended, when it died during this execution (e.g.
    /// `signal: 24 (SIGXCPU)`), so the caller can name the limit it hit.
    pub exit_status: Option<String>,
}

/// Why the server stopped a kernel on purpose; a call running at that moment reports it
/// instead of a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// restart_kernel.
    Restart,
    /// shutdown_kernel.
    Shutdown,
    /// Idle for longer than the idle timeout.
    Idle,
    /// The server is stopping.
    ServerShutdown,
    /// The kernel's output channel (iopub) went silent: a cell's reply came, but no status and
    /// no output of it, so its outputs were lost (user code can close its kernel's sockets).
    OutputLost,
}

/// Kills the kernel's whole process group when dropped, unless it already exited. This is the
/// backstop that keeps a kernel from outliving its handle on any path (error, panic, shutdown).
struct ProcessGroup {
    pid: Option<Pid>,
    /// The kernel's cgroup or process tree, swept after the group is killed and when the
    /// kernel exits by itself, so nothing it started (setsid or not) outlives it.
    confinement: Arc<Mutex<crate::child::Confinement>>,
    exited: CancellationToken,
    /// Set by `kill`: the process is as good as dead even before the watcher reaps it.
    killed: AtomicBool,
    /// Set by `stop` before the kill; std mutex, never held across an await.
    stopped_by: Mutex<Option<StopReason>>,
}

impl ProcessGroup {
    fn signal(&self, sig: Signal) {
        if sig == Signal::SIGKILL {
            self.killed.store(true, Ordering::Release);
        }
        if let Some(pid) = self.pid
            && !self.exited.is_cancelled()
        {
            let _ = killpg(pid, sig);
        }
        if sig == Signal::SIGKILL
            && let Ok(mut c) = self.confinement.lock()
        {
            c.sweep(self.pid.map(|p| p.as_raw().unsigned_abs()));
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// A running kernel.
///
/// Field order matters for drop: the process group is killed before the runtime directory
/// (sockets, connection file) is removed.
pub struct Kernel {
    id: String,
    group: ProcessGroup,
    started_at: Instant,
    python_version: String,
    ipykernel_version: String,
    /// Shell requests; the replies come back through the reader task.
    shell: tokio::sync::Mutex<DealerSendConnection>,
    /// Interrupts; replies are read here directly, skipping stale ones.
    control: tokio::sync::Mutex<ClientControlConnection>,
    routes: Arc<Routes>,
    busy: Arc<AtomicBool>,
    exit_status: Arc<Mutex<Option<String>>>,
    execution_count: AtomicU64,
    /// Layers that could not apply to this kernel (spawn-time report, with reasons).
    not_applied: Vec<crate::child::Layer>,
    /// Fired when the reader task ends (a socket failed, or the kernel is being dropped): the
    /// kernel then counts as dead, and the pool replaces it on the next call.
    reader_ended: CancellationToken,
    _reader: DropGuard,
    _dir: launch::RuntimeDir,
}

/// A snapshot for status reports.
#[derive(Debug, Clone)]
pub struct KernelInfo {
    pub id: String,
    pub alive: bool,
    pub busy: bool,
    pub execution_count: u64,
    pub uptime: Duration,
    pub python_version: String,
    pub ipykernel_version: String,
    pub memory_rss_bytes: Option<u64>,
    /// Restrictions verified on the live process (from /proc), never assumed.
    pub restrictions: Vec<String>,
    /// Layers that could not apply to this kernel when it was spawned, with the reason.
    pub not_applied: Vec<crate::child::Layer>,
}

impl Kernel {
    /// Starts ipykernel and waits until it answers `kernel_info`.
    /// `home` is its principal's directory (working directory, writable) and `packages` the
    /// principal's package directory; both are fixed for the kernel's life (Landlock).
    pub async fn start(
        cfg: &LaunchConfig,
        home: &std::path::Path,
        packages: &std::path::Path,
    ) -> Result<Kernel, Error> {
        let started_at = Instant::now();
        let deadline = tokio::time::Instant::now() + cfg.startup_timeout;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let launch::Spawned {
            child,
            info,
            dir,
            confinement,
            not_applied,
        } = launch::spawn(cfg, &id, home, packages)?;
        let confinement = Arc::new(Mutex::new(confinement));
        let exited = CancellationToken::new();
        let group = ProcessGroup {
            pid: child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .map(Pid::from_raw),
            confinement: Arc::clone(&confinement),
            exited: exited.clone(),
            killed: AtomicBool::new(false),
            stopped_by: Mutex::new(None),
        };
        let exit_status = Arc::new(Mutex::new(None));
        spawn_exit_watcher(child, confinement, exited.clone(), Arc::clone(&exit_status));
        let startup = Startup {
            cfg,
            deadline,
            dir: &dir,
            exit_status: &exit_status,
        };
        startup.wait_for_sockets(&info, &exited).await?;
        let channels = Channels::connect(&info, deadline).await?;

        let (shell_send, shell_recv) = channels.shell.split();
        let routes = Arc::new(Routes::default());
        let busy = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let reader_ended = CancellationToken::new();
        tokio::spawn(reader::run(
            channels.iopub,
            shell_recv,
            Arc::clone(&routes),
            Arc::clone(&busy),
            stop.clone(),
            reader_ended.clone(),
        ));
        let mut kernel = Kernel {
            id,
            group,
            started_at,
            python_version: String::new(),
            ipykernel_version: String::new(),
            shell: tokio::sync::Mutex::new(shell_send),
            control: tokio::sync::Mutex::new(channels.control),
            routes,
            busy,
            exit_status,
            execution_count: AtomicU64::new(0),
            not_applied,
            reader_ended,
            _reader: stop.drop_guard(),
            _dir: dir,
        };
        kernel.handshake(cfg, deadline).await?;
        tracing::info!(
            kernel_id = %kernel.id,
            elapsed_ms = started_at.elapsed().as_millis() as u64,
            "kernel started"
        );
        Ok(kernel)
    }

    /// The last step of start-up: `kernel_info` answered before the deadline, then the
    /// introspection helpers installed and the versions read.
    async fn handshake(
        &mut self,
        cfg: &LaunchConfig,
        deadline: tokio::time::Instant,
    ) -> Result<(), Error> {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let reply = match self
            .shell_request(KernelInfoRequest {}.into(), remaining)
            .await
        {
            Ok(r) => r,
            Err(Error::Died) | Err(Error::NoReply { .. }) => {
                sleep(Duration::from_millis(50)).await;
                return Err(startup_failed(cfg, &self._dir, &self.exit_status));
            }
            Err(e) => return Err(e),
        };
        if !matches!(reply.content, JupyterMessageContent::KernelInfoReply(_)) {
            return Err(Error::Unexpected(format!(
                "{} to kernel_info_request",
                reply.message_type()
            )));
        }
        introspect::install_helpers(self).await?;
        (self.python_version, self.ipykernel_version) = introspect::versions(self).await?;
        Ok(())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn is_alive(&self) -> bool {
        !self.group.exited.is_cancelled()
            && !self.group.killed.load(Ordering::Acquire)
            && !self.reader_ended.is_cancelled()
    }

    /// Kills the kernel's process group at once. Pending calls see `KernelDied`.
    pub fn kill(&self) {
        self.group.signal(Signal::SIGKILL);
    }

    /// Kills the kernel on purpose: a pending call sees `Cancelled` with the reason.
    pub fn stop(&self, reason: StopReason) {
        if let Ok(mut r) = self.group.stopped_by.lock() {
            r.get_or_insert(reason);
        }
        self.kill();
    }

    /// The outcome of a call whose kernel went away: a deliberate stop, or a death.
    fn gone(&self) -> ExecOutcome {
        let stopped_by = self.group.stopped_by.lock().ok().and_then(|r| *r);
        ExecOutcome {
            status: if stopped_by.is_some() {
                ExecStatus::Cancelled
            } else {
                ExecStatus::KernelDied
            },
            execution_count: None,
            killed: stopped_by.is_some(),
            stopped_by,
            exit_status: self.exit_status.lock().ok().and_then(|s| s.clone()),
        }
    }

    /// Resolves when the kernel process has exited.
    pub async fn exited(&self) {
        self.group.exited.cancelled().await
    }

    /// Sends one shell request and waits for its reply.
    async fn shell_request(
        &self,
        content: JupyterMessageContent,
        timeout: Duration,
    ) -> Result<JupyterMessage, Error> {
        let request_name = match &content {
            JupyterMessageContent::KernelInfoRequest(_) => "kernel_info_request",
            _ => "request",
        };
        let msg = JupyterMessage::new(content, None);
        let (_guard, mut rx) = self.routes.register(&msg.header.msg_id);
        self.shell.lock().await.send(msg).await?;
        let deadline = sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some((Channel::Shell, reply)) => return Ok(reply),
                    Some(_) => {}
                    None => return Err(Error::Died),
                },
                _ = self.group.exited.cancelled() => return Err(Error::Died),
                _ = &mut deadline => return Err(Error::NoReply {
                    request: request_name,
                    secs: timeout.as_secs(),
                }),
            }
        }
    }

    /// Interrupts the running cell: an `interrupt_request` on the control channel, and SIGINT to
    /// the kernel's process group if the kernel does not acknowledge it.
    pub async fn interrupt(&self) {
        let msg = JupyterMessage::new(InterruptRequest {}, None);
        let msg_id = msg.header.msg_id.clone();
        let acknowledged = async {
            let mut control = self.control.lock().await;
            control.send(msg).await.ok()?;
            loop {
                let reply = control.read().await.ok()?;
                if reply
                    .parent_header
                    .as_ref()
                    .is_some_and(|h| h.msg_id == msg_id)
                {
                    return Some(());
                }
            }
        };
        let acked = tokio::time::timeout(Duration::from_millis(500), acknowledged)
            .await
            .ok()
            .flatten()
            .is_some();
        if !acked {
            self.group.signal(Signal::SIGINT);
        }
    }

    /// Runs server-side code (not stored in history) and returns its stdout; used for the
    /// introspection helpers. Errors in that code come back as `Error::Unexpected`.
    pub(crate) async fn run_internal(&self, code: &str) -> Result<String, Error> {
        struct Capture {
            stdout: String,
            error: Option<String>,
        }
        impl OutputSink for Capture {
            fn push(&mut self, output: KernelOutput) {
                match output {
                    KernelOutput::Stream {
                        stderr: false,
                        text,
                    } => self.stdout.push_str(&text),
                    KernelOutput::Error { ename, evalue, .. } => {
                        self.error = Some(format!("{ename}: {evalue}"))
                    }
                    _ => {}
                }
            }
        }
        let mut capture = Capture {
            stdout: String::new(),
            error: None,
        };
        let never = CancellationToken::new();
        let outcome = self
            .execute(code, false, INTERNAL_TIMEOUT, &never, &mut capture)
            .await?;
        match outcome.status {
            ExecStatus::Ok => Ok(capture.stdout),
            ExecStatus::KernelDied => Err(Error::Died),
            ExecStatus::Timeout | ExecStatus::Cancelled | ExecStatus::Running => {
                Err(Error::NoReply {
                    request: "introspection request",
                    secs: INTERNAL_TIMEOUT.as_secs(),
                })
            }
            ExecStatus::Error => Err(Error::Unexpected(
                capture.error.unwrap_or_else(|| "unknown error".into()),
            )),
        }
    }

    pub fn info(&self) -> KernelInfo {
        let pid = self.group.pid.and_then(|p| u32::try_from(p.as_raw()).ok());
        KernelInfo {
            id: self.id.clone(),
            alive: self.is_alive(),
            busy: self.busy.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            uptime: self.started_at.elapsed(),
            python_version: self.python_version.clone(),
            ipykernel_version: self.ipykernel_version.clone(),
            memory_rss_bytes: pid.filter(|_| self.is_alive()).and_then(rss_bytes),
            restrictions: pid
                .filter(|_| self.is_alive())
                .map(crate::child::verify::verified)
                .unwrap_or_default(),
            not_applied: self.not_applied.clone(),
        }
    }
}

/// Waits on the kernel process; when it exits, sweeps what it left running, records how it
/// ended in `exit_status` and fires `exited`.
fn spawn_exit_watcher(
    mut child: tokio::process::Child,
    confinement: Arc<Mutex<crate::child::Confinement>>,
    exited: CancellationToken,
    exit_status: Arc<Mutex<Option<String>>>,
) {
    let pid = child.id();
    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(s) => s.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        // Whatever the kernel left running (a setsid child) dies with it.
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(mut c) = confinement.lock() {
                c.sweep(pid);
            }
        })
        .await;
        if let Ok(mut slot) = exit_status.lock() {
            *slot = Some(status);
        }
        exited.cancel();
    });
}

/// Why start-up failed: the kernel exited (with its status), or else it ran out of time;
/// either way with the end of its log.
fn startup_failed(
    cfg: &LaunchConfig,
    dir: &launch::RuntimeDir,
    exit: &Mutex<Option<String>>,
) -> Error {
    let status = exit.lock().ok().and_then(|s| s.clone());
    match status {
        Some(status) => Error::StartupExited {
            status,
            log_tail: dir.log_tail(),
        },
        None => Error::StartupTimeout {
            secs: cfg.startup_timeout.as_secs(),
            log_tail: dir.log_tail(),
        },
    }
}

/// What a start-up step needs to say why the start failed.
struct Startup<'a> {
    cfg: &'a LaunchConfig,
    deadline: tokio::time::Instant,
    dir: &'a launch::RuntimeDir,
    exit_status: &'a Mutex<Option<String>>,
}

impl Startup<'_> {
    /// ZeroMQ IPC connects fail on a missing socket file, so wait for the kernel to bind.
    async fn wait_for_sockets(
        &self,
        info: &jupyter_protocol::ConnectionInfo,
        exited: &CancellationToken,
    ) -> Result<(), Error> {
        let sockets = launch::socket_paths(info);
        while !sockets.iter().all(|p| p.exists()) {
            if exited.is_cancelled() || tokio::time::Instant::now() >= self.deadline {
                // Give the watcher a moment to record the exit status for the message.
                sleep(Duration::from_millis(50)).await;
                return Err(startup_failed(self.cfg, self.dir, self.exit_status));
            }
            sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

/// The kernel's channels, connected (stdin and heartbeat are not used).
struct Channels {
    iopub: jupyter_zmq_client::ClientIoPubConnection,
    shell: jupyter_zmq_client::ClientShellConnection,
    control: ClientControlConnection,
}

impl Channels {
    /// Connects iopub, shell and control under one new session, then waits (until `deadline`)
    /// for iopub's welcome.
    async fn connect(
        info: &jupyter_protocol::ConnectionInfo,
        deadline: tokio::time::Instant,
    ) -> Result<Channels, Error> {
        let session = uuid::Uuid::new_v4().to_string();
        let identity = jupyter_zmq_client::peer_identity_for_session(&session)?;
        let mut iopub =
            jupyter_zmq_client::create_client_iopub_connection(info, "", &session).await?;
        let shell = jupyter_zmq_client::create_client_shell_connection_with_identity(
            info, &session, identity,
        )
        .await?;
        let control = jupyter_zmq_client::create_client_control_connection(info, &session).await?;
        // ipykernel 7 publishes on XPUB and greets each subscriber; waiting for it means no
        // output of the first execution is lost to the subscription race.
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        jupyter_zmq_client::wait_for_iopub_welcome(&mut iopub, remaining).await?;
        Ok(Channels {
            iopub,
            shell,
            control,
        })
    }
}

/// Resident memory of a process, from /proc (Linux only; `None` elsewhere).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
