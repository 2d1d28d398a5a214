//! The one mapping from domain failures to MCP tool results, and the result convention every
//! tool follows.
//!
//! - **Success**: `structuredContent` is the tool's output type (it matches the declared
//!   `outputSchema`), and the text `content` carries what a model needs to go on, since many
//!   hosts show the model only `content`: outputs, truncation notes, where to page on
//!   ([`structured`] puts the JSON itself in the text when a tool has nothing better to say).
//! - **Failure** (a tool that ran and failed): `isError: true`, **no `structuredContent`**, and
//!   one text block whose first line is `status: <status>` (e.g. `status: not_found`), followed by
//!   the message, which says what to do next ([`ToolError::into_result`]).
//! - `execute_code` is the one tool whose own failed outcomes (the code raised, timed out, was
//!   cancelled, the kernel died) are results of the tool rather than failures to run it: they
//!   keep `isError: true` *and* their full `ExecuteCodeOutput`, which matches its schema.
//!
//! Why no `structuredContent` on failure, rather than an error branch in every `outputSchema`:
//! clients validate `structuredContent` against `outputSchema` whenever it is present, even
//! with `isError` (the TypeScript SDK does, and throws when it does not match). A schema with
//! a `oneOf` error branch would make every success shape harder to read and to generate
//! types from, for a case that clients and models read as text anyway. The spec lets an error
//! result omit `structuredContent`, and the clients tested here (TypeScript SDK, Python SDK,
//! MCP Inspector) accept it. The `status:` line keeps the machine-readable status for tests,
//! logs and models ([`status_of`] reads it back).
//!
//! A tool gets all of this by returning `respond(...)` of a `Result` built with [`structured`]
//! and `?` on domain errors; rmcp's own argument errors get the same `status:` line
//! ([`label_argument_error`], called for every tool in `call_tool`), and every schema loses its
//! non-standard formats in `schema.rs`. `tests/results.rs` checks each tool against this.
//!
//! Messages come from the domain errors, which never carry environment values, keys or other
//! principals' paths. `ErrorData` (a JSON-RPC error) is only for requests that cannot be routed.

use rmcp::model::{CallToolResult, ContentBlock};

/// A failed tool call: the service's failure (a status and a message for the model).
pub type ToolError = crate::service::Error;

/// How a failure is shown: as a tool result or, for requests that are not tool calls, as a
/// JSON-RPC error.
pub trait Show {
    /// The failure as a tool result: `isError`, no `structuredContent`, and a text whose first
    /// line is `status: <status>`.
    fn into_result(self) -> CallToolResult;
    /// For the requests that are not tool calls (resources): their failures can only be
    /// JSON-RPC errors.
    fn into_protocol_error(self) -> rmcp::ErrorData;
}

impl Show for ToolError {
    fn into_protocol_error(self) -> rmcp::ErrorData {
        rmcp::ErrorData::invalid_request(format!("{}: {}", self.status, self.message), None)
    }

    fn into_result(self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(format!(
            "{STATUS_PREFIX}{}\n{}",
            self.status, self.message
        ))])
    }
}

/// rmcp answers arguments that do not deserialize (see `args.rs`) with an `isError` text that
/// must start with its own prefix to be recognized; this gives that result the `status:` first
/// line of every other failure.
pub fn label_argument_error(result: &mut CallToolResult) {
    if result.is_error != Some(true) || result.structured_content.is_some() {
        return;
    }
    if let Some(first) = result.content.first_mut()
        && let Some(text) = first.as_text()
        && text.text.starts_with(super::args::ARGUMENT_ERROR_PREFIX)
    {
        *first = ContentBlock::text(format!("{STATUS_PREFIX}invalid_argument\n{}", text.text));
    }
}

/// How the first line of a failed result's text starts.
const STATUS_PREFIX: &str = "status: ";

/// The status of a result: `structuredContent.status` when the result has one (execute_code),
/// else the `status:` first line of a failure, else `ok`/`error` from `isError`.
pub fn status_of(result: &CallToolResult) -> String {
    if let Some(s) = result
        .structured_content
        .as_ref()
        .and_then(|s| s.get("status"))
        .and_then(|s| s.as_str())
    {
        return s.to_string();
    }
    let first_line = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .and_then(|t| t.text.lines().next())
        .and_then(|l| l.strip_prefix(STATUS_PREFIX));
    match (first_line, result.is_error) {
        (Some(s), Some(true)) => s.to_string(),
        (_, Some(true)) => "error".into(),
        _ => "ok".into(),
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
    let value = serde_json::to_value(value).map_err(|e| {
        ToolError::new(
            crate::service::Status::InternalError,
            format!("could not serialize the result: {e}"),
        )
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
