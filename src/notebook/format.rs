//! The nbformat 4 document as this server edits it.
//!
//! An edit touches a cell or two, so the rest of the file stays the raw JSON text it was read as
//! (`serde_json`'s `RawValue`, borrowed from the file's bytes): a change costs the file plus a
//! little per cell, whatever the cells hold. Parsed whole into `serde_json::Value`s, a 38 MiB
//! notebook of small values cost 1.4 GiB for one edit (issue 12). Whatever this server does not
//! know (widget state, tool metadata, attachments, list-form sources, fields of a future minor
//! version) is written back as it was, byte for byte.
//!
//! Only what edits read is parsed: each cell's `cell_type` and `id` (and a check of its `source`)
//! when the file is read, a cell's `source` or `outputs` when asked. A changed cell is written
//! field by field, the new fields pretty-printed as nbformat writes (sorted keys, one-space
//! indent) at the depth they sit at, so in a file this server or Jupyter wrote only the edited
//! cells change. Files of nbformat 4.0-4.5 are accepted; cell ids exist only from 4.5 on, so
//! cells added to an older notebook get none (an id would make it invalid under its own schema).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::cell::{Source, join_source};
use super::{CellType, CellView, Error, NotebookView};

/// Length of generated cell ids (nbformat allows 1-64 chars of `[a-zA-Z0-9-_]`).
const CELL_ID_LEN: usize = 16;
/// The first minor version whose cells carry ids.
const IDS_SINCE_MINOR: i64 = 5;
/// nbformat's indent: one space per level.
const INDENT: &[u8] = b" ";
/// Nesting depth of a top-level field's value (`{` is depth 0).
const TOP_FIELD_DEPTH: usize = 1;
/// Nesting depth of a cell field's value (top object, `cells` list, cell object).
const CELL_FIELD_DEPTH: usize = 3;

/// Fields of a JSON object, sorted by key as nbformat writes them: the ones read stay borrowed
/// raw text, new ones are owned.
type Fields<'a> = BTreeMap<String, Cow<'a, RawValue>>;

/// A parsed nbformat 4 notebook: its cells, and every other top-level field as found.
#[derive(Debug, Clone)]
pub(crate) struct Doc<'a> {
    /// Every cell is a JSON object with a string `cell_type` and a string-or-list `source`
    /// (checked by `parse`).
    pub(crate) cells: Vec<Cell<'a>>,
    /// The other top-level fields (`metadata`, `nbformat`, `nbformat_minor`, unknown ones).
    rest: Fields<'a>,
    /// `nbformat_minor` (0 if absent or not an integer).
    minor: i64,
}

/// One cell: what edits look up, and the cell itself as raw JSON.
#[derive(Debug, Clone)]
pub(crate) struct Cell<'a> {
    cell_type: String,
    /// The `id` field if it is a string (kept in step with `body`).
    id: Option<String>,
    body: Body<'a>,
}

#[derive(Debug, Clone)]
enum Body<'a> {
    /// Unchanged since read: written back as read.
    Read(&'a RawValue),
    /// Changed or new: written field by field.
    Fields(Fields<'a>),
}

impl Doc<'static> {
    /// An empty nbformat 4.5 notebook with a Python 3 kernelspec.
    pub(crate) fn new_empty() -> Result<Doc<'static>, serde_json::Error> {
        let metadata = serde_json::json!({
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            },
            "language_info": { "name": "python" },
        });
        let mut rest = Fields::new();
        rest.insert("metadata".into(), raw_at(&metadata, TOP_FIELD_DEPTH)?);
        rest.insert("nbformat".into(), raw_at(&4, TOP_FIELD_DEPTH)?);
        rest.insert(
            "nbformat_minor".into(),
            raw_at(&IDS_SINCE_MINOR, TOP_FIELD_DEPTH)?,
        );
        Ok(Doc {
            cells: Vec::new(),
            rest,
            minor: IDS_SINCE_MINOR,
        })
    }
}

