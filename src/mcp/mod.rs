//! The MCP layer: the rmcp server handler and its tools.
//!
//! Tools stay thin: arguments, one service call (`service`), render. A request becomes a
//! service [`Call`] here ([`JupyterMcp::call`]); service failures become tool results with
//! `isError` and a `status` (see `error.rs`); `ErrorData` is left to rmcp for requests that
//! cannot be routed.

mod answer;
mod args;
mod audit;
pub(crate) mod cancel;
mod continuity;
mod error;
pub mod invocation;
mod progress;
mod render;
mod resources;
mod schema;
mod tasks;
mod tools;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool_handler};

use crate::principal::Principal;
use crate::service::{Call, CodeLog, Journal, Service, Status};
use error::{Show, ToolError};

impl JupyterMcp {
    /// Who is calling, as the auth middleware established it, admitted by the service (tenancy,
    /// directory). Kernels, notebooks and packages are keyed by it. A request that reached a tool
    /// without a principal (which the middleware prevents) is refused where credentials are
    /// required.
    fn principal(&self, ctx: &RequestContext<RoleServer>) -> Result<Principal, ToolError> {
        let found = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Principal>())
            .cloned();
        let principal = match found {
            Some(p) => p,
            None if !self.service.settings.requires_credentials() => Principal::local(),
            None => {
                return Err(ToolError::new(
                    Status::Unauthenticated,
                    "no authenticated principal for this request",
                ));
            }
        };
        self.service.admit(&principal)?;
        Ok(principal)
    }

    /// The request as the service sees it: the principal, the client's cancel, the time a
    /// Lambda invocation has left, and where the call's code and history records go.
    fn call(&self, ctx: &RequestContext<RoleServer>) -> Result<Call, ToolError> {
        let principal = self.principal(ctx)?;
        Ok(Call::new(principal, ctx.ct.clone())
            .with_time_left(invocation::time_left_for_code(ctx))
            .with_code_log(ctx.extensions.get::<Arc<CodeLog>>().cloned())
            .with_journal(ctx.extensions.get::<Arc<Journal>>().cloned()))
    }
}

/// The MCP handler; rmcp takes a clone per request (an `Arc` and the prebuilt router).
#[derive(Clone)]
pub struct JupyterMcp {
    service: Arc<Service>,
    tool_router: ToolRouter<JupyterMcp>,
}

impl JupyterMcp {
    pub fn new(service: Arc<Service>) -> Self {
        let mut tool_router = Self::kernel_tools()
            + Self::code_tools()
            + Self::notebook_tools()
            + Self::cell_tools()
            + Self::run_cell_tools()
            + Self::execution_tools()
            + Self::file_tools()
            + Self::restore_tools();
        for route in tool_router.map.values_mut() {
            schema::standardize_tool(&mut route.attr);
        }
        JupyterMcp {
            service,
            tool_router,
        }
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
            &self.service.audit,
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
        let principal = match self.principal(&context) {
            Ok(p) => p,
            Err(e) => {
                self.service.audit.refused(&crate::audit::Refused {
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
        let response = match self.service.limits.enter(principal.name()) {
            Ok(_running) => {
                let hook = continuity::Hook::before(
                    &self.service,
                    &principal,
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
                ToolError::new(Status::LimitReached, limit.to_string()).into_result(),
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
            &self.service.audit,
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
            .principal(&context)
            .map_err(ToolError::into_protocol_error)?;
        let started = std::time::Instant::now();
        self.service.refresh_workspace(principal.name()).await;
        let answer = resources::list(&self.service, principal.name(), cursor).await;
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

    /// `tasks/get`: the execution behind a task (see tasks.rs), audited like a tool call.
    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, rmcp::ErrorData> {
        let started = std::time::Instant::now();
        let call = self
            .call(&context)
            .map_err(ToolError::into_protocol_error)?;
        let answer = self
            .service
            .get_execution(&call, &request.task_id, std::time::Duration::ZERO)
            .await
            .map(|e| {
                let timeout = self.service.settings.exec_timeout;
                rmcp::model::GetTaskResult::new(tasks::detailed(&e, timeout))
            })
            .map_err(tasks::unknown_task);
        let principal = &call.principal;
        self.audit_resource(&context, principal, "tasks/get", None, started, &answer);
        answer
    }

    /// `tasks/cancel`: stops the execution behind a task, as cancel_execution does.
    async fn cancel_task(
        &self,
        request: rmcp::model::CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), rmcp::ErrorData> {
        let started = std::time::Instant::now();
        let call = self
            .call(&context)
            .map_err(ToolError::into_protocol_error)?;
        let answer = self
            .service
            .cancel_execution(&call, &request.task_id, tasks::TASKS_CANCEL)
            .await
            .map(drop)
            .map_err(tasks::unknown_task);
        let principal = &call.principal;
        self.audit_resource(&context, principal, "tasks/cancel", None, started, &answer);
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
            .principal(&context)
            .map_err(ToolError::into_protocol_error)?;
        let started = std::time::Instant::now();
        self.service.refresh_workspace(principal.name()).await;
        let uri = request.uri.clone();
        let answer = resources::read(&self.service, principal.name(), request.uri).await;
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
            // Tasks: the 2026-07-28 extension (see tasks.rs).
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_tasks()
                .build(),
        )
        .with_server_info(
            Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                .with_title("Jupyter kernel MCP server"),
        )
        .with_instructions(INSTRUCTIONS.to_string())
    }
}
