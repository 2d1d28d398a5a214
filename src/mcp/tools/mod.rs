//! The MCP tools, grouped by what they act on. Each group is one `#[tool_router]` block; the
//! server adds the routers together.

mod cells;
mod code;
mod files;
mod kernels;
mod notebooks;
mod restore;
mod run_cells;

use rmcp::RoleServer;
use rmcp::service::RequestContext;

use super::JupyterMcp;
use super::error::ToolError;
use crate::pool::KernelKey;

/// The kernel name used when a call names none.
pub const DEFAULT_KERNEL: &str = "default";

impl JupyterMcp {
    /// The (principal, kernel name) a call acts on.
    fn key(
        &self,
        ctx: &RequestContext<RoleServer>,
        kernel: Option<&str>,
    ) -> Result<KernelKey, ToolError> {
        let principal = self.app.principal(ctx)?;
        Ok(KernelKey::new(
            principal.name(),
            kernel.unwrap_or(DEFAULT_KERNEL),
        )?)
    }
}

/// Runs a blocking file-system operation (notebook or file store) off the async threads and
/// maps its domain error to a tool error.
async fn run_blocking<S: Send + 'static, T: Send + 'static, E: Send + 'static>(
    store: S,
    op: impl FnOnce(S) -> Result<T, E> + Send + 'static,
) -> Result<T, ToolError>
where
    ToolError: From<E>,
{
    tokio::task::spawn_blocking(move || op(store))
        .await
        .map_err(|e| ToolError {
            status: "internal_error",
            message: e.to_string(),
        })?
        .map_err(ToolError::from)
}
