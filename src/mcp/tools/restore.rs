//! restore_kernel: rebuilds a kernel's state from its history (`workspace::history`) in a fresh
//! kernel, for a caller whose previous kernel lives in another execution environment.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::code::RunSpec;
use crate::kernel::ExecStatus;
use crate::mcp::JupyterMcp;
use crate::mcp::args::Parameters;
use crate::mcp::continuity;
use crate::mcp::error::{ToolError, respond, structured};
use crate::workspace::history::{self, Record, Step, now_secs};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreKernelArgs {
    /// Kernel name (default "default").
    pub kernel: Option<String>,
    /// Re-run only the first `upto` recorded cells (default: all).
    pub upto: Option<usize>,
}

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

#[tool_router(router = restore_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Rebuild a kernel's state after it was lost (another execution environment, a recycled
    /// one, a restart): starts a fresh kernel, reinstalls the recorded packages and re-runs the
    /// recorded cells in order, stopping at the first error. Needs --workspace-bucket (the
    /// history lives in S3). Progress is reported per step.
    #[tool(
        output_schema = schema_for_output::<RestoreKernelOutput>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = true)
    )]
    async fn restore_kernel(
        &self,
        Parameters(RestoreKernelArgs { kernel, upto }): Parameters<RestoreKernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        respond(self.restore(&ctx, kernel.as_deref(), upto).await)
    }
}

impl JupyterMcp {
    async fn restore(
        &self,
        ctx: &RequestContext<RoleServer>,
        kernel: Option<&str>,
        upto: Option<usize>,
    ) -> Result<CallToolResult, ToolError> {
        let key = self.key(ctx, kernel)?;
        let Some(ws) = self.app.workspace.clone() else {
            let note = "no kernel history is kept without --workspace-bucket, so there is nothing to restore".to_string();
            return finish(&key.name, 0, 0, 0, None, note);
        };
        let records = ws
            .history(&key.principal, &key.name)
            .await
            .map_err(|e| ToolError {
                status: "unavailable",
                message: format!("the kernel's history cannot be read: {e}"),
            })?;
        let live = self
            .app
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
        let lease = self.app.pool.restart(&key).await?;
        let generation = lease.kernel.id().to_string();
        drop(lease);
        let start = Record::Start {
            generation,
            at: now_secs(),
        };
        continuity::record(ctx, &key.name, start);
        let (total, mut cells, mut installs) = (steps.len(), 0, 0);
        for (i, step) in steps.into_iter().enumerate() {
            progress(ctx, i, total, &step).await;
            let is_install = matches!(step, Step::Install(_));
            let failure = match step {
                Step::Install(package) => match self.install(ctx, &key, package.clone()).await {
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
                    let (_, run) = self.run_code(ctx, spec, None).await?;
                    (run.status != ExecStatus::Ok).then(|| (code, error_text(&run)))
                }
            };
            if let Some((what, error)) = failure {
                let note = format!(
                    "restored {cells} cell(s) and {installs} install(s); step {} failed, the rest was not run",
                    i + 1
                );
                let failed = RestoreFailure {
                    step: i + 1,
                    what,
                    error,
                };
                return finish(&key.name, total, cells, installs, Some(failed), note);
            }
            if is_install {
                installs += 1;
            } else {
                cells += 1;
            }
        }
        let note = format!("restored {cells} cell(s) and {installs} install(s) in a fresh kernel");
        finish(&key.name, total, cells, installs, None, note)
    }
}

/// The error of a cell that did not run cleanly: its exception, else the run's note.
fn error_text(run: &super::code::Execution) -> String {
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

async fn progress(ctx: &RequestContext<RoleServer>, i: usize, total: usize, step: &Step) {
    let Some(token) = ctx.meta.get_progress_token() else {
        return;
    };
    let what = match step {
        Step::Cell(_) => "re-running cell",
        Step::Install(_) => "reinstalling package",
    };
    let param = ProgressNotificationParam::new(token, i as f64)
        .with_total(total as f64)
        .with_message(format!("{what} {}/{total}", i + 1));
    let _ = ctx.peer.notify_progress(param).await;
}

fn finish(
    kernel: &str,
    steps_total: usize,
    cells_run: usize,
    installs_run: usize,
    failed: Option<RestoreFailure>,
    note: String,
) -> Result<CallToolResult, ToolError> {
    let text = ContentBlock::text(format!("[{note}]"));
    let out = RestoreKernelOutput {
        kernel: kernel.to_string(),
        steps_total,
        cells_run,
        installs_run,
        failed,
        note,
    };
    structured(vec![text], &out)
}
