//! The MCP tools, grouped by what they act on. Each group is one `#[tool_router]` block; the
//! server adds the routers together. A tool is its arguments, one service call, and the
//! rendering of the result.

mod cells;
mod code;
mod executions;
mod files;
mod kernels;
mod notebooks;
mod restore;
mod run_cells;

use rmcp::RoleServer;
use rmcp::service::RequestContext;

use super::JupyterMcp;
use super::error::ToolError;
use crate::notebook::NotebookStore;
use crate::output::OutputItem;
use crate::service::OriginalNames;

/// The caller's store and files, for the tools that only read or change them: one blocking
/// operation off the async threads (`Service::with_store`, `Service::with_files`).
impl JupyterMcp {
    async fn with_store<T: Send + 'static>(
        &self,
        ctx: &RequestContext<RoleServer>,
        op: impl FnOnce(NotebookStore) -> Result<T, crate::notebook::Error> + Send + 'static,
    ) -> Result<T, ToolError> {
        let call = self.call(ctx)?;
        self.service.with_store(&call, op).await
    }

    async fn with_files<T: Send + 'static>(
        &self,
        ctx: &RequestContext<RoleServer>,
        op: impl FnOnce(crate::files::Files) -> Result<T, crate::files::Error> + Send + 'static,
    ) -> Result<T, ToolError> {
        let call = self.call(ctx)?;
        self.service.with_files(&call, op).await
    }

    /// Saves the originals of downscaled images (`Service::save_originals`).
    async fn save_originals(
        &self,
        ctx: &RequestContext<RoleServer>,
        names: OriginalNames<'_>,
        outputs: Vec<&mut OutputItem>,
    ) {
        match self.call(ctx) {
            Ok(call) => self.service.save_originals(&call, names, outputs).await,
            Err(e) => tracing::warn!(error = %e.message, "could not save original images"),
        }
    }

    /// The longest image side a call asked for (`Service::max_image_px`).
    fn max_image_px(&self, requested: Option<u32>) -> u32 {
        self.service.max_image_px(requested)
    }
}
