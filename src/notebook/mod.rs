//! Notebooks: nbformat 4 files confined to one root directory (a principal's directory).
//!
//! This module owns every file-system touch of the notebook tools: `paths` checks a caller's
//! path, `format` is the document model, `window` the read of a window of cells, `cell` what
//! makes a cell well-formed (checked by both readers), `edit` the cell operations, `disk` the
//! capped read, atomic write, writer lock and revision. The store ties them together. The
//! kernel runs as the same OS user and can write anywhere in the root, so nothing here trusts
//! what it finds: paths are relative, `..` and hidden components are refused, symlinks are
//! resolved and must stay inside the root, reads are size-capped, and writes go through a temp
//! file and a rename so a crash never leaves half a notebook.
//!
//! Known limit: the checks run before the open, so a process racing to swap a directory for
//! a symlink between the two could still redirect an intermediate directory. The final
//! component is opened with `O_NOFOLLOW` to narrow that window.
//!
//! All functions are blocking (std::fs); call them from `spawn_blocking` in async code.

mod cell;
pub(crate) mod disk;
pub(crate) mod edit;
mod format;
mod paths;
mod window;

use std::ffi::OsStr;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use disk::{WriteLock, read_capped, revision, write_atomic};
pub(crate) use format::Doc;
use paths::check_relative;
pub(crate) use paths::display_path;

/// Largest notebook `create` or a change will write, in bytes.
pub(crate) const MAX_WRITE_BYTES: usize = 10 * 1024 * 1024;
/// Largest notebook file `read` will open (and a change that may shrink it, such as
/// clear_outputs, will edit), in bytes.
pub(crate) const MAX_READ_BYTES: u64 = 50 * 1024 * 1024;
/// Longest relative path accepted, in bytes.
pub(crate) const MAX_PATH_BYTES: usize = 1024;
/// How many directory entries `list` visits before giving up (bounds work on huge trees).
pub(crate) const MAX_LIST_VISITS: usize = 100_000;
/// Suffix every notebook path must carry.
const NOTEBOOK_SUFFIX: &str = ".ipynb";

/// Why a notebook operation failed. Messages name only the caller's relative path.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("path is empty; give a relative path such as `analysis/report.ipynb`")]
    EmptyPath,
    #[error("path is longer than {max} bytes; use a shorter relative path")]
    PathTooLong { max: usize },
    #[error("path `{path}` is absolute; give a path relative to the working directory")]
    AbsolutePath { path: String },
    #[error("path contains a NUL byte; use printable characters only")]
    NulByte,
    #[error("path `{path}` contains `..`; paths must stay inside the working directory")]
    ParentComponent { path: String },
    #[error(
        "path `{path}` has a hidden component (starting with `.`); \
         use names that do not start with a dot"
    )]
    HiddenComponent { path: String },
    #[error("notebook path `{path}` does not end in `.ipynb`; only `.ipynb` files are notebooks")]
    NotIpynb { path: String },
    #[error(
        "path `{path}` goes through a symlink that leaves the working directory (or \
         cannot be resolved); use a path whose directories are inside the working directory"
    )]
    SymlinkEscape { path: String },
    #[error("notebook `{path}` already exists; pass overwrite=true to replace it")]
    AlreadyExists { path: String },
    #[error("notebook `{path}` was not found; call list_notebooks to see what exists")]
    NotFound { path: String },
    #[error("`{path}` is not a regular file; give the path of a .ipynb file")]
    NotAFile { path: String },
    #[error(
        "notebook `{path}` would be {size} bytes, over the {max}-byte write limit; make it \
         smaller: fewer or smaller cells, or clear_outputs to drop saved outputs"
    )]
    WriteTooLarge {
        path: String,
        size: usize,
        max: usize,
    },
    #[error(
        "notebook `{path}` is {size} bytes, over the {max}-byte write limit, and this change \
         cannot make it smaller; shrink it first with clear_outputs (of every cell, or of the \
         cells with big outputs) or delete_cell, then retry"
    )]
    EditTooLarge { path: String, size: u64, max: usize },
    #[error(
        "notebook `{path}` is {size} bytes, over the {max}-byte read limit; split it into smaller notebooks"
    )]
    ReadTooLarge { path: String, size: u64, max: u64 },
    #[error("notebook `{path}` is not valid JSON ({reason}); fix or recreate the file")]
    InvalidJson { path: String, reason: String },
    #[error(
        "notebook `{path}` is nbformat {found}; only nbformat 4 is supported (convert it with `jupyter nbconvert --to notebook --nbformat 4`)"
    )]
    UnsupportedFormat { path: String, found: String },
    #[error("notebook `{path}` is not a valid nbformat 4 notebook: {reason}")]
    InvalidNotebook { path: String, reason: String },
    #[error(
        "notebook `{path}` changed since revision {expected} (it is now at {current}); \
         call read_notebook again, then redo the change on what it shows"
    )]
    Conflict {
        path: String,
        expected: String,
        current: String,
    },
    #[error(
        "notebook `{path}` is being changed by another call and stayed locked for {secs} s; retry"
    )]
    Busy { path: String, secs: u64 },
    #[error("notebook `{path}` has no cell with {cell} (it has {count} cells); {hint}")]
    NoSuchCell {
        path: String,
        cell: String,
        count: usize,
        hint: &'static str,
    },
    #[error("position {index} is out of range for notebook `{path}`; use 0 to {max}")]
    BadPosition {
        path: String,
        index: usize,
        max: usize,
    },
    #[error(
        "cell {index} of `{path}` is a {cell_type} cell; only code cells run (call read_notebook to find them)"
    )]
    NotCode {
        path: String,
        index: usize,
        cell_type: String,
    },
    #[error(
        "cell {cell} of `{path}` was deleted or changed while it ran, so its outputs were not saved; read the notebook again"
    )]
    CellGone { path: String, cell: usize },
    #[error("working directory has more than {max} entries to scan; remove unneeded files")]
    TooManyEntries { max: usize },
    #[error("could not {action} `{path}`: {source}; check the file's permissions and free space")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The kind of a notebook cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CellType {
    /// Python code, run by the kernel.
    Code,
    /// Markdown text.
    Markdown,
    /// Raw text, left untouched by Jupyter.
    Raw,
}

