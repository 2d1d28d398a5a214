//! Running notebook cells: execute_cell and execute_notebook.
//!
//! A cell runs through the same path as execute_code (`run_code`: same statuses, caps, images,
//! timeout and cancel), with its outputs also recorded in nbformat form; they are saved into the
//! cell by a locked read-modify-write once it finishes, so a timeout or a crash later in a
//! notebook keeps what already ran, and edits made meanwhile to other cells are kept.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::code::{Execution, RunSpec, SavedCell, execution_result, progress_forwarder};
use crate::kernel::ExecStatus;
use crate::mcp::JupyterMcp;
use crate::mcp::args::Parameters;
use crate::mcp::error::{ToolError, respond, structured};
use crate::notebook::Shrinks;
use crate::notebook::edit::{self, CellRef, CodeCell};
use crate::output::OutputItem;

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
    /// Longest side, in pixels, of images sent back (default and maximum: the server's
    /// --max-image-px). Larger images are downscaled; the original is saved and linked.
    pub max_image_px: Option<u32>,
    /// Revision from read_notebook or an earlier change: refuse if the notebook changed since.
    pub revision: Option<String>,
}

/// How one cell of execute_notebook went.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CellRun {
    /// Index of the cell.
    pub index: usize,
    /// Id of the cell (absent before nbformat 4.5).
    pub id: Option<String>,
    /// ok, error, timeout, kernel_died or cancelled.
    pub status: ExecStatus,
    pub execution_count: Option<u64>,
    pub duration_ms: u64,
    /// What happened to the kernel or to the saving of the outputs, when it matters.
    pub note: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecuteNotebookOutput {
    /// ok if every cell that ran ended ok; otherwise the status of the first cell that did not.
    pub status: ExecStatus,
    /// Notebook path, relative to the working directory.
    pub path: String,
    /// Kernel name.
    pub kernel: String,
    /// The notebook's revision after the last save.
    pub revision: String,
    /// The code cells that ran, in order; each one's outputs are saved in the notebook.
    pub cells: Vec<CellRun>,
    /// Index of the first cell that did not end ok.
    pub failed_cell: Option<usize>,
    /// Outputs of that cell (the others' are in the notebook: read_notebook shows them).
    pub failed_outputs: Vec<OutputItem>,
    /// Indexes of the code cells in range that did not run because the run stopped.
    pub not_run: Vec<usize>,
}

impl JupyterMcp {
    /// Saves a run's outputs into the cell it ran from; a failure is told in the run's note.
    async fn save_run(
        &self,
        ctx: &RequestContext<RoleServer>,
        path: &str,
        cell: CodeCell,
        execution: &mut Execution,
    ) -> Option<SavedCell> {
        // A cell that never reached the kernel keeps the outputs it had.
        if !execution.ran {
            execution.add_note("the cell did not run; its saved outputs are kept".into());
            return None;
        }
        let outputs = std::mem::take(&mut execution.nb_outputs);
        let count = execution.execution_count;
        let path = path.to_owned();
        let saved = self
            .with_store(ctx, move |s| {
                let (pos, revision) = s.change(&path, None, false, Shrinks::Maybe, |doc, p| {
                    edit::save_outputs(doc, &cell, outputs, count, p)
                })?;
                Ok(SavedCell {
                    path: crate::notebook::display_path(&path),
                    index: pos.index,
                    id: pos.id,
                    revision,
                })
            })
            .await;
        match saved {
            Ok(saved) => Some(saved),
            Err(e) => {
                execution.add_note(format!("the outputs were not saved: {}", e.message));
                None
            }
        }
    }
}

