//! Workspace files: listing, reading and writing any file in the principal's directory, so an
//! agent can get a CSV or a full-size figure out and put data in.
//!
//! Paths go through the very confinement the notebooks use (`NotebookStore::resolve_any`: no
//! `..`, no absolute path, no NUL, no hidden component, no symlink leaving the root); reads and
//! writes are capped, writes are atomic (temp file and rename). Blocking std::fs: call from
//! `spawn_blocking`.

use std::fs;
use std::io;
use std::path::Path;

use schemars::JsonSchema;
use serde::Serialize;

use crate::notebook::{self, NotebookStore, disk, display_path};

/// Largest file read_file opens (it returns a window of it), in bytes.
pub(crate) const MAX_READ_BYTES: u64 = 20 * 1024 * 1024;
/// Largest file write_file writes, in bytes (after base64 decoding). Below the HTTP request
/// cap (`http::MAX_REQUEST_BODY_BYTES`, 4 MiB) so that the refusal, not a 413, is what a
/// caller sees for text just over it.
pub(crate) const MAX_WRITE_BYTES: usize = 3 * 1024 * 1024;
/// Entries list_files returns at most.
pub(crate) const MAX_LIST_ENTRIES: usize = 5000;
/// The URI scheme of workspace files, for resource links and `resources/read`.
pub(crate) const URI_PREFIX: &str = "workspace:///";

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Path(#[from] notebook::Error),
    #[error("`{path}` was not found; call list_files to see what exists")]
    NotFound { path: String },
    #[error("`{path}` is a directory; give a file's path (list_files shows what is inside)")]
    IsDirectory { path: String },
    #[error("`{path}` is not a directory; give a directory's path or none for the top")]
    NotDirectory { path: String },
    #[error("`{path}` is not a regular file")]
    NotAFile { path: String },
    #[error("`{path}` is {size} bytes, over the {max}-byte limit; {hint}")]
    TooLarge {
        path: String,
        size: u64,
        max: u64,
        hint: &'static str,
    },
    #[error("`{path}` already exists; pass overwrite=true to replace it")]
    AlreadyExists { path: String },
    #[error("content is not valid base64 ({reason}); send standard base64 or encoding=\"text\"")]
    BadBase64 { reason: String },
    #[error("could not {action} `{path}`: {source}; check the file's permissions and free space")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

/// One entry of list_files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub(crate) struct FileEntry {
    /// Path relative to the working directory, `/`-separated.
    pub(crate) path: String,
    /// `file` or `dir`.
    pub(crate) kind: &'static str,
    /// Size in bytes (files only).
    pub(crate) size_bytes: Option<u64>,
    /// MIME type guessed from the extension (files only).
    pub(crate) mime_type: Option<String>,
}

/// A file as read_file found it.
#[derive(Debug)]
pub(crate) enum FileRead {
    /// UTF-8 text: the whole file's bytes (the tool picks the window).
    Text { text: String },
    /// PNG, JPEG, GIF or WebP.
    Image {
        mime_type: &'static str,
        bytes: Vec<u8>,
    },
    /// Anything else (the tool only describes it; resources/read sends it as a blob).
    Binary { bytes: Vec<u8> },
}

/// Files of one principal; confinement is the notebook store's.
pub(crate) struct Files {
    store: NotebookStore,
}

impl Files {
    pub(crate) fn new(store: NotebookStore) -> Self {
        Files { store }
    }