impl CellType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CellType::Code => "code",
            CellType::Markdown => "markdown",
            CellType::Raw => "raw",
        }
    }
}

/// Whether a change can make a notebook smaller. One that cannot (insert, move, append) is
/// refused on a notebook already over the write cap before the file is read; one that can
/// (edit, delete, clear or replace outputs) runs on notebooks up to the read cap and is refused
/// only if its result is over the write cap, so clear_outputs can shrink an oversized notebook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shrinks {
    No,
    Maybe,
}

/// One cell to write into a new notebook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub(crate) struct CellSpec {
    /// Cell kind: `code`, `markdown` or `raw`.
    pub(crate) cell_type: CellType,
    /// Full text of the cell (lines separated by `\n`).
    pub(crate) source: String,
}

/// What `create` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub(crate) struct NotebookSummary {
    /// Path of the notebook, relative to the working directory.
    pub(crate) path: String,
    /// Number of cells written.
    pub(crate) cell_count: usize,
    /// Ids given to the cells, in cell order.
    pub(crate) cell_ids: Vec<String>,
    /// Size of the file written, in bytes.
    pub(crate) size_bytes: u64,
    /// Revision of the file written: pass it to a change tool to refuse a stale change.
    pub(crate) revision: String,
}

/// A window of cells from a notebook.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub(crate) struct NotebookView {
    /// Path of the notebook, relative to the working directory.
    pub(crate) path: String,
    /// Revision (content hash) of the file read; a change tool given it refuses to act if the
    /// notebook changed since.
    pub(crate) revision: String,
    /// Major format version (always 4).
    pub(crate) nbformat: i64,
    /// Minor format version (4.5 and later carry cell ids).
    pub(crate) nbformat_minor: i64,
    /// Number of cells in the whole notebook, not just this window.
    pub(crate) total_cells: usize,
    /// The requested cells, in order.
    pub(crate) cells: Vec<CellView>,
}

/// One cell as read from a notebook.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub(crate) struct CellView {
    /// Zero-based position of the cell in the notebook.
    pub(crate) index: usize,
    /// Cell id (absent in notebooks older than nbformat 4.5).
    pub(crate) id: Option<String>,
    /// Cell kind as written in the file: `code`, `markdown` or `raw`.
    pub(crate) cell_type: String,
    /// Full text of the cell (list-form sources are joined).
    pub(crate) source: String,
    /// Execution counter of a code cell; null if never run or not a code cell.
    pub(crate) execution_count: Option<i64>,
    /// Raw nbformat output dicts; empty unless outputs were requested.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) outputs: Vec<Value>,
}

/// One notebook found under the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub(crate) struct NotebookEntry {
    /// Path of the notebook, relative to the working directory, `/`-separated.
    pub(crate) path: String,
    /// File size in bytes.
    pub(crate) size_bytes: u64,
    /// Last modification time, RFC 3339 in UTC.
    pub(crate) modified: String,
}

/// Notebooks of one principal, all under `root`.
#[derive(Debug, Clone)]
pub(crate) struct NotebookStore {
    /// Canonical (symlink-free, absolute) root; every resolved path starts with it.
    root: PathBuf,
}

