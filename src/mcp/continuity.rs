//! The one place every tool call passes "before" and "after" for the durable workspace: the
//! service does the work (`service::journal`: restore, state check, history, write-through);
//! this decides from the tool what the call touches, puts the call's journal where
//! `JupyterMcp::call` finds it, and shows the outcome.
//!
//! What the mirror did reaches the model as a last text block and clients as `_meta`
//! (`jupyter-mcp-server/workspace`, `jupyter-mcp-server/state_lost`), so no tool's output schema
//! changes for it; `get_kernel_status` also shows the state in its own output.

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::RequestContext;

use crate::principal::Principal;
use crate::service::journal::{Continuity, Scope};
use crate::service::{DEFAULT_KERNEL, Service, StateLost};
use crate::workspace::Report;

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

/// The "before" of one call, carried to its "after".
pub(crate) struct Hook(Continuity);

impl Hook {
    /// Restores the workspace if needed and checks the named kernel's state; puts the journal
    /// into the request's extensions.
    pub async fn before(
        service: &Service,
        principal: &Principal,
        request: &CallToolRequestParams,
        route: Option<&rmcp::model::Tool>,
        ctx: &mut RequestContext<RoleServer>,
    ) -> Hook {
        let name = request.name.as_ref();
        let read_only = route
            .and_then(|t| t.annotations.as_ref())
            .and_then(|a| a.read_only_hint)
            .unwrap_or(false);
        let checks_kernel = super::audit::takes_kernel(route) && !NO_STATE_CHECK.contains(&name);
        let kernel = checks_kernel.then(|| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get("kernel"))
                .and_then(|k| k.as_str())
                .unwrap_or(DEFAULT_KERNEL)
        });
        let files = !NO_FILES.contains(&name);
        let scope = Scope {
            files,
            writes: files && !read_only,
            kernel,
        };
        let continuity = service.before_call(principal.name(), scope).await;
        if let Some(journal) = &continuity.journal {
            ctx.extensions.insert(std::sync::Arc::clone(journal));
        }
        Hook(continuity)
    }

    /// Appends the call's records to the histories, writes changed files through, and adds what
    /// happened to the response.
    pub async fn after(self, response: &mut Result<CallToolResponse, rmcp::ErrorData>) {
        let (report, lost) = self.0.after().await;
        if let Ok(CallToolResponse::Complete(result)) = response {
            decorate(result, &report, lost.as_ref());
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
