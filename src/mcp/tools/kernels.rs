//! Kernel lifecycle tools: status, restart, interrupt, list, shut down (`service::kernels`).

use crate::mcp::args::Parameters;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::mcp::JupyterMcp;
use crate::mcp::error::{respond, structured};
use crate::service::{KernelAction, KernelList, KernelStatus};

/// Arguments of the tools that act on one kernel.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelArgs {
    /// Kernel name (default "default"). Each name is a separate Python process with its own state.
    pub kernel: Option<String>,
}

#[tool_router(router = kernel_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Report a kernel's state (not_started, starting, idle, busy, dead), execution count,
    /// uptime, Python and ipykernel versions, memory use and the limits in force. Does not start
    /// a kernel.
    #[tool(
        output_schema = schema_for_output::<KernelStatus>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_kernel_status(
        &self,
        Parameters(KernelArgs { kernel }): Parameters<KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        respond((|| {
            let call = self.call(&ctx)?;
            structured(
                vec![],
                &self.service.kernel_status_of(&call, kernel.as_deref())?,
            )
        })())
    }

    /// Restart a kernel: kills its Python process (every variable is lost, a running call ends)
    /// and starts a fresh one.
    #[tool(
        output_schema = schema_for_output::<KernelStatus>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn restart_kernel(
        &self,
        Parameters(KernelArgs { kernel }): Parameters<KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let call = self.call(&ctx)?;
            structured(
                vec![],
                &self.service.restart(&call, kernel.as_deref()).await?,
            )
        };
        respond(result.await)
    }

    /// Interrupt the code running on a kernel (like Ctrl-C), keeping its state. The running
    /// execute_code call returns with what it printed so far.
    #[tool(
        output_schema = schema_for_output::<KernelAction>(),
        annotations(destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn interrupt_kernel(
        &self,
        Parameters(KernelArgs { kernel }): Parameters<KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let call = self.call(&ctx)?;
            structured(
                vec![],
                &self.service.interrupt(&call, kernel.as_deref()).await?,
            )
        };
        respond(result.await)
    }

    /// Shut a kernel down and free its place under the kernel limit (its state is lost).
    #[tool(
        output_schema = schema_for_output::<KernelAction>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn shutdown_kernel(
        &self,
        Parameters(KernelArgs { kernel }): Parameters<KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        respond((|| {
            let call = self.call(&ctx)?;
            structured(vec![], &self.service.shutdown(&call, kernel.as_deref())?)
        })())
    }

    /// List your kernels with their state.
    #[tool(
        output_schema = schema_for_output::<KernelList>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_kernels(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        respond((|| {
            let call = self.call(&ctx)?;
            structured(vec![], &self.service.list_kernels(&call))
        })())
    }
}