impl<'a> Doc<'a> {
    /// Parses and checks the parts of the structure this server relies on. The document
    /// borrows `bytes`: only the cells' types, ids and the few top-level numbers are copied.
    pub(crate) fn parse(bytes: &'a [u8], path: &str) -> Result<Doc<'a>, Error> {
        let invalid = |reason: String| Error::InvalidNotebook {
            path: path.to_owned(),
            reason,
        };
        let mut top: Top<'a> = match serde_json::from_slice(bytes) {
            Ok(top) => top,
            // Either not JSON (say where) or JSON that is not an object.
            Err(e) => {
                return Err(match serde_json::from_slice::<&RawValue>(bytes) {
                    Err(e) => Error::InvalidJson {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    },
                    Ok(_) if e.is_data() => invalid("the file is not a JSON object".into()),
                    Ok(_) => Error::InvalidJson {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    },
                });
            }
        };
        match top.fields.get("nbformat") {
            Some(v) if i64::deserialize(*v).ok() == Some(4) => {}
            Some(v) => {
                return Err(Error::UnsupportedFormat {
                    path: path.to_owned(),
                    found: v.get().to_owned(),
                });
            }
            None => return Err(invalid("the top-level `nbformat` field is missing".into())),
        }
        let cells = top.cells.take().flatten().ok_or_else(|| {
            invalid("the top-level `cells` field is missing or not a list".into())
        })?;
        let cells = cells
            .into_iter()
            .enumerate()
            .map(|(index, raw)| Cell::read(index, raw))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let minor = top
            .fields
            .get("nbformat_minor")
            .and_then(|v| i64::deserialize(*v).ok())
            .unwrap_or(0);
        let rest = top
            .fields
            .into_iter()
            .map(|(k, v)| (k, Cow::Borrowed(v)))
            .collect();
        Ok(Doc { cells, rest, minor })
    }

    pub(crate) fn minor(&self) -> i64 {
        self.minor
    }

    /// True if this notebook's format has cell ids (nbformat 4.5 or later).
    pub(crate) fn has_ids(&self) -> bool {
        self.minor() >= IDS_SINCE_MINOR
    }

    /// The id of cell `index`, if it has one.
    pub(crate) fn cell_id(&self, index: usize) -> Option<String> {
        self.cells.get(index).and_then(|c| c.id.clone())
    }

    /// Gives an id to every cell of a 4.5 notebook that lacks one (the 4.5 schema requires
    /// them; some tools wrote 4.5 files without).
    pub(crate) fn fill_missing_ids(&mut self) -> Result<(), serde_json::Error> {
        if !self.has_ids() {
            return Ok(());
        }
        let mut taken = self.ids();
        for cell in &mut self.cells {
            if cell.id.is_none() {
                cell.set_id(fresh_id(&mut taken))?;
            }
        }
        Ok(())
    }

    fn ids(&self) -> HashSet<String> {
        self.cells.iter().filter_map(|c| c.id.clone()).collect()
    }

