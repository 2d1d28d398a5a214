//! The runtime root: the one directory under the system temp dir that holds every kernel's
//! runtime directory (sockets, connection file) and temp directory for this server's life.
//!
//! It lives in the kernel module because only kernels use it (`launch` makes their directories
//! in it, `remove_runtime_leftovers` empties it); the front doors only hold it, so that its
//! drop removes it when the server ends.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The parent of all kernel runtime directories (short, under the system temp dir, because a
/// unix socket path must fit in 108 bytes). Removed when dropped.
///
/// A server killed outright (SIGKILL, OOM) cannot remove it, so each root holds a lock file that
/// its server keeps locked for its whole life; at start-up a server removes every root whose lock
/// it can take, i.e. whose server is gone. The kernel, not the lock, tells liveness: the lock is
/// released by the OS however the server ends.
pub struct RuntimeRoot {
    /// Where it is; the kernels' `LaunchConfig::runtime_root`.
    pub(crate) path: PathBuf,
    /// Held (exclusively locked) while this server lives.
    _lock: File,
}

/// Prefix of every runtime root's name under the temp dir.
const RUNTIME_ROOT_PREFIX: &str = "jmcp-";
/// The lock file in each runtime root.
const RUNTIME_LOCK_FILE: &str = "server.lock";

impl RuntimeRoot {
    pub(crate) fn create() -> std::io::Result<RuntimeRoot> {
        remove_abandoned_roots(&std::env::temp_dir());
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = std::env::temp_dir().join(format!("{RUNTIME_ROOT_PREFIX}{}", &id[..10]));
        // 0711: a kernel under its own uid may pass through to its own directory (0700, its
        // uid's) but not list the others.
        std::fs::DirBuilder::new().mode(0o711).create(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o711))?;
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path.join(RUNTIME_LOCK_FILE))?;
        lock.lock()?;
        Ok(RuntimeRoot { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes everything under the runtime root but its lock file: every kernel's runtime and
/// temp directory and whatever else is there. Only for when no kernel of this server runs
/// (`Pool::retire_all`); what cannot be removed is logged.
pub fn remove_runtime_leftovers(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name() == RUNTIME_LOCK_FILE {
            continue;
        }
        if let Err(e) = crate::principal::remove_entry(&entry.path()) {
            tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a kernel runtime leftover");
        }
    }
}

/// Removes the runtime roots under `tmp` whose server is gone (their lock can be taken).
/// Roots without a lock file (being created right now, or left by an older version) are left
/// alone: without the lock nothing says their server is dead.
fn remove_abandoned_roots(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_root = name.to_str().is_some_and(|n| {
            n.strip_prefix(RUNTIME_ROOT_PREFIX)
                .is_some_and(|id| id.len() == 10 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        // `file_type` does not follow symlinks: a planted link is never followed.
        if !is_root || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let Ok(lock) = File::open(path.join(RUNTIME_LOCK_FILE)) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed the runtime directory of a server that is gone")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove an abandoned runtime directory")
                }
            }
        }
    }
}

impl Drop for RuntimeRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
