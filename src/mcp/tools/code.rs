//! Tools that run code or look at a kernel's state: execute_code, get_variables,
//! inspect_variable, install_package.

use std::time::{Duration, Instant};

use crate::mcp::args::Parameters;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{MAX_EXEC_TIMEOUT_SECS, PIP_TIMEOUT};
use crate::kernel::introspect::{self, Inspection, Variables};
use crate::kernel::{ExecOutcome, ExecStatus};
use crate::mcp::error::{ToolError, respond, structured};
use crate::mcp::wait::{Waited, bounded, within_invocation};
use crate::mcp::{JupyterMcp, continuity, principal_dirs};
use crate::output::nbformat::Recorder;
use crate::output::{Collector, OutputItem, ProgressFn};
use crate::packages::{Installed, Installer, parse_requirement};
use crate::pool;
use crate::workspace::history::Record;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteCodeArgs {
    /// Python source to run, as in a notebook cell. IPython syntax works (%magics, !shell).
    pub code: String,
    /// Kernel name (default "default"). Each name is a separate Python process with its own state.
    pub kernel: Option<String>,
    /// Time limit in seconds (default: the server's --exec-timeout; at most 3600). On expiry the
    /// code is interrupted and what it printed so far is returned.
    pub timeout: Option<f64>,
    /// Longest side, in pixels, of images sent back (default and maximum: the server's
    /// --max-image-px). Larger images are downscaled; the original is saved and linked.
    pub max_image_px: Option<u32>,
    /// Also append the code and its outputs as a new cell at the end of this notebook (a
    /// relative .ipynb path; created if missing), so the session can be opened in Jupyter.
    pub notebook: Option<String>,
    /// With `notebook`: the revision (from read_notebook or the last change) the notebook must
    /// still have. Checked before the code runs, and again when the cell is appended; if it
    /// changed, the code does not run (or its cell is not appended) and a conflict says to read
    /// again.
    pub revision: Option<String>,
}

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
    /// ok, error (the code raised), timeout, kernel_died or cancelled.
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
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectVariableArgs {
    /// A variable name or dotted attribute path, e.g. `df` or `df.columns`. Not an expression.
    pub name: String,
    /// Kernel name (default "default").
    pub kernel: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallPackageArgs {
    /// A PyPI requirement: a project name with an optional version specifier, e.g. `requests`,
    /// `numpy==2.1.0`, `pandas>=2,<3`. URLs, paths and pip options are refused.
    pub package: String,
    /// Kernel name (default "default"); the package becomes importable there at once.
    pub kernel: Option<String>,
}

impl JupyterMcp {
    /// The principal's disk quota, when one is configured.
    fn quota(&self, principal: &str) -> Option<crate::quota::Quota> {
        let limit = self.app.settings.disk_quota_bytes?;
        let home = crate::mcp::principal_dirs(&self.app.settings, principal).home;
        Some(crate::quota::Quota::new(home, limit))
    }

    /// The longest image side a call asked for, within 16 px and the server's --max-image-px.
    pub(super) fn max_image_px(&self, requested: Option<u32>) -> u32 {
        let max_px = self.app.settings.max_image_px;
        requested.map_or(max_px, |px| px.clamp(16, max_px))
    }

    /// The requested (or default) timeout, cut to what the Lambda invocation has left.
    fn exec_timeout(
        &self,
        requested: Option<f64>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Duration, ToolError> {
        let timeout = match requested {
            None => self.app.settings.exec_timeout,
            Some(t) if t.is_finite() && t > 0.0 && t <= MAX_EXEC_TIMEOUT_SECS as f64 => {
                Duration::from_secs_f64(t)
            }
            Some(t) => {
                return Err(ToolError::invalid(format!(
                    "timeout must be between 0 and {MAX_EXEC_TIMEOUT_SECS} seconds, got {t}"
                )));
            }
        };
        within_invocation(timeout, ctx)
    }
}

pub(super) use crate::mcp::progress::forwarder as progress_forwarder;

/// What ipykernel raises when code asks for input and the client allows none (never here).
const STDIN_ERROR: &str = "StdinNotImplementedError";
const NO_INPUT: &str = "input() and getpass() are not supported: nobody can type into this kernel. hint: put the value in the code (e.g. name = \"Ada\") instead of asking for it";

const NOT_RUN_BUSY: &str = "the kernel stayed busy with earlier calls (or was starting) for the whole timeout, so this code did not run. hint: interrupt_kernel stops the running cell; another kernel name runs in parallel";
const NOT_RUN_CANCELLED: &str =
    "cancelled by the client while waiting for the kernel's turn; the code did not run";

/// How an execution went, before it becomes a tool result.
pub(super) struct Execution {
    pub(super) status: ExecStatus,
    pub(super) execution_count: Option<u64>,
    started: Instant,
    pub(super) outputs: Vec<OutputItem>,
    truncated: bool,
    pub(super) note: Option<String>,
    /// The outputs in nbformat form, when the run was asked to record them.
    pub(super) nb_outputs: Vec<serde_json::Value>,
    /// False when the code never reached the kernel (the wait for its turn ended first):
    /// there is nothing to save, and a cell's saved outputs must stay as they were.
    pub(super) ran: bool,
}

impl Execution {
    fn not_run(status: ExecStatus, started: Instant, note: &str) -> Self {
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

    pub(super) fn duration_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// Content in output order (a note last), and the same outputs as structured content.
pub(super) fn execution_result(
    kernel: String,
    e: Execution,
    notebook: Option<SavedCell>,
) -> Result<CallToolResult, ToolError> {
    let mut content: Vec<ContentBlock> = Vec::new();
    for item in &e.outputs {
        content.push(crate::mcp::render::item_content(item));
        content.extend(crate::mcp::render::original_link(item));
    }
    if let Some(n) = &e.note {
        content.push(ContentBlock::text(format!("[{n}]")));
    } else if content.is_empty() {
        content.push(ContentBlock::text("[ran without output]"));
    }
    let out = ExecuteCodeOutput {
        status: e.status,
        kernel,
        execution_count: e.execution_count,
        duration_ms: e.started.elapsed().as_millis() as u64,
        outputs: e.outputs,
        truncated: e.truncated,
        note: e.note,
        notebook,
    };
    let mut result = structured(content, &out)?;
    result.is_error = Some(out.status != ExecStatus::Ok);
    Ok(result)
}

/// `Quota::watch` never completes; this keeps the select arm typed without a panic.
fn unreachable_watch() -> Result<crate::kernel::ExecOutcome, ToolError> {
    Err(ToolError {
        status: "error",
        message: "the disk-quota watcher stopped unexpectedly; retry the call".into(),
    })
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

fn status_note(outcome: &ExecOutcome, timeout: Duration, replaced_dead: bool) -> Option<String> {
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

/// Bytes of nbformat outputs one run may save into a notebook (the notebook's own write cap
/// bounds the file as a whole).
const NOTEBOOK_OUTPUT_CAP_BYTES: usize = crate::notebook::MAX_WRITE_BYTES / 2;

/// How the saved originals of downscaled images are named.
#[derive(Clone, Copy)]
pub(super) enum OriginalNames<'a> {
    /// After the run that made them (`images/{kernel}-{count}-{n}-{random}.png`): each run's
    /// plots are its own files.
    Run { kernel: &'a str, count: Option<u64> },
    /// After their content (`images/original-{sha256}.png`): reading one notebook twice links
    /// the file the first read saved instead of piling up copies.
    Content,
}

/// What to run and how: the arguments run_code shares between execute_code and the cell tools.
pub(super) struct RunSpec<'a> {
    pub(super) kernel: Option<&'a str>,
    pub(super) code: &'a str,
    pub(super) timeout: Option<f64>,
    /// Keep the outputs in nbformat form too, to save them in a notebook.
    pub(super) record: bool,
    /// A per-call image size limit (at most the server's).
    pub(super) max_image_px: Option<u32>,
}

/// One kernel's turn, taken by [`JupyterMcp::take_turn`]: held for one run (execute_code), or
/// for all of a notebook's cells in a row, so no other call's code runs between them.
pub(super) struct Turn {
    key: pool::KernelKey,
    lease: pool::Lease,
    /// The previous kernel of this name had died: said once, in the first run's note.
    replaced_dead: bool,
}

impl Turn {
    /// The kernel's name.
    pub(super) fn name(&self) -> &str {
        &self.key.name
    }
}

/// When a run started, the deadline it must end by (the timeout also covers the wait for the
/// kernel's turn), and the timeout as asked, for the note.
#[derive(Clone, Copy)]
pub(super) struct Clock {
    started: Instant,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

impl JupyterMcp {
    /// Starts the clock of one run: its timeout (default, requested, cut to what a Lambda
    /// invocation has left) counts from now.
    pub(super) fn start_clock(
        &self,
        ctx: &RequestContext<RoleServer>,
        timeout: Option<f64>,
    ) -> Result<Clock, ToolError> {
        let timeout = self.exec_timeout(timeout, ctx)?;
        Ok(Clock {
            started: Instant::now(),
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
        })
    }

    /// Waits for the kernel's turn (starting the kernel if needed) until the clock's deadline.
    /// `Err` is the run that did not happen, and why: the wait timed out, the client cancelled,
    /// or the kernel was stopped on purpose meanwhile.
    pub(super) async fn take_turn(
        &self,
        ctx: &RequestContext<RoleServer>,
        kernel: Option<&str>,
        clock: Clock,
    ) -> Result<Result<Turn, (String, Execution)>, ToolError> {
        let key = self.key(ctx, kernel)?;
        let not_run = |key: pool::KernelKey, status, note: &str| {
            Ok(Err((
                key.name,
                Execution::not_run(status, clock.started, note),
            )))
        };
        let lease = tokio::select! {
            lease = self.app.pool.lease(&key) => match lease {
                Err(e @ pool::Error::StoppedWhileQueued(_)) => return not_run(key, ExecStatus::Cancelled, &e.to_string()),
                lease => lease?,
            },
            _ = ctx.ct.cancelled() => return not_run(key, ExecStatus::Cancelled, NOT_RUN_CANCELLED),
            _ = tokio::time::sleep_until(clock.deadline) => return not_run(key, ExecStatus::Timeout, NOT_RUN_BUSY),
        };
        let replaced_dead = lease.replaced_dead;
        Ok(Ok(Turn {
            key,
            lease,
            replaced_dead,
        }))
    }

    /// Runs `code` the way execute_code does: the timeout covers the wait for the kernel's
    /// turn, outputs are capped, progress is forwarded, a cancel interrupts. With `record`, the
    /// outputs are also kept in nbformat form (`Execution::nb_outputs`). Returns the kernel's
    /// name and how the run went.
    pub(super) async fn run_code(
        &self,
        ctx: &RequestContext<RoleServer>,
        spec: RunSpec<'_>,
        progress: Option<ProgressFn>,
    ) -> Result<(String, Execution), ToolError> {
        let clock = self.start_clock(ctx, spec.timeout)?;
        let mut turn = match self.take_turn(ctx, spec.kernel, clock).await? {
            Ok(turn) => turn,
            Err(not_run) => return Ok(not_run),
        };
        let execution = self
            .run_in_turn(ctx, &mut turn, spec, clock, progress)
            .await?;
        Ok((turn.key.name, execution))
    }

    /// Runs `spec.code` (its `kernel` and `timeout` are already in `turn` and `clock`) on the
    /// kernel whose turn the caller holds, until the clock's deadline.
    pub(super) async fn run_in_turn(
        &self,
        ctx: &RequestContext<RoleServer>,
        turn: &mut Turn,
        spec: RunSpec<'_>,
        clock: Clock,
        progress: Option<ProgressFn>,
    ) -> Result<Execution, ToolError> {
        let RunSpec {
            code,
            record,
            max_image_px,
            ..
        } = spec;
        let quota = self.quota(&turn.key.principal);
        if let Some(q) = &quota {
            q.check().await?;
        }
        let max_px = self.max_image_px(max_image_px);
        let collector =
            Collector::new(self.app.settings.max_output_bytes, progress).with_image_fit(max_px);
        let cap = if record { NOTEBOOK_OUTPUT_CAP_BYTES } else { 0 };
        let mut sink = Recorder::new(collector, cap);
        let left = clock
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        let replaced_dead = std::mem::take(&mut turn.replaced_dead);
        let kernel = &turn.lease.kernel;
        let generation = kernel.id().to_string();
        crate::mcp::audit::ran(ctx, code);
        let run = kernel.execute(code, true, left, &ctx.ct, &mut sink);
        let outcome = match &quota {
            Some(q) => tokio::select! {
                outcome = run => outcome?,
                _ = q.watch(kernel) => unreachable_watch()?,
            },
            None => run.await?,
        };
        let (collector, nb_outputs) = sink.finish(outcome.execution_count);
        if outcome.status == ExecStatus::Ok {
            let code = code.to_string();
            continuity::record(ctx, &turn.key.name, Record::Cell { generation, code });
        }
        let (mut outputs, truncated) = collector.finish();
        let names = OriginalNames::Run {
            kernel: &turn.key.name,
            count: outcome.execution_count,
        };
        self.save_originals(ctx, names, outputs.iter_mut().collect())
            .await;
        let mut note = status_note(&outcome, clock.timeout, replaced_dead);
        if let Some(q) = &quota
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

    /// Saves the full-size originals of downscaled images (and large SVGs) under `images/` in
    /// the caller's directory and records where, so the result can link them. A failed save is
    /// logged and the image is still sent (downscaled, unlinked).
    pub(super) async fn save_originals(
        &self,
        ctx: &RequestContext<RoleServer>,
        names: OriginalNames<'_>,
        outputs: Vec<&mut OutputItem>,
    ) {
        for (n, item) in outputs.into_iter().enumerate() {
            let Some((raw, ext)) = item.take_unsaved() else {
                continue;
            };
            let (path, reuse) = match names {
                OriginalNames::Run { kernel, count } => {
                    let tag = uuid::Uuid::new_v4().simple().to_string();
                    let count = count.unwrap_or(0);
                    (
                        format!("images/{kernel}-{count}-{n}-{}.{ext}", &tag[..8]),
                        false,
                    )
                }
                OriginalNames::Content => {
                    let hash = crate::notebook::disk::revision(&raw);
                    (format!("images/original-{hash}.{ext}"), true)
                }
            };
            let saved = self
                .with_files(ctx, move |f| match f.write(&path, &raw, false) {
                    // Named by content: the file there is this image, saved by an earlier read.
                    Err(crate::files::Error::AlreadyExists { path }) if reuse => Ok(path),
                    other => other,
                })
                .await;
            match saved {
                Ok(path) => item.set_saved(path),
                Err(e) => tracing::warn!(error = %e.message, "could not save an original image"),
            }
        }
    }

    /// Appends a run as a new code cell of `path` (created if missing). A failure to save is
    /// told in the run's note rather than hiding the run's outputs.
    async fn append_run(
        &self,
        ctx: &RequestContext<RoleServer>,
        path: String,
        code: String,
        expected: Option<String>,
        execution: &mut Execution,
    ) -> Option<SavedCell> {
        if !execution.ran {
            execution.add_note("the code did not run, so no cell was appended".into());
            return None;
        }
        let outputs = std::mem::take(&mut execution.nb_outputs);
        let count = execution.execution_count;
        let saved = self
            .with_store(ctx, move |s| {
                let shrinks = crate::notebook::Shrinks::No;
                let (pos, revision) =
                    s.change(&path, expected.as_deref(), true, shrinks, |doc, p| {
                        crate::notebook::edit::append_run(doc, &code, outputs, count, p)
                    })?;
                Ok((path, pos, revision))
            })
            .await;
        match saved {
            Ok((path, pos, revision)) => Some(SavedCell {
                path,
                index: pos.index,
                id: pos.id,
                revision,
            }),
            Err(e) => {
                execution.add_note(format!(
                    "the outputs were not saved to the notebook: {}",
                    e.message
                ));
                None
            }
        }
    }
}

impl JupyterMcp {
    /// Installs one requirement for the principal of `key` the way install_package does
    /// (policy check, one pip at a time per principal, import caches refreshed) and records it
    /// in the kernel's history.
    pub(super) async fn install(
        &self,
        ctx: &RequestContext<RoleServer>,
        key: &pool::KernelKey,
        package: String,
    ) -> Result<Installed, ToolError> {
        let requirement = parse_requirement(&package)?;
        crate::packages::check_lists(&requirement, &self.app.settings.packages)?;
        let dirs = principal_dirs(&self.app.settings, &key.principal);
        // One pip at a time per principal: two `--target --upgrade` runs into one directory
        // can leave it half-written. The wait for the other install has a deadline.
        let lock = self.app.install_lock(&key.principal);
        let wait = self.app.settings.wait_timeout;
        let _one_at_a_time = bounded(ctx, wait, Waited::Install, lock.lock()).await?;
        let installer = Installer::new(
            self.app.settings.sandbox.clone(),
            dirs.home,
            dirs.packages,
            within_invocation(PIP_TIMEOUT, ctx)?,
            self.app.settings.packages.clone(),
        );
        // A cancelled call drops pip (kill_on_drop).
        let installed = tokio::select! {
            installed = installer.install(&requirement) => installed,
            _ = ctx.ct.cancelled() => return Err(ToolError { status: "cancelled", message: "cancelled by the client; pip was stopped".into() }),
        };
        // One record per install that reached pip (the tool-call span names the principal).
        match &installed {
            Ok(i) => {
                tracing::info!(principal = %key.principal, package = %i.name, version = %i.version, outcome = "installed", "package install")
            }
            Err(e) => {
                tracing::info!(principal = %key.principal, package = %requirement.normalized, outcome = "failed", error = %e, "package install")
            }
        }
        let installed = installed?;
        let generation = self
            .app
            .pool
            .status(key)
            .info
            .filter(|i| i.alive)
            .map(|i| i.id);
        continuity::record(
            ctx,
            &key.name,
            Record::Install {
                generation,
                package,
            },
        );
        // Python notices new files by the directory's mtime; refreshing the import caches
        // now closes the same-tick gap, but never waits behind a running cell.
        if let Some(lease) = self.app.pool.try_lease_idle(key) {
            let _ = lease
                .kernel
                .run_internal("__import__('importlib').invalidate_caches()")
                .await;
        }
        Ok(installed)
    }
}

#[tool_router(router = code_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Run Python code in a persistent Jupyter kernel (IPython). Variables, imports and
    /// functions persist between calls on the same kernel. Returns printed output, the value of
    /// the last expression, rich displays (matplotlib plots come back as PNG images) and errors
    /// with tracebacks. Code that runs past `timeout` seconds is interrupted. Large output is cut
    /// to its start and end. Use install_package, not pip, to add packages.
    #[tool(
        output_schema = schema_for_output::<ExecuteCodeOutput>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = true)
    )]
    async fn execute_code(
        &self,
        Parameters(args): Parameters<ExecuteCodeArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            // A notebook path that cannot be saved to, or a stale revision, is refused before
            // the code runs.
            if let Some(path) = args.notebook.clone() {
                let expected = args.revision.clone();
                self.with_store(&ctx, move |s| match expected {
                    Some(rev) => s
                        .inspect_for_run(&path, Some(&rev), |_, _| Ok(()))
                        .map(drop),
                    None => s.resolve(&path).map(drop),
                })
                .await?;
            }
            let record = args.notebook.is_some();
            let (progress, flush) = progress_forwarder(&ctx).unzip();
            let (kernel, mut execution) = self
                .run_code(
                    &ctx,
                    RunSpec {
                        kernel: args.kernel.as_deref(),
                        code: &args.code,
                        timeout: args.timeout,
                        record,
                        max_image_px: args.max_image_px,
                    },
                    progress,
                )
                .await?;
            if let Some(flush) = flush {
                flush.wait().await;
            }
            let saved = match args.notebook {
                Some(path) => {
                    let expected = args.revision;
                    self.append_run(&ctx, path, args.code, expected, &mut execution)
                        .await
                }
                None => None,
            };
            execution_result(kernel, execution, saved)
        };
        respond(result.await)
    }

    /// List the user's variables in a kernel (not modules, not IPython's own names, not names
    /// starting with `_`), each with its type, a short repr, and length/shape/dtype when it has
    /// them.
    #[tool(
        output_schema = schema_for_output::<Variables>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_variables(
        &self,
        Parameters(super::kernels::KernelArgs { kernel }): Parameters<super::kernels::KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let key = self.key(&ctx, kernel.as_deref())?;
            let waited = Waited::Kernel {
                tool: "get_variables",
                kernel: &key.name,
            };
            let lease = self.app.pool.lease_running(&key);
            let variables =
                match bounded(&ctx, self.app.settings.wait_timeout, waited, lease).await?? {
                    Some(lease) => introspect::variables(&lease.kernel).await?,
                    None => Variables::default(),
                };
            structured(vec![], &variables)
        };
        respond(result.await)
    }

    /// Describe one variable or attribute (`df`, `model.coef_`): type, module, a capped repr,
    /// shape/dtype/columns and the first rows for numpy and pandas objects, and the first line
    /// of its documentation.
    #[tool(
        output_schema = schema_for_output::<Inspection>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn inspect_variable(
        &self,
        Parameters(InspectVariableArgs { name, kernel }): Parameters<InspectVariableArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let key = self.key(&ctx, kernel.as_deref())?;
            introspect::validate_name(&name)?;
            let waited = Waited::Kernel {
                tool: "inspect_variable",
                kernel: &key.name,
            };
            let lease = self.app.pool.lease_running(&key);
            let Some(lease) =
                bounded(&ctx, self.app.settings.wait_timeout, waited, lease).await??
            else {
                return Err(ToolError {
                    status: "not_found",
                    message: format!(
                        "kernel {:?} is not running, so {name:?} is not defined\nhint: execute_code starts it",
                        key.name
                    ),
                });
            };
            structured(vec![], &introspect::inspect(&lease.kernel, &name).await?)
        };
        respond(result.await)
    }

    /// Install a package from PyPI (pre-built wheels only) so that it imports in the kernel
    /// without a restart. Returns the installed name and version, or pip's last lines on failure.
    #[tool(
        output_schema = schema_for_output::<Installed>(),
        annotations(destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn install_package(
        &self,
        Parameters(InstallPackageArgs { package, kernel }): Parameters<InstallPackageArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let key = self.key(&ctx, kernel.as_deref())?;
            let installed = self.install(&ctx, &key, package).await?;
            let text = format!("installed {} {}", installed.name, installed.version);
            structured(vec![ContentBlock::text(text)], &installed)
        };
        respond(result.await)
    }
}