    /// A new cell for this notebook (with a fresh id when the format has ids).
    pub(crate) fn new_cell(
        &self,
        cell_type: CellType,
        source: &str,
    ) -> Result<Cell<'static>, serde_json::Error> {
        let mut cell = Cell {
            cell_type: cell_type.as_str().to_owned(),
            id: None,
            body: Body::Fields(Fields::new()),
        };
        if self.has_ids() {
            cell.set_id(fresh_id(&mut self.ids()))?;
        }
        cell.set("cell_type", &cell_type.as_str())?;
        cell.set("metadata", &serde_json::json!({}))?;
        cell.set("source", &source)?;
        // The schema requires these on code cells and forbids them on markdown and raw cells.
        if cell_type == CellType::Code {
            cell.set("execution_count", &Value::Null)?;
            cell.set("outputs", &serde_json::json!([]))?;
        }
        Ok(cell)
    }

    /// How many bytes [`Doc::render`] writes, counted without writing them (so a result over
    /// the write cap is refused without building it).
    pub(crate) fn rendered_len(&self) -> Result<usize, serde_json::Error> {
        let mut count = Count(0);
        self.render_to(&mut count)?;
        Ok(count.0)
    }

    /// Serializes the way nbformat does: sorted keys, one-space indent, final newline.
    /// Untouched cells and fields are copied as read. The buffer is made for `size` bytes
    /// ([`Doc::rendered_len`]), so that it is not grown by doubling and copying.
    pub(crate) fn render(&self, size: usize) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(size);
        self.render_to(&mut out)?;
        Ok(out)
    }

    fn render_to(&self, out: &mut impl io::Write) -> Result<(), serde_json::Error> {
        let formatter = serde_json::ser::PrettyFormatter::with_indent(INDENT);
        let mut ser = serde_json::Serializer::with_formatter(&mut *out, formatter);
        self.serialize(&mut ser)?;
        out.write_all(b"\n").map_err(serde_json::Error::io)
    }

    /// The window `start..start+limit` of cells.
    pub(crate) fn view(
        &self,
        path: &str,
        revision: String,
        include_outputs: bool,
        start: usize,
        limit: Option<usize>,
    ) -> Result<NotebookView, serde_json::Error> {
        let cells = self
            .cells
            .iter()
            .enumerate()
            .skip(start)
            .take(limit.unwrap_or(usize::MAX))
            .map(|(index, cell)| Ok(cell_view(index, &cell.to_value()?, include_outputs)))
            .collect::<Result<_, serde_json::Error>>()?;
        Ok(NotebookView {
            path: path.to_owned(),
            revision,
            nbformat: 4,
            nbformat_minor: self.minor(),
            total_cells: self.cells.len(),
            cells,
        })
    }
}

/// The document as one JSON object, `cells` in its sorted place among the other fields.
impl Serialize for Doc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.rest.len() + 1))?;
        let mut cells_written = false;
        for (key, value) in &self.rest {
            if !cells_written && key.as_str() > "cells" {
                map.serialize_entry("cells", &self.cells)?;
                cells_written = true;
            }
            map.serialize_entry(key, value)?;
        }
        if !cells_written {
            map.serialize_entry("cells", &self.cells)?;
        }
        map.end()
    }
}

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.body {
            Body::Read(raw) => raw.serialize(s),
            Body::Fields(fields) => fields.serialize(s),
        }
    }
}

impl<'a> Cell<'a> {
    /// Checks cell `index` as read (the error is the reason) and keeps it as it is.
    fn read(index: usize, raw: &'a RawValue) -> Result<Cell<'a>, String> {
        let head = raw
            .deserialize_map(HeadVisitor)
            .map_err(|_| format!("cell {index} is not an object"))?;
        let cell_type = head
            .cell_type
            .and_then(|v| String::deserialize(v).ok())
            .ok_or_else(|| format!("cell {index} has no `cell_type` string"))?;
        if let Some(source) = head.source
            && Source::deserialize(source).is_err()
        {
            return Err(format!(
                "cell {index}: `source` must be a string or a list of strings"
            ));
        }
        Ok(Cell {
            cell_type,
            id: head.id.and_then(|v| String::deserialize(v).ok()),
            body: Body::Read(raw),
        })
    }

    /// The `cell_type` as written (`code`, `markdown`, `raw`, or another string).
    pub(crate) fn cell_type(&self) -> &str {
        &self.cell_type
    }

    pub(crate) fn is_code(&self) -> bool {
        self.cell_type == "code"
    }

    /// The cell's id, if it has a string one.
    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The raw text of field `key`, if present (the last one if the object repeats it, as a
    /// JSON value parser would). A pass over the cell, unless it was split.
    pub(crate) fn field(&self, key: &str) -> Option<&RawValue> {
        match &self.body {
            Body::Read(raw) => raw.deserialize_map(PickVisitor(key)).ok().flatten(),
            Body::Fields(fields) => fields.get(key).map(|v| &**v),
        }
    }

    /// Sets field `key` to `value`, pretty-printed at a cell field's depth. The cell is then
    /// written field by field (see [`Cell::split`]).
    pub(crate) fn set(
        &mut self,
        key: &str,
        value: &impl Serialize,
    ) -> Result<(), serde_json::Error> {
        let value = raw_at(value, CELL_FIELD_DEPTH)?;
        self.split()?;
        if let Body::Fields(fields) = &mut self.body {
            fields.insert(key.to_owned(), value);
        }
        Ok(())
    }

    /// Splits a cell kept as read into its fields, to be written one by one (sorted by key,
    /// each value as read): one pass over the cell, after which [`Cell::field`] costs none. A
    /// cell of a file this server or Jupyter wrote is written back the same.
    pub(crate) fn split(&mut self) -> Result<(), serde_json::Error> {
        if let Body::Read(raw) = self.body {
            let fields = BTreeMap::<String, &'a RawValue>::deserialize(raw)?;
            self.body = Body::Fields(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, Cow::Borrowed(v)))
                    .collect(),
            );
        }
        Ok(())
    }

