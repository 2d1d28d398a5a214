//! Tools that run code or look at a kernel's state: execute_code, get_variables,
//! inspect_variable, install_package.

use std::time::{Duration, Instant};

use crate::mcp::args::Parameters;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{MAX_EXEC_TIMEOUT_SECS, PIP_TIMEOUT};
use crate::kernel::introspect::{self, Inspection, Variables};
use crate::kernel::{ExecOutcome, ExecStatus, StopReason};
use crate::mcp::error::{ToolError, respond, structured};
use crate::mcp::{JupyterMcp, invocation, principal_dirs};
use crate::output::{Collector, OutputItem, ProgressFn};
use crate::packages::{Installed, Installer, parse_requirement};

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
        match invocation::time_left_for_code(ctx) {
            Some(left) if left.is_zero() => Err(ToolError {
                status: "timeout",
                message: "this invocation has no time left to run code; raise the function's timeout or retry".into(),
            }),
            Some(left) => Ok(timeout.min(left)),
            None => Ok(timeout),
        }
    }
}

/// Forwards output progress to the client as `notifications/progress`, in order, when it sent a
/// progress token. The collector throttles to its tick (a few per second).
fn progress_forwarder(ctx: &RequestContext<RoleServer>) -> Option<ProgressFn> {
    let token = ctx.meta.get_progress_token()?;
    let peer = ctx.peer.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, String)>();
    tokio::spawn(async move {
        while let Some((bytes, message)) = rx.recv().await {
            let param =
                ProgressNotificationParam::new(token.clone(), bytes as f64).with_message(message);
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    Some(Box::new(move |bytes, message| {
        let _ = tx.send((bytes, message));
    }))
}

const NOT_RUN_BUSY: &str = "the kernel stayed busy with earlier calls (or was starting) for the whole timeout, so this code did not run. hint: interrupt_kernel stops the running cell; another kernel name runs in parallel";
const NOT_RUN_CANCELLED: &str =
    "cancelled by the client while waiting for the kernel's turn; the code did not run";

/// How an execution went, before it becomes a tool result.
struct Execution {
    status: ExecStatus,
    execution_count: Option<u64>,
    started: Instant,
    outputs: Vec<OutputItem>,
    truncated: bool,
    note: Option<String>,
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
        }
    }
}

/// Content in output order (a note last), and the same outputs as structured content.
fn execution_result(kernel: String, e: Execution) -> Result<CallToolResult, ToolError> {
    let mut content: Vec<ContentBlock> = e.outputs.iter().map(OutputItem::to_content).collect();
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
    };
    let mut result = structured(content, &out)?;
    result.is_error = Some(out.status != ExecStatus::Ok);
    Ok(result)
}

fn status_note(outcome: &ExecOutcome, timeout: Duration, replaced_dead: bool) -> Option<String> {
    let (status, killed) = (outcome.status, outcome.killed);
    if let Some(reason) = outcome.stopped_by {
        let why = match reason {
            StopReason::Restart => "restart_kernel restarted the kernel while this ran",
            StopReason::Shutdown => "shutdown_kernel stopped the kernel while this ran",
            StopReason::Idle => "the kernel was shut down as idle while this ran",
            StopReason::ServerShutdown => "the server is shutting down",
        };
        return Some(format!("{why}; variables are lost"));
    }
    let mut note = match (status, killed) {
        (ExecStatus::Timeout, false) => Some(format!(
            "timed out after {:.1} s: the code was interrupted; the kernel and its variables are kept",
            timeout.as_secs_f64()
        )),
        (ExecStatus::Timeout, true) | (ExecStatus::Cancelled, true) => Some(
            "the code did not stop on interrupt, so the kernel was killed; the next call starts a fresh kernel (variables are lost)".into(),
        ),
        (ExecStatus::KernelDied, _) => Some(
            "the kernel process died while running this code (crash, os._exit, or out of memory); the next call starts a fresh kernel (variables are lost)".into(),
        ),
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
            let key = self.key(&ctx, args.kernel.as_deref())?;
            let timeout = self.exec_timeout(args.timeout, &ctx)?;
            let started = Instant::now();
            let deadline = tokio::time::Instant::now() + timeout;
            // The timeout covers the wait for the kernel's turn too: a call never outlives it.
            let lease = tokio::select! {
                lease = self.app.pool.lease(&key) => lease?,
                _ = ctx.ct.cancelled() => return execution_result(key.name, Execution::not_run(ExecStatus::Cancelled, started, NOT_RUN_CANCELLED)),
                _ = tokio::time::sleep_until(deadline) => return execution_result(key.name, Execution::not_run(ExecStatus::Timeout, started, NOT_RUN_BUSY)),
            };
            let mut collector =
                Collector::new(self.app.settings.max_output_bytes, progress_forwarder(&ctx));
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let outcome = lease
                .kernel
                .execute(&args.code, true, left, &ctx.ct, &mut collector)
                .await?;
            let (outputs, truncated) = collector.finish();
            let note = status_note(&outcome, timeout, lease.replaced_dead);
            execution_result(
                key.name,
                Execution {
                    status: outcome.status,
                    execution_count: outcome.execution_count,
                    started,
                    outputs,
                    truncated,
                    note,
                },
            )
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
            let variables = match self.app.pool.lease_running(&key).await? {
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
            let Some(lease) = self.app.pool.lease_running(&key).await? else {
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
            let requirement = parse_requirement(&package)?;
            let dirs = principal_dirs(&self.app.settings, &key.principal);
            let timeout = invocation::time_left_for_code(&ctx)
                .map_or(PIP_TIMEOUT, |left| left.min(PIP_TIMEOUT));
            let installer = Installer::new(
                self.app.settings.python.clone(),
                dirs.packages,
                timeout,
                self.app.settings.kernel_pythonpath.clone(),
            );
            // One pip at a time per principal: two `--target --upgrade` runs into one directory
            // can leave it half-written. A cancelled call drops pip (kill_on_drop).
            let installed = tokio::select! {
                installed = async {
                    let lock = self.app.install_lock(&key.principal);
                    let _one_at_a_time = lock.lock().await;
                    installer.install(&requirement).await
                } => installed?,
                _ = ctx.ct.cancelled() => return Err(ToolError { status: "cancelled", message: "cancelled by the client; pip was stopped".into() }),
            };
            // Python notices new files by the directory's mtime; refreshing the import caches
            // now closes the same-tick gap, but never waits behind a running cell.
            if let Some(lease) = self.app.pool.try_lease_idle(&key) {
                let _ = lease
                    .kernel
                    .run_internal("__import__('importlib').invalidate_caches()")
                    .await;
            }
            let text = format!("installed {} {}", installed.name, installed.version);
            structured(vec![ContentBlock::text(text)], &installed)
        };
        respond(result.await)
    }
}
