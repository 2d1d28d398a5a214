//! Edits on a parsed notebook: insert, edit, delete, move, clear outputs, save outputs.
//!
//! Pure functions on a [`Doc`]; the store runs them inside a locked read-modify-write. A cell is
//! named by its index or its id ([`CellRef`]); an index is the cell's position at the moment the
//! edit runs, an id follows the cell wherever it moves. Each edit changes only the fields it
//! means to: every other cell, and every other field of the cell, is written back as read.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::format::{Doc, cell_source, is_empty_list};
use super::{CellType, Error};

/// A cell, by zero-based index (integer) or by id (string).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum CellRef {
    /// Zero-based position in the notebook.
    Index(usize),
    /// Cell id, as read_notebook shows it (nbformat 4.5 notebooks).
    Id(String),
}

impl std::fmt::Display for CellRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CellRef::Index(i) => write!(f, "index {i}"),
            CellRef::Id(id) => write!(f, "id `{id}`"),
        }
    }
}

/// Where a change left a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CellPos {
    pub(crate) index: usize,
    pub(crate) id: Option<String>,
}

/// The index of the cell `cell` names. A string of digits that is no cell's id is taken as an
/// index (models often quote numbers).
pub(crate) fn locate(doc: &Doc<'_>, cell: &CellRef, path: &str) -> Result<usize, Error> {
    let count = doc.cells.len();
    let missing = || Error::NoSuchCell {
        path: path.to_owned(),
        cell: cell.to_string(),
        count,
        hint: if doc.has_ids() {
            "call read_notebook to see the cells, their indexes and ids"
        } else {
            "this notebook is older than nbformat 4.5 and has no cell ids: name cells by index"
        },
    };
    match cell {
        CellRef::Index(i) if *i < count => Ok(*i),
        CellRef::Index(_) => Err(missing()),
        CellRef::Id(id) => doc
            .cells
            .iter()
            .position(|c| c.id() == Some(id.as_str()))
            .or_else(|| id.parse::<usize>().ok().filter(|i| *i < count))
            .ok_or_else(missing),
    }
}

fn pos(doc: &Doc<'_>, index: usize) -> CellPos {
    CellPos {
        index,
        id: doc.cell_id(index),
    }
}

