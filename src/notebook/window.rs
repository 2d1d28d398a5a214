//! Reading a window of cells without building the whole notebook in memory.
//!
//! Parsed whole into `serde_json::Value`s, a 50 MB notebook of small values became ~800 MB.
//! `read_notebook` shows a window of cells (50 by default), so it parses the file with serde
//! visitors instead: the cells in the window become values, every other cell is only checked (an object with a string `cell_type` and a string-or-list
//! `source`, as `Doc::parse` checks) and skipped, and so are metadata and, when not asked for,
//! outputs. Only a file that does not pass goes through `Doc::parse`, for its precise error.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::cell::{Source, Str, check_cell};

/// Which cells to keep, and whether with their outputs.
pub(super) struct Window {
    pub(super) start: usize,
    pub(super) limit: usize,
    pub(super) include_outputs: bool,
}

/// What `read` needs of a notebook.
pub(super) struct Parsed {
    pub(super) minor: i64,
    pub(super) total_cells: usize,
    /// The cells of the window with their index; each checked like `Doc::parse` checks.
    pub(super) cells: Vec<(usize, Value)>,
}

/// Parses the window, or `None` when the file is not a notebook this server reads (the caller
/// then asks `Doc::parse` why).
pub(super) fn parse(bytes: &[u8], window: &Window) -> Option<Parsed> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let top = TopSeed(window).deserialize(&mut de).ok()?;
    de.end().ok()?;
    if top.nbformat != Some(4) {
        return None;
    }
    let (total_cells, cells) = top.cells?;
    Some(Parsed {
        minor: top.minor,
        total_cells,
        cells,
    })
}

struct Top {
    nbformat: Option<i64>,
    minor: i64,
    cells: Option<(usize, Vec<(usize, Value)>)>,
}

struct TopSeed<'a>(&'a Window);

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a notebook object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut top = Top {
            nbformat: None,
            minor: 0,
            cells: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "nbformat" => top.nbformat = map.next_value::<Value>()?.as_i64(),
                "nbformat_minor" => top.minor = map.next_value::<Value>()?.as_i64().unwrap_or(0),
                "cells" => top.cells = Some(map.next_value_seed(CellsSeed(self.0))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

struct CellsSeed<'a>(&'a Window);

impl<'de> DeserializeSeed<'de> for CellsSeed<'_> {
    type Value = (usize, Vec<(usize, Value)>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CellsSeed<'_> {
    type Value = (usize, Vec<(usize, Value)>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of cells")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let w = self.0;
        let mut cells = Vec::new();
        let mut index = 0;
        loop {
            let in_window = index >= w.start && index - w.start < w.limit;
            if !in_window {
                if seq.next_element::<CheckedCell>()?.is_none() {
                    break;
                }
            } else {
                let cell = if w.include_outputs {
                    seq.next_element::<Value>()?
                } else {
                    seq.next_element_seed(WithoutOutputs)?.map(Value::Object)
                };
                let Some(cell) = cell else { break };
                check_cell(index, &cell).map_err(de::Error::custom)?;
                cells.push((index, cell));
            }
            index += 1;
        }
        Ok((index, cells))
    }
}

/// A cell outside the window: an object with a string `cell_type` and a string-or-list
/// `source` (when present); checked, nothing kept.
struct CheckedCell;

impl<'de> Deserialize<'de> for CheckedCell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CheckedCell, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckedCell;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a cell object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CheckedCell, A::Error> {
                let mut cell_type = false;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "cell_type" => {
                            map.next_value::<Str>()?;
                            cell_type = true;
                        }
                        "source" => {
                            map.next_value::<Source>()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if !cell_type {
                    return Err(de::Error::missing_field("cell_type"));
                }
                Ok(CheckedCell)
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads a cell object keeping every field but `outputs`.
struct WithoutOutputs;

impl<'de> DeserializeSeed<'de> for WithoutOutputs {
    type Value = Map<String, Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for WithoutOutputs {
    type Value = Map<String, Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a cell object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "outputs" {
                map.next_value::<IgnoredAny>()?;
            } else {
                out.insert(key, map.next_value::<Value>()?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notebook::format::{Doc, cell_view};
    use serde_json::json;

    fn notebook() -> Value {
        json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {"big": [1, 2, 3]}, "cells": [
            {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# T\n", "text"]},
            {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": 3, "source": "x = 1",
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]},
            {"cell_type": "raw", "id": "c", "metadata": {}},
            {"cell_type": "code", "id": "d", "metadata": {}, "execution_count": null, "source": "y",
             "outputs": []},
        ]})
    }

    #[test]
    fn every_window_agrees_with_the_whole_document() {
        let bytes = serde_json::to_vec(&notebook()).unwrap();
        let doc = Doc::parse(&bytes, "n.ipynb").unwrap();
        for include_outputs in [true, false] {
            for start in 0..5 {
                for limit in 0..5 {
                    let w = Window {
                        start,
                        limit,
                        include_outputs,
                    };
                    let parsed = parse(&bytes, &w).unwrap();
                    let whole = doc
                        .view("n", String::new(), include_outputs, start, Some(limit))
                        .unwrap();
                    assert_eq!(parsed.total_cells, whole.total_cells);
                    assert_eq!(parsed.minor, whole.nbformat_minor);
                    let cells: Vec<_> = parsed
                        .cells
                        .iter()
                        .map(|(i, c)| cell_view(*i, c, include_outputs))
                        .collect();
                    assert_eq!(cells, whole.cells, "start {start} limit {limit}");
                }
            }
        }
    }

    #[test]
    fn what_the_whole_parse_refuses_is_not_read_as_a_window() {
        let all = Window {
            start: 0,
            limit: usize::MAX,
            include_outputs: true,
        };
        let none = Window {
            start: 99,
            limit: 1,
            include_outputs: false,
        };
        for bad in [
            json!({"nbformat": 3, "cells": []}),
            json!({"cells": []}),
            json!({"nbformat": 4}),
            json!({"nbformat": 4, "cells": {}}),
            json!({"nbformat": 4, "cells": [["code", "x"]]}),
            json!({"nbformat": 4, "cells": [{"source": "x"}]}),
            json!({"nbformat": 4, "cells": [{"cell_type": 1, "source": "x"}]}),
            json!({"nbformat": 4, "cells": [{"cell_type": "code", "source": 5}]}),
            json!({"nbformat": 4, "cells": [{"cell_type": "code", "source": ["a", 1]}]}),
            json!([1, 2]),
        ] {
            let bytes = serde_json::to_vec(&bad).unwrap();
            assert!(Doc::parse(&bytes, "x").is_err(), "{bad}");
            assert!(parse(&bytes, &all).is_none(), "{bad}");
            assert!(parse(&bytes, &none).is_none(), "{bad}");
        }
        assert!(parse(b"{\"nbformat\": 4, \"cells\": []} trailing", &all).is_none());
    }
}
