//! The MCP layer: the rmcp server handler and its tools.
//!
//! Tools stay thin (validate, one domain call, format); the domain lives in `pool`, `kernel`,
//! `notebook` and `packages`. Domain failures become tool results with `isError` and a `status`
//! (see `error.rs`); `ErrorData` is left to rmcp for requests that cannot be routed.

mod args;
mod audit;
pub(crate) mod cancel;
pub(crate) mod continuity;
mod error;
pub mod invocation;
mod progress;
mod render;
mod resources;
mod schema;
mod tools;
mod wait;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool_handler};

use crate::audit::Audit;
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::notebook::NotebookStore;
use crate::pool::Pool;
use crate::principal::{Principal, PrincipalDirs};
use error::ToolError;

/// Everything the tools share; built once before the HTTP door opens.
pub struct App {
    pub settings: Settings,
    pub pool: Arc<Pool>,
    /// Hardening that applied to the server process (only what succeeded).
    pub server_hardening: Vec<String>,
    /// How kernels are confined on this machine (the start-up probe: applied or why not).
    pub sandbox_layers: Vec<crate::child::Layer>,
    /// One pip at a time per principal (two `--target` runs into one package directory can
    /// leave it half-written); principals do not wait for each other. Std mutex: map access only.
    pub install_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub auth: Arc<Authenticator>,
    pub audit: Arc<Audit>,
    /// On Lambda with `--lambda-tenancy single`: the one principal this execution environment
    /// serves now. Std mutex, short sections.
    pub tenant: Mutex<Option<String>>,
    pub limits: Arc<crate::limits::Limits>,
    /// Principals whose directory is made and owned as it should be (once per principal).
    pub homes_ready: crate::principal::Ready,
    /// The S3 mirror of the workspaces and kernel histories (`--workspace-bucket`).
    pub workspace: Option<Arc<crate::workspace::Workspace>>,
}

/// The principal of every request on a server without authentication.
pub const LOCAL_PRINCIPAL: &str = crate::principal::LOCAL;

impl App {
    /// Who is calling, as the auth middleware established it, with their directory created.
    /// Kernels, notebooks and packages are keyed by it. A request that reached a tool without a
    /// principal (which the middleware prevents) is refused where credentials are required.
    fn principal(&self, ctx: &RequestContext<RoleServer>) -> Result<Principal, ToolError> {
        let found = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Principal>())
            .cloned();
        let principal = match found {
            Some(p) => p,
            None if !self.settings.requires_credentials() => Principal::local(),
            None => {
                return Err(ToolError {
                    status: "unauthenticated",
                    message: "no authenticated principal for this request".into(),
                });
            }
        };
        self.switch_tenant(principal.name());
        self.homes_ready.ensure(principal.name(), || {
            make_home(&self.settings, principal.name())
        })?;
        Ok(principal)
    }

    /// Single tenancy on Lambda (every process shares one OS user there): before the execution
    /// environment serves another principal, everything the previous one could have left is
    /// removed: every kernel and the warm spare (all of them were the previous tenant's), all of
    /// the working directory (other principals' directories included: in single tenancy only the
    /// previous tenant's kernels ran, and without Landlock they could write anywhere in it), and
    /// the kernels' runtime and temp directories. The new principal's directory is then made
    /// afresh. Lambda sends an environment one request at a time, so no call of the previous
    /// principal is running. Files a kernel wrote elsewhere under /tmp (possible only where
    /// Landlock does not apply) are not found here.
    fn switch_tenant(&self, principal: &str) {
        let single = self
            .settings
            .lambda
            .as_ref()
            .is_some_and(|l| l.tenancy == crate::config::Tenancy::Single);
        if !single {
            return;
        }
        let previous = match self.tenant.lock() {
            Ok(mut tenant) if tenant.as_deref() != Some(principal) => {
                tenant.replace(principal.to_string())
            }
            _ => return,
        };
        let Some(previous) = previous else {
            return;
        };
        let (kernels, spare) = self.pool.retire_all();
        if let Some(ws) = &self.workspace {
            ws.forget(&previous);
        }
        let (removed, errors) = if self.settings.local_owns_working_dir() {
            // Not reachable on Lambda (where `local` has a directory of its own); the operator's
            // directory is never emptied.
            (0, Vec::new())
        } else {
            crate::principal::empty_dir(&self.settings.working_dir)
        };
        for e in &errors {
            tracing::error!(error = %e, "lambda single tenancy: could not remove something the previous principal left");
        }
        self.homes_ready.forget_all();
        tracing::warn!(
            from = %previous,
            to = %principal,
            kernels_stopped = kernels,
            spare_stopped = spare,
            entries_removed = removed,
            files_removed = errors.is_empty(),
            "lambda single tenancy: this environment now serves another principal"
        );
    }

    fn notebooks(&self, principal: &str) -> Result<NotebookStore, crate::notebook::Error> {
        NotebookStore::new(principal_dirs(&self.settings, principal).home)
    }

    /// The principal's files: the same directory and confinement as its notebooks.
    fn files(&self, principal: &str) -> Result<crate::files::Files, crate::notebook::Error> {
        Ok(crate::files::Files::new(self.notebooks(principal)?))
    }

    /// Resource requests see the workspace as tool calls do: restored or refreshed from S3
    /// first (their notes have nowhere to go but the log).
    async fn refresh_workspace(&self, principal: &str) {
        if let Some(ws) = &self.workspace {
            let home = principal_dirs(&self.settings, principal).home;
            let report = ws.before_call(principal, &home).await;
            if let Some(text) = report.text() {
                tracing::info!(principal, report = %text, "workspace refreshed for a resource request");
            }
        }
    }

    /// The pip lock of one principal.
    fn install_lock(&self, principal: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.install_locks.lock() {
            Ok(mut locks) => Arc::clone(locks.entry(principal.to_string()).or_default()),
            // A poisoned map only means a panic elsewhere; a fresh lock still serializes
            // nothing wrongly for this call's own directory.
            Err(_) => Arc::default(),
        }
    }
}

