//! The tools that see and stop work that outlives its call (`service::executions`):
//! get_execution, cancel_execution, list_executions. How a run tool answers `running` is in
//! `mcp/answer.rs`.

use std::sync::Arc;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mcp::JupyterMcp;
use crate::mcp::answer::{finished, what_next};
use crate::mcp::args::Parameters;
use crate::mcp::error::{ToolError, respond, structured};
use crate::service::executions::Execution;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetExecutionArgs {
    /// The id a `running` result gave.
    pub execution_id: String,
    /// Seconds to wait for the execution to end before answering (default and maximum: the
    /// server's --call-wait, 40 s unless set). 0 answers at once.
    pub wait: Option<f64>,
    /// Return all the output still kept from the start, not only what is new since your last
    /// get_execution of this id.
    pub all_output: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionIdArgs {
    /// The id a `running` result gave.
    pub execution_id: String,
}

/// One execution, as get_execution, cancel_execution and list_executions show it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecutionView {
    pub execution_id: String,
    /// The tool that started it: execute_code, execute_cell or execute_notebook.
    pub tool: String,
    /// Kernel name.
    pub kernel: String,
    /// `running`, or how it ended: ok, error, timeout, kernel_died, cancelled (or the status of a
    /// failure to run, e.g. not_found).
    pub status: String,
    /// Seconds since it started.
    pub elapsed_secs: f64,
    /// When it started, in seconds since the Unix epoch.
    pub started_at: u64,
    /// execute_notebook: cells finished so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cells_done: Option<u64>,
    /// execute_notebook: the code cells the run has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cells_total: Option<u64>,
    /// Who stopped it on purpose, when someone did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
}

/// get_execution and cancel_execution: the execution, its new output, and its result once done.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecutionReport {
    #[serde(flatten)]
    pub execution: ExecutionView,
    /// Text printed since your last get_execution of this id (all of it with `all_output`),
    /// within the server's output cap (head and tail kept). Images and rich displays come with
    /// the result.
    pub new_output: String,
    /// Bytes of output no longer kept (printed while nobody read them, past the cap).
    pub output_dropped_bytes: u64,
    /// Bytes printed so far.
    pub output_total_bytes: u64,
    /// Once it ended: the result the tool itself returns (execute_code's, execute_notebook's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecutionList {
    /// Your running and recently finished executions, newest first.
    pub executions: Vec<ExecutionView>,
}

impl ExecutionView {
    fn of(e: &Execution) -> ExecutionView {
        let cells = e.cells();
        ExecutionView {
            execution_id: e.id.clone(),
            tool: e.tool.to_string(),
            kernel: e.kernel.clone(),
            status: e.outcome().map_or("running", |o| o.status()).to_string(),
            elapsed_secs: (e.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            started_at: e.started_unix_secs(),
            cells_done: cells.map(|c| c.done),
            cells_total: cells.map(|c| c.total),
            stopped_by: e.stopped_by(),
        }
    }
}

/// get_execution's and cancel_execution's result: the view, the new output, the result once
/// done (its content as the tool gives it, after a first line naming the execution).
fn report(e: &Arc<Execution>, all_output: bool) -> Result<CallToolResult, ToolError> {
    let live = e.read(all_output);
    let outcome = e.outcome();
    let result = match &outcome {
        Some(o) => Some(finished(o)?),
        None => None,
    };
    let view = ExecutionView::of(e);
    let head = match &outcome {
        Some(_) => format!(
            "[execution {} ({} on kernel {:?}) ended: {}]",
            e.id, e.tool, e.kernel, view.status
        ),
        None => format!("[{}]", what_next(e)),
    };
    let mut content = vec![ContentBlock::text(head)];
    match &result {
        Some(r) => content.extend(r.content.iter().cloned()),
        None if !live.text.is_empty() => content.push(ContentBlock::text(live.text.clone())),
        None => {}
    }
    let out = ExecutionReport {
        execution: view,
        new_output: live.text,
        output_dropped_bytes: live.dropped_bytes,
        output_total_bytes: live.total_bytes,
        result: result.and_then(|r| r.structured_content),
    };
    structured(content, &out)
}

#[tool_router(router = execution_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Wait for, and read, an execution that answered `running` (execute_code, execute_cell,
    /// execute_notebook): waits up to `wait` seconds for it to end, then returns its status, the
    /// output printed since your last read, and, once it ended, its full result.
    #[tool(
        output_schema = schema_for_output::<ExecutionReport>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_execution(
        &self,
        Parameters(a): Parameters<GetExecutionArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let call = self.call(&ctx)?;
            let wait = self.service.call_wait(a.wait)?;
            let e = self
                .service
                .get_execution(&call, &a.execution_id, wait)
                .await?;
            report(&e, a.all_output.unwrap_or(false))
        };
        respond(result.await)
    }

    /// Stop a running execution: the code is interrupted (and the kernel restarted only if it
    /// does not stop), as on a timeout. Returns the execution's final result (`cancelled`).
    #[tool(
        output_schema = schema_for_output::<ExecutionReport>(),
        annotations(destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn cancel_execution(
        &self,
        Parameters(a): Parameters<ExecutionIdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let call = self.call(&ctx)?;
            let e = self
                .service
                .cancel_execution(&call, &a.execution_id, "cancel_execution")
                .await?;
            report(&e, false)
        };
        respond(result.await)
    }

    /// List your running and recently finished executions (newest first).
    #[tool(
        output_schema = schema_for_output::<ExecutionList>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_executions(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        respond((|| {
            let call = self.call(&ctx)?;
            let executions = self
                .service
                .list_executions(&call)
                .iter()
                .map(|e| ExecutionView::of(e))
                .collect();
            structured(vec![], &ExecutionList { executions })
        })())
    }
}
