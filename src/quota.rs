//! The per-principal disk quota (`--disk-quota-mb`): how much a principal's directory (notebooks,
//! files, installed packages) may hold.
//!
//! Linux offers no per-directory quota without filesystem setup, so the server measures: before
//! each execution (over quota, it refuses and names what to delete), every few seconds while a
//! cell runs (over quota, the cell is interrupted), and after it (the result says so). A cell can
//! overshoot by what it writes between two checks, bounded by RLIMIT_FSIZE per file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::kernel::Kernel;

/// How often a running cell's directory is measured.
const WATCH_PERIOD: Duration = Duration::from_secs(2);
/// Entries visited at most per measurement, so a directory of millions of files cannot stall
/// the server; past it the usage counts as over any quota.
const MAX_ENTRIES: usize = 200_000;
const MIB: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(
        "the working directory holds {used_mib} MiB, over its {limit_mib} MiB quota (--disk-quota-mb); delete files to continue (largest: {largest})"
    )]
    Over {
        used_mib: u64,
        limit_mib: u64,
        largest: String,
    },
}

/// A directory and its limit.
#[derive(Debug, Clone)]
pub(crate) struct Quota {
    dir: PathBuf,
    limit_bytes: u64,
}

/// What a measurement found.
#[derive(Debug, Default)]
struct Usage {
    bytes: u64,
    entries: usize,
    largest: Option<(u64, PathBuf)>,
}

impl Quota {
    pub(crate) fn new(dir: PathBuf, limit_bytes: u64) -> Quota {
        Quota { dir, limit_bytes }
    }

    /// Refuses when the directory is over its quota.
    pub(crate) async fn check(&self) -> Result<(), Error> {
        let dir = self.dir.clone();
        let usage = tokio::task::spawn_blocking(move || measure(&dir))
            .await
            .unwrap_or_default();
        let over = usage.bytes > self.limit_bytes || usage.entries >= MAX_ENTRIES;
        if !over {
            return Ok(());
        }
        let largest = usage
            .largest
            .map(|(size, path)| {
                let rel = path
                    .strip_prefix(&self.dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                format!("{rel}, {} MiB", size / MIB)
            })
            .unwrap_or_else(|| "many small files".into());
        Err(Error::Over {
            used_mib: usage.bytes / MIB,
            limit_mib: self.limit_bytes / MIB,
            largest,
        })
    }

    /// Measures every few seconds while a cell runs and interrupts the kernel once the
    /// directory is over quota. Never completes: select it against the execution.
    pub(crate) async fn watch(&self, kernel: &Kernel) {
        let mut interrupted = false;
        loop {
            tokio::time::sleep(WATCH_PERIOD).await;
            if !interrupted && self.check().await.is_err() {
                tracing::warn!(
                    limit_mib = self.limit_bytes / MIB,
                    "disk quota exceeded while a cell ran; interrupting it"
                );
                kernel.interrupt().await;
                interrupted = true;
            }
        }
    }
}

/// Sums the sizes of the files under `dir` (symlinks not followed).
fn measure(dir: &Path) -> Usage {
    let mut usage = Usage::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            usage.entries += 1;
            if usage.entries >= MAX_ENTRIES {
                return usage;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                usage.bytes += meta.len();
                if usage
                    .largest
                    .as_ref()
                    .is_none_or(|(size, _)| meta.len() > *size)
                {
                    usage.largest = Some((meta.len(), entry.path()));
                }
            }
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn over_quota_names_the_quota_and_the_largest_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/big.bin"), vec![0u8; 3 * MIB as usize]).unwrap();
        std::fs::write(dir.path().join("small.txt"), b"x").unwrap();
        let q = Quota::new(dir.path().to_path_buf(), 2 * MIB);
        let err = q.check().await.unwrap_err().to_string();
        assert!(err.contains("2 MiB quota"), "{err}");
        assert!(err.contains("sub/big.bin, 3 MiB"), "{err}");
        assert!(
            Quota::new(dir.path().to_path_buf(), 4 * MIB)
                .check()
                .await
                .is_ok()
        );
    }
}
