//! The one place every tool call passes "before" and "after" for the durable workspace
//! (`workspace`): before, the principal's workspace is restored on its first call here and the
//! kernel the call names is checked against its history (`state_lost`); after, what the call
//! recorded (cells that ran, packages installed, kernel starts) is appended to the history and
//! the files it changed are written through, before the response goes out. The tools only
//! `record` events into the call's [`Journal`]; they never talk to S3.
//!
//! What the mirror did reaches the model as a last text block and clients as `_meta`
//! (`jupyter-mcp-server/workspace`, `jupyter-mcp-server/state_lost`), so no tool's output schema
//! changes for it; `get_kernel_status` also shows the state in its own output.

use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Serialize;

use super::App;
use crate::pool::{KernelKey, KernelState};
use crate::workspace::history::{self, Record};
use crate::workspace::{Report, Workspace};

/// `_meta` key of the mirror's report.
const META_WORKSPACE: &str = "jupyter-mcp-server/workspace";
/// `_meta` key of a kernel whose state lives elsewhere.
const META_STATE_LOST: &str = "jupyter-mcp-server/state_lost";

/// Tools that name a kernel but never see its earlier state (they end or rebuild it).
const NO_STATE_CHECK: &[&str] = &["restart_kernel", "shutdown_kernel", "restore_kernel"];

/// Tools that neither read nor write the principal's files (they only talk to kernels): no
/// refresh from S3 before them (one LIST saved) and no write-through after. A tool missing here
/// is refreshed and written through, which is always correct.
const NO_FILES: &[&str] = &[
    "get_kernel_status",
    "get_variables",
    "inspect_variable",
    "interrupt_kernel",
    "list_kernels",
    "restart_kernel",
    "shutdown_kernel",
];

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

/// What a call records for the kernel history; filled by the tools, flushed by [`Hook::after`].
#[derive(Default)]
pub(crate) struct Journal {
    /// (kernel name, record), in order. Std mutex: pushes only.
    records: Mutex<Vec<(String, Record)>>,
    /// The state check's finding, for tools that show it (get_kernel_status).
    state_lost: Mutex<Option<StateLost>>,
}

/// Records an event of this call in its journal (no-op without a workspace).
pub(crate) fn record(ctx: &RequestContext<RoleServer>, kernel: &str, record: Record) {
    if let Some(j) = ctx.extensions.get::<Arc<Journal>>()
        && let Ok(mut r) = j.records.lock()
    {
        r.push((kernel.to_string(), record));
    }
}

/// The state check's finding for this call, if the state of its kernel is lost.
pub(crate) fn state_lost(ctx: &RequestContext<RoleServer>) -> Option<StateLost> {
    ctx.extensions
        .get::<Arc<Journal>>()
        .and_then(|j| j.state_lost.lock().ok()?.clone())
}

/// The "before" of one call, carried to its "after".
pub(crate) struct Hook {
    workspace: Option<Arc<Workspace>>,
    principal: String,
    journal: Arc<Journal>,
    report: Report,
    /// Whether the call may change files (not read-only, and not in `NO_FILES`).
    writes: bool,
    /// The principal's directory.
    home: std::path::PathBuf,
}

impl Hook {
    /// Restores the workspace if needed and checks the named kernel's state; puts the journal
    /// into the request's extensions.
    pub async fn before(
        app: &App,
        principal: &str,
        request: &CallToolRequestParams,
        route: Option<&rmcp::model::Tool>,
        ctx: &mut RequestContext<RoleServer>,
    ) -> Hook {
        let journal = Arc::new(Journal::default());
        let files = !NO_FILES.contains(&request.name.as_ref());
        let mut hook = Hook {
            workspace: app.workspace.clone(),
            principal: principal.to_string(),
            journal: Arc::clone(&journal),
            report: Report::default(),
            writes: files
                && !route
                    .and_then(|t| t.annotations.as_ref())
                    .and_then(|a| a.read_only_hint)
                    .unwrap_or(false),
            home: super::principal_dirs(&app.settings, principal).home,
        };
        let Some(ws) = hook.workspace.clone() else {
            return hook;
        };
        ctx.extensions.insert(journal);
        if files {
            hook.report = ws.before_call(principal, &hook.home).await;
        }
        if !super::audit::takes_kernel(route) || NO_STATE_CHECK.contains(&request.name.as_ref()) {
            return hook;
        }
        let name = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("kernel"))
            .and_then(|k| k.as_str())
            .unwrap_or(super::tools::DEFAULT_KERNEL);
        let Ok(key) = KernelKey::new(principal, name) else {
            return hook;
        };
        let live = matches!(
            app.pool.status(&key).state,
            KernelState::Starting | KernelState::Idle | KernelState::Busy
        );
        if live {
            return hook;
        }
        match ws.history(principal, name).await {
            Ok(records) => {
                let latest = history::latest(&records, None);
                if !latest.ended && !latest.steps.is_empty() {
                    let lost = StateLost::new(name, &latest);
                    if let Ok(mut s) = hook.journal.state_lost.lock() {
                        *s = Some(lost);
                    }
                }
            }
            Err(e) => hook.report.notes.push(format!(
                "the history of kernel {name:?} could not be read, so whether its state lives elsewhere is unknown: {e}"
            )),
        }
        hook
    }

    /// Appends the call's records to the histories, writes changed files through, and adds what
    /// happened to the response.
    pub async fn after(mut self, response: &mut Result<CallToolResponse, rmcp::ErrorData>) {
        let Some(ws) = self.workspace.clone() else {
            return;
        };
        let records = self
            .journal
            .records
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let mut kernels: Vec<String> = records.iter().map(|(k, _)| k.clone()).collect();
        kernels.dedup();
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
        let lost = self.journal.state_lost.lock().ok().and_then(|s| s.clone());
        if let Ok(CallToolResponse::Complete(result)) = response {
            decorate(result, &self.report, lost.as_ref());
        }
    }
}

/// Adds the notes to the content (last) and the details to `_meta`.
fn decorate(result: &mut CallToolResult, report: &Report, lost: Option<&StateLost>) {
    if let Some(lost) = lost {
        result
            .content
            .push(ContentBlock::text(format!("[{}]", lost.note)));
        if let Ok(v) = serde_json::to_value(lost) {
            meta(result).insert(META_STATE_LOST.into(), v);
        }
    }
    if let Some(text) = report.text() {
        result.content.push(ContentBlock::text(text));
    }
    if !report.is_empty()
        && let Ok(v) = serde_json::to_value(report)
    {
        meta(result).insert(META_WORKSPACE.into(), v);
    }
}

fn meta(result: &mut CallToolResult) -> &mut serde_json::Map<String, serde_json::Value> {
    &mut result
        .meta
        .get_or_insert_with(|| rmcp::model::MetaObject(Default::default()))
        .0
}
