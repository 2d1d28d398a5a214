//! Cell-editing tools: insert_cell, edit_cell, delete_cell, move_cell, clear_outputs.
//!
//! Each is one locked read-modify-write of the notebook (`NotebookStore::change`): concurrent
//! calls never lose each other's change, and a `revision` from read_notebook makes a change
//! conditional on nothing having changed since.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mcp::JupyterMcp;
use crate::mcp::args::Parameters;
use crate::mcp::error::{ToolError, respond, structured};
use crate::notebook::edit::{self, CellPos, CellRef};
use crate::notebook::{CellType, Doc, Error, Shrinks};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertCellArgs {
    /// Relative path of the notebook (.ipynb).
    pub path: String,
    /// Cell kind: `code`, `markdown` or `raw`.
    pub cell_type: CellType,
    /// Full text of the cell (lines separated by `\n`).
    pub source: String,
    /// Position the new cell takes (0 = first; default: after the last cell).
    pub index: Option<usize>,
    /// Revision from read_notebook or an earlier change: refuse if the notebook changed since.
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditCellArgs {
    /// Relative path of the notebook (.ipynb).
    pub path: String,
    /// The cell: its index (integer) or its id (string).
    pub cell: CellRef,
    /// New full text of the cell. Saved outputs are kept until the cell runs again.
    pub source: String,
    /// Revision from read_notebook or an earlier change: refuse if the notebook changed since.
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteCellArgs {
    /// Relative path of the notebook (.ipynb).
    pub path: String,
    /// The cell: its index (integer) or its id (string).
    pub cell: CellRef,
    /// Revision from read_notebook or an earlier change: refuse if the notebook changed since.
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveCellArgs {
    /// Relative path of the notebook (.ipynb).
    pub path: String,
    /// The cell: its index (integer) or its id (string).
    pub cell: CellRef,
    /// The index the cell ends up at (0 = first).
    pub to: usize,
    /// Revision from read_notebook or an earlier change: refuse if the notebook changed since.
    pub revision: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearOutputsArgs {
    /// Relative path of the notebook (.ipynb).
    pub path: String,
    /// One cell (index or id); default: every code cell.
    pub cell: Option<CellRef>,
    /// Revision from read_notebook or an earlier change: refuse if the notebook changed since.
    pub revision: Option<String>,
}

/// What a change did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CellChange {
    /// Notebook path, relative to the working directory.
    pub path: String,
    /// The notebook's revision after the change (pass it to the next change).
    pub revision: String,
    /// Index of the cell changed (for delete_cell: where it was).
    pub index: Option<usize>,
    /// Id of the cell changed (absent in notebooks older than nbformat 4.5).
    pub id: Option<String>,
    /// Number of cells in the notebook after the change.
    pub total_cells: usize,
    /// clear_outputs: how many code cells had outputs or a count to clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared: Option<usize>,
}

impl JupyterMcp {
    /// Runs one locked change of a notebook and describes it; `op` returns the cell it touched
    /// and, for clear_outputs, the number of cells cleared.
    async fn change_cells(
        &self,
        ctx: &RequestContext<RoleServer>,
        path: String,
        revision: Option<String>,
        what: &'static str,
        shrinks: Shrinks,
        op: impl FnOnce(&mut Doc<'_>, &str) -> Result<(Option<CellPos>, Option<usize>), Error>
        + Send
        + 'static,
    ) -> Result<CallToolResult, ToolError> {
        let change = self
            .with_store(ctx, move |s| {
                let ((pos, cleared, total), revision) = s.change(
                    &path,
                    revision.as_deref(),
                    false,
                    shrinks,
                    |doc, display| {
                        let (pos, cleared) = op(doc, display)?;
                        Ok((pos, cleared, doc.cells.len()))
                    },
                )?;
                Ok(CellChange {
                    path: crate::notebook::display_path(&path),
                    revision,
                    index: pos.as_ref().map(|p| p.index),
                    id: pos.and_then(|p| p.id),
                    total_cells: total,
                    cleared,
                })
            })
            .await?;
        let text = format!(
            "{what} in {}: {} cells, revision {}{}",
            change.path,
            change.total_cells,
            change.revision,
            change
                .index
                .map(|i| format!(", cell {i}"))
                .unwrap_or_default()
        );
        structured(vec![ContentBlock::text(text)], &change)
    }
}

#[tool_router(router = cell_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Insert a cell into a notebook (default: at the end). Returns the new cell's index and id
    /// and the notebook's new revision.
    #[tool(
        output_schema = schema_for_output::<CellChange>(),
        annotations(destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn insert_cell(
        &self,
        Parameters(a): Parameters<InsertCellArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let op = move |doc: &mut Doc<'_>, p: &str| {
            edit::insert(doc, a.cell_type, &a.source, a.index, p).map(|c| (Some(c), None))
        };
        respond(
            self.change_cells(&ctx, a.path, a.revision, "inserted", Shrinks::No, op)
                .await,
        )
    }

    /// Replace the source of one cell, named by index or id.
    #[tool(
        output_schema = schema_for_output::<CellChange>(),
        annotations(destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn edit_cell(
        &self,
        Parameters(a): Parameters<EditCellArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let op = move |doc: &mut Doc<'_>, p: &str| {
            edit::edit(doc, &a.cell, &a.source, p).map(|c| (Some(c), None))
        };
        respond(
            self.change_cells(&ctx, a.path, a.revision, "edited", Shrinks::Maybe, op)
                .await,
        )
    }

    /// Delete one cell, named by index or id.
    #[tool(
        output_schema = schema_for_output::<CellChange>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn delete_cell(
        &self,
        Parameters(a): Parameters<DeleteCellArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let op = move |doc: &mut Doc<'_>, p: &str| {
            edit::delete(doc, &a.cell, p).map(|c| (Some(c), None))
        };
        respond(
            self.change_cells(&ctx, a.path, a.revision, "deleted", Shrinks::Maybe, op)
                .await,
        )
    }

    /// Move one cell (by index or id) so that it ends up at index `to`.
    #[tool(
        output_schema = schema_for_output::<CellChange>(),
        annotations(destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn move_cell(
        &self,
        Parameters(a): Parameters<MoveCellArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let op = move |doc: &mut Doc<'_>, p: &str| {
            edit::move_to(doc, &a.cell, a.to, p).map(|c| (Some(c), None))
        };
        respond(
            self.change_cells(&ctx, a.path, a.revision, "moved", Shrinks::No, op)
                .await,
        )
    }

    /// Clear the saved outputs and execution counts of one code cell, or of every code cell.
    #[tool(
        output_schema = schema_for_output::<CellChange>(),
        annotations(destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn clear_outputs(
        &self,
        Parameters(a): Parameters<ClearOutputsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let op = move |doc: &mut Doc<'_>, p: &str| {
            let pos = match &a.cell {
                Some(c) => Some(edit::locate(doc, c, p)?),
                None => None,
            };
            let cleared = edit::clear_outputs(doc, a.cell.as_ref(), p)?;
            let pos = pos.map(|index| CellPos {
                index,
                id: doc.cell_id(index),
            });
            Ok((pos, Some(cleared)))
        };
        respond(
            self.change_cells(
                &ctx,
                a.path,
                a.revision,
                "cleared outputs",
                Shrinks::Maybe,
                op,
            )
            .await,
        )
    }
}
