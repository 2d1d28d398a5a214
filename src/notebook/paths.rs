//! Path confinement, syntactic half: a caller's relative path is checked before it touches the
//! file system (no `..`, no absolute path, no NUL, no hidden component, bounded length). The
//! file-system half (symlinks must stay inside the root) is `NotebookStore::confine`.

use std::ffi::OsStr;
use std::path::{Component, Path};

use super::{Error, MAX_PATH_BYTES};

/// Syntactic checks on a relative path; returns its normal components.
pub(crate) fn check_relative(rel: &str) -> Result<Vec<&OsStr>, Error> {
    if rel.is_empty() {
        return Err(Error::EmptyPath);
    }
    if rel.len() > MAX_PATH_BYTES {
        return Err(Error::PathTooLong {
            max: MAX_PATH_BYTES,
        });
    }
    if rel.contains('\0') {
        return Err(Error::NulByte);
    }
    let mut parts = Vec::new();
    for component in Path::new(rel).components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(Error::AbsolutePath {
                    path: rel.to_owned(),
                });
            }
            Component::ParentDir => {
                return Err(Error::ParentComponent {
                    path: rel.to_owned(),
                });
            }
            Component::CurDir => {}
            Component::Normal(name) => {
                if name.to_string_lossy().starts_with('.') {
                    return Err(Error::HiddenComponent {
                        path: rel.to_owned(),
                    });
                }
                parts.push(name);
            }
        }
    }
    if parts.is_empty() {
        return Err(Error::EmptyPath);
    }
    Ok(parts)
}

/// The caller's path in canonical `/`-separated form (no `.` or empty components).
pub(crate) fn display_path(rel: &str) -> String {
    rel.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}
