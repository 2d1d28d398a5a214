//! A cgroup per kernel, where the server may create one: a process limit and a memory cap that
//! bind even for root, and a membership that a `setsid` or double-forked child cannot leave, so
//! everything a kernel started dies with it.
//!
//! Two hierarchies, each used for what it gives on the running host, each piece reported:
//! - cgroup v1: the `pids` and `memory` hierarchies, each kernel's directory nested under the
//!   server's own cgroup there (`pids.max`, `memory.limit_in_bytes`). Killed by a sweep that
//!   SIGKILLs the members until none is left.
//! - cgroup v2: the unified hierarchy (pure v2 at /sys/fs/cgroup, or a hybrid host's `unified`
//!   mount, found in /proc/self/mountinfo), each kernel's directory a child of the server's own
//!   v2 cgroup (the `0::` line of /proc/self/cgroup). Killed with `cgroup.kill` (Linux 5.14+),
//!   which the kernel applies to every member at once, forks in flight included; without it,
//!   by the same sweep as v1. `pids.max` and `memory.max` (and `memory.swap.max` 0) are set when
//!   the `pids` and `memory` controllers are enabled in the server cgroup's
//!   `cgroup.subtree_control`.
//!
//! What this does NOT do: it never writes `cgroup.subtree_control` and never moves the server
//! (or any process but its kernels) between cgroups. Enabling a controller for the server's
//! children is refused by the no-internal-processes rule unless the server first moves itself
//! into a leaf of its own cgroup (which changes where the operator's accounting and limits see
//! it, and fails while other processes share that cgroup), and at the real root, where it is
//! allowed, it would change resource control for every cgroup on the host. So the v2 limits
//! apply only when the controllers are already enabled there: in practice a server in the root
//! cgroup of its hierarchy (exempt from the rule) whose operator enabled them (`pids`, a
//! threaded controller, may also be enabled beside processes). Otherwise the report says why
//! (read from the host), and v1's limits, where they exist, are the ones in force.
//!
//! The child joins by writing `0` ("the writer") to each `cgroup.procs` descriptor, opened here
//! before `fork`. A server killed outright (SIGKILL, OOM) removes nothing, so each directory's
//! name carries its server's pid (`jupyter-mcp-p<pid>-<kernel id>`) and a server starting
//! removes those of servers that are gone (`remove_abandoned`), in both hierarchies.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Layer;

const V1_ROOT: &str = "/sys/fs/cgroup";
/// Start of every kernel cgroup's directory name; the server's pid and `-` follow.
const NAME_PREFIX: &str = "jupyter-mcp-p";
/// The v1 controllers a kernel cgroup is made under.
const CONTROLLERS: [&str; 2] = ["pids", "memory"];
/// Rounds of SIGKILL (and of waiting for an empty cgroup), 10 ms apart.
const ROUNDS: usize = 50;
const ROUND_PAUSE: Duration = Duration::from_millis(10);

/// One kernel's cgroup directories; killed and removed by `Cgroup::sweep` (also on drop).
#[derive(Debug, Default)]
pub(crate) struct Cgroup {
    /// The v1 directories (pids, memory), all or none.
    v1: Vec<PathBuf>,
    v2: Option<V2>,
    /// `cgroup.procs` of each directory, open for writing; the child writes to them.
    procs: Vec<File>,
}

/// A kernel's v2 directory.
#[derive(Debug)]
struct V2 {
    dir: PathBuf,
    /// Whether `cgroup.kill` exists (and a write to it worked at creation).
    kill: bool,
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

/// The v2 path in a /proc/<pid>/cgroup text (its `0::` line).
fn v2_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim_end)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = field
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every cgroup2 mount in a /proc/self/mountinfo text: (root within the hierarchy, mount point).
fn cgroup2_mounts(mountinfo: &str) -> Vec<(String, PathBuf)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let mut fields = left.split_whitespace();
            let root = unescape(fields.nth(3)?);
            let point = unescape(fields.next()?);
            Some((root, PathBuf::from(point)))
        })
        .collect()
}