#[tool_router(router = run_cell_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Run one code cell of a notebook in a kernel, exactly as execute_code runs code, and save
    /// its outputs and execution count into the cell. Returns the outputs like execute_code.
    #[tool(
        output_schema = schema_for_output::<super::code::ExecuteCodeOutput>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = true)
    )]
    async fn execute_cell(
        &self,
        Parameters(a): Parameters<ExecuteCellArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let (path, cell_ref, revision) = (a.path.clone(), a.cell, a.revision);
            let (cell, _) = self
                .with_store(&ctx, move |s| {
                    s.inspect_for_run(&path, revision.as_deref(), |doc, p| {
                        edit::code_cell(doc, &cell_ref, p)
                    })
                })
                .await?;
            let (progress, flush) = progress_forwarder(&ctx).unzip();
            let (kernel, mut execution) = self
                .run_code(
                    &ctx,
                    RunSpec {
                        kernel: a.kernel.as_deref(),
                        code: &cell.source,
                        timeout: a.timeout,
                        record: true,
                        max_image_px: a.max_image_px,
                    },
                    progress,
                )
                .await?;
            if let Some(flush) = flush {
                flush.wait().await;
            }
            let saved = self.save_run(&ctx, &a.path, cell, &mut execution).await;
            execution_result(kernel, execution, saved)
        };
        respond(result.await)
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
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let (path, revision, start, stop) = (a.path.clone(), a.revision, a.start, a.stop);
            let (cells, mut revision) = self
                .with_store(&ctx, move |s| {
                    s.inspect_for_run(&path, revision.as_deref(), |doc, _| {
                        Ok(range_cells(doc, start, stop))
                    })
                })
                .await?;
            let cells = cells.map_err(ToolError::invalid)?;
            let stop_on_error = a.stop_on_error.unwrap_or(true);
            let total = cells.len() as u64;
            let (mut progress, flush) =
                crate::mcp::progress::forwarder_with_total(&ctx, Some(total)).unzip();
            let mut out = ExecuteNotebookOutput {
                status: ExecStatus::Ok,
                path: crate::notebook::display_path(&a.path),
                kernel: a
                    .kernel
                    .clone()
                    .unwrap_or_else(|| super::DEFAULT_KERNEL.into()),
                revision: String::new(),
                cells: Vec::new(),
                failed_cell: None,
                failed_outputs: Vec::new(),
                not_run: Vec::new(),
            };
            // The kernel's turn is taken at the first cell and held for every cell after it: no
            // other call's code runs between two cells. The first cell's timeout covers the wait.
            let mut turn = None;
            let mut stopped = false;
            for (n, cell) in cells.into_iter().enumerate() {
                if stopped {
                    out.not_run.push(cell.pos.index);
                    continue;
                }
                let clock = self.start_clock(&ctx, a.timeout)?;
                let held = match turn.take() {
                    Some(held) => held,
                    None => self.take_turn(&ctx, a.kernel.as_deref(), clock).await?,
                };
                let mut execution = match held {
                    Ok(mut held) => {
                        out.kernel = held.name().to_owned();
                        let spec = RunSpec {
                            kernel: a.kernel.as_deref(),
                            code: &cell.source,
                            timeout: a.timeout,
                            record: true,
                            max_image_px: a.max_image_px,
                        };
                        let execution =
                            self.run_in_turn(&ctx, &mut held, spec, clock, None).await?;
                        turn = Some(Ok(held));
                        execution
                    }
                    // The wait for the kernel's turn ended first (timeout, cancel, a restart):
                    // this cell did not run, and the run stops.
                    Err((kernel, not_run)) => {
                        out.kernel = kernel;
                        not_run
                    }
                };
                let index = cell.pos.index;
                if let Some(saved) = self
                    .save_run(&ctx, &a.path, cell.clone(), &mut execution)
                    .await
                {
                    revision = saved.revision;
                }
                let status = execution.status;
                if let Some(p) = progress.as_mut() {
                    // One line per cell: updates the client has not taken yet are merged.
                    p(
                        n as u64 + 1,
                        format!("cell {index}: {}\n", status_name(status)),
                    );
                }
                out.cells.push(CellRun {
                    index,
                    id: cell.pos.id,
                    status,
                    execution_count: execution.execution_count,
                    duration_ms: execution.duration_ms(),
                    note: execution.note.clone(),
                });
                if status != ExecStatus::Ok && out.failed_cell.is_none() {
                    out.status = status;
                    out.failed_cell = Some(index);
                    out.failed_outputs = execution.outputs;
                }
                stopped =
                    status != ExecStatus::Ok && (stop_on_error || status != ExecStatus::Error);
            }
            out.revision = revision;
            drop(progress);
            if let Some(flush) = flush {
                flush.wait().await;
            }
            notebook_run_result(out)
        };
        respond(result.await)
    }
}

/// The code cells with a non-blank source in `start..stop`, or why the range is wrong.
fn range_cells(
    doc: &crate::notebook::Doc<'_>,
    start: Option<usize>,
    stop: Option<usize>,
) -> Result<Vec<CodeCell>, String> {
    let len = doc.cells.len();
    let (start, stop) = (start.unwrap_or(0), stop.unwrap_or(len));
    if start > stop || stop > len {
        return Err(format!(
            "start {start} and stop {stop} must satisfy start <= stop <= {len} (the number of cells)"
        ));
    }
    Ok(edit::code_cells(doc, start, stop)
        .into_iter()
        .filter(|c| !c.source.trim().is_empty())
        .collect())
}

/// One line per cell that ran, then the failing cell's outputs.
fn notebook_run_result(out: ExecuteNotebookOutput) -> Result<CallToolResult, ToolError> {
    let mut lines: Vec<String> = out
        .cells
        .iter()
        .map(|c| {
            let count = c
                .execution_count
                .map(|n| format!(" [{n}]"))
                .unwrap_or_default();
            let note = c
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            format!("cell {}: {:?}{count}{note}", c.index, c.status)
        })
        .collect();
    if !out.not_run.is_empty() {
        lines.push(format!("not run: cells {:?}", out.not_run));
    }
    lines.push(format!("saved in {} (revision {})", out.path, out.revision));
    let mut content = vec![ContentBlock::text(lines.join("\n"))];
    if let Some(i) = out.failed_cell {
        content.push(ContentBlock::text(format!("[outputs of cell {i}]")));
        for item in &out.failed_outputs {
            content.push(crate::mcp::render::item_content(item));
            content.extend(crate::mcp::render::original_link(item));
        }
    }
    let mut result = structured(content, &out)?;
    result.is_error = Some(out.status != ExecStatus::Ok);
    Ok(result)
}

/// The status as the results name it (`ok`, `kernel_died`), not its Rust name.
fn status_name(status: ExecStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
