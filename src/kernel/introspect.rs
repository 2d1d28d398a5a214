//! Variable listing and inspection, run inside the kernel by helpers the server installs as the
//! module `_jupyter_mcp` (see `introspect.py`), so nothing appears in the user's namespace.
//!
//! A variable name reaches the kernel as data: it is validated as an identifier or dotted
//! attribute path here, passed as a JSON string literal, and resolved in Python with `getattr`
//! (never `eval`), so `x; import os` cannot become code.

use super::{Error, Kernel};

const HELPERS: &str = include_str!("introspect.py");
/// Largest stdout/stderr message the kernel sends, in characters. The server holds a few
/// messages at a time, so this bounds its memory while a cell floods output. Not smaller: the
/// kernel's publisher drops messages past 1,000 queued (its high-water mark), and 1 MiB pieces
/// keep even a burst of hundreds of megabytes under that.
const STREAM_MESSAGE_CHARS: usize = 1024 * 1024;
/// Longest name `inspect_variable` accepts.
const MAX_NAME_LEN: usize = 200;

/// Defines `_jupyter_mcp` in the kernel without binding any name in the user's namespace.
pub(super) async fn install_helpers(kernel: &Kernel) -> Result<(), Error> {
    let source = serde_json::to_string(HELPERS).map_err(|e| Error::Unexpected(e.to_string()))?;
    let code = format!(
        "exec(compile({source}, '<jupyter-mcp>', 'exec'), __import__('sys').modules.setdefault('_jupyter_mcp', __import__('types').ModuleType('_jupyter_mcp')).__dict__)"
    );
    kernel.run_internal(&code).await?;
    let cap = format!("__import__('_jupyter_mcp').cap_stream_messages({STREAM_MESSAGE_CHARS})");
    kernel.run_internal(&cap).await.map(|_| ())
}

/// Points a kernel at its principal: the working directory, and the package directory on
/// `sys.path` after the standard library (just before site-packages, so an installed upgrade
/// wins over the interpreter's copy, but nothing can shadow `os` or `json`); the working
/// directory itself last, so the user's own modules import but shadow nothing. HOME stays the
/// kernel's private one. Runs as server code, so no name lands in the user's namespace; the
/// paths travel as JSON string literals.
pub async fn bind_principal(
    kernel: &Kernel,
    home: &std::path::Path,
    packages: &std::path::Path,
) -> Result<(), Error> {
    let literal = |p: &std::path::Path| {
        serde_json::to_string(&p.display().to_string())
            .map_err(|e| Error::Unexpected(e.to_string()))
    };
    let (home, packages) = (literal(home)?, literal(packages)?);
    let code = format!(
        "(lambda os, sys, h, p: (os.chdir(h), [sys.path.remove(x) for x in ('', '.', h, p) if x in sys.path], sys.path.insert(next((i for i, x in enumerate(sys.path) if x.endswith('-packages')), len(sys.path)), p), sys.path.append(h)))(__import__('os'), __import__('sys'), {home}, {packages})"
    );
    kernel.run_internal(&code).await.map(|_| ())
}

/// Python and ipykernel versions (kernel_info's `implementation_version` is IPython's).
pub(super) async fn versions(kernel: &Kernel) -> Result<(String, String), Error> {
    let out = kernel
        .run_internal("__import__('_jupyter_mcp').versions()")
        .await?;
    let v = parse(&out)?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    Ok((field("python"), field("ipykernel")))
}

/// Length, shape and dtype, for the objects that have them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Size {
    /// `len()` of a sized object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// `.shape` of an array or frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<u64>>,
    /// `.dtype` of an array or series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
}

/// One user variable.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Variable {
    pub name: String,
    /// Type name, qualified by module outside builtins (e.g. `pandas.DataFrame`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// A short repr (containers and long strings are abbreviated).
    pub repr: String,
    #[serde(flatten)]
    pub size: Size,
}

/// The user's variables.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Variables {
    /// Sorted by name.
    pub variables: Vec<Variable>,
    /// Number of user variables, including any past the listing cap.
    pub total: u64,
    /// True if there were more variables than listed (the cap is 500).
    pub truncated: bool,
}

/// Details of one variable or attribute.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Inspection {
    /// The name or dotted path inspected.
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    /// Module of the type.
    pub module: String,
    /// repr, capped at about 2,000 characters.
    pub repr: String,
    #[serde(flatten)]
    pub size: Size,
    /// DataFrame columns (first 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// DataFrame column dtypes (first 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtypes: Option<std::collections::BTreeMap<String, String>>,
    /// First rows of a DataFrame, Series or array, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// First line of the documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
}

/// The user's variables (not modules, IPython's names or `_`-prefixed names).
pub async fn variables(kernel: &Kernel) -> Result<Variables, Error> {
    let out = kernel
        .run_internal("__import__('_jupyter_mcp').variables()")
        .await?;
    typed(parse(&out)?)
}

/// Details of one variable or attribute path.
pub async fn inspect(kernel: &Kernel, name: &str) -> Result<Inspection, Error> {
    validate_name(name)?;
    let literal = serde_json::to_string(name).map_err(|e| Error::Unexpected(e.to_string()))?;
    let out = kernel
        .run_internal(&format!("__import__('_jupyter_mcp').inspect({literal})"))
        .await?;
    let value = parse(&out)?;
    match value.get("error").and_then(|e| e.as_str()) {
        Some(message) => Err(Error::NotFound(message.to_string())),
        None => typed(value),
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| {
        Error::Unexpected(format!("introspection output had an unexpected shape: {e}"))
    })
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
