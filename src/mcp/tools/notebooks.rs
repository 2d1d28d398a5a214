//! Notebook tools: create_notebook, read_notebook, list_notebooks. Paths are relative to the
//! caller's directory; the store refuses anything that leaves it.

use crate::mcp::args::Parameters;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mcp::JupyterMcp;
use crate::mcp::error::{respond, structured};
use crate::notebook::{CellSpec, NotebookEntry, NotebookSummary};
use crate::output::fit::FitLimits;
use crate::output::{
    IMAGE_BUDGET_FACTOR, OutputItem, convert_nbformat, fit_image, image_fit_limits,
};
use crate::service::OriginalNames;

/// Cells read_notebook returns when no limit is given.
const DEFAULT_CELL_LIMIT: usize = 50;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotebookArgs {
    /// Relative path ending in .ipynb, e.g. `analysis/report.ipynb`. Folders are created.
    pub path: String,
    /// Cells to put in the notebook, in order (default: none).
    #[serde(default)]
    pub cells: Vec<CellSpec>,
    /// Replace an existing file (default false: an existing file is an error).
    #[serde(default)]
    pub overwrite: bool,
    /// With `overwrite`: the revision (from read_notebook or the last change) the notebook
    /// being replaced must still have; if it changed since, nothing is written (conflict).
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadNotebookArgs {
    /// Relative path of the notebook, as list_notebooks shows it.
    pub path: String,
    /// Include the cells' saved outputs (default true); images come back as image content.
    pub include_outputs: Option<bool>,
    /// Index of the first cell to return (default 0).
    #[serde(default)]
    pub start: usize,
    /// Number of cells to return (default 50).
    pub limit: Option<usize>,
    /// Longest side, in pixels, of images sent back (default and maximum: the server's
    /// --max-image-px). Larger images are downscaled; the original is saved and linked.
    pub max_image_px: Option<u32>,
}

/// One cell as read_notebook returns it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CellOut {
    pub index: usize,
    pub id: Option<String>,
    /// code, markdown or raw.
    pub cell_type: String,
    pub source: String,
    pub execution_count: Option<i64>,
    pub outputs: Vec<OutputItem>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadNotebookOutput {
    pub path: String,
    /// The notebook's revision: pass it to a change tool to have the change refused if the
    /// notebook changed in between.
    pub revision: String,
    /// Cells in the whole notebook.
    pub total_cells: usize,
    pub cells: Vec<CellOut>,
    /// True if saved outputs were left out to respect the output cap.
    pub outputs_truncated: bool,
    /// When cells were left out to respect the output cap: the `start` to read on from.
    pub next_start: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NotebookList {
    pub notebooks: Vec<NotebookEntry>,
}

#[tool_router(router = notebook_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Create a Jupyter notebook (.ipynb, nbformat 4.5) with the given cells. Refuses to
    /// overwrite an existing file unless `overwrite` is true.
    #[tool(
        output_schema = schema_for_output::<NotebookSummary>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn create_notebook(
        &self,
        Parameters(CreateNotebookArgs {
            path,
            cells,
            overwrite,
            revision,
        }): Parameters<CreateNotebookArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = self
            .with_store(&ctx, move |s| {
                s.create(&path, &cells, overwrite, revision.as_deref())
            })
            .await;
        respond(result.and_then(|summary| structured(vec![], &summary)))
    }

    /// Read a notebook's cells (index, id, type, source) and, by default, their saved outputs.
    /// Use `start` and `limit` to page through long notebooks.
    #[tool(
        output_schema = schema_for_output::<ReadNotebookOutput>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_notebook(
        &self,
        Parameters(args): Parameters<ReadNotebookArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let include = args.include_outputs.unwrap_or(true);
        let limit = Some(args.limit.unwrap_or(DEFAULT_CELL_LIMIT));
        let path = args.path.clone();
        let view = self
            .with_store(&ctx, move |s| s.read(&path, include, args.start, limit))
            .await;
        let budget = self.service.settings.max_output_bytes;
        let fit = image_fit_limits(budget, self.max_image_px(args.max_image_px));
        let result = async {
            let mut out = notebook_view(view?, budget, fit);
            let images = out.cells.iter_mut().flat_map(|c| &mut c.outputs).collect();
            self.save_originals(&ctx, OriginalNames::Content, images)
                .await;
            let content = notebook_content(&out);
            structured(content, &out)
        };
        respond(result.await)
    }

    /// List the notebooks in the working directory (recursively), with size and modification time.
    #[tool(
        output_schema = schema_for_output::<NotebookList>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_notebooks(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = self.with_store(&ctx, |s| s.list()).await;
        respond(result.and_then(|notebooks| structured(vec![], &NotebookList { notebooks })))
    }
}

/// The structured view: cells with their saved outputs as a tool returns them (images fitted
/// like execute_code's, originals kept to be saved), dropping text once `budget` bytes were used
/// and images once the image budget was.
fn notebook_view(
    view: crate::notebook::NotebookView,
    budget: usize,
    fit: FitLimits,
) -> ReadNotebookOutput {
    let mut used = 0usize;
    let image_budget = budget.saturating_mul(IMAGE_BUDGET_FACTOR);
    let mut image_used = 0usize;
    let mut outputs_truncated = false;
    let mut next_start = None;
    let mut cells = Vec::new();
    for cell in view.cells {
        // Sources count against the cap too; stop at a cell that does not fit (but always
        // return at least one, so paging moves on).
        if !cells.is_empty() && used + cell.source.len() > budget {
            next_start = Some(cell.index);
            break;
        }
        used += cell.source.len();
        let mut outputs = Vec::new();
        for item in cell.outputs.iter().filter_map(convert_nbformat) {
            let item = match item {
                // Fitting costs CPU: not for an image that could not be sent anyway.
                OutputItem::Image { .. } if image_used >= image_budget => {
                    outputs_truncated = true;
                    continue;
                }
                image @ OutputItem::Image { .. } => fit_image(image, fit),
                other => other,
            };
            let (counter, limit) = match item {
                OutputItem::Image { .. } => (&mut image_used, image_budget),
                _ => (&mut used, budget),
            };
            let size = item.size();
            if *counter + size > limit {
                outputs_truncated = true;
                continue;
            }
            *counter += size;
            outputs.push(item);
        }
        cells.push(CellOut {
            index: cell.index,
            id: cell.id,
            cell_type: cell.cell_type,
            source: cell.source,
            execution_count: cell.execution_count,
            outputs,
        });
    }
    ReadNotebookOutput {
        path: view.path,
        revision: view.revision,
        total_cells: view.total_cells,
        cells,
        outputs_truncated,
        next_start,
    }
}

/// The content blocks: each cell's text, then its outputs (images as image content, with a link
/// to the full-size original when one was downscaled), then what was left out.
fn notebook_content(out: &ReadNotebookOutput) -> Vec<ContentBlock> {
    let mut content = Vec::new();
    for cell in &out.cells {
        content.push(ContentBlock::text(format!(
            "[cell {} · {} · id {}]\n{}",
            cell.index,
            cell.cell_type,
            cell.id.as_deref().unwrap_or("-"),
            cell.source
        )));
        for item in &cell.outputs {
            content.push(crate::mcp::render::item_content(item));
            content.extend(crate::mcp::render::original_link(item));
        }
    }
    if out.outputs_truncated {
        content.push(ContentBlock::text(
            "[some saved outputs were left out to respect the output cap]",
        ));
    }
    if let Some(i) = out.next_start {
        content.push(ContentBlock::text(format!(
            "[cells from index {i} on were left out to respect the output cap; call read_notebook again with start={i}]"
        )));
    }
    content
}
