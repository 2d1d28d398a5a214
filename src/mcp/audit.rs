//! The glue between a tool call and its audit record: which arguments are recorded (kernel,
//! the code's digest, the package, the notebook path; never outputs) and how the outcome reads.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResponse};

use crate::audit::{Audit, ToolCall};
use crate::principal::Principal;

/// The recorded arguments of one call, taken before the call consumes them.
pub(super) struct Args {
    tool: String,
    kernel: Option<String>,
    code: Option<String>,
    package: Option<String>,
    path: Option<String>,
}

/// How the call went.
pub(super) struct Call<'a> {
    pub request_id: Option<&'a str>,
    pub rpc_id: String,
    pub principal: &'a Principal,
    pub status: &'a str,
    pub elapsed: Duration,
    pub response: &'a Result<CallToolResponse, rmcp::ErrorData>,
}

impl Args {
    pub fn of(request: &CallToolRequestParams) -> Args {
        let field = |name: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let kernel_tool = !request.name.contains("notebook");
        Args {
            tool: request.name.to_string(),
            kernel: field("kernel").or_else(|| {
                kernel_tool
                    .then(|| crate::mcp::tools::DEFAULT_KERNEL.to_string())
                    .filter(|_| request.name != "list_kernels")
            }),
            code: field("code"),
            package: field("package"),
            path: field("path"),
        }
    }

    pub fn record(&self, audit: &Audit, call: Call<'_>) {
        let (code_sha256, code) = match &self.code {
            Some(c) => {
                let (sha, kept) = audit.code_fields(c);
                (Some(sha), kept)
            }
            None => (None, None),
        };
        let bytes_returned = match call.response {
            Ok(CallToolResponse::Complete(r)) => {
                serde_json::to_vec(r).map(|v| v.len()).unwrap_or(0)
            }
            _ => 0,
        };
        audit.tool_call(&ToolCall {
            request_id: call.request_id,
            rpc_id: Some(call.rpc_id),
            principal: call.principal.name(),
            auth: Some(call.principal.source()),
            tool: &self.tool,
            kernel: self.kernel.as_deref(),
            code_sha256,
            code,
            package: self.package.as_deref(),
            path: self.path.as_deref(),
            status: call.status,
            duration_ms: call.elapsed.as_millis() as u64,
            bytes_returned,
        });
    }
}
