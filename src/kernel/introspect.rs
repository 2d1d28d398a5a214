//! Variable listing and inspection, run inside the kernel by helpers the server installs as the
//! module `_jupyter_mcp` (see `introspect.py`), so nothing appears in the user's namespace.
//!
//! A variable name reaches the kernel as data: it is validated as an identifier or dotted
//! attribute path here, passed as a JSON string literal, and resolved in Python with `getattr`
//! (never `eval`), so `x; import os` cannot become code.

use super::{Error, Kernel};

const HELPERS: &str = include_str!("introspect.py");
/// Longest name `inspect_variable` accepts.
const MAX_NAME_LEN: usize = 200;

/// Defines `_jupyter_mcp` in the kernel without binding any name in the user's namespace.
pub(super) async fn install_helpers(kernel: &Kernel) -> Result<(), Error> {
    let source = serde_json::to_string(HELPERS).map_err(|e| Error::Unexpected(e.to_string()))?;
    let code = format!(
        "exec(compile({source}, '<jupyter-mcp>', 'exec'), __import__('sys').modules.setdefault('_jupyter_mcp', __import__('types').ModuleType('_jupyter_mcp')).__dict__)"
    );
    kernel.run_internal(&code).await.map(|_| ())
}

/// The user's variables: `{"variables": [...], "total": n, "truncated": bool}`.
pub async fn variables(kernel: &Kernel) -> Result<serde_json::Value, Error> {
    let out = kernel
        .run_internal("__import__('_jupyter_mcp').variables()")
        .await?;
    parse(&out)
}

/// Details of one variable or attribute path.
pub async fn inspect(kernel: &Kernel, name: &str) -> Result<serde_json::Value, Error> {
    validate_name(name)?;
    let literal = serde_json::to_string(name).map_err(|e| Error::Unexpected(e.to_string()))?;
    let out = kernel
        .run_internal(&format!("__import__('_jupyter_mcp').inspect({literal})"))
        .await?;
    let value = parse(&out)?;
    match value.get("error").and_then(|e| e.as_str()) {
        Some(message) => Err(Error::NotFound(message.to_string())),
        None => Ok(value),
    }
}

/// Accepts `name` or `name.attr.attr` where each part is a Python identifier.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let valid_part = |part: &str| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
            && chars.all(|c| c == '_' || c.is_alphanumeric())
    };
    if name.len() > MAX_NAME_LEN || !name.split('.').all(valid_part) {
        return Err(Error::InvalidName(name.chars().take(80).collect()));
    }
    Ok(())
}

fn parse(out: &str) -> Result<serde_json::Value, Error> {
    let last = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last)
        .map_err(|e| Error::Unexpected(format!("introspection output was not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_identifiers_and_dotted_paths() {
        for ok in ["x", "_x1", "df.columns", "a.b.c", "données"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_code_and_junk() {
        for bad in [
            "",
            "x; import os",
            "x.",
            ".x",
            "1x",
            "x[0]",
            "x()",
            "a..b",
            "__import__('os').system('id')",
            "x y",
            "x\n",
        ] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"a".repeat(201)).is_err());
    }
}