    /// Entries under `dir` (default: the top), sorted; hidden entries and symlinks are skipped.
    /// Returns the entries and whether the list was cut at [`MAX_LIST_ENTRIES`].
    pub(crate) fn list(
        &self,
        dir: Option<&str>,
        recursive: bool,
    ) -> Result<(Vec<FileEntry>, bool), Error> {
        let start = match dir.filter(|d| !d.trim_matches('/').is_empty() && *d != ".") {
            Some(d) => {
                let path = self.store.resolve_any(d)?;
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => path,
                    Ok(_) => {
                        return Err(Error::NotDirectory {
                            path: display_path(d),
                        });
                    }
                    Err(_) => {
                        return Err(Error::NotFound {
                            path: display_path(d),
                        });
                    }
                }
            }
            None => self.store.root().to_path_buf(),
        };
        let mut found = Vec::new();
        let mut stack = vec![start];
        let mut truncated = false;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let Ok(file_type) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                let rel = self.relative(&path);
                if file_type.is_dir() {
                    if recursive {
                        stack.push(path);
                    }
                    found.push(FileEntry {
                        path: rel,
                        kind: "dir",
                        size_bytes: None,
                        mime_type: None,
                    });
                } else if file_type.is_file() {
                    let size = entry.metadata().map(|m| m.len()).ok();
                    found.push(FileEntry {
                        mime_type: Some(mime_from_name(&rel).to_owned()),
                        path: rel,
                        kind: "file",
                        size_bytes: size,
                    });
                }
                if found.len() >= MAX_LIST_ENTRIES {
                    truncated = true;
                    stack.clear();
                    break;
                }
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((found, truncated))
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(self.store.root())
            .map(|r| {
                r.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    }

    /// Reads a file (up to [`MAX_READ_BYTES`]) and classifies it. Returns it with its size and
    /// its display path.
    pub(crate) fn read(&self, rel: &str) -> Result<(FileRead, u64, String), Error> {
        let target = self.store.resolve_any(rel)?;
        let display = display_path(rel);
        let bytes = read_capped(&target, &display)?;
        let size = bytes.len() as u64;
        let read = match image_mime(&bytes) {
            Some(mime_type) => FileRead::Image { mime_type, bytes },
            // A NUL byte is valid UTF-8 but no text file holds one.
            None if bytes.contains(&0) => FileRead::Binary { bytes },
            None => match String::from_utf8(bytes) {
                Ok(text) => FileRead::Text { text },
                Err(e) => FileRead::Binary {
                    bytes: e.into_bytes(),
                },
            },
        };
        Ok((read, size, display))
    }

    /// Writes `bytes` to `rel` atomically, creating parent directories. Returns the display path.
    ///
    /// It takes the notebooks' writer lock (`disk::WriteLock`), so a notebook change running
    /// at the same time (a read-modify-write by insert_cell, execute_cell, ...) either finishes
    /// before this write or reads what it wrote: neither is lost silently. A `.ipynb` must be
    /// a valid nbformat 4 notebook, or every notebook tool would refuse it afterwards.
    pub(crate) fn write(&self, rel: &str, bytes: &[u8], overwrite: bool) -> Result<String, Error> {
        let target = self.store.resolve_any(rel)?;
        let display = display_path(rel);
        if bytes.len() > MAX_WRITE_BYTES {
            return Err(Error::TooLarge {
                path: display,
                size: bytes.len() as u64,
                max: MAX_WRITE_BYTES as u64,
                hint: "write it in a kernel with execute_code, or split it",
            });
        }
        if display.ends_with(".ipynb") {
            notebook::Doc::parse(bytes, &display)?;
        }
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => return Err(Error::IsDirectory { path: display }),
            Ok(_) if !overwrite => return Err(Error::AlreadyExists { path: display }),
            _ => {}
        }
        self.store.make_parent(&target, &display)?;
        let _lock = disk::WriteLock::acquire(&target, &display)?;
        disk::write_atomic(&target, bytes, overwrite, &display).map_err(|e| match e {
            notebook::Error::AlreadyExists { path } => Error::AlreadyExists { path },
            other => Error::Path(other),
        })?;
        Ok(display)
    }
}

/// Reads a regular file without following a final symlink, refusing files over the cap.
fn read_capped(target: &Path, display: &str) -> Result<Vec<u8>, Error> {
    use disk::CappedReadError;
    disk::read_regular_capped(target, MAX_READ_BYTES).map_err(|e| match e {
        CappedReadError::NotFound => Error::NotFound {
            path: display.to_owned(),
        },
        CappedReadError::IsDirectory => Error::IsDirectory {
            path: display.to_owned(),
        },
        CappedReadError::NotAFile => Error::NotAFile {
            path: display.to_owned(),
        },
        CappedReadError::TooLarge(size) => Error::TooLarge {
            path: display.to_owned(),
            size,
            max: MAX_READ_BYTES,
            hint: "read it in a kernel with execute_code (head, pandas, ...)",
        },
        CappedReadError::Io(action, source) => Error::Io {
            action,
            path: display.to_owned(),
            source,
        },
    })
}