/// Creates a principal's directory (0700) and hands it to the uid its kernels run as. The
/// operator's working directory, which `local` may use as its own, is left as it is.
pub(crate) fn make_home(settings: &Settings, principal: &str) -> Result<(), ToolError> {
    let dirs = principal_dirs(settings, principal);
    let io_error = |message: String| ToolError {
        status: "io_error",
        message,
    };
    // On Lambda every process shares one OS user: a home this process did not make may
    // hold what another tenant planted there (see `PrincipalDirs::create`).
    let made = dirs
        .create(settings.lambda.is_some())
        .map_err(|e| io_error(format!("cannot create your working directory: {e}")))?;
    if made == crate::principal::Made::Replaced {
        tracing::warn!(
            principal,
            "a principal directory this process did not make was not empty and private: replaced with an empty one"
        );
    }
    if dirs.home != settings.working_dir {
        settings
            .sandbox
            .own_home(&dirs.home)
            .map_err(|e| io_error(e.to_string()))?;
    }
    Ok(())
}

/// The directories of a principal: `WORKING_DIR/<principal dir>`, or the working directory
/// itself for `local` on a server where no other principal can exist (see `principal`).
pub fn principal_dirs(settings: &Settings, principal: &str) -> PrincipalDirs {
    PrincipalDirs::of(
        &settings.working_dir,
        principal,
        settings.local_owns_working_dir(),
    )
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
            + Self::file_tools()
            + Self::restore_tools();
        for route in tool_router.map.values_mut() {
            schema::standardize_tool(&mut route.attr);
        }
        JupyterMcp { app, tool_router }
    }
}

