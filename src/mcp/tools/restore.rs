//! restore_kernel: rebuilds a kernel's state from its history (`workspace::history`) in a fresh
//! kernel (`service::restore`), for a caller whose previous kernel lives in another execution
//! environment.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::mcp::JupyterMcp;
use crate::mcp::args::Parameters;
use crate::mcp::error::{respond, structured};
use crate::mcp::progress;
use crate::service::RestoreKernelOutput;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreKernelArgs {
    /// Kernel name (default "default").
    pub kernel: Option<String>,
    /// Re-run only the first `upto` recorded cells (default: all).
    pub upto: Option<usize>,
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
        let result = async {
            let call = self.call(&ctx)?;
            let out = match self
                .service
                .prepare_restore(&call, kernel.as_deref(), upto)
                .await?
            {
                Ok(prepared) => {
                    let total = Some(prepared.total());
                    let (progress, flush) = progress::forwarder_with_total(&ctx, total).unzip();
                    let out = self.service.restore(&call, prepared, progress).await?;
                    progress::flush(flush).await;
                    out
                }
                Err(nothing) => nothing,
            };
            let text = ContentBlock::text(format!("[{}]", out.note));
            structured(vec![text], &out)
        };
        respond(result.await)
    }
}