/// The directory of cgroup v2 path `path` (as /proc shows it) under one of `mounts`.
fn v2_dir_in(mounts: &[(String, PathBuf)], path: &str) -> Option<PathBuf> {
    mounts.iter().find_map(|(root, point)| {
        let rest = if root == "/" {
            path
        } else {
            let rest = path.strip_prefix(root.as_str())?;
            if !rest.is_empty() && !rest.starts_with('/') {
                return None;
            }
            rest
        };
        let rest = rest.trim_start_matches('/');
        Some(if rest.is_empty() {
            point.clone()
        } else {
            point.join(rest)
        })
    })
}

/// The server's own cgroup v2 directory (under which kernels' v2 cgroups are made), or why
/// there is none.
fn v2_parent() -> Result<PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mounts = cgroup2_mounts(&mountinfo);
    if mounts.is_empty() {
        return Err("no cgroup2 hierarchy is mounted".into());
    }
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let path = v2_path(&cgroup)
        .ok_or("the server has no cgroup v2 (no `0::` line in /proc/self/cgroup)")?;
    v2_dir_in(&mounts, path).ok_or_else(|| {
        format!("the server's cgroup v2 {path} is outside every mounted cgroup2 hierarchy")
    })
}

/// Whether `controller` is bound to a cgroup v1 hierarchy for this server.
fn bound_to_v1(controller: &str) -> bool {
    own_path(controller).is_some()
}

/// Words of a cgroup interface file (`cgroup.controllers`, `cgroup.subtree_control`).
fn words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// Why `controller` cannot limit the kernels' v2 cgroups under `parent`, read from the host;
/// `None` when it is enabled for them.
fn v2_controller_missing(parent: &Path, controller: &str) -> Option<String> {
    if words(&parent.join("cgroup.subtree_control"))
        .iter()
        .any(|c| c == controller)
    {
        return None;
    }
    let available = words(&parent.join("cgroup.controllers"));
    let listed = if available.is_empty() {
        "none".to_string()
    } else {
        available.join(" ")
    };
    Some(if available.iter().any(|c| c == controller) {
        format!(
            "controller {controller} is available in {}/cgroup.controllers but not enabled in its cgroup.subtree_control; the server does not enable it (for a domain controller such as memory, the no-internal-processes rule would first need the server to move out of its own cgroup, which it does not do)",
            parent.display()
        )
    } else {
        let v1 = if bound_to_v1(controller) {
            "; it is bound to cgroup v1 on this host"
        } else {
            ""
        };
        format!(
            "controller {controller} is not available in the v2 hierarchy at {} (its cgroup.controllers: {listed}){v1}",
            parent.display()
        )
    })
}

/// The server pid in a kernel cgroup's name; `None` for any other directory (including the
/// `jupyter-mcp-<id>` names of older versions, whose owner cannot be told).
fn server_pid(name: &str) -> Option<u32> {
    let (pid, _) = name.strip_prefix(NAME_PREFIX)?.split_once('-')?;
    pid.parse().ok()
}

/// Removes the kernel cgroups of servers that are gone, v1 and v2: kills what is still in them
/// (a `setsid` child of a kernel survives its server's SIGKILL there) and removes the
/// directories. Those of a live server (its pid exists: a reused pid only keeps a directory
/// longer) are left alone. Returns the directories removed.
pub(crate) fn remove_abandoned() -> Vec<PathBuf> {
    let me = std::process::id();
    let mut parents: Vec<(PathBuf, bool)> = CONTROLLERS
        .iter()
        .filter_map(|c| parent_dir(c))
        .map(|p| (p, false))
        .collect();
    if let Ok(p) = v2_parent() {
        parents.push((p, true));
    }
    let mut removed = Vec::new();
    for (parent, is_v2) in parents {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(server_pid) else {
                continue;
            };
            if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = entry.path();
            let mut group = Cgroup::default();
            if is_v2 {
                group.v2 = Some(V2 {
                    kill: dir.join("cgroup.kill").exists(),
                    dir: dir.clone(),
                });
            } else {
                group.v1.push(dir.clone());
            }
            group.sweep();
            if !dir.exists() {
                removed.push(dir);
            }
        }
    }
    removed
}

/// Opens `dir/cgroup.procs` for the child to write itself into.
fn open_procs(dir: &Path) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .map_err(|e| format!("cannot open {}/cgroup.procs: {e}", dir.display()))
}

