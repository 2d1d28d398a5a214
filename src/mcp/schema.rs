//! Tool schemas as every client can read them: only the `format`s JSON Schema 2020-12 defines.
//!
//! schemars annotates Rust number types with OpenAPI-style formats (`uint`, `uint64`, `int64`,
//! `double`, ...). They are not part of JSON Schema, and validators such as Ajv (behind the
//! TypeScript SDK) print a warning for each unknown one on every `tools/list`. The type and the
//! `minimum: 0` schemars emits beside them already say what a client needs, so the format is
//! dropped. This runs once on every tool's input and output schema when the router is built
//! (`JupyterMcp::new`), so a new tool gets it without doing anything.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use serde_json::Value;

/// The formats JSON Schema 2020-12 defines (Validation, section 7.3).
pub(crate) const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Drops non-standard formats from a tool's input and output schemas.
pub(crate) fn standardize_tool(tool: &mut Tool) {
    standardize(Arc::make_mut(&mut tool.input_schema));
    if let Some(output) = tool.output_schema.as_mut() {
        standardize(Arc::make_mut(output));
    }
}

/// Drops every `format` keyword whose value is not a standard format, at any depth.
fn standardize(schema: &mut JsonObject) {
    if schema
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
    {
        schema.remove("format");
    }
    for value in schema.values_mut() {
        standardize_value(value);
    }
}

fn standardize_value(value: &mut Value) {
    match value {
        Value::Object(map) => standardize(map),
        Value::Array(items) => items.iter_mut().for_each(standardize_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_formats_are_dropped_at_any_depth() {
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": {
                "count": {"type": "integer", "format": "uint64", "minimum": 0},
                "items": {"type": "array", "items": {"type": ["integer", "null"], "format": "uint"}},
                "ratio": {"anyOf": [{"type": "number", "format": "double"}, {"type": "null"}]},
                "when": {"type": "string", "format": "date-time"},
                "format": {"type": "string"}
            }
        });
        let Value::Object(map) = &mut schema else {
            unreachable!()
        };
        standardize(map);
        let text = schema.to_string();
        assert!(!text.contains("uint"), "{text}");
        assert!(!text.contains("double"), "{text}");
        assert!(text.contains("date-time"), "{text}");
        assert_eq!(schema["properties"]["count"]["minimum"], 0);
        assert_eq!(schema["properties"]["format"]["type"], "string");
    }
}