/// A JSON failure while changing a cell (not expected: what is written was just made, and what
/// was read was checked when parsed).
fn unwritable(path: &str) -> impl Fn(serde_json::Error) -> Error + '_ {
    move |e| Error::InvalidNotebook {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Inserts a new cell at `index` (default: the end).
pub(crate) fn insert(
    doc: &mut Doc<'_>,
    cell_type: CellType,
    source: &str,
    index: Option<usize>,
    path: &str,
) -> Result<CellPos, Error> {
    let count = doc.cells.len();
    let index = index.unwrap_or(count);
    if index > count {
        return Err(Error::BadPosition {
            path: path.to_owned(),
            index,
            max: count,
        });
    }
    let cell = doc.new_cell(cell_type, source).map_err(unwritable(path))?;
    doc.cells.insert(index, cell);
    Ok(pos(doc, index))
}

/// Replaces a cell's source. Outputs of a code cell are kept, as Jupyter does, until it runs.
pub(crate) fn edit(
    doc: &mut Doc<'_>,
    cell: &CellRef,
    source: &str,
    path: &str,
) -> Result<CellPos, Error> {
    let index = locate(doc, cell, path)?;
    doc.cells[index]
        .set("source", &source)
        .map_err(unwritable(path))?;
    Ok(pos(doc, index))
}

/// Removes a cell; returns where it was.
pub(crate) fn delete(doc: &mut Doc<'_>, cell: &CellRef, path: &str) -> Result<CellPos, Error> {
    let index = locate(doc, cell, path)?;
    let removed = pos(doc, index);
    doc.cells.remove(index);
    Ok(removed)
}

/// Moves a cell so that it ends up at index `to`.
pub(crate) fn move_to(
    doc: &mut Doc<'_>,
    cell: &CellRef,
    to: usize,
    path: &str,
) -> Result<CellPos, Error> {
    let index = locate(doc, cell, path)?;
    let max = doc.cells.len() - 1;
    if to > max {
        return Err(Error::BadPosition {
            path: path.to_owned(),
            index: to,
            max,
        });
    }
    let moved = doc.cells.remove(index);
    doc.cells.insert(to, moved);
    Ok(pos(doc, to))
}

/// Clears the outputs and execution count of one code cell, or of all of them. Returns how many
/// cells had something to clear. A cell already clear is left as it was.
pub(crate) fn clear_outputs(
    doc: &mut Doc<'_>,
    cell: Option<&CellRef>,
    path: &str,
) -> Result<usize, Error> {
    let indexes: Vec<usize> = match cell {
        Some(c) => vec![locate(doc, c, path)?],
        None => (0..doc.cells.len()).collect(),
    };
    let mut cleared = 0;
    for i in indexes {
        let cell = &mut doc.cells[i];
        if !cell.is_code() {
            continue;
        }
        // One pass over the cell rather than one per field looked at and set.
        cell.split().map_err(unwritable(path))?;
        let outputs = cell.field("outputs");
        // Only a list counts as outputs to clear, but anything else is replaced all the same.
        let had_outputs = outputs.is_some_and(|o| o.get().starts_with('[') && !is_empty_list(o));
        let outputs_clear = outputs.is_some_and(is_empty_list);
        let count = cell.field("execution_count").map(|c| c.get() != "null");
        if !outputs_clear {
            cell.set("outputs", &json!([])).map_err(unwritable(path))?;
        }
        if count != Some(false) {
            cell.set("execution_count", &Value::Null)
                .map_err(unwritable(path))?;
        }
        cleared += usize::from(had_outputs || count == Some(true));
    }
    Ok(cleared)
}

/// A code cell to run: where it is and its source.
#[derive(Debug, Clone)]
pub(crate) struct CodeCell {
    pub(crate) pos: CellPos,
    pub(crate) source: String,
}

/// The code cell `cell` names, refusing markdown and raw cells.
pub(crate) fn code_cell(doc: &Doc<'_>, cell: &CellRef, path: &str) -> Result<CodeCell, Error> {
    let index = locate(doc, cell, path)?;
    let c = &doc.cells[index];
    if !c.is_code() {
        return Err(Error::NotCode {
            path: path.to_owned(),
            index,
            cell_type: c.cell_type().to_owned(),
        });
    }
    Ok(CodeCell {
        pos: pos(doc, index),
        source: cell_source(c),
    })
}

/// The code cells with index in `start..stop`, in order.
pub(crate) fn code_cells(doc: &Doc<'_>, start: usize, stop: usize) -> Vec<CodeCell> {
    (start..stop.min(doc.cells.len()))
        .filter(|&i| doc.cells[i].is_code())
        .map(|i| CodeCell {
            pos: pos(doc, i),
            source: cell_source(&doc.cells[i]),
        })
        .collect()
}

/// Saves the outputs of a run into the cell it ran from, found again by id (or, without ids,
/// at the same index holding the same source: the run's outputs must not land on another
/// cell).
pub(crate) fn save_outputs(
    doc: &mut Doc<'_>,
    ran: &CodeCell,
    outputs: Vec<Value>,
    execution_count: Option<u64>,
    path: &str,
) -> Result<CellPos, Error> {
    let index = match &ran.pos.id {
        Some(id) => locate(doc, &CellRef::Id(id.clone()), path).ok(),
        None => Some(ran.pos.index).filter(|&i| {
            doc.cells
                .get(i)
                .is_some_and(|c| cell_source(c) == ran.source)
        }),
    };
    let Some(index) = index else {
        return Err(Error::CellGone {
            path: path.to_owned(),
            cell: ran.pos.index,
        });
    };
    let cell = &mut doc.cells[index];
    cell.set("outputs", &outputs).map_err(unwritable(path))?;
    cell.set("execution_count", &execution_count)
        .map_err(unwritable(path))?;
    Ok(pos(doc, index))
}

/// Appends a code cell holding `source`, its outputs and execution count.
pub(crate) fn append_run(
    doc: &mut Doc<'_>,
    source: &str,
    outputs: Vec<Value>,
    execution_count: Option<u64>,
    path: &str,
) -> Result<CellPos, Error> {
    let mut cell = doc
        .new_cell(CellType::Code, source)
        .map_err(unwritable(path))?;
    cell.set("outputs", &outputs).map_err(unwritable(path))?;
    cell.set("execution_count", &execution_count)
        .map_err(unwritable(path))?;
    doc.cells.push(cell);
    Ok(pos(doc, doc.cells.len() - 1))
}