/// The pids listed in `dir/cgroup.procs`.
fn members(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILLs the members of `dir` until none is left; each round reads them again, since one
/// may have forked meanwhile.
fn kill_members(dir: &Path) {
    for _round in 0..ROUNDS {
        let pids = members(dir);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(ROUND_PAUSE);
    }
}

/// Removes `dir`, waiting a little: a dying process may still be listed for a moment.
fn remove(dir: &Path) {
    for _ in 0..ROUNDS {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(ROUND_PAUSE);
    }
}

/// The `cgroup v2 kill` layer, from the test write to the new directory's `cgroup.kill`.
fn v2_kill_layer(dir: &Path, kill: &std::io::Result<()>) -> Layer {
    match kill {
        Ok(()) => Layer::new(
            "cgroup v2 kill",
            true,
            "cgroup.kill: a kernel's cgroup is killed at once when it exits, restarts or stops, setsid and double-forked children included",
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Layer::new(
            "cgroup v2 kill",
            false,
            "this Linux has no cgroup.kill (it came in 5.14): the cgroup's members are SIGKILLed until none is left",
        ),
        Err(e) => Layer::new(
            "cgroup v2 kill",
            false,
            format!(
                "cannot write {}/cgroup.kill: {e}; the cgroup's members are SIGKILLed until none is left",
                dir.display()
            ),
        ),
    }
}

/// Sets `pids.max` on the kernel's v2 directory `dir` where `parent` enables the controller.
fn set_v2_pids_max(parent: &Path, dir: &Path, pids_max: u64) -> Layer {
    match v2_controller_missing(parent, "pids") {
        Some(why) => Layer::new("cgroup v2 pids.max", false, why),
        None => match std::fs::write(dir.join("pids.max"), pids_max.to_string()) {
            Ok(()) => Layer::new("cgroup v2 pids.max", true, format!("pids.max {pids_max}")),
            Err(e) => Layer::new(
                "cgroup v2 pids.max",
                false,
                format!("cannot set pids.max: {e}"),
            ),
        },
    }
}

/// Sets `memory.max` (and `memory.swap.max` 0, where swap is accounted) on the kernel's v2
/// directory `dir` where `parent` enables the controller and a limit is configured.
fn set_v2_memory_max(parent: &Path, dir: &Path, memory_bytes: Option<u64>) -> Layer {
    let bytes = match (v2_controller_missing(parent, "memory"), memory_bytes) {
        (Some(why), _) => return Layer::new("cgroup v2 memory.max", false, why),
        (None, None) => {
            return Layer::new(
                "cgroup v2 memory.max",
                false,
                "no memory limit is configured (--kernel-memory-mb 0)",
            );
        }
        (None, Some(bytes)) => bytes,
    };
    if let Err(e) = std::fs::write(dir.join("memory.max"), bytes.to_string()) {
        return Layer::new(
            "cgroup v2 memory.max",
            false,
            format!("cannot set memory.max: {e}"),
        );
    }
    let swap = if dir.join("memory.swap.max").exists() {
        match std::fs::write(dir.join("memory.swap.max"), "0") {
            Ok(()) => ", memory.swap.max 0".to_string(),
            Err(e) => format!(" (memory.swap.max not set: {e})"),
        }
    } else {
        " (no memory.swap.max: swap is not accounted here)".to_string()
    };
    Layer::new(
        "cgroup v2 memory.max",
        true,
        format!("memory.max {bytes}{swap}"),
    )
}

/// What a kernel cgroup of this host gives: its pieces, for the start-up report.
pub(crate) struct Created {
    /// `None` when neither hierarchy holds the kernel.
    pub group: Option<Cgroup>,
    /// Every piece, applied or not, then a `cgroup` line saying which hierarchy gives what.
    pub layers: Vec<Layer>,
}

impl Cgroup {
    /// Creates `jupyter-mcp-p<server pid>-<id>` in the v1 pids and memory hierarchies and in the
    /// v2 hierarchy, as far as each goes, with a layer per piece.
    pub(crate) fn create(id: &str, pids_max: u64, memory_bytes: Option<u64>) -> Created {
        let name = format!("{NAME_PREFIX}{}-{id}", std::process::id());
        let mut group = Cgroup::default();
        let mut layers = Vec::new();
        let mem = memory_bytes
            .map(|b| format!(", memory.limit_in_bytes {b}"))
            .unwrap_or_default();
        layers.push(match group.create_v1(&name, pids_max, memory_bytes) {
            Ok(()) => Layer::new(
                "cgroup v1",
                true,
                format!("pids.max {pids_max}{mem} per kernel, in the pids and memory hierarchies under the server's own cgroups"),
            ),
            Err(why) => {
                group.procs.clear();
                group.sweep_v1();
                Layer::new("cgroup v1", false, why)
            }
        });
        match v2_parent() {
            Ok(parent) => layers.extend(group.create_v2(&parent, &name, pids_max, memory_bytes)),
            Err(why) => layers.push(Layer::new(
                "cgroup v2",
                false,
                format!("{why}; so no cgroup.kill, pids.max or memory.max from cgroup v2"),
            )),
        }
        layers.push(summary(&layers));
        let held = !group.v1.is_empty() || group.v2.is_some();
        Created {
            group: held.then_some(group),
            layers,
        }
    }

    fn create_v1(
        &mut self,
        name: &str,
        pids_max: u64,
        memory_bytes: Option<u64>,
    ) -> Result<(), String> {
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
            let dir = parent.join(name);
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            self.v1.push(dir.clone());
            if let Some(value) = value {
                std::fs::write(dir.join(file), value)
                    .map_err(|e| format!("cannot set {file}: {e}"))?;
            }
            self.procs.push(open_procs(&dir)?);
        }
        Ok(())
    }

    /// Makes the v2 directory under `parent`: membership, then the kill and each limit as far
    /// as this host allows, one layer each.
    fn create_v2(
        &mut self,
        parent: &Path,
        name: &str,
        pids_max: u64,
        memory_bytes: Option<u64>,
    ) -> Vec<Layer> {
        let dir = parent.join(name);
        let procs = std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))
            .and_then(|()| {
                open_procs(&dir).inspect_err(|_| {
                    let _ = std::fs::remove_dir(&dir);
                })
            });
        let procs = match procs {
            Ok(f) => f,
            Err(why) => {
                return vec![Layer::new(
                    "cgroup v2",
                    false,
                    format!("{why}; so no cgroup.kill, pids.max or memory.max from cgroup v2"),
                )];
            }
        };
        self.procs.push(procs);
        let mut out = vec![Layer::new(
            "cgroup v2",
            true,
            format!(
                "each kernel in its own cgroup v2, {}/{NAME_PREFIX}<server pid>-<kernel id>",
                parent.display()
            ),
        )];
        // Writing to an empty cgroup's cgroup.kill does nothing but prove it works.
        let kill = std::fs::write(dir.join("cgroup.kill"), "1");
        out.push(v2_kill_layer(&dir, &kill));
        self.v2 = Some(V2 {
            dir: dir.clone(),
            kill: kill.is_ok(),
        });
        out.push(set_v2_pids_max(parent, &dir, pids_max));
        out.push(set_v2_memory_max(parent, &dir, memory_bytes));
        out
    }

    /// Descriptors the child writes `0` to, joining the cgroups before exec.
    pub(crate) fn join_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// Closes the `cgroup.procs` descriptors once the child has joined.
    pub(crate) fn joined(&mut self) {
        self.procs.clear();
    }

    /// Kills every process of the cgroups, then removes the directories: v2 first, with
    /// `cgroup.kill` where it works (logged, with how many it killed), then whatever v1 still
    /// lists (nothing, when v2 held the same processes), by SIGKILL rounds.
    pub(crate) fn sweep(&mut self) {
        self.procs.clear();
        if let Some(v2) = self.v2.take() {
            let found = members(&v2.dir).len();
            if v2.kill && found > 0 && std::fs::write(v2.dir.join("cgroup.kill"), "1").is_ok() {
                tracing::info!(cgroup = %v2.dir.display(), processes = found, "killed a kernel's cgroup with cgroup.kill");
            }
            kill_members(&v2.dir);
            remove(&v2.dir);
        }
        self.sweep_v1();
    }

    fn sweep_v1(&mut self) {
        for dir in &self.v1 {
            kill_members(dir);
        }
        for dir in self.v1.drain(..) {
            remove(&dir);
        }
    }
}

