//! Tool arguments: rmcp's `Parameters` extractor, but with errors that name the argument.
//!
//! serde alone says "invalid type: integer `42`, expected a string" without saying which
//! argument; `serde_path_to_error` adds the path, so a model can fix its call. The type keeps
//! the name `Parameters` because rmcp's `#[tool]` macro finds the input schema by that name.

use std::borrow::Cow;

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// The prefix rmcp recognizes as an argument error and returns as an `isError` tool result
/// (the 2025-11-25 spec treats input validation errors as tool execution errors).
pub(super) const ARGUMENT_ERROR_PREFIX: &str = "failed to deserialize parameters:";

/// A tool's arguments, deserialized from the call's `arguments` object.
pub struct Parameters<T>(pub T);

impl<T: JsonSchema> JsonSchema for Parameters<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl<S, T: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<T> {
    fn from_context_part(context: &mut ToolCallContext<S>) -> Result<Self, rmcp::ErrorData> {
        let arguments = serde_json::Value::Object(context.arguments.take().unwrap_or_default());
        serde_path_to_error::deserialize(arguments)
            .map(Parameters)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = if path == "." {
                    format!("{ARGUMENT_ERROR_PREFIX} {}", e.inner())
                } else {
                    format!("{ARGUMENT_ERROR_PREFIX} argument `{path}`: {}", e.inner())
                };
                rmcp::ErrorData::invalid_params(
                    format!(
                        "{message}\nhint: the tool's inputSchema lists each argument and its type"
                    ),
                    None,
                )
            })
    }
}
