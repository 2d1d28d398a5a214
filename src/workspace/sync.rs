//! What the mirror compares: the files of a principal's directory as (size, mtime), which of
//! them belong in S3 at all, and the plan that turns "what is on disk" and "what S3 had when we
//! last looked" into uploads and deletions. Pure logic plus one directory walk, so it is tested
//! without S3.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Files looked at per walk at most: a workspace with more is mirrored in part (and told).
pub(crate) const MAX_FILES: usize = 20_000;

/// A file as the walk saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
}

/// What is known of a mirrored file: its stamp when it was last uploaded or restored, and the
/// ETag S3 gave it then (the `If-Match` of the next write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Synced {
    pub stamp: Stamp,
    pub etag: String,
}

/// Relative path (with `/`) to stamp.
pub(crate) type Manifest = BTreeMap<String, Stamp>;

/// Whether a name is kept out of the mirror: the package directory (rebuilt by
/// `restore_kernel` from the history), caches, and the notebook store's lock and temp files.
pub(crate) fn excluded(name: &str) -> bool {
    matches!(
        name,
        ".packages" | "__pycache__" | ".ipynb_checkpoints" | ".ipython" | ".cache"
    ) || name.starts_with(".~lock")
        || (name.starts_with('.') && (name.ends_with(".lock") || name.ends_with(".tmp")))
}

/// The regular files under `root` (symlinks are not followed), without the excluded names.
/// The second value is true when the walk stopped at `MAX_FILES`.
pub(crate) fn walk(root: &Path) -> (Manifest, bool) {
    let mut out = Manifest::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if excluded(&name) {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let rel_path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if kind.is_dir() {
                stack.push((entry.path(), rel_path));
            } else if kind.is_file() {
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if out.len() >= MAX_FILES {
                    return (out, true);
                }
                out.insert(rel_path, stamp(&meta));
            }
        }
    }
    (out, false)
}

pub(crate) fn stamp(meta: &std::fs::Metadata) -> Stamp {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    Stamp {
        size: meta.len(),
        mtime_ns,
    }
}

/// What one write-through does.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// New or changed files, with their size, smallest first (so a budget saves the most files).
    pub upload: Vec<(String, u64)>,
    /// Files that were mirrored and are gone from disk.
    pub delete: Vec<String>,
}

/// Compares the directory now with what was last mirrored.
pub(crate) fn plan(now: &Manifest, synced: &BTreeMap<String, Synced>) -> Plan {
    let mut upload: Vec<(String, u64)> = now
        .iter()
        .filter(|(path, stamp)| synced.get(*path).is_none_or(|s| s.stamp != **stamp))
        .map(|(path, stamp)| (path.clone(), stamp.size))
        .collect();
    upload.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let delete = synced
        .keys()
        .filter(|path| !now.contains_key(*path))
        .cloned()
        .collect();
    Plan { upload, delete }
}

/// The name our version of a file gets when another environment's version keeps the name:
/// `dir/name.conflict-<tag>.ext` (the extension stays last, so a notebook stays a notebook).
pub(crate) fn conflict_name(path: &str, tag: &str) -> String {
    let (dir, file) = match path.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), path),
    };
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}{stem}.conflict-{tag}.{ext}"),
        _ => format!("{dir}{file}.conflict-{tag}"),
    }
}

/// A relative path read back from an S3 key is used only if it is a plain relative path:
/// no empty, `.` or `..` segment, no excluded name, no absolute path.
pub(crate) fn safe_relative(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !excluded(seg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(size: u64, mtime_ns: i128) -> Stamp {
        Stamp { size, mtime_ns }
    }

    #[test]
    fn the_plan_uploads_new_and_changed_files_smallest_first_and_deletes_gone_ones() {
        let now: Manifest = [
            ("a.ipynb".into(), st(10, 1)),
            ("big.csv".into(), st(900, 1)),
            ("same.txt".into(), st(5, 7)),
            ("touched.txt".into(), st(5, 9)),
        ]
        .into();
        let synced: BTreeMap<String, Synced> = [
            ("same.txt", st(5, 7)),
            ("touched.txt", st(5, 8)),
            ("gone.txt", st(1, 1)),
        ]
        .into_iter()
        .map(|(p, s)| {
            (
                p.to_string(),
                Synced {
                    stamp: s,
                    etag: "e".into(),
                },
            )
        })
        .collect();
        let p = plan(&now, &synced);
        assert_eq!(
            p.upload,
            vec![
                ("touched.txt".into(), 5),
                ("a.ipynb".into(), 10),
                ("big.csv".into(), 900)
            ]
        );
        assert_eq!(p.delete, vec!["gone.txt".to_string()]);
    }

    #[test]
    fn conflict_names_keep_the_extension_last() {
        assert_eq!(conflict_name("a.ipynb", "x1"), "a.conflict-x1.ipynb");
        assert_eq!(
            conflict_name("d/e/data.csv", "x1"),
            "d/e/data.conflict-x1.csv"
        );
        assert_eq!(conflict_name("README", "x1"), "README.conflict-x1");
        assert_eq!(conflict_name(".env", "x1"), ".env.conflict-x1");
    }

    #[test]
    fn packages_caches_locks_and_temp_files_are_not_mirrored() {
        for name in [
            ".packages",
            "__pycache__",
            ".a.ipynb.lock",
            ".a.ipynb.0123.tmp",
            ".~lock.x#",
        ] {
            assert!(excluded(name), "{name}");
        }
        for name in ["a.ipynb", "data.lock.csv", "images", ".env"] {
            assert!(!excluded(name), "{name}");
        }
    }

    #[test]
    fn keys_that_would_leave_the_directory_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            ".packages/evil.py",
        ] {
            assert!(!safe_relative(bad), "{bad}");
        }
        assert!(safe_relative("a/b.ipynb"));
    }

    #[test]
    fn the_walk_skips_excluded_names_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".packages/numpy")).unwrap();
        std::fs::write(dir.path().join(".packages/numpy/x.py"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.txt"), "abc").unwrap();
        std::fs::write(dir.path().join(".n.ipynb.lock"), "").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let (m, cut) = walk(dir.path());
        assert!(!cut);
        assert_eq!(m.keys().collect::<Vec<_>>(), vec!["sub/a.txt"]);
        assert_eq!(m["sub/a.txt"].size, 3);
    }
}
