//! The glue between a tool call (or a resource request) and its audit record: which arguments
//! are recorded (the kernel of a tool that takes one, the package, the notebook or file path;
//! never outputs), which code ran, and how the outcome reads.
//!
//! The code is not read from the arguments: execute_cell and execute_notebook run a notebook's
//! cells and restore_kernel replays a history, none of which is an argument. Each call gets a
//! `service::CodeLog` in its request context instead (which `JupyterMcp::call` hands to the
//! service), and the one place that sends code to a kernel (`service::run`) writes what it
//! sends there, so the record holds what ran.

use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{CallToolRequestParams, CallToolResponse, Tool};
use rmcp::service::RequestContext;

use crate::audit::{Audit, ToolCall};
use crate::principal::Principal;
use crate::service::CodeLog;

/// The recorded arguments of one call, taken before the call consumes them, and its slot.
pub(super) struct Args {
    tool: String,
    kernel: Option<String>,
    package: Option<String>,
    path: Option<String>,
    slot: Arc<CodeLog>,
}

/// How the call went.
pub(super) struct Call<'a> {
    pub request_id: Option<&'a str>,
    pub rpc_id: String,
    pub client_addr: Option<String>,
    pub principal: &'a Principal,
    pub status: &'a str,
    pub elapsed: Duration,
    pub bytes_returned: usize,
}

/// Whether a tool takes a `kernel` argument, by its input schema.
pub(super) fn takes_kernel(route: Option<&Tool>) -> bool {
    route
        .and_then(|t| t.input_schema.get("properties"))
        .and_then(|p| p.as_object())
        .is_some_and(|p| p.contains_key("kernel"))
}

impl Args {
    /// The arguments of a tool call; `route` is the tool, if the name is one (its schema says
    /// whether the call has a kernel).
    pub fn of(request: &CallToolRequestParams, route: Option<&Tool>) -> Args {
        let field = |name: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Args {
            tool: request.name.to_string(),
            kernel: takes_kernel(route).then(|| {
                field("kernel").unwrap_or_else(|| crate::service::DEFAULT_KERNEL.to_string())
            }),
            package: field("package"),
            path: field("path").or_else(|| field("notebook")),
            slot: Arc::default(),
        }
    }

    /// A resource request (`resources/list`, `resources/read`), with the URI it reads.
    pub fn resource(method: &str, uri: Option<&str>) -> Args {
        Args {
            tool: method.to_string(),
            kernel: None,
            package: None,
            path: uri.map(str::to_string),
            slot: Arc::default(),
        }
    }

    /// Gives the call its slot, where the tools note the code they run.
    pub fn install(&self, ctx: &mut RequestContext<RoleServer>) {
        ctx.extensions.insert(Arc::clone(&self.slot));
    }

    pub fn record(&self, audit: &Audit, call: Call<'_>) {
        let pieces = self.slot.take();
        let (code_sha256, code) = audit.code_fields(&pieces);
        audit.tool_call(&ToolCall {
            request_id: call.request_id,
            rpc_id: Some(call.rpc_id),
            client_addr: call.client_addr,
            principal: call.principal.name(),
            auth: Some(call.principal.source()),
            tool: &self.tool,
            kernel: self.kernel.as_deref(),
            code_sha256,
            code_count: pieces.len(),
            code,
            package: self.package.as_deref(),
            path: self.path.as_deref(),
            status: call.status,
            duration_ms: call.elapsed.as_millis() as u64,
            bytes_returned: call.bytes_returned,
        });
    }
}

/// Size of a tool call's serialized result (0 for a protocol error or a pending task).
pub(super) fn bytes_of(response: &Result<CallToolResponse, rmcp::ErrorData>) -> usize {
    match response {
        Ok(CallToolResponse::Complete(r)) => serde_json::to_vec(r).map(|v| v.len()).unwrap_or(0),
        _ => 0,
    }
}

/// The status and size of a resource request's answer.
pub(super) fn resource_outcome<T: serde::Serialize>(
    answer: &Result<T, rmcp::ErrorData>,
) -> (String, usize) {
    match answer {
        Ok(r) => (
            "ok".into(),
            serde_json::to_vec(r).map(|v| v.len()).unwrap_or(0),
        ),
        Err(e) => (format!("protocol_error {}", e.code.0), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(schema: serde_json::Value) -> Tool {
        let serde_json::Value::Object(schema) = schema else {
            panic!("not an object")
        };
        Tool::new("t", "a tool", Arc::new(schema))
    }

    #[test]
    fn only_a_tool_whose_schema_has_kernel_records_one() {
        let with = tool(serde_json::json!({"properties": {"kernel": {}, "path": {}}}));
        let without = tool(serde_json::json!({"properties": {"path": {}}}));
        let mut request = CallToolRequestParams::new("t");
        assert_eq!(
            Args::of(&request, Some(&with)).kernel.as_deref(),
            Some("default")
        );
        assert_eq!(Args::of(&request, Some(&without)).kernel, None);
        assert_eq!(Args::of(&request, None).kernel, None);
        let args = serde_json::json!({"kernel": "k2", "notebook": "n.ipynb"});
        request.arguments = args.as_object().cloned();
        let recorded = Args::of(&request, Some(&with));
        assert_eq!(recorded.kernel.as_deref(), Some("k2"));
        assert_eq!(recorded.path.as_deref(), Some("n.ipynb"));
    }
}
