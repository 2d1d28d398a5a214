//! A cgroup per kernel, where the server may create one: `pids.max` and a memory cap that bind
//! even for root, and a membership that a `setsid` or double-forked child cannot leave, so
//! everything a kernel started dies with it.
//!
//! Only cgroup v1's `pids` and `memory` hierarchies are handled (each nested under the server's
//! own cgroup for that controller). A v2-only host needs a delegated subtree, which this does
//! not set up; there, and wherever the directories are not writable (Lambda, an unprivileged
//! user), the report says "not applied" and the kill falls back to a process-tree sweep.
//! The child joins by writing `0` ("the writer") to each `cgroup.procs` descriptor, opened here
//! before `fork`.
//!
//! A server killed outright (SIGKILL, OOM) removes nothing, so each directory's name carries
//! its server's pid (`jupyter-mcp-p<pid>-<kernel id>`) and a server starting removes those of
//! servers that are gone (`remove_abandoned`), as it removes their runtime directories.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

const V1_ROOT: &str = "/sys/fs/cgroup";
/// Start of every kernel cgroup's directory name; the server's pid and `-` follow.
const NAME_PREFIX: &str = "jupyter-mcp-p";
/// The v1 controllers a kernel cgroup is made under.
const CONTROLLERS: [&str; 2] = ["pids", "memory"];

/// One kernel's cgroup directories; killed and removed by `Cgroup::sweep` (also on drop).
#[derive(Debug)]
pub(crate) struct Cgroup {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each directory, open for writing; the child writes to them.
    procs: Vec<File>,
}

/// The server's own cgroup path for a v1 controller, from /proc/self/cgroup.
fn own_path(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })
}

/// The directory under which this server makes its kernels' cgroups for `controller`.
fn parent_dir(controller: &str) -> Option<PathBuf> {
    let own = own_path(controller)?;
    Some(
        PathBuf::from(V1_ROOT)
            .join(controller)
            .join(own.trim_start_matches('/')),
    )
}

/// The server pid in a kernel cgroup's name; `None` for any other directory (including the
/// `jupyter-mcp-<id>` names of older versions, whose owner cannot be told).
fn server_pid(name: &str) -> Option<u32> {
    let (pid, _) = name.strip_prefix(NAME_PREFIX)?.split_once('-')?;
    pid.parse().ok()
}

/// Removes the kernel cgroups of servers that are gone: kills what is still in them (a `setsid`
/// child of a kernel survives its server's SIGKILL there) and removes the directories. Those of
/// a live server (its pid exists: a reused pid only keeps a directory longer) are left alone.
/// Returns the directories removed.
pub(crate) fn remove_abandoned() -> Vec<PathBuf> {
    let me = std::process::id();
    let mut removed = Vec::new();
    for controller in CONTROLLERS {
        let Some(parent) = parent_dir(controller) else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(server_pid) else {
                continue;
            };
            if pid == me || std::path::Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = entry.path();
            Cgroup {
                dirs: vec![dir.clone()],
                procs: Vec::new(),
            }
            .sweep();
            if !dir.exists() {
                removed.push(dir);
            }
        }
    }
    removed
}

impl Cgroup {
    /// Creates `jupyter-mcp-p<server pid>-<id>` under the pids and memory hierarchies. `Err`
    /// says why not.
    pub(crate) fn create(
        id: &str,
        pids_max: u64,
        memory_bytes: Option<u64>,
    ) -> Result<Cgroup, String> {
        let mut group = Cgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
        };
        let settings: [(&str, &str, Option<String>); 2] = [
            ("pids", "pids.max", Some(pids_max.to_string())),
            (
                "memory",
                "memory.limit_in_bytes",
                memory_bytes.map(|b| b.to_string()),
            ),
        ];
        for (controller, file, value) in settings {
            let Some(parent) = parent_dir(controller) else {
                return Err(format!("no cgroup v1 `{controller}` hierarchy"));
            };
            let dir = parent.join(format!("{NAME_PREFIX}{}-{id}", std::process::id()));
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            group.dirs.push(dir.clone());
            if let Some(value) = value {
                std::fs::write(dir.join(file), value)
                    .map_err(|e| format!("cannot set {file}: {e}"))?;
            }
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .map_err(|e| format!("cannot open cgroup.procs: {e}"))?;
            group.procs.push(procs);
        }
        Ok(group)
    }

    /// Descriptors the child writes `0` to, joining the cgroup before exec.
    pub(crate) fn join_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Closes the `cgroup.procs` descriptors once the child has joined.
    pub(crate) fn joined(&mut self) {
        self.procs.clear();
    }

    /// Kills every process in the cgroup until it is empty, then removes the directories.
    /// Each round reads the members again: one may have forked meanwhile.
    pub(crate) fn sweep(&mut self) {
        self.procs.clear();
        for _round in 0..50 {
            let members = self.members();
            if members.is_empty() {
                break;
            }
            for pid in members {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for dir in self.dirs.drain(..) {
            // A dying process may still be listed for a moment.
            for _ in 0..50 {
                if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn members(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.first() else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.dirs.is_empty() {
            self.sweep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_with_a_server_pid_are_ours_to_judge() {
        assert_eq!(server_pid("jupyter-mcp-p4242-0123abcd"), Some(4242));
        assert_eq!(server_pid("jupyter-mcp-p4242-probe-4242"), Some(4242));
        assert_eq!(
            server_pid("jupyter-mcp-0275d7deb7284ccea80592a32f6fe561"),
            None
        );
        assert_eq!(server_pid("jupyter-mcp-pxyz-1"), None);
        assert_eq!(server_pid("other"), None);
    }
}