impl NotebookStore {
    /// Opens the store at `root`, creating the directory (mode 0700) if it does not exist.
    pub(crate) fn new(root: impl AsRef<Path>) -> Result<Self, Error> {
        let root = root.as_ref();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| io_err("create the working directory", "", e))?;
        let root =
            fs::canonicalize(root).map_err(|e| io_err("resolve the working directory", "", e))?;
        Ok(Self { root })
    }

    /// Maps a caller's relative notebook path to an absolute path inside the root.
    ///
    /// The result is built from the canonical deepest existing ancestor, so it holds no
    /// symlink that was present at check time.
    pub(crate) fn resolve(&self, rel: &str) -> Result<PathBuf, Error> {
        let parts = check_relative(rel)?;
        if !rel.ends_with(NOTEBOOK_SUFFIX) {
            return Err(Error::NotIpynb {
                path: rel.to_owned(),
            });
        }
        self.confine(rel, &parts)
    }

    /// Like `resolve`, for any file or directory (no `.ipynb` suffix required): the same
    /// confinement serves the file tools.
    pub(crate) fn resolve_any(&self, rel: &str) -> Result<PathBuf, Error> {
        let parts = check_relative(rel)?;
        self.confine(rel, &parts)
    }

    /// The canonical root every resolved path starts with.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Writes a new nbformat 4.5 notebook holding `cells`, creating parent directories. With
    /// `expected` (only meaningful with `overwrite`), the notebook being replaced must still be
    /// at that revision, checked under the writer lock (`Conflict` otherwise, also when it is
    /// gone).
    pub(crate) fn create(
        &self,
        path: &str,
        cells: &[CellSpec],
        overwrite: bool,
        expected: Option<&str>,
    ) -> Result<NotebookSummary, Error> {
        let target = self.resolve(path)?;
        let display = display_path(path);
        if !overwrite && fs::symlink_metadata(&target).is_ok() {
            return Err(Error::AlreadyExists { path: display });
        }
        let mut doc = Doc::new_empty().map_err(|e| unwritable(&display, e))?;
        for cell in cells {
            let new = doc
                .new_cell(cell.cell_type, &cell.source)
                .map_err(|e| unwritable(&display, e))?;
            doc.cells.push(new);
        }
        let cell_ids = (0..doc.cells.len())
            .filter_map(|i| doc.cell_id(i))
            .collect();
        let bytes = render_capped(&doc, &display)?;
        self.make_parent(&target, &display)?;
        let _lock = WriteLock::acquire(&target, &display)?;
        if let Some(expected) = expected {
            let current = match read_capped(&target, &display, MAX_READ_BYTES) {
                Ok(old) => revision(&old),
                Err(Error::NotFound { .. }) => "absent".into(),
                Err(e) => return Err(e),
            };
            if current != expected {
                return Err(Error::Conflict {
                    path: display,
                    expected: expected.to_owned(),
                    current,
                });
            }
        }
        write_atomic(&target, &bytes, overwrite, &display)?;
        Ok(NotebookSummary {
            path: display,
            cell_count: cells.len(),
            cell_ids,
            size_bytes: bytes.len() as u64,
            revision: revision(&bytes),
        })
    }

    /// Reads cells `start..start+limit` of a notebook; `start` past the end gives no cells.
    pub(crate) fn read(
        &self,
        path: &str,
        include_outputs: bool,
        start: usize,
        limit: Option<usize>,
    ) -> Result<NotebookView, Error> {
        let target = self.resolve(path)?;
        let display = display_path(path);
        let bytes = read_capped(&target, &display, MAX_READ_BYTES)?;
        let window = window::Window {
            start,
            limit: limit.unwrap_or(usize::MAX),
            include_outputs,
        };
        // Only the window is built; a file that does not parse that way is parsed whole, for
        // its precise error.
        let Some(parsed) = window::parse(&bytes, &window) else {
            let doc = Doc::parse(&bytes, &display)?;
            return doc
                .view(&display, revision(&bytes), include_outputs, start, limit)
                .map_err(|e| unwritable(&display, e));
        };
        Ok(NotebookView {
            path: display,
            revision: revision(&bytes),
            nbformat: 4,
            nbformat_minor: parsed.minor,
            total_cells: parsed.total_cells,
            cells: parsed
                .cells
                .iter()
                .map(|(index, cell)| format::cell_view(*index, cell, include_outputs))
                .collect(),
        })
    }

    /// Applies `op` to a notebook as one read-modify-write under its writer lock, replacing the
    /// file atomically. With `expected`, refuses (`Conflict`) if the file is no longer at that
    /// revision. With `create_missing`, a missing notebook starts empty (nbformat 4.5).
    /// `shrinks` says whether `op` can make the notebook smaller (see [`Shrinks`]).
    /// Returns what `op` returned and the new revision.
    ///
    /// Memory: the file's bytes, what `op` adds, and the new file (built only once its size is
    /// known to be under the write cap); the document borrows the bytes read (see `format`).
    pub(crate) fn change<T>(
        &self,
        path: &str,
        expected: Option<&str>,
        create_missing: bool,
        shrinks: Shrinks,
        op: impl FnOnce(&mut Doc<'_>, &str) -> Result<T, Error>,
    ) -> Result<(T, String), Error> {
        let target = self.resolve(path)?;
        let display = display_path(path);
        if create_missing {
            self.make_parent(&target, &display)?;
        }
        let _lock = WriteLock::acquire(&target, &display)?;
        let bytes = match read_for_change(&target, &display, shrinks) {
            Ok(bytes) => Some(bytes),
            Err(Error::NotFound { .. }) if create_missing => None,
            Err(e) => return Err(e),
        };
        let current = bytes.as_deref().map(revision);
        if let Some(expected) = expected
            && current.as_deref() != Some(expected)
        {
            return Err(Error::Conflict {
                path: display,
                expected: expected.to_owned(),
                current: current.unwrap_or_else(|| "absent".into()),
            });
        }
        let mut doc = match &bytes {
            Some(bytes) => Doc::parse(bytes, &display)?,
            None => Doc::new_empty().map_err(|e| unwritable(&display, e))?,
        };
        doc.fill_missing_ids()
            .map_err(|e| unwritable(&display, e))?;
        let out = op(&mut doc, &display)?;
        let new = render_capped(&doc, &display)?;
        drop(doc);
        drop(bytes);
        write_atomic(&target, &new, true, &display)?;
        Ok((out, revision(&new)))
    }

    /// Reads a notebook to run its cells (execute_cell, execute_notebook), checking `expected`
    /// against its revision like `change` does. Returns what `op` returned and the revision
    /// read. The run's outputs will be saved into the notebook, so one already over the write
    /// cap is refused here, before any code runs, rather than failing to save after it ran.
    pub(crate) fn inspect_for_run<T>(
        &self,
        path: &str,
        expected: Option<&str>,
        op: impl FnOnce(&Doc<'_>, &str) -> Result<T, Error>,
    ) -> Result<(T, String), Error> {
        let target = self.resolve(path)?;
        let display = display_path(path);
        let bytes = read_for_change(&target, &display, Shrinks::No)?;
        let current = revision(&bytes);
        if let Some(expected) = expected
            && current != expected
        {
            return Err(Error::Conflict {
                path: display,
                expected: expected.to_owned(),
                current,
            });
        }
        let doc = Doc::parse(&bytes, &display)?;
        Ok((op(&doc, &display)?, current))
    }

    /// Every `*.ipynb` regular file under the root, sorted by path.
    ///
    /// Symlinks are not followed and hidden entries (such as `.packages`) are skipped.
    pub(crate) fn list(&self) -> Result<Vec<NotebookEntry>, Error> {
        let mut found = Vec::new();
        let mut stack = vec![self.root.clone()];
        let mut visits = 0usize;
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                // A subdirectory the kernel made unreadable should not hide the others.
                Err(e) if dir != self.root => {
                    tracing::debug!(error = %e, "skipping unreadable directory while listing notebooks");
                    continue;
                }
                Err(e) => return Err(io_err("list", ".", e)),
            };
            for entry in entries.flatten() {
                visits += 1;
                if visits > MAX_LIST_VISITS {
                    return Err(Error::TooManyEntries {
                        max: MAX_LIST_VISITS,
                    });
                }
                self.visit(&entry, &mut stack, &mut found);
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// Classifies one directory entry for `list`: descend, record, or ignore.
    fn visit(
        &self,
        entry: &fs::DirEntry,
        stack: &mut Vec<PathBuf>,
        found: &mut Vec<NotebookEntry>,
    ) {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            return;
        }
        // DirEntry::file_type does not follow symlinks, so links are neither listed nor walked.
        let Ok(file_type) = entry.file_type() else {
            return;
        };
        let path = entry.path();
        if file_type.is_dir() {
            stack.push(path);
        } else if file_type.is_file()
            && name.to_string_lossy().ends_with(NOTEBOOK_SUFFIX)
            && let Some(nb) = self.entry_for(&path)
        {
            found.push(nb);
        }
    }

    fn entry_for(&self, path: &Path) -> Option<NotebookEntry> {
        let meta = fs::symlink_metadata(path).ok()?;
        let rel = path.strip_prefix(&self.root).ok()?;
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let modified = meta
            .modified()
            .map(|t| {
                chrono::DateTime::<chrono::Utc>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .unwrap_or_default();
        Some(NotebookEntry {
            path: rel,
            size_bytes: meta.len(),
            modified,
        })
    }

    /// Resolves `parts` under the root, refusing any existing symlink that leads outside.
    fn confine(&self, rel: &str, parts: &[&OsStr]) -> Result<PathBuf, Error> {
        let escape = || Error::SymlinkEscape {
            path: rel.to_owned(),
        };
        let mut existing = self.root.clone();
        let mut depth = 0;
        for part in parts {
            let next = existing.join(part);
            match fs::symlink_metadata(&next) {
                Ok(_) => {
                    existing = next;
                    depth += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(io_err("inspect", rel, e)),
            }
        }
        // A dangling link fails to canonicalize: refuse it, since we cannot show it stays inside.
        let canonical = fs::canonicalize(&existing).map_err(|_| escape())?;
        if !canonical.starts_with(&self.root) {
            return Err(escape());
        }
        Ok(parts[depth..].iter().fold(canonical, |acc, p| acc.join(p)))
    }

    /// Creates the parent directories of `target` (mode 0700) and re-checks they stay inside.
    pub(crate) fn make_parent(&self, target: &Path, display: &str) -> Result<(), Error> {
        let Some(parent) = target.parent() else {
            return Err(Error::EmptyPath);
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| io_err("create the directory of", display, e))?;
        // Someone may have swapped in a symlink since `resolve`; check again now it exists.
        let canonical =
            fs::canonicalize(parent).map_err(|e| io_err("resolve the directory of", display, e))?;
        if canonical.starts_with(&self.root) {
            Ok(())
        } else {
            Err(Error::SymlinkEscape {
                path: display.to_owned(),
            })
        }
    }
}

/// Reads a notebook about to be changed by a change that `shrinks` or not. One that cannot make
/// it smaller is refused on a file over the write cap from its size alone, before it is read
/// (the result could only be over the cap too); one that can reads up to the read cap.
fn read_for_change(target: &Path, display: &str, shrinks: Shrinks) -> Result<Vec<u8>, Error> {
    match shrinks {
        Shrinks::Maybe => read_capped(target, display, MAX_READ_BYTES),
        Shrinks::No => match read_capped(target, display, MAX_WRITE_BYTES as u64) {
            Err(Error::ReadTooLarge { path, size, .. }) => Err(Error::EditTooLarge {
                path,
                size,
                max: MAX_WRITE_BYTES,
            }),
            other => other,
        },
    }
}

/// Renders `doc`, refusing a file over the write cap before building it.
fn render_capped(doc: &Doc<'_>, display: &str) -> Result<Vec<u8>, Error> {
    let size = doc.rendered_len().map_err(|e| unwritable(display, e))?;
    if size > MAX_WRITE_BYTES {
        return Err(Error::WriteTooLarge {
            path: display.to_owned(),
            size,
            max: MAX_WRITE_BYTES,
        });
    }
    doc.render(size).map_err(|e| unwritable(display, e))
}

/// A JSON failure building a notebook (not expected: it was parsed or just made).
fn unwritable(display: &str, e: serde_json::Error) -> Error {
    Error::InvalidNotebook {
        path: display.to_owned(),
        reason: e.to_string(),
    }
}

pub(crate) fn io_err(action: &'static str, path: &str, source: io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edit::CellRef;
    use format::new_cell_ids;
    use serde_json::json;
    use std::collections::HashSet;
    use std::os::unix::fs::symlink;
    use std::os::unix::process::CommandExt;
    use std::time::Duration;

    fn store() -> (tempfile::TempDir, NotebookStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = NotebookStore::new(dir.path().join("root")).unwrap();
        (dir, store)
    }

    fn cells() -> Vec<CellSpec> {
        vec![
            CellSpec {
                cell_type: CellType::Markdown,
                source: "# Title\nsome text".into(),
            },
            CellSpec {
                cell_type: CellType::Code,
                source: "x = 1\nprint(x)".into(),
            },
            CellSpec {
                cell_type: CellType::Raw,
                source: "raw".into(),
            },
        ]
    }

    #[test]
    fn new_creates_root_with_mode_0700() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, store) = store();
        let mode = fs::metadata(store.root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn refuses_empty_path() {
        let (_dir, store) = store();
        assert!(matches!(store.resolve(""), Err(Error::EmptyPath)));
        assert!(matches!(store.resolve("./"), Err(Error::EmptyPath)));
    }

    #[test]
    fn refuses_absolute_path() {
        let (_dir, store) = store();
        assert!(matches!(
            store.resolve("/etc/x.ipynb"),
            Err(Error::AbsolutePath { .. })
        ));
    }

    #[test]
    fn refuses_parent_component() {
        let (_dir, store) = store();
        assert!(matches!(
            store.resolve("../x.ipynb"),
            Err(Error::ParentComponent { .. })
        ));
        assert!(matches!(
            store.resolve("a/../../x.ipynb"),
            Err(Error::ParentComponent { .. })
        ));
    }

    #[test]
    fn refuses_nul_byte() {
        let (_dir, store) = store();
        assert!(matches!(store.resolve("a\0.ipynb"), Err(Error::NulByte)));
    }

    #[test]
    fn refuses_hidden_component() {
        let (_dir, store) = store();
        assert!(matches!(
            store.resolve(".packages/x.ipynb"),
            Err(Error::HiddenComponent { .. })
        ));
    }

    #[test]
    fn refuses_too_long_path() {
        let (_dir, store) = store();
        let long = format!("{}.ipynb", "a".repeat(MAX_PATH_BYTES));
        assert!(matches!(
            store.resolve(&long),
            Err(Error::PathTooLong { .. })
        ));
    }

    #[test]
    fn refuses_non_ipynb() {
        let (_dir, store) = store();
        assert!(matches!(
            store.resolve("notes.txt"),
            Err(Error::NotIpynb { .. })
        ));
        assert!(matches!(
            store.create("x.py", &[], false, None),
            Err(Error::NotIpynb { .. })
        ));
    }

    #[test]
    fn refuses_symlinked_file_outside_root() {
        let (dir, store) = store();
        let outside = dir.path().join("outside.ipynb");
        fs::write(&outside, "{}").unwrap();
        symlink(&outside, store.root.join("evil.ipynb")).unwrap();
        assert!(matches!(
            store.read("evil.ipynb", false, 0, None),
            Err(Error::SymlinkEscape { .. })
        ));
        assert!(matches!(
            store.create("evil.ipynb", &[], true, None),
            Err(Error::SymlinkEscape { .. })
        ));
        assert_eq!(fs::read_to_string(&outside).unwrap(), "{}");
    }

    #[test]
    fn refuses_dangling_symlink() {
        let (dir, store) = store();
        symlink(
            dir.path().join("nowhere.ipynb"),
            store.root.join("dangling.ipynb"),
        )
        .unwrap();
        assert!(matches!(
            store.resolve("dangling.ipynb"),
            Err(Error::SymlinkEscape { .. })
        ));
    }

    #[test]
    fn refuses_symlinked_parent_outside_root() {
        let (dir, store) = store();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        symlink(&outside, store.root.join("sub")).unwrap();
        assert!(matches!(
            store.create("sub/x.ipynb", &cells(), false, None),
            Err(Error::SymlinkEscape { .. })
        ));
        assert!(matches!(
            store.create("sub/deeper/x.ipynb", &cells(), false, None),
            Err(Error::SymlinkEscape { .. })
        ));
        assert!(fs::read_dir(&outside).unwrap().next().is_none());
    }

    #[test]
    fn allows_symlink_that_stays_inside_root() {
        let (_dir, store) = store();
        fs::create_dir(store.root.join("real")).unwrap();
        symlink(store.root.join("real"), store.root.join("alias")).unwrap();
        let resolved = store.resolve("alias/x.ipynb").unwrap();
        assert_eq!(resolved, store.root.join("real/x.ipynb"));
    }

    #[test]
    fn refuses_existing_without_overwrite() {
        let (_dir, store) = store();
        store.create("a.ipynb", &cells(), false, None).unwrap();
        assert!(matches!(
            store.create("a.ipynb", &[], false, None),
            Err(Error::AlreadyExists { .. })
        ));
        let replaced = store.create("a.ipynb", &[], true, None).unwrap();
        assert_eq!(replaced.cell_count, 0);
        assert_eq!(
            store.read("a.ipynb", false, 0, None).unwrap().total_cells,
            0
        );
    }

    #[test]
    fn refuses_oversized_write() {
        let (_dir, store) = store();
        let big = vec![CellSpec {
            cell_type: CellType::Code,
            source: "x".repeat(MAX_WRITE_BYTES),
        }];
        assert!(matches!(
            store.create("big.ipynb", &big, false, None),
            Err(Error::WriteTooLarge { .. })
        ));
        assert!(!store.root.join("big.ipynb").exists());
    }

    #[test]
    fn refuses_invalid_json() {
        let (_dir, store) = store();
        fs::write(store.root.join("bad.ipynb"), "{ not json").unwrap();
        assert!(matches!(
            store.read("bad.ipynb", false, 0, None),
            Err(Error::InvalidJson { .. })
        ));
    }

    #[test]
    fn refuses_nbformat_3() {
        let (_dir, store) = store();
        let v3 = json!({"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "metadata": {}});
        fs::write(store.root.join("old.ipynb"), v3.to_string()).unwrap();
        assert!(matches!(
            store.read("old.ipynb", false, 0, None),
            Err(Error::UnsupportedFormat { .. })
        ));
    }

    #[test]
    fn refuses_missing_file() {
        let (_dir, store) = store();
        assert!(matches!(
            store.read("nope.ipynb", false, 0, None),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn refuses_directory_named_ipynb() {
        let (_dir, store) = store();
        fs::create_dir(store.root.join("dir.ipynb")).unwrap();
        assert!(matches!(
            store.read("dir.ipynb", false, 0, None),
            Err(Error::NotAFile { .. })
        ));
    }

    #[test]
    fn round_trip_create_then_read() {
        let (_dir, store) = store();
        let summary = store
            .create("sub/dir/nb.ipynb", &cells(), false, None)
            .unwrap();
        assert_eq!(summary.path, "sub/dir/nb.ipynb");
        assert_eq!(summary.cell_count, 3);
        let view = store.read("sub/dir/nb.ipynb", true, 0, None).unwrap();
        assert_eq!(
            (view.nbformat, view.nbformat_minor, view.total_cells),
            (4, 5, 3)
        );
        for (cell, spec) in view.cells.iter().zip(cells()) {
            assert_eq!(cell.cell_type, spec.cell_type.as_str());
            assert_eq!(cell.source, spec.source);
            assert!(cell.outputs.is_empty());
            assert_eq!(cell.execution_count, None);
        }
        let ids: Vec<_> = view.cells.iter().map(|c| c.id.clone().unwrap()).collect();
        assert_eq!(ids, summary.cell_ids);
    }

    #[test]
    fn read_joins_list_sources_and_windows() {
        let (_dir, store) = store();
        let doc = json!({
            "nbformat": 4, "nbformat_minor": 4, "metadata": {},
            "cells": [
                {"cell_type": "code", "source": ["a = 1\n", "b = 2"], "execution_count": 7,
                 "metadata": {}, "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]},
                {"cell_type": "markdown", "source": "two", "metadata": {}},
            ]
        });
        fs::write(store.root.join("old4.ipynb"), doc.to_string()).unwrap();
        let view = store.read("old4.ipynb", true, 0, Some(1)).unwrap();
        assert_eq!(view.total_cells, 2);
        assert_eq!(view.cells.len(), 1);
        assert_eq!(view.cells[0].source, "a = 1\nb = 2");
        assert_eq!(view.cells[0].execution_count, Some(7));
        assert_eq!(view.cells[0].id, None);
        assert_eq!(view.cells[0].outputs.len(), 1);
        let no_outputs = store.read("old4.ipynb", false, 0, None).unwrap();
        assert!(no_outputs.cells[0].outputs.is_empty());
        let tail = store.read("old4.ipynb", false, 1, None).unwrap();
        assert_eq!((tail.cells.len(), tail.cells[0].index), (1, 1));
        assert!(
            store
                .read("old4.ipynb", false, 99, None)
                .unwrap()
                .cells
                .is_empty()
        );
    }

    #[test]
    fn cell_ids_are_unique_and_valid() {
        let ids = new_cell_ids(2000);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 2000);
        for id in &ids {
            assert!((8..=32).contains(&id.len()));
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
        }
    }

    #[test]
    fn list_is_sorted_recursive_and_skips_hidden_and_links() {
        let (dir, store) = store();
        for p in ["b.ipynb", "a/z.ipynb", "a.ipynb", "c/d/e.ipynb"] {
            store.create(p, &[], false, None).unwrap();
        }
        fs::write(store.root.join("notes.txt"), "x").unwrap();
        fs::create_dir_all(store.root.join(".packages")).unwrap();
        fs::write(store.root.join(".packages/hidden.ipynb"), "{}").unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("o.ipynb"), "{}").unwrap();
        symlink(&outside, store.root.join("link")).unwrap();
        symlink(outside.join("o.ipynb"), store.root.join("link.ipynb")).unwrap();
        let listed = store.list().unwrap();
        let paths: Vec<_> = listed.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a.ipynb", "a/z.ipynb", "b.ipynb", "c/d/e.ipynb"]);
        assert!(listed.iter().all(|e| e.size_bytes > 0));
        assert!(chrono::DateTime::parse_from_rfc3339(&listed[0].modified).is_ok());
    }

    fn old_notebook(store: &NotebookStore, name: &str, minor: i64) {
        let doc = json!({
            "nbformat": 4, "nbformat_minor": minor,
            "metadata": {"widgets": {"state": {"x": 1}}, "custom_tool": {"keep": true}},
            "cells": [
                {"cell_type": "markdown", "source": ["# T\n", "text"], "metadata": {},
                 "attachments": {"a.png": {"image/png": "iVBORw0KGgo="}}},
                {"cell_type": "code", "source": "print(1)", "metadata": {"tags": ["x"]},
                 "execution_count": 3, "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}]},
            ]
        });
        fs::write(store.root.join(name), doc.to_string()).unwrap();
    }

    #[test]
    fn edits_keep_unknown_fields_and_add_no_ids_before_4_5() {
        let (_dir, store) = store();
        old_notebook(&store, "old.ipynb", 4);
        let (pos, _) = store
            .change("old.ipynb", None, false, Shrinks::No, |doc, p| {
                edit::insert(doc, CellType::Code, "x = 2", Some(1), p)
            })
            .unwrap();
        assert_eq!((pos.index, pos.id), (1, None));
        let raw: Value =
            serde_json::from_slice(&fs::read(store.root.join("old.ipynb")).unwrap()).unwrap();
        assert_eq!(raw["nbformat_minor"], 4);
        assert_eq!(raw["metadata"]["custom_tool"]["keep"], true);
        assert_eq!(raw["metadata"]["widgets"]["state"]["x"], 1);
        assert_eq!(raw["cells"][0]["source"], json!(["# T\n", "text"]));
        assert!(raw["cells"][0]["attachments"]["a.png"].is_object());
        assert!(
            raw["cells"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c.get("id").is_none())
        );
        assert_eq!(raw["cells"][2]["metadata"]["tags"], json!(["x"]));
        let err = store
            .change("old.ipynb", None, false, Shrinks::Maybe, |doc, p| {
                edit::delete(doc, &CellRef::Id("nope".into()), p)
            })
            .unwrap_err();
        assert!(err.to_string().contains("name cells by index"), "{err}");
    }

    #[test]
    fn a_4_5_notebook_missing_ids_gets_them_on_change() {
        let (_dir, store) = store();
        old_notebook(&store, "nb.ipynb", 5);
        store
            .change("nb.ipynb", None, false, Shrinks::Maybe, |doc, p| {
                edit::edit(doc, &CellRef::Index(1), "y", p)
            })
            .unwrap();
        let view = store.read("nb.ipynb", false, 0, None).unwrap();
        assert!(view.cells.iter().all(|c| c.id.is_some()));
        assert_eq!(view.cells[1].source, "y");
    }

    #[test]
    fn insert_move_delete_by_index_and_id() {
        let (_dir, store) = store();
        let made = store.create("nb.ipynb", &cells(), false, None).unwrap();
        let (moved, _) = store
            .change("nb.ipynb", None, false, Shrinks::No, |doc, p| {
                edit::move_to(doc, &CellRef::Id(made.cell_ids[0].clone()), 2, p)
            })
            .unwrap();
        assert_eq!(moved.index, 2);
        let view = store.read("nb.ipynb", false, 0, None).unwrap();
        assert_eq!(view.cells[2].id.as_deref(), Some(made.cell_ids[0].as_str()));
        store
            .change("nb.ipynb", None, false, Shrinks::Maybe, |doc, p| {
                edit::delete(doc, &CellRef::Id("0".into()), p)
            })
            .unwrap();
        let view = store.read("nb.ipynb", false, 0, None).unwrap();
        assert_eq!(view.total_cells, 2);
        assert_eq!(view.cells[0].id.as_deref(), Some(made.cell_ids[2].as_str()));
        let bad = store.change("nb.ipynb", None, false, Shrinks::No, |doc, p| {
            edit::move_to(doc, &CellRef::Index(0), 2, p)
        });
        assert!(matches!(bad, Err(Error::BadPosition { .. })));
        let bad = store.change("nb.ipynb", None, false, Shrinks::No, |doc, p| {
            edit::insert(doc, CellType::Raw, "", Some(3), p)
        });
        assert!(matches!(bad, Err(Error::BadPosition { .. })));
    }

    #[test]
    fn a_stale_revision_is_refused_and_changes_nothing() {
        let (_dir, store) = store();
        let made = store.create("nb.ipynb", &cells(), false, None).unwrap();
        let (_, rev2) = store
            .change(
                "nb.ipynb",
                Some(&made.revision),
                false,
                Shrinks::Maybe,
                |doc, p| edit::edit(doc, &CellRef::Index(0), "a", p),
            )
            .unwrap();
        assert_ne!(rev2, made.revision);
        let before = fs::read(store.root.join("nb.ipynb")).unwrap();
        let stale = store.change(
            "nb.ipynb",
            Some(&made.revision),
            false,
            Shrinks::Maybe,
            |doc, p| edit::edit(doc, &CellRef::Index(0), "b", p),
        );
        assert!(matches!(stale, Err(Error::Conflict { .. })));
        assert_eq!(fs::read(store.root.join("nb.ipynb")).unwrap(), before);
        assert_eq!(
            store.read("nb.ipynb", false, 0, None).unwrap().revision,
            rev2
        );
    }

    #[test]
    fn concurrent_inserts_from_threads_lose_nothing() {
        let (_dir, store) = store();
        store.create("nb.ipynb", &[], false, None).unwrap();
        std::thread::scope(|scope| {
            for t in 0..8 {
                let store = store.clone();
                scope.spawn(move || {
                    for i in 0..10 {
                        store
                            .change("nb.ipynb", None, false, Shrinks::No, |doc, p| {
                                edit::insert(doc, CellType::Code, &format!("{t}-{i}"), None, p)
                            })
                            .unwrap();
                    }
                });
            }
        });
        let view = store.read("nb.ipynb", false, 0, None).unwrap();
        assert_eq!(view.total_cells, 80);
        let sources: HashSet<_> = view.cells.iter().map(|c| c.source.clone()).collect();
        assert_eq!(sources.len(), 80);
        // Issue 10: the lock left a `.nb.ipynb.lock` beside the notebook, in users' folders.
        let names: Vec<String> = fs::read_dir(&store.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["nb.ipynb"], "the lock leaves nothing behind");
    }

    /// The lock holds across processes: while another process (flock(1)) holds it, a change
    /// waits and then gives up with `Busy`, changing nothing.
    #[test]
    fn another_process_holding_the_lock_makes_a_change_wait_and_give_up() {
        let (_dir, store) = store();
        store.create("sub/nb.ipynb", &[], false, None).unwrap();
        let before = fs::read(store.root.join("sub/nb.ipynb")).unwrap();
        let ready = tempfile::tempdir().unwrap();
        let flag = ready.path().join("held");
        let mut holder = std::process::Command::new("flock")
            .process_group(0)
            .arg("-x")
            .arg(store.root.join("sub"))
            .arg("-c")
            .arg(format!("touch {}; sleep 60", flag.display()))
            .spawn()
            .unwrap();
        while !flag.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let result = store.change("sub/nb.ipynb", None, false, Shrinks::No, |doc, p| {
            edit::insert(doc, CellType::Code, "x", None, p)
        });
        // flock(1) runs `sh -c`; the lock dies with the whole group (sh and sleep).
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(holder.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(matches!(result, Err(Error::Busy { .. })), "{result:?}");
        assert_eq!(fs::read(store.root.join("sub/nb.ipynb")).unwrap(), before);
    }

    #[test]
    fn change_with_create_missing_starts_a_4_5_notebook() {
        let (_dir, store) = store();
        let (pos, _) = store
            .change("new/s.ipynb", None, true, Shrinks::No, |doc, p| {
                edit::append_run(doc, "1+1", vec![], Some(1), p)
            })
            .unwrap();
        assert_eq!(pos.index, 0);
        assert!(pos.id.is_some());
        assert!(matches!(
            store.change("missing.ipynb", None, false, Shrinks::Maybe, |_, _| Ok(())),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn created_notebook_passes_nbformat_validator() {
        let python = Path::new("/work/main/.venv/bin/python");
        if !python.exists() {
            println!(
                "skipping: {} not found, nbformat validation not run",
                python.display()
            );
            return;
        }
        let (_dir, store) = store();
        store.create("valid.ipynb", &cells(), false, None).unwrap();
        let status = std::process::Command::new(python)
            .args([
                "-c",
                "import nbformat,sys; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))",
            ])
            .arg(store.root.join("valid.ipynb"))
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// Property tests for path confinement: whatever path a caller sends, what `resolve_any` (the
/// notebook and file tools' one door) returns stays under the principal's directory, also
/// through symlinks planted inside it that point out of it.
#[cfg(test)]
mod confinement_props {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::symlink;

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just("".to_string()),
            Just("sub".to_string()),
            Just("out".to_string()),
            Just("loop".to_string()),
            Just("up".to_string()),
            Just("dangling".to_string()),
            Just("n.ipynb".to_string()),
            Just(".hidden".to_string()),
            Just("/".to_string()),
            Just("//".to_string()),
            Just("\0".to_string()),
            Just("~".to_string()),
            Just("%2e%2e".to_string()),
            Just("..\\..".to_string()),
            "[a-z]{1,4}",
            any::<char>().prop_map(String::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn no_generated_path_escapes_the_root(
            parts in proptest::collection::vec(piece(), 1..7),
            lead in prop_oneof![Just(""), Just("/"), Just("./"), Just("../")],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = NotebookStore::new(dir.path().join("root")).unwrap();
            let root = store.root().to_path_buf();
            fs::create_dir(root.join("sub")).unwrap();
            symlink(dir.path(), root.join("out")).unwrap();
            symlink("..", root.join("sub").join("up")).unwrap();
            symlink("../..", root.join("up")).unwrap();
            symlink("sub", root.join("loop")).unwrap();
            symlink("/nonexistent/x", root.join("dangling")).unwrap();
            let rel = format!("{lead}{}", parts.join("/"));
            if let Ok(path) = store.resolve_any(&rel) {
                prop_assert!(path.starts_with(&root), "{rel:?} -> {}", path.display());
                prop_assert!(
                    !path.components().any(|c| matches!(c, std::path::Component::ParentDir)),
                    "{rel:?} -> {}", path.display()
                );
                // The part that exists, resolved through every link, is inside too.
                let mut existing = path.clone();
                while !existing.exists() {
                    existing = existing.parent().unwrap().to_path_buf();
                }
                let canonical = fs::canonicalize(&existing).unwrap();
                prop_assert!(canonical.starts_with(&root), "{rel:?} -> {}", canonical.display());
            }
        }
    }
}