    fn set_id(&mut self, id: String) -> Result<(), serde_json::Error> {
        self.set("id", &id)?;
        self.id = Some(id);
        Ok(())
    }

    /// The cell as a JSON value (for showing it whole).
    pub(crate) fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

/// `value` as JSON text pretty-printed as nbformat writes it, for a place `depth` levels deep
/// (a JSON text holds raw newlines only between tokens, so indenting each line after the first
/// by `depth` is what a pretty printer writing the whole document there would do).
fn raw_at(
    value: &impl Serialize,
    depth: usize,
) -> Result<Cow<'static, RawValue>, serde_json::Error> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(INDENT);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    let text = String::from_utf8(out).map_err(serde::ser::Error::custom)?;
    let text = if text.contains('\n') {
        let pad = String::from_utf8_lossy(&INDENT.repeat(depth)).into_owned();
        text.replace('\n', &format!("\n{pad}"))
    } else {
        text
    };
    Ok(Cow::Owned(RawValue::from_string(text)?))
}

/// Counts bytes written.
struct Count(usize);

impl io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A notebook's top-level object in one pass: each cell and every other field as raw text.
struct Top<'a> {
    /// `None`: no `cells` field; `Some(None)`: one that is not a list.
    cells: Option<Option<Vec<&'a RawValue>>>,
    fields: BTreeMap<String, &'a RawValue>,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Top<'de>, D::Error> {
        d.deserialize_map(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a notebook object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut top = Top {
            cells: None,
            fields: BTreeMap::new(),
        };
        // The last of repeated keys wins, as with a JSON value parser.
        while let Some(key) = map.next_key::<String>()? {
            if key == "cells" {
                top.cells = Some(map.next_value::<CellList>()?.0);
            } else {
                top.fields.insert(key, map.next_value()?);
            }
        }
        Ok(top)
    }
}

/// The `cells` field: its cells as raw text if it is a list, `None` if it is any other value.
struct CellList<'a>(Option<Vec<&'a RawValue>>);

