//! The nbformat 4 document as this server reads and writes it.
//!
//! A notebook is kept as JSON values, not as typed structs, so that whatever this server does
//! not know (widget state, tool metadata, attachments, list-form sources, fields of a future
//! minor version) is written back unchanged. Only the few fields an edit touches are typed.
//! Files of nbformat 4.0-4.5 are accepted; cell ids exist only from 4.5 on, so cells added to an
//! older notebook get none (an id would make it invalid under its own schema).

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{CellType, CellView, Error, NotebookView};

/// Length of generated cell ids (nbformat allows 1-64 chars of `[a-zA-Z0-9-_]`).
const CELL_ID_LEN: usize = 16;
/// The first minor version whose cells carry ids.
const IDS_SINCE_MINOR: i64 = 5;

/// A parsed nbformat 4 notebook: its cells, and every other top-level field as found.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    /// Every cell is a JSON object with a string `cell_type` and a string-or-list `source`
    /// (checked by `parse`).
    pub(crate) cells: Vec<Value>,
    /// The other top-level fields (`metadata`, `nbformat`, `nbformat_minor`, unknown ones).
    rest: Map<String, Value>,
}

impl Doc {
    /// An empty nbformat 4.5 notebook with a Python 3 kernelspec.
    pub(crate) fn new_empty() -> Doc {
        let mut rest = Map::new();
        rest.insert(
            "metadata".into(),
            json!({
                "kernelspec": {
                    "name": "python3",
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                },
                "language_info": { "name": "python" },
            }),
        );
        rest.insert("nbformat".into(), json!(4));
        rest.insert("nbformat_minor".into(), json!(IDS_SINCE_MINOR));
        Doc {
            cells: Vec::new(),
            rest,
        }
    }

    /// Parses and checks the parts of the structure this server relies on.
    pub(crate) fn parse(bytes: &[u8], path: &str) -> Result<Doc, Error> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Error::InvalidJson {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let invalid = |reason: String| Error::InvalidNotebook {
            path: path.to_owned(),
            reason,
        };
        let Value::Object(mut rest) = value else {
            return Err(invalid("the file is not a JSON object".into()));
        };
        match rest.get("nbformat") {
            Some(v) if v.as_i64() == Some(4) => {}
            Some(v) => {
                return Err(Error::UnsupportedFormat {
                    path: path.to_owned(),
                    found: v.to_string(),
                });
            }
            None => return Err(invalid("the top-level `nbformat` field is missing".into())),
        }
        let Some(Value::Array(cells)) = rest.remove("cells") else {
            return Err(invalid(
                "the top-level `cells` field is missing or not a list".into(),
            ));
        };
        for (index, cell) in cells.iter().enumerate() {
            check_cell(index, cell).map_err(invalid)?;
        }
        Ok(Doc { cells, rest })
    }

    pub(crate) fn minor(&self) -> i64 {
        self.rest
            .get("nbformat_minor")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// True if this notebook's format has cell ids (nbformat 4.5 or later).
    pub(crate) fn has_ids(&self) -> bool {
        self.minor() >= IDS_SINCE_MINOR
    }

    /// The id of cell `index`, if it has one.
    pub(crate) fn cell_id(&self, index: usize) -> Option<String> {
        self.cells
            .get(index)
            .and_then(|c| c.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Gives an id to every cell of a 4.5 notebook that lacks one (the 4.5 schema requires
    /// them; some tools wrote 4.5 files without).
    pub(crate) fn fill_missing_ids(&mut self) {
        if !self.has_ids() {
            return;
        }
        let mut taken = self.ids();
        for cell in &mut self.cells {
            if let Some(obj) = cell.as_object_mut()
                && !obj.get("id").is_some_and(Value::is_string)
            {
                let id = fresh_id(&mut taken);
                obj.insert("id".into(), Value::from(id));
            }
        }
    }

    fn ids(&self) -> HashSet<String> {
        self.cells
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// A new cell for this notebook (with a fresh id when the format has ids).
    pub(crate) fn new_cell(&self, cell_type: CellType, source: &str) -> Value {
        let mut obj = Map::new();
        if self.has_ids() {
            obj.insert("id".into(), Value::from(fresh_id(&mut self.ids())));
        }
        obj.insert("cell_type".into(), Value::from(cell_type.as_str()));
        obj.insert("metadata".into(), json!({}));
        obj.insert("source".into(), Value::from(source));
        // The schema requires these on code cells and forbids them on markdown and raw cells.
        if cell_type == CellType::Code {
            obj.insert("execution_count".into(), Value::Null);
            obj.insert("outputs".into(), json!([]));
        }
        Value::Object(obj)
    }

    /// Serializes the way nbformat does: sorted keys, one-space indent, final newline.
    pub(crate) fn render(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut doc = self.rest.clone();
        doc.insert("cells".into(), Value::Array(self.cells.clone()));
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        Value::Object(doc).serialize(&mut ser)?;
        out.push(b'\n');
        Ok(out)
    }

    /// The window `start..start+limit` of cells.
    pub(crate) fn view(
        &self,
        path: &str,
        revision: String,
        include_outputs: bool,
        start: usize,
        limit: Option<usize>,
    ) -> NotebookView {
        let cells = self
            .cells
            .iter()
            .enumerate()
            .skip(start)
            .take(limit.unwrap_or(usize::MAX))
            .map(|(index, cell)| cell_view(index, cell, include_outputs))
            .collect();
        NotebookView {
            path: path.to_owned(),
            revision,
            nbformat: 4,
            nbformat_minor: self.minor(),
            total_cells: self.cells.len(),
            cells,
        }
    }
}

/// The checks `Doc::parse` makes on one cell; the error is the reason.
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

/// A cell as `read` shows it (the structure was checked by `Doc::parse`).
pub(super) fn cell_view(index: usize, cell: &Value, include_outputs: bool) -> CellView {
    let outputs = match cell.get("outputs").and_then(Value::as_array) {
        Some(outputs) if include_outputs => outputs.clone(),
        _ => Vec::new(),
    };
    CellView {
        index,
        id: cell.get("id").and_then(Value::as_str).map(str::to_owned),
        cell_type: cell
            .get("cell_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        source: cell_source(cell),
        execution_count: cell.get("execution_count").and_then(Value::as_i64),
        outputs,
    }
}

/// The full source text of a cell (list-form sources joined).
pub(crate) fn cell_source(cell: &Value) -> String {
    join_source(cell.get("source")).unwrap_or_default()
}

/// nbformat stores multiline text as a string or as a list of lines (each keeping its `\n`).
fn join_source(source: Option<&Value>) -> Option<String> {
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

/// An id not in `taken` (uuid v4 hex, truncated), which is then added to `taken`.
fn fresh_id(taken: &mut HashSet<String>) -> String {
    loop {
        let mut id = uuid::Uuid::new_v4().simple().to_string();
        id.truncate(CELL_ID_LEN);
        if taken.insert(id.clone()) {
            return id;
        }
    }
}

/// `count` distinct cell ids.
#[cfg(test)]
pub(crate) fn new_cell_ids(count: usize) -> Vec<String> {
    let mut taken = HashSet::with_capacity(count);
    (0..count).map(|_| fresh_id(&mut taken)).collect()
}
