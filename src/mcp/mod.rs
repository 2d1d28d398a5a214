//! The MCP layer: the rmcp server handler and its tools.
//!
//! Tools stay thin (validate, one domain call, format); the domain lives in `pool`, `kernel`,
//! `notebook` and `packages`. Domain failures become tool results with `isError` and a `status`
//! (see `error.rs`); `ErrorData` is left to rmcp for requests that cannot be routed.

mod args;
pub(crate) mod cancel;
mod error;
pub mod invocation;
mod resources;
mod schema;
mod tools;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool_handler};

use crate::config::Settings;
use crate::notebook::NotebookStore;
use crate::pool::{Pool, PrincipalDirs};

/// Everything the tools share; built once before the HTTP door opens.
pub struct App {
    pub settings: Settings,
    pub pool: Arc<Pool>,
    /// Hardening that applied to the server process (only what succeeded).
    pub server_hardening: Vec<String>,
    /// How kernels are confined on this machine (the start-up probe: applied or why not).
    pub sandbox_layers: Vec<crate::child::Layer>,
    /// Serializes pip runs (one package directory until principals have their own).
    pub install_lock: tokio::sync::Mutex<()>,
}

/// The principal of every request until authentication exists: one local user.
pub const LOCAL_PRINCIPAL: &str = "local";

impl App {
    /// Who is calling. Kernels, notebooks and packages are keyed by it.
    fn principal(&self, _ctx: &RequestContext<RoleServer>) -> String {
        LOCAL_PRINCIPAL.to_string()
    }

    fn notebooks(&self, principal: &str) -> Result<NotebookStore, crate::notebook::Error> {
        NotebookStore::new(principal_dirs(&self.settings, principal).home)
    }

    /// The principal's files: the same directory and confinement as its notebooks.
    fn files(&self, principal: &str) -> Result<crate::files::Files, crate::notebook::Error> {
        Ok(crate::files::Files::new(self.notebooks(principal)?))
    }
}

/// The directories of a principal. The local principal works in the working directory itself.
pub fn principal_dirs(settings: &Settings, _principal: &str) -> PrincipalDirs {
    PrincipalDirs {
        home: settings.working_dir.clone(),
        packages: settings.working_dir.join(".packages"),
    }
}

/// The MCP handler; rmcp takes a clone per request (an `Arc` and the prebuilt router).
#[derive(Clone)]
pub struct JupyterMcp {
    app: Arc<App>,
    tool_router: ToolRouter<JupyterMcp>,
}

impl JupyterMcp {
    pub fn new(app: Arc<App>) -> Self {
        let mut tool_router = Self::kernel_tools()
            + Self::code_tools()
            + Self::notebook_tools()
            + Self::cell_tools()
            + Self::run_cell_tools()
            + Self::file_tools();
        for route in tool_router.map.values_mut() {
            schema::standardize_tool(&mut route.attr);
        }
        JupyterMcp { app, tool_router }
    }
}

const INSTRUCTIONS: &str = "Runs Python in real Jupyter (IPython) kernels. State persists between \
calls on the same kernel (pick one with the optional `kernel` argument; default \"default\"). \
Use execute_code to run code (plots come back as images), get_variables / inspect_variable to \
look at state, install_package to add a PyPI package, and the notebook tools to work in .ipynb \
files in the working directory: insert_cell, edit_cell, execute_cell (outputs are saved in the \
cell), execute_notebook. Change tools accept the `revision` read_notebook returned and refuse \
the change if the notebook changed since. list_files, read_file and write_file move files (a CSV, \
a full-size figure) in and out of the working directory.";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for JupyterMcp {
    /// Every tool call runs in a span naming the tool (and the Lambda request id) and ends
    /// with one log line saying how it went.
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        use tracing::Instrument;
        // A legacy-era HTTP `notifications/cancelled` (see cancel.rs) fires `context.ct` too.
        let _cancel_link = cancel::link(&mut context);
        let span = invocation::span(&context, &request.name, &self.app.principal(&context));
        let started = std::time::Instant::now();
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        let mut response = self.tool_router.call(tcc).instrument(span.clone()).await;
        if let Ok(rmcp::model::CallToolResponse::Complete(r)) = &mut response {
            error::label_argument_error(r);
        }
        let status = match &response {
            Ok(rmcp::model::CallToolResponse::Complete(r)) => error::status_of(r),
            Ok(_) => "pending".into(),
            Err(e) => format!("protocol_error {}", e.code.0),
        };
        span.in_scope(|| {
            tracing::info!(
                status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "tool call"
            )
        });
        response
    }

    async fn list_resources(
        &self,
        request: Option<rmcp::model::PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, rmcp::ErrorData> {
        let cursor = request.and_then(|r| r.cursor);
        resources::list(&self.app, &self.app.principal(&context), cursor).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, rmcp::ErrorData> {
        Ok(resources::templates())
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, rmcp::ErrorData> {
        resources::read(&self.app, &self.app.principal(&context), request.uri)
            .await
            .map(Into::into)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                .with_title("Jupyter kernel MCP server"),
        )
        .with_instructions(INSTRUCTIONS.to_string())
    }
}