impl<'de> Deserialize<'de> for CellList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CellList<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CellList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut cells = Vec::new();
                while let Some(cell) = seq.next_element()? {
                    cells.push(cell);
                }
                Ok(CellList(Some(cells)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(CellList(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(CellList(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(CellList(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(CellList(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(CellList(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(CellList(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(CellList(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of a cell that `Cell::read` checks, as raw text.
#[derive(Default)]
struct Head<'a> {
    cell_type: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    source: Option<&'a RawValue>,
}

struct HeadVisitor;

impl<'de> Visitor<'de> for HeadVisitor {
    type Value = Head<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a cell object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head<'de>, A::Error> {
        let mut head = Head::default();
        while let Some(key) = map.next_key_seed(KeyIn(&["cell_type", "id", "source"]))? {
            match key {
                Some(0) => head.cell_type = Some(map.next_value()?),
                Some(1) => head.id = Some(map.next_value()?),
                Some(_) => head.source = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }
}

/// Finds one field of an object, skipping the others.
struct PickVisitor<'k>(&'k str);

impl<'de> Visitor<'de> for PickVisitor<'_> {
    type Value = Option<&'de RawValue>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let keys = [self.0];
        while let Some(key) = map.next_key_seed(KeyIn(&keys))? {
            if key.is_some() {
                found = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A map key, read as its position in a list of wanted keys (`None`: not wanted), without
/// allocating it.
struct KeyIn<'k>(&'k [&'k str]);

impl<'de> DeserializeSeed<'de> for KeyIn<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIn<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|k| *k == key))
    }
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
        source: join_source(cell.get("source")).unwrap_or_default(),
        execution_count: cell.get("execution_count").and_then(Value::as_i64),
        outputs,
    }
}

/// The full source text of a cell (list-form sources joined).
pub(crate) fn cell_source(cell: &Cell<'_>) -> String {
    cell.field("source")
        .and_then(|raw| SourceText::deserialize(raw).ok())
        .map(SourceText::joined)
        .unwrap_or_default()
}

/// nbformat stores multiline text as a string or as a list of lines (each keeping its `\n`).
#[derive(Deserialize)]
#[serde(untagged)]
enum SourceText {
    Text(String),
    Lines(Vec<String>),
}

impl SourceText {
    fn joined(self) -> String {
        match self {
            SourceText::Text(s) => s,
            SourceText::Lines(lines) => lines.concat(),
        }
    }
}

/// True if a raw JSON value is an empty list (`[]`, whatever the whitespace inside).
pub(crate) fn is_empty_list(raw: &RawValue) -> bool {
    raw.get()
        .strip_prefix('[')
        .is_some_and(|rest| rest.trim_start().starts_with(']'))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notebook::edit::{self, CellRef, CodeCell};
    use serde_json::json;

    /// How the earlier `serde_json::Value` model wrote a notebook, as nbformat writes it: every
    /// object's keys sorted, one-space indent, a final newline.
    fn canonical(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(INDENT);
        v.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out, formatter,
        ))
        .unwrap();
        out.push(b'\n');
        out
    }

    /// A notebook with what editors leave behind: widget state, unknown fields, attachments,
    /// list sources, non-ASCII and escaped text, floats, nested outputs, a raw cell.
    fn notebook() -> Value {
        json!({
            "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"k": {"v": [1.5, 2e-7, null]}}}},
                         "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "zz_unknown": {"é": "ü\u{1F600}", "esc": "a\"b\\c\n\t"}},
            "zz_top_unknown": [1, {"b": 2, "a": 1}],
            "cells": [
                {"cell_type": "markdown", "id": "m1", "metadata": {"tags": ["x"]}, "source": ["# T\n", "text"],
                 "attachments": {"a.png": {"image/png": "iVBORw0KGgo="}}},
                {"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": 3, "source": "print(1)\nx",
                 "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n", "2\n"]},
                             {"output_type": "execute_result", "execution_count": 3, "metadata": {},
                              "data": {"text/plain": "'x'", "application/json": {"z": [], "a": {}}}}]},
                {"cell_type": "raw", "id": "r1", "metadata": {"format": "text/x-rst"}, "source": ""},
                {"cell_type": "code", "id": "c2", "metadata": {"collapsed": true}, "execution_count": null,
                 "source": [], "outputs": []},
            ]
        })
    }

    fn render_string(doc: &Doc<'_>) -> String {
        let bytes = doc.render(0).unwrap();
        assert_eq!(doc.rendered_len().unwrap(), bytes.len());
        String::from_utf8(bytes).unwrap()
    }

    /// After an edit, the file is exactly what the Value model wrote for the same change:
    /// `expected`, canonical.
    fn assert_written_as_before(doc: &Doc<'_>, expected: &Value) {
        let text = render_string(doc);
        let written: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(&written, expected);
        assert_eq!(
            text.as_bytes(),
            canonical(expected),
            "not canonical:\n{text}"
        );
    }

    #[test]
    fn a_canonical_file_is_written_back_byte_for_byte() {
        let bytes = canonical(&notebook());
        let doc = Doc::parse(&bytes, "n.ipynb").unwrap();
        assert_eq!(render_string(&doc).as_bytes(), bytes);
        let empty = canonical(&json!({"cells": [], "nbformat": 4, "nbformat_minor": 4}));
        let doc = Doc::parse(&empty, "e.ipynb").unwrap();
        assert_eq!(render_string(&doc).as_bytes(), empty);
    }

    #[test]
    fn every_edit_writes_what_the_value_model_wrote() {
        let bytes = canonical(&notebook());
        let p = "n.ipynb";
        let fresh = || Doc::parse(&bytes, p).unwrap();

        let mut doc = fresh();
        edit::edit(&mut doc, &CellRef::Id("c1".into()), "y = 2\nprint(y)", p).unwrap();
        let mut expected = notebook();
        expected["cells"][1]["source"] = json!("y = 2\nprint(y)");
        assert_written_as_before(&doc, &expected);

        let mut doc = fresh();
        assert_eq!(edit::clear_outputs(&mut doc, None, p).unwrap(), 1);
        let mut expected = notebook();
        expected["cells"][1]["outputs"] = json!([]);
        expected["cells"][1]["execution_count"] = Value::Null;
        assert_written_as_before(&doc, &expected);

        let mut doc = fresh();
        let ran = CodeCell {
            pos: edit::CellPos {
                index: 3,
                id: Some("c2".into()),
            },
            source: String::new(),
        };
        let outputs = vec![
            json!({"output_type": "display_data", "metadata": {"image/png": {"width": 2}},
                                  "data": {"image/png": "AAAA", "text/plain": ["<Figure>"]}}),
        ];
        edit::save_outputs(&mut doc, &ran, outputs.clone(), Some(7), p).unwrap();
        let mut expected = notebook();
        expected["cells"][3]["outputs"] = Value::Array(outputs.clone());
        expected["cells"][3]["execution_count"] = json!(7);
        assert_written_as_before(&doc, &expected);

        let mut doc = fresh();
        edit::move_to(&mut doc, &CellRef::Index(0), 3, p).unwrap();
        edit::delete(&mut doc, &CellRef::Id("r1".into()), p).unwrap();
        let mut expected = notebook();
        let cells = expected["cells"].as_array_mut().unwrap();
        let first = cells.remove(0);
        cells.push(first);
        cells.remove(1);
        assert_written_as_before(&doc, &expected);

        let mut doc = fresh();
        let at = edit::insert(&mut doc, CellType::Markdown, "new", Some(1), p).unwrap();
        let run = edit::append_run(&mut doc, "1+1", outputs.clone(), Some(8), p).unwrap();
        let mut expected = notebook();
        let cells = expected["cells"].as_array_mut().unwrap();
        cells.insert(
            1,
            json!({"cell_type": "markdown", "id": at.id.unwrap(), "metadata": {}, "source": "new"}),
        );
        cells.push(
            json!({"cell_type": "code", "id": run.id.unwrap(), "metadata": {}, "source": "1+1",
                          "execution_count": 8, "outputs": outputs}),
        );
        assert_written_as_before(&doc, &expected);
    }

    #[test]
    fn a_new_notebook_is_written_as_before() {
        let mut doc = Doc::new_empty().unwrap();
        let cell = doc.new_cell(CellType::Code, "x").unwrap();
        let id = cell.id().unwrap().to_owned();
        doc.cells.push(cell);
        let expected = json!({
            "cells": [{"cell_type": "code", "execution_count": null, "id": id, "metadata": {},
                       "outputs": [], "source": "x"}],
            "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                        "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5,
        });
        assert_written_as_before(&doc, &expected);
    }

    /// A file another tool wrote (compact, keys in its own order, odd spacing): the cells an
    /// edit does not touch are copied as they were, and the result holds the same values.
    #[test]
    fn untouched_cells_of_a_file_written_elsewhere_are_kept_verbatim() {
        let cells = [
            r#"{"source":"a","cell_type":"markdown","metadata":{"z":1,"a":[1.0,2.50]},"attachments":{}}"#,
            r#"{ "cell_type" : "code", "source" : ["b\n", "c"], "outputs" : [ {"output_type":"stream","text":"\u00e9","name":"stdout"} ], "execution_count" : 2, "metadata" : {} }"#,
            r#"{"cell_type":"raw","source":"r","metadata":{}}"#,
        ];
        let text = format!(
            "{{\"metadata\":{{\"b\":1,\"a\":2}},\"nbformat_minor\":4,\"nbformat\":4,\n  \"cells\":[{}]}}",
            cells.join(",\n")
        );
        let doc_before: Value = serde_json::from_str(&text).unwrap();
        let mut doc = Doc::parse(text.as_bytes(), "f.ipynb").unwrap();
        edit::edit(&mut doc, &CellRef::Index(1), "new", "f.ipynb").unwrap();
        let out = render_string(&doc);
        assert!(out.contains(cells[0]), "{out}");
        assert!(out.contains(cells[2]), "{out}");
        assert!(out.contains(r#""metadata": {"b":1,"a":2}"#), "{out}");
        let mut expected = doc_before;
        expected["cells"][1]["source"] = json!("new");
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), expected);
        assert_eq!(cell_source(&doc.cells[0]), "a");
        assert_eq!(cell_source(&doc.cells[1]), "new");
    }

    #[test]
    fn sources_ids_and_types_are_read_from_raw_cells() {
        let bytes = canonical(&notebook());
        let doc = Doc::parse(&bytes, "n.ipynb").unwrap();
        let got: Vec<_> = doc
            .cells
            .iter()
            .map(|c| (c.cell_type(), c.id(), cell_source(c)))
            .collect();
        assert_eq!(
            got,
            [
                ("markdown", Some("m1"), "# T\ntext".to_owned()),
                ("code", Some("c1"), "print(1)\nx".to_owned()),
                ("raw", Some("r1"), String::new()),
                ("code", Some("c2"), String::new()),
            ]
        );
        assert_eq!(doc.minor(), 5);
        // A repeated key counts once, the last one, as a JSON value parser would read it.
        let dup =
            br#"{"nbformat": 4, "cells": [{"cell_type": "code", "source": "a", "source": "b"}]}"#;
        let doc = Doc::parse(dup, "d.ipynb").unwrap();
        assert_eq!(cell_source(&doc.cells[0]), "b");
    }

    #[test]
    fn what_is_not_a_notebook_is_refused_as_before() {
        let parse = |bytes: &[u8]| Doc::parse(bytes, "x.ipynb").map(|_| ()).unwrap_err();
        assert!(matches!(parse(b"{ not json"), Error::InvalidJson { .. }));
        assert!(matches!(
            parse(b"{\"nbformat\": 4, \"cells\": []} x"),
            Error::InvalidJson { .. }
        ));
        assert!(matches!(
            parse(b"{\"nbformat\": 4, \"cells\": [\"\xff\"]}"),
            Error::InvalidJson { .. }
        ));
        let e = parse(b"[1, 2]");
        assert!(e.to_string().contains("not a JSON object"), "{e}");
        let e = parse(br#"{"nbformat": 3, "cells": []}"#);
        assert!(
            matches!(e, Error::UnsupportedFormat { ref found, .. } if found == "3"),
            "{e}"
        );
        let e = parse(br#"{"nbformat": 4, "cells": {"a": 1}}"#);
        assert!(
            e.to_string()
                .contains("`cells` field is missing or not a list"),
            "{e}"
        );
        let e = parse(br#"{"nbformat": 4, "cells": [{"cell_type": "code"}, 5]}"#);
        assert!(e.to_string().contains("cell 1 is not an object"), "{e}");
        let e = parse(br#"{"nbformat": 4, "cells": [{"cell_type": ["code"]}]}"#);
        assert!(
            e.to_string().contains("cell 0 has no `cell_type` string"),
            "{e}"
        );
        let e = parse(br#"{"nbformat": 4, "cells": [{"cell_type": "code", "source": [1]}]}"#);
        assert!(e.to_string().contains("cell 0: `source` must be"), "{e}");
    }
}
