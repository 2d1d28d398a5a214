//! The one mapping from domain failures to MCP tool results.
//!
//! A tool that ran and failed returns a result with `isError: true`, a text the model can act on,
//! and `structuredContent {status, error}`. Messages come from the domain errors, which never
//! carry environment values, keys or other principals' paths.

use rmcp::model::{CallToolResult, ContentBlock};

use crate::{kernel, notebook, packages, pool};

/// A failed tool call: a machine-readable status and a message for the model.
#[derive(Debug)]
pub struct ToolError {
    pub status: &'static str,
    pub message: String,
}

impl ToolError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ToolError {
            status: "invalid_argument",
            message: message.into(),
        }
    }

    pub fn into_result(self) -> CallToolResult {
        let mut result = CallToolResult::error(vec![ContentBlock::text(self.message.clone())]);
        result.structured_content = Some(serde_json::json!({
            "status": self.status,
            "error": self.message,
        }));
        result
    }
}

impl From<pool::Error> for ToolError {
    fn from(e: pool::Error) -> Self {
        let status = match &e {
            pool::Error::TooManyKernels { .. } | pool::Error::TooManyKernelsForPrincipal { .. } => {
                "limit_reached"
            }
            pool::Error::InvalidName(_) => "invalid_argument",
            pool::Error::NoSuchKernel(_) => "not_found",
            pool::Error::ShuttingDown => "unavailable",
            pool::Error::Kernel(k) => return kernel_error(k, e.to_string()),
        };
        ToolError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<kernel::Error> for ToolError {
    fn from(e: kernel::Error) -> Self {
        let message = e.to_string();
        kernel_error(&e, message)
    }
}

fn kernel_error(e: &kernel::Error, message: String) -> ToolError {
    let status = match e {
        kernel::Error::InvalidName(_) => "invalid_argument",
        kernel::Error::NotFound(_) => "not_found",
        kernel::Error::Died => "kernel_died",
        kernel::Error::Spawn { .. }
        | kernel::Error::StartupExited { .. }
        | kernel::Error::StartupTimeout { .. }
        | kernel::Error::RuntimeDir { .. } => "kernel_start_failed",
        _ => "kernel_error",
    };
    ToolError { status, message }
}

impl From<notebook::Error> for ToolError {
    fn from(e: notebook::Error) -> Self {
        let status = match &e {
            notebook::Error::NotFound { .. } => "not_found",
            notebook::Error::AlreadyExists { .. } => "already_exists",
            notebook::Error::Io { .. } => "io_error",
            _ => "invalid_argument",
        };
        ToolError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<packages::PolicyError> for ToolError {
    fn from(e: packages::PolicyError) -> Self {
        ToolError {
            status: "refused",
            message: e.to_string(),
        }
    }
}

impl From<packages::InstallError> for ToolError {
    fn from(e: packages::InstallError) -> Self {
        let status = match &e {
            packages::InstallError::Timeout { .. } => "timeout",
            _ => "install_failed",
        };
        ToolError {
            status,
            message: e.to_string(),
        }
    }
}

/// Runs a tool body and turns its domain failure into an `isError` result.
pub fn respond(
    result: Result<CallToolResult, ToolError>,
) -> Result<CallToolResult, rmcp::ErrorData> {
    Ok(result.unwrap_or_else(ToolError::into_result))
}

/// A successful result with a text summary and structured content.
pub fn structured<T: serde::Serialize>(
    content: Vec<ContentBlock>,
    value: &T,
) -> Result<CallToolResult, ToolError> {
    let value = serde_json::to_value(value).map_err(|e| ToolError {
        status: "internal_error",
        message: format!("could not serialize the result: {e}"),
    })?;
    let content = if content.is_empty() {
        vec![ContentBlock::text(value.to_string())]
    } else {
        content
    };
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(value);
    Ok(result)
}
