//! Running notebook cells: execute_cell and execute_notebook.
//!
//! A cell runs through the same path as execute_code (`run_code`: same statuses, caps, images,
//! timeout and cancel), with its outputs also recorded in nbformat form; they are saved into the
//! cell by a locked read-modify-write once it finishes, so a timeout or a crash later in a
//! notebook keeps what already ran, and edits made meanwhile to other cells are kept.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::CallToolResponse;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::mcp::JupyterMcp;
use crate::mcp::args::Parameters;

use crate::mcp::progress;
use crate::notebook::edit::CellRef;
use crate::service::{CellRunRequest, ExecuteNotebookOutput, NotebookRun};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteCellArgs {
    /// Relative path of the notebook (.ipynb).
    pub path: String,
    /// The code cell: its index (integer) or its id (string).
    pub cell: CellRef,
    /// Kernel name (default "default").
    pub kernel: Option<String>,
    /// Time limit in seconds (default: the server's --exec-timeout; at most 3600).
    pub timeout: Option<f64>,
    /// Seconds to wait for the run to finish (default and maximum: the server's --call-wait,
    /// 40 s unless set). A run still going then goes on: the result says `running` with an
    /// `execution_id` for get_execution.
    pub wait: Option<f64>,
    /// Longest side, in pixels, of images sent back (default and maximum: the server's
    /// --max-image-px). Larger images are downscaled; the original is saved and linked.
    pub max_image_px: Option<u32>,
    /// Revision from read_notebook or an earlier change: refuse if the notebook changed since.
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteNotebookArgs {
    /// Relative path of the notebook (.ipynb).
    pub path: String,
    /// Kernel name (default "default"). Cells run in it in order, sharing its state.
    pub kernel: Option<String>,
    /// Index of the first cell to consider (default 0).
    pub start: Option<usize>,
    /// Index of the cell to stop before (default: the end of the notebook).
    pub stop: Option<usize>,
    /// Stop at the first cell that raises (default true); false runs on past errors. A timeout,
    /// a cancel or a dead kernel always stops the run.
    pub stop_on_error: Option<bool>,
    /// Time limit for each cell, in seconds (default: the server's --exec-timeout).
    pub timeout: Option<f64>,
    /// Seconds to wait for the run to finish (default and maximum: the server's --call-wait,
    /// 40 s unless set). A run still going then goes on: the result says `running` with an
    /// `execution_id` for get_execution.
    pub wait: Option<f64>,
    /// Longest side, in pixels, of images sent back (default and maximum: the server's
    /// --max-image-px). Larger images are downscaled; the original is saved and linked.
    pub max_image_px: Option<u32>,
    /// Revision from read_notebook or an earlier change: refuse if the notebook changed since.
    pub revision: Option<String>,
}

#[tool_router(router = run_cell_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Run one code cell of a notebook in a kernel, exactly as execute_code runs code, and save
    /// its outputs and execution count into the cell. Returns the outputs like execute_code.
    #[tool(
        output_schema = schema_for_output::<crate::service::ExecuteCodeOutput>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = true)
    )]
    async fn execute_cell(
        &self,
        Parameters(a): Parameters<ExecuteCellArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let wait = a.wait;
        let run = CellRunRequest {
            path: a.path,
            cell: a.cell,
            kernel: a.kernel,
            timeout: a.timeout,
            max_image_px: a.max_image_px,
            revision: a.revision,
        };
        let result = async {
            let call = self.call(&ctx)?;
            let (progress, flush) = progress::forwarder(&ctx).unzip();
            let answer = self.service.start_cell(&call, run, wait, progress).await?;
            progress::flush(flush).await;
            Ok(answer)
        };
        self.respond_to(&ctx, result.await)
    }

    /// Run a notebook's code cells in order in one kernel (optionally only cells start..stop),
    /// saving each cell's outputs as it finishes. Stops at the first error unless
    /// `stop_on_error` is false. Returns each cell's status and the failing cell's outputs.
    #[tool(
        output_schema = schema_for_output::<ExecuteNotebookOutput>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = true)
    )]
    async fn execute_notebook(
        &self,
        Parameters(a): Parameters<ExecuteNotebookArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let wait = a.wait;
        let run = NotebookRun {
            path: a.path,
            kernel: a.kernel,
            start: a.start,
            stop: a.stop,
            stop_on_error: a.stop_on_error.unwrap_or(true),
            timeout: a.timeout,
            max_image_px: a.max_image_px,
            revision: a.revision,
        };
        let result = async {
            let call = self.call(&ctx)?;
            let prepared = self.service.prepare_notebook_run(&call, run).await?;
            let total = Some(prepared.total());
            let (progress, flush) = progress::forwarder_with_total(&ctx, total).unzip();
            let answer = self
                .service
                .start_notebook(&call, prepared, wait, progress)
                .await?;
            progress::flush(flush).await;
            Ok(answer)
        };
        self.respond_to(&ctx, result.await)
    }
}