/// The image type of `bytes` from its signature (never from the name, which may lie).
pub(crate) fn image_mime(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A MIME type from a file name's extension, for listings and links (a short table of what a
/// data-science workspace holds; the rest is `application/octet-stream`).
pub(crate) fn mime_from_name(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "ipynb" => "application/x-ipynb+json",
        "json" => "application/json",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "py" => "text/x-python",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "parquet" => "application/vnd.apache.parquet",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "npy" | "npz" | "pkl" | "pickle" | "bin" => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

/// The resource URI of a workspace path (each segment percent-encoded).
pub(crate) fn uri_for(rel: &str) -> String {
    let encoded: Vec<String> = rel
        .split('/')
        .map(|seg| {
            percent_encoding::utf8_percent_encode(seg, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
                .replace("%2E", ".")
                .replace("%2D", "-")
                .replace("%5F", "_")
        })
        .collect();
    format!("{URI_PREFIX}{}", encoded.join("/"))
}

/// The workspace path of a resource URI, if it is one of ours.
pub(crate) fn path_from_uri(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix(URI_PREFIX)?;
    percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, Files) {
        let dir = tempfile::tempdir().unwrap();
        let store = NotebookStore::new(dir.path().join("root")).unwrap();
        (dir, Files::new(store))
    }

    #[test]
    fn write_read_list_round_trip() {
        let (_dir, f) = files();
        f.write("data/a.csv", b"x,y\n1,2\n", false).unwrap();
        f.write("img.png", b"\x89PNG\r\n\x1a\nrest", false).unwrap();
        f.write("blob.bin", &[0, 159, 146, 150], false).unwrap();
        assert!(matches!(
            f.write("data/a.csv", b"", false),
            Err(Error::AlreadyExists { .. })
        ));
        f.write("data/a.csv", b"new", true).unwrap();
        assert!(
            matches!(f.read("data/a.csv").unwrap().0, FileRead::Text { text } if text == "new")
        );
        assert!(matches!(
            f.read("img.png").unwrap().0,
            FileRead::Image {
                mime_type: "image/png",
                ..
            }
        ));
        assert!(matches!(
            f.read("blob.bin").unwrap().0,
            FileRead::Binary { .. }
        ));
        let (top, _) = f.list(None, false).unwrap();
        let paths: Vec<_> = top.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["blob.bin", "data", "img.png"]);
        let (all, truncated) = f.list(None, true).unwrap();
        assert!(!truncated);
        assert!(
            all.iter()
                .any(|e| e.path == "data/a.csv" && e.mime_type.as_deref() == Some("text/csv"))
        );
        let (sub, _) = f.list(Some("data"), false).unwrap();
        assert_eq!(sub.len(), 1);
    }

    #[test]
    fn refuses_escapes_and_oversize() {
        let (dir, f) = files();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, f.store.root().join("link")).unwrap();
        for bad in ["../x", "/etc/passwd", "link/x", ".hidden", "a\0b", ""] {
            assert!(
                matches!(f.write(bad, b"x", true), Err(Error::Path(_))),
                "{bad:?}"
            );
            assert!(matches!(f.read(bad), Err(Error::Path(_))), "{bad:?}");
        }
        assert!(matches!(
            f.write("big", &vec![0; MAX_WRITE_BYTES + 1], false),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(f.read("missing"), Err(Error::NotFound { .. })));
        assert!(fs::read_dir(&outside).unwrap().next().is_none());
    }

    #[test]
    fn uris_round_trip() {
        for p in ["a.csv", "dir/with space/é.png", "x%y.txt"] {
            let uri = uri_for(p);
            assert!(!uri.contains(' '));
            assert_eq!(path_from_uri(&uri).as_deref(), Some(p));
        }
        assert_eq!(uri_for("data/a_b-c.csv"), "workspace:///data/a_b-c.csv");
        assert_eq!(path_from_uri("file:///etc/passwd"), None);
    }

    #[test]
    fn images_are_known_by_signature() {
        assert_eq!(image_mime(b"GIF89a..."), Some("image/gif"));
        assert_eq!(image_mime(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_mime(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(image_mime(b"hello"), None);
    }
}
