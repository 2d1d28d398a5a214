//! The notebook file on disk: capped reads, atomic replacement (temp file, fsync, rename), a
//! per-file writer lock and the revision (content hash) that detects a stale edit.
//!
//! Every change is a read-modify-write under the lock, so two writers never lose each other's
//! change; the rename means a reader (or a crash) never sees half a file.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Error, MAX_READ_BYTES, io_err};

/// How long a change waits for another writer of the same notebook before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting change retries the lock.
const LOCK_POLL: Duration = Duration::from_millis(10);
/// Hex digits of the content hash kept as the revision (64 bits: collisions are not a concern
/// for telling two versions of one file apart).
const REVISION_HEX_LEN: usize = 16;

/// The revision of a notebook: a hash of its bytes, so any change (by this server, JupyterLab
/// or the kernel) gives a new one.
pub(crate) fn revision(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(REVISION_HEX_LEN);
    hex
}

/// An exclusive lock on the notebooks of one folder, held for a read-modify-write; released on
/// drop.
///
/// It is a `flock` on the notebook's folder, which leaves nothing on disk (the lock file it
/// replaces, `.NAME.ipynb.lock`, showed up in users' folders). Not on the notebook itself: it
/// is replaced by rename, so a lock on its inode would not cover the next version, and a
/// notebook being created has no inode yet. `flock` excludes other open file descriptions, so
/// it serializes threads of this server and other processes alike. Changes to two notebooks of
/// one folder wait for each other; each is one short read-modify-write.
pub(crate) struct WriteLock {
    _dir: File,
}

impl WriteLock {
    pub(crate) fn acquire(target: &Path, display: &str) -> Result<WriteLock, Error> {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(parent)
            .map_err(|e| io_err("lock", display, e))?;
        let started = Instant::now();
        loop {
            match dir.try_lock() {
                Ok(()) => return Ok(WriteLock { _dir: dir }),
                Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(LOCK_POLL);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Busy {
                        path: display.to_owned(),
                        secs: LOCK_WAIT.as_secs(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_err("lock", display, e)),
            }
        }
    }
}

/// Writes `bytes` to a temp file beside `target`, syncs it, then moves it into place.
pub(crate) fn write_atomic(
    target: &Path,
    bytes: &[u8],
    overwrite: bool,
    display: &str,
) -> Result<(), Error> {
    let tmp = temp_path(target);
    let written = write_temp(&tmp, bytes).map_err(|e| io_err("write", display, e));
    let published = written.and_then(|()| publish(&tmp, target, overwrite, display));
    // The temp file is gone after a rename; removing it again is a harmless no-op then.
    let _ = fs::remove_file(&tmp);
    if published.is_ok() {
        sync_parent(target);
    }
    published
}

fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Hidden, so `list` never shows a temp file left by a crash.
    target.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()))
}

fn write_temp(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Moves the temp file to `target`. Without `overwrite`, a hard link publishes it only if
/// `target` does not exist, closing the race between the existence check and the write.
fn publish(tmp: &Path, target: &Path, overwrite: bool, display: &str) -> Result<(), Error> {
    if overwrite {
        return fs::rename(tmp, target).map_err(|e| io_err("replace", display, e));
    }
    match fs::hard_link(tmp, target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists {
            path: display.to_owned(),
        }),
        // Some file systems lack hard links: fall back to check-then-rename.
        Err(_) if fs::symlink_metadata(target).is_err() => {
            fs::rename(tmp, target).map_err(|e| io_err("write", display, e))
        }
        Err(_) => Err(Error::AlreadyExists {
            path: display.to_owned(),
        }),
    }
}

/// Best effort: make the rename itself durable.
fn sync_parent(target: &Path) {
    if let Some(parent) = target.parent()
        && let Ok(dir) = File::open(parent)
    {
        let _ = dir.sync_all();
    }
}

/// Why a capped read failed, for the caller to say in its own error type.
#[derive(Debug)]
pub(crate) enum CappedReadError {
    NotFound,
    IsDirectory,
    /// A device, socket, fifo, or a final symlink (refused by `O_NOFOLLOW`).
    NotAFile,
    /// The file's size (or what was read before the cap stopped it).
    TooLarge(u64),
    Io(&'static str, io::Error),
}

/// Reads a regular file without following a final symlink, refusing files over `max` bytes.
/// Shared by notebooks and plain files, which word the failures differently.
pub(crate) fn read_regular_capped(target: &Path, max: u64) -> Result<Vec<u8>, CappedReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => CappedReadError::NotFound,
            _ => CappedReadError::Io("open", e),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| CappedReadError::Io("inspect", e))?;
    if meta.is_dir() {
        return Err(CappedReadError::IsDirectory);
    }
    if !meta.is_file() {
        return Err(CappedReadError::NotAFile);
    }
    if meta.len() > max {
        return Err(CappedReadError::TooLarge(meta.len()));
    }
    // Sized for the file up front: grown by doubling, the buffer would peak at up to three
    // times the file while it is copied over.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    // `take` bounds the read even if the file grows after the size check.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CappedReadError::Io("read", e))?;
    if bytes.len() as u64 > max {
        return Err(CappedReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Reads a notebook file (see [`read_regular_capped`]) of at most `max` bytes (at most
/// [`MAX_READ_BYTES`]: a bigger one is refused, saying it is over the read limit).
pub(crate) fn read_capped(target: &Path, display: &str, max: u64) -> Result<Vec<u8>, Error> {
    let max = max.min(MAX_READ_BYTES);
    read_regular_capped(target, max).map_err(|e| match e {
        CappedReadError::NotFound => Error::NotFound {
            path: display.to_owned(),
        },
        CappedReadError::IsDirectory | CappedReadError::NotAFile => Error::NotAFile {
            path: display.to_owned(),
        },
        CappedReadError::TooLarge(size) => Error::ReadTooLarge {
            path: display.to_owned(),
            size,
            max,
        },
        CappedReadError::Io(action, e) => io_err(action, display, e),
    })
}
