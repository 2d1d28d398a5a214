//! What makes a cell well-formed: an object with a string `cell_type` and a `source` that is a
//! string or a list of strings (when present).
//!
//! Both readers check it, each on its own representation: `format` (the whole document, cells
//! kept as raw JSON) with [`Source`], and `window` (a window of cells parsed to values, the rest
//! only checked) with [`check_cell`] and [`Str`]/[`Source`]. The checks live here, below both,
//! so neither reader imports the other.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

/// The checks `Doc::parse` makes on one cell, on a cell parsed whole (`read_notebook`'s
/// window); the error is the reason.
pub(super) fn check_cell(index: usize, cell: &Value) -> Result<(), String> {
    let Some(obj) = cell.as_object() else {
        return Err(format!("cell {index} is not an object"));
    };
    if !obj.get("cell_type").is_some_and(Value::is_string) {
        return Err(format!("cell {index} has no `cell_type` string"));
    }
    if join_source(obj.get("source")).is_none() {
        return Err(format!(
            "cell {index}: `source` must be a string or a list of strings"
        ));
    }
    Ok(())
}

/// A `source` value joined into one text (`None` when it is neither a string nor a list of
/// strings; a missing one is empty).
pub(super) fn join_source(source: Option<&Value>) -> Option<String> {
    match source {
        None => Some(String::new()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(lines)) => lines
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .map(|l| l.concat()),
        Some(_) => None,
    }
}

/// A string, not kept.
pub(super) struct Str;

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Str, E> {
                Ok(Str)
            }
        }
        d.deserialize_str(V)
    }
}

/// A `source`: a string or a list of strings, not kept (`format`'s check of a cell as read, and
/// `window`'s of a cell outside the window).
#[derive(Default)]
pub(super) struct Source;

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Source;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Source, E> {
                Ok(Source)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Source, A::Error> {
                while seq.next_element::<Str>()?.is_some() {}
                Ok(Source)
            }
        }
        d.deserialize_any(V)
    }
}