impl JupyterMcp {
    /// The audit record of a resource request (named like a tool: `resources/list`,
    /// `resources/read`), since it hands the caller's files out as tools do.
    fn audit_resource<T: serde::Serialize>(
        &self,
        context: &RequestContext<RoleServer>,
        principal: &Principal,
        method: &str,
        uri: Option<&str>,
        started: std::time::Instant,
        answer: &Result<T, rmcp::ErrorData>,
    ) {
        let (status, bytes_returned) = audit::resource_outcome(answer);
        audit::Args::resource(method, uri).record(
            &self.app.audit,
            audit::Call {
                request_id: invocation::request_id(context).as_deref(),
                rpc_id: context.id.to_string(),
                client_addr: invocation::client_addr(context),
                principal,
                status: &status,
                elapsed: started.elapsed(),
                bytes_returned,
            },
        );
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
        let principal = match self.app.principal(&context) {
            Ok(p) => p,
            Err(e) => {
                self.app.audit.refused(&crate::audit::Refused {
                    request_id: invocation::request_id(&context).as_deref(),
                    rpc_id: Some(context.id.to_string()),
                    client_addr: invocation::client_addr(&context),
                    principal: None,
                    reason: &e.message,
                });
                return Ok(rmcp::model::CallToolResponse::Complete(e.into_result()));
            }
        };
        let span = invocation::span(&context, &request.name, principal.name());
        let started = std::time::Instant::now();
        let route = self
            .tool_router
            .map
            .get(request.name.as_ref())
            .map(|r| &r.attr);
        let audit_args = audit::Args::of(&request, route);
        audit_args.install(&mut context);
        let request_id = invocation::request_id(&context);
        let client_addr = invocation::client_addr(&context);
        let rpc_id = context.id.to_string();
        let response = match self.app.limits.enter(principal.name()) {
            Ok(_running) => {
                let hook = continuity::Hook::before(
                    &self.app,
                    principal.name(),
                    &request,
                    route,
                    &mut context,
                )
                .instrument(span.clone())
                .await;
                let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
                let mut response = self.tool_router.call(tcc).instrument(span.clone()).await;
                if let Ok(rmcp::model::CallToolResponse::Complete(r)) = &mut response {
                    error::label_argument_error(r);
                }
                hook.after(&mut response).instrument(span.clone()).await;
                response
            }
            Err(limit) => Ok(rmcp::model::CallToolResponse::Complete(
                ToolError {
                    status: "limit_reached",
                    message: limit.to_string(),
                }
                .into_result(),
            )),
        };
        let status = match &response {
            Ok(rmcp::model::CallToolResponse::Complete(r)) => error::status_of(r),
            Ok(_) => "pending".into(),
            Err(e) => format!("protocol_error {}", e.code.0),
        };
        let elapsed = started.elapsed();
        span.in_scope(|| {
            tracing::info!(status, elapsed_ms = elapsed.as_millis() as u64, "tool call")
        });
        audit_args.record(
            &self.app.audit,
            audit::Call {
                request_id: request_id.as_deref(),
                rpc_id,
                client_addr,
                principal: &principal,
                status: &status,
                elapsed,
                bytes_returned: audit::bytes_of(&response),
            },
        );
        response
    }

    async fn list_resources(
        &self,
        request: Option<rmcp::model::PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, rmcp::ErrorData> {
        let cursor = request.and_then(|r| r.cursor);
        let principal = self
            .app
            .principal(&context)
            .map_err(ToolError::into_protocol_error)?;
        let started = std::time::Instant::now();
        self.app.refresh_workspace(principal.name()).await;
        let answer = resources::list(&self.app, principal.name(), cursor).await;
        self.audit_resource(
            &context,
            &principal,
            "resources/list",
            None,
            started,
            &answer,
        );
        answer
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
        let principal = self
            .app
            .principal(&context)
            .map_err(ToolError::into_protocol_error)?;
        let started = std::time::Instant::now();
        self.app.refresh_workspace(principal.name()).await;
        let uri = request.uri.clone();
        let answer = resources::read(&self.app, principal.name(), request.uri).await;
        self.audit_resource(
            &context,
            &principal,
            "resources/read",
            Some(&uri),
            started,
            &answer,
        );
        answer.map(Into::into)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            // Resources without `listChanged`: over stateless HTTP (no sessions, so no standing
            // stream) the server has no way to push `notifications/resources/list_changed`
            // outside a request, and it sends none over stdio yet; clients re-list instead.
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