/// The `cgroup` line: which hierarchy gives the process limit, the memory limit and the kill.
fn summary(layers: &[Layer]) -> Layer {
    let on = |name: &str| layers.iter().any(|l| l.name == name && l.applied);
    let (v1, v2) = (on("cgroup v1"), on("cgroup v2"));
    if !v1 && !v2 {
        let why: Vec<String> = layers
            .iter()
            .filter(|l| l.name == "cgroup v1" || l.name == "cgroup v2")
            .map(|l| format!("{}: {}", l.name, l.detail))
            .collect();
        return Layer::new(
            "cgroup",
            false,
            format!(
                "no cgroup per kernel ({}); a kernel's process tree is swept instead (a process that left it, e.g. by double-forking after its parent died, survives)",
                why.join("; ")
            ),
        );
    }
    let from = |piece: &str, v1_what: &str| match (on(&format!("cgroup v2 {piece}")), v1) {
        (true, true) => format!("cgroup v2 {piece} and cgroup v1 {v1_what}"),
        (true, false) => format!("cgroup v2 {piece}"),
        (false, true) => format!("cgroup v1 {v1_what}"),
        (false, false) => "none".to_string(),
    };
    let kill = if on("cgroup v2 kill") {
        "cgroup v2 cgroup.kill".to_string()
    } else if v2 {
        "SIGKILL rounds over the cgroup v2 members".to_string()
    } else {
        "SIGKILL rounds over the cgroup v1 members".to_string()
    };
    Layer::new(
        "cgroup",
        true,
        format!(
            "a cgroup per kernel: process limit from {}; memory limit from {}; kill by {kill}",
            from("pids.max", "pids.max"),
            from("memory.max", "memory.limit_in_bytes"),
        ),
    )
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.v1.is_empty() || self.v2.is_some() {
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

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn a_hybrid_hosts_unified_mount_is_found() {
        let mounts = cgroup2_mounts(HYBRID);
        assert_eq!(
            mounts,
            vec![("/".to_string(), PathBuf::from("/sys/fs/cgroup/unified"))]
        );
        assert_eq!(
            v2_dir_in(&mounts, "/"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn a_pure_v2_hosts_mount_maps_the_servers_path() {
        let info =
            "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        let mounts = cgroup2_mounts(info);
        assert_eq!(
            v2_dir_in(&mounts, "/system.slice/jmcp.service"),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/jmcp.service"))
        );
    }

    #[test]
    fn a_mount_of_a_subtree_maps_only_paths_inside_it() {
        let info = "50 23 0:26 /user.slice /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n";
        let mounts = cgroup2_mounts(info);
        assert_eq!(mounts[0].1, PathBuf::from("/mnt/cg two"));
        assert_eq!(
            v2_dir_in(&mounts, "/user.slice/u1"),
            Some(PathBuf::from("/mnt/cg two/u1"))
        );
        assert_eq!(v2_dir_in(&mounts, "/user.slice2/u1"), None);
        assert_eq!(v2_dir_in(&mounts, "/system.slice"), None);
    }

    #[test]
    fn the_v2_line_of_proc_cgroup_is_the_zero_one() {
        assert_eq!(v2_path("4:memory:/a\n0::/b/c\n"), Some("/b/c"));
        assert_eq!(v2_path("4:memory:/a\n1:name=systemd:/\n"), None);
    }

    #[test]
    fn the_summary_says_which_hierarchy_gives_what() {
        let l = |n: &str, a: bool| Layer::new(n, a, "x");
        // This host: v1 gives the limits, v2 the kill.
        let s = summary(&[
            l("cgroup v1", true),
            l("cgroup v2", true),
            l("cgroup v2 kill", true),
            l("cgroup v2 pids.max", false),
            l("cgroup v2 memory.max", false),
        ]);
        assert!(s.applied);
        assert_eq!(
            s.detail,
            "a cgroup per kernel: process limit from cgroup v1 pids.max; memory limit from cgroup v1 memory.limit_in_bytes; kill by cgroup v2 cgroup.kill"
        );
        let s = summary(&[l("cgroup v1", false), l("cgroup v2", false)]);
        assert!(!s.applied);
        assert!(
            s.detail
                .starts_with("no cgroup per kernel (cgroup v1: x; cgroup v2: x)")
        );
    }
}
