//! The one place that builds a child process (a kernel or pip) and confines it.
//!
//! Everything a child gets is decided here: its environment (an allowlist, `env`), its
//! descriptors (all above stdio closed at exec), no capabilities, `no_new_privs`, death with the
//! server (PDEATHSIG), its own session (kernels) or process group (pip), resource limits
//! (`limits`), a cgroup where the server may create one (`cgroup`), an unprivileged uid when the
//! server is root (`user`), Landlock (`filesystem`) and a seccomp filter (`seccomp`).
//!
//! Order of work: everything that allocates, opens files or may fail for a reason worth a
//! message (compiling the BPF, opening Landlock's path descriptors, creating the cgroup,
//! resolving the uid) happens in the server in `Policy::prepare`, before `fork`. Between `fork`
//! and `exec` the child makes only async-signal-safe syscalls on that prepared data.
//!
//! Each layer that applied, and each that could not with the reason, goes into a report: the
//! server logs `Policy::probe` at start-up, and `verify` reads a running child's layers back from
//! `/proc` (never assuming what was asked for took effect).

mod cgroup;
mod env;
mod filesystem;
mod limits;
mod seccomp;
mod settings;
pub mod user;
pub mod verify;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use tokio::process::Command;

pub use limits::Limits;
pub use settings::{LimitOptions, SandboxOptions, SettingsError};
pub use user::Ids;

/// How children are confined; built once from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The interpreter (kernels and pip); its tree is readable.
    pub python: PathBuf,
    /// The layer's import path (`--kernel-pythonpath`); readable.
    pub pythonpath: Option<String>,
    /// Whether kernels may open network sockets (`--kernel-network allow`). pip always may.
    pub network: bool,
    /// The uid/gid children run as; `None` keeps the server's. Ignored for kernels and pip when
    /// `per_principal` is set.
    pub ids: Option<Ids>,
    /// `--kernel-uid-per-principal`: each principal's children run as its own uid from this
    /// range, the owner of its directory (`user::assign`).
    pub per_principal: Option<user::Range>,
    /// Why children keep the server's uid, when they do.
    pub ids_note: String,
    pub limits: Limits,
    /// cgroup `pids.max` per kernel, where a cgroup can be made.
    pub cgroup_pids_max: u64,
}

/// One protection and whether it applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Layer {
    pub name: String,
    pub applied: bool,
    /// What exactly applied, or why it could not.
    pub detail: String,
}

impl Layer {
    fn new(name: &str, applied: bool, detail: impl Into<String>) -> Layer {
        Layer {
            name: name.to_string(),
            applied,
            detail: detail.into(),
        }
    }
}

/// Which child is being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A kernel: own session, network per policy, cgroup.
    Kernel,
    /// pip, run by the server: own process group, network always (it downloads).
    Pip,
}

/// Why a child could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}\nhint: this Linux advertised the feature at start-up; check the server log")]
    Seccomp(#[from] seccomp::Error),
    #[error("{0}\nhint: check that the interpreter and working directories exist")]
    Landlock(#[from] filesystem::Error),
    #[error(
        "cannot give {path} its own uid: {source}\nhint: check that the principal's directory exists and the server is root"
    )]
    Assign {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot give {path} to uid {uid}: {source}\nhint: run the server as root, or pass --kernel-user server"
    )]
    Chown {
        path: PathBuf,
        uid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// Removes the kernel cgroups of servers that are gone (killed before they could), logging each.
pub fn remove_abandoned_cgroups() {
    for dir in cgroup::remove_abandoned() {
        tracing::info!(path = %dir.display(), "removed the cgroup of a kernel whose server is gone");
    }
}

impl Policy {
    /// What this Linux and this server's privileges allow, for the start-up log and status.
    pub fn probe(&self) -> Vec<Layer> {
        let mut out = vec![
            Layer::new(
                "environment allowlist",
                true,
                "env_clear, then an allowlist",
            ),
            Layer::new(
                "inherited descriptors",
                true,
                "closed at exec (close_range)",
            ),
            Layer::new("no_new_privs", true, "set before exec"),
        ];
        out.extend(self.uid_layers());
        out.push(Layer::new(
            "capabilities",
            true,
            "bounding and ambient sets emptied before exec",
        ));
        out.push(self.seccomp_layer());
        out.push(landlock_layer());
        let own_uid = self.ids.is_some() || self.per_principal.is_some();
        for (name, applied, detail) in limits::describe(&self.limits, own_uid) {
            out.push(Layer::new(&name, applied, detail));
        }
        // A real (empty) cgroup, made and removed: what applies is what this host allowed.
        let probe = cgroup::Cgroup::create(
            &format!("probe-{}", std::process::id()),
            self.cgroup_pids_max,
            self.limits.address_space_bytes,
        );
        out.extend(probe.layers);
        out
    }

    /// The probe's `unprivileged uid` and `uid per principal` layers.
    fn uid_layers(&self) -> [Layer; 2] {
        let unprivileged = match (self.per_principal, self.ids) {
            (Some(range), _) => Layer::new(
                "unprivileged uid",
                true,
                format!("each principal's children run as its own uid (and gid) from {range}"),
            ),
            (None, Some(ids)) => Layer::new(
                "unprivileged uid",
                true,
                format!("children run as uid {} gid {}", ids.uid, ids.gid),
            ),
            (None, None) => Layer::new("unprivileged uid", false, self.ids_note.clone()),
        };
        let per_principal = match (self.per_principal, self.ids) {
            (Some(range), _) => Layer::new(
                "uid per principal",
                true,
                format!(
                    "--kernel-uid-per-principal: the OS keeps principals' kernels, files and signals apart (uids {range})"
                ),
            ),
            (None, Some(_)) => Layer::new(
                "uid per principal",
                false,
                "every principal's kernels share one uid (pass --kernel-uid-per-principal to separate them by uid); the file-system rules still keep their directories apart",
            ),
            (None, None) => Layer::new(
                "uid per principal",
                false,
                "kernels keep the server's uid (see unprivileged uid); the file-system rules still keep principals' directories apart",
            ),
        };
        [unprivileged, per_principal]
    }

    /// The probe's `seccomp` layer.
    fn seccomp_layer(&self) -> Layer {
        if seccomp_supported() {
            let net = if self.network {
                "kernels may open network sockets (--kernel-network allow)"
            } else {
                "AF_INET/AF_INET6/AF_PACKET/AF_NETLINK sockets refused for kernels"
            };
            Layer::new(
                "seccomp",
                true,
                format!(
                    "ptrace, mount, namespaces, keyctl, bpf, io_uring... refused; no signals to the server; {net}"
                ),
            )
        } else {
            Layer::new(
                "seccomp",
                false,
                "seccomp filters are not supported by this Linux",
            )
        }
    }

    /// The ids children of the principal whose directory is `home` run as (assigned on first
    /// use with `--kernel-uid-per-principal`); `None` keeps the server's.
    pub(crate) fn ids_for(&self, home: &Path) -> Result<Option<Ids>, Error> {
        match self.per_principal {
            Some(range) => user::assign(range, home)
                .map(Some)
                .map_err(|source| Error::Assign {
                    path: home.to_path_buf(),
                    source,
                }),
            None => Ok(self.ids),
        }
    }

    /// Hands a principal's directory, just created by the server, to the uid its children run
    /// as. Never called for the operator's working directory itself.
    pub fn own_home(&self, home: &Path) -> Result<(), Error> {
        if self.per_principal.is_some() {
            self.ids_for(home).map(|_| ())
        } else if let Some(ids) = self.ids {
            user::give(home, ids).map_err(|source| Error::Chown {
                path: home.to_path_buf(),
                uid: ids.uid,
                source,
            })
        } else {
            Ok(())
        }
    }

    /// Prepares a child of the principal whose directory is `home`: `read` and `write` extend
    /// the Landlock ruleset, `own` are directories to hand to the child's uid. `id` names the
    /// cgroup.
    pub(crate) fn prepare(
        &self,
        role: Role,
        id: &str,
        home: &Path,
        read: &[PathBuf],
        write: &[PathBuf],
        own: &[&Path],
    ) -> Result<Prepared, Error> {
        let mut report = Vec::new();
        let ids = self.ids_for(home)?;
        if let Some(ids) = ids {
            for path in own {
                user::give(path, ids).map_err(|source| Error::Chown {
                    path: path.to_path_buf(),
                    uid: ids.uid,
                    source,
                })?;
            }
        }
        let seccomp = if seccomp_supported() {
            let network = self.network || role == Role::Pip;
            seccomp::compile(&seccomp::Protected::server(), network)?
        } else {
            report.push(Layer::new("seccomp", false, "not supported by this Linux"));
            Vec::new()
        };
        let mut readable = filesystem::interpreter_paths(&self.python);
        if let Some(pp) = &self.pythonpath {
            readable.extend(std::env::split_paths(pp));
        }
        readable.extend(read.iter().cloned());
        let landlock = filesystem::build(&readable, write)?;
        report.push(match &landlock {
            Some(_) => Layer::new(
                "landlock",
                true,
                format!(
                    "read-write only: {}",
                    write
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            None => Layer::new("landlock", false, "not supported by this Linux"),
        });
        let cgroup = if role == Role::Kernel {
            let created =
                cgroup::Cgroup::create(id, self.cgroup_pids_max, self.limits.address_space_bytes);
            report.extend(created.layers.into_iter().filter(|l| !l.applied));
            created.group
        } else {
            None
        };
        Ok(Prepared {
            seccomp,
            landlock,
            rlimits: limits::pairs(&self.limits, ids.is_some()),
            ids,
            setsid: role == Role::Kernel,
            cgroup,
            report,
        })
    }

    /// A kernel's environment.
    pub(crate) fn kernel_env(&self, runtime: &Path, tmp: &Path) -> Vec<(String, String)> {
        env::for_kernel(&self.python, runtime, tmp)
    }

    /// pip's environment.
    pub(crate) fn pip_env(&self, tmp: &Path) -> Vec<(String, String)> {
        env::for_pip(&self.python, tmp, self.pythonpath.as_deref())
    }
}

/// Makes the server itself non-dumpable, so a process of the same uid (a kernel, when kernels
/// keep the server's uid) cannot read `/proc/<server>/environ` or `mem` or ptrace it: whatever
/// secrets the server's environment holds stay out of user code's reach. Says what applied.
pub fn harden_server() -> Vec<String> {
    let mut applied = Vec::new();
    match nix::sys::prctl::set_dumpable(false) {
        Ok(()) => applied.push("server non-dumpable".to_string()),
        Err(e) => tracing::warn!(error = %e, "could not make the server process non-dumpable"),
    }
    applied
}

/// The probe's `landlock` layer: what this Linux's Landlock can confine.
fn landlock_layer() -> Layer {
    match filesystem::support() {
        filesystem::Support::Scoped => Layer::new(
            "landlock",
            true,
            "files confined; signals and abstract sockets scoped to the kernel (ABI 6+)",
        ),
        filesystem::Support::FilesOnly => Layer::new(
            "landlock",
            true,
            "files confined; signal scoping needs Landlock ABI 6 (this Linux is older)",
        ),
        filesystem::Support::None => Layer::new(
            "landlock",
            false,
            "Landlock is not supported or not enabled by this Linux",
        ),
    }
}

/// Whether this Linux has seccomp filters (the `Seccomp:` field of /proc/<pid>/status).
fn seccomp_supported() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false)
}

/// A child's confinement, ready to install. Built by `Policy::prepare` before fork.
pub(crate) struct Prepared {
    seccomp: Vec<seccompiler::BpfProgram>,
    landlock: Option<OwnedFd>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    ids: Option<Ids>,
    setsid: bool,
    cgroup: Option<cgroup::Cgroup>,
    /// Layers that could not apply to this child (on top of the start-up probe).
    pub report: Vec<Layer>,
}

/// What stays with the server for the child's lifetime: its cgroup, killed and removed with it.
#[derive(Debug, Default)]
pub struct Confinement {
    cgroup: Option<cgroup::Cgroup>,
}

impl Confinement {
    /// Kills whatever the child left behind: every process of its cgroup, or else every
    /// descendant of `pid` still found in /proc.
    pub fn sweep(&mut self, pid: Option<u32>) {
        match &mut self.cgroup {
            Some(group) => group.sweep(),
            None => {
                if let Some(pid) = pid {
                    verify::kill_descendants(pid);
                }
            }
        }
    }
}

impl Prepared {
    /// Installs the confinement on `cmd` (to run between fork and exec) and the common
    /// settings: no inherited stdin, kill on drop, own session or process group.
    pub(crate) fn apply(mut self, cmd: &mut Command) -> Confinement {
        let in_child = InChild {
            cgroup_fds: self
                .cgroup
                .as_ref()
                .map(cgroup::Cgroup::join_fds)
                .unwrap_or_default(),
            landlock_fd: self.landlock.as_ref().map(AsRawFd::as_raw_fd),
            // Moved into the closure, so it lives until the parent drops the Command.
            _landlock: self.landlock.take(),
            seccomp: std::mem::take(&mut self.seccomp),
            rlimits: std::mem::take(&mut self.rlimits),
            ids: self.ids,
            setsid: self.setsid,
        };
        if !in_child.setsid {
            cmd.process_group(0);
        }
        cmd.kill_on_drop(true);
        #[expect(
            unsafe_code,
            reason = "pre_exec is the only hook between fork and exec; the closure makes only async-signal-safe syscalls on data prepared before fork"
        )]
        // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
        // functions may be called. It calls `InChild::confine`, which allocates nothing and
        // takes no lock: every value it uses (descriptors, BPF programs, limits, ids) was built
        // before fork and is only read (see the SAFETY note there).
        unsafe {
            cmd.pre_exec(move || in_child.confine());
        }
        Confinement {
            cgroup: self.cgroup.take(),
        }
    }
}

/// What the child does between fork and exec, prepared before fork and only read after it.
struct InChild {
    /// `cgroup.procs` of each cgroup directory, open for writing.
    cgroup_fds: Vec<RawFd>,
    landlock_fd: Option<RawFd>,
    /// Keeps `landlock_fd` open for as long as the closure holding this lives.
    _landlock: Option<OwnedFd>,
    seccomp: Vec<seccompiler::BpfProgram>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    ids: Option<Ids>,
    setsid: bool,
}

impl InChild {
    /// Confines the forked child, in this order: descriptors, session, cgroups, limits,
    /// capabilities, no_new_privs, uid and gid, death signal, Landlock, seccomp. The code
    /// between fork and exec, in one piece.
    fn confine(&self) -> std::io::Result<()> {
        let check = |rc: libc::c_long| {
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        #[expect(
            unsafe_code,
            reason = "libc calls between fork and exec; each is a plain async-signal-safe syscall"
        )]
        // SAFETY: runs in the forked child before exec, where only async-signal-safe functions
        // may be called. It allocates nothing and takes no lock: every value it uses
        // (descriptors, BPF programs, limits, ids) was built before fork and is only read. Each
        // call is a plain syscall: close_range, setsid, write, setrlimit, prctl, setgroups,
        // setresgid, setresuid, landlock_restrict_self and seccomp (seccompiler::apply_filter
        // is prctl + seccomp on a borrowed slice, and builds its error from errno without
        // allocating). Stdio (0-2) is in place before pre_exec runs and is left alone; Rust's
        // exec-error pipe is only marked close-on-exec, not closed.
        unsafe {
            // Descriptors: everything above stdio is closed at exec.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if self.setsid {
                // Own session (and group): the kernel's signals to group 0 stay in it, and
                // a terminal's signals never reach it.
                check(libc::setsid() as libc::c_long)?;
            }
            // Cgroups: join each by writing `0` (the writer) to its cgroup.procs.
            for fd in &self.cgroup_fds {
                check(libc::write(*fd, b"0".as_ptr().cast(), 1) as libc::c_long)?;
            }
            // Resource limits.
            for (resource, value) in &self.rlimits {
                let lim = libc::rlimit {
                    rlim_cur: *value,
                    rlim_max: *value,
                };
                check(libc::setrlimit(*resource, &lim) as libc::c_long)?;
            }
            // Capabilities: bounding and ambient sets emptied; then no_new_privs.
            for cap in 0..64 {
                libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
            }
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long)?;
            if let Some(ids) = self.ids {
                // Raw syscalls: they change this (only) thread, with no libc bookkeeping.
                check(libc::syscall(
                    libc::SYS_setgroups,
                    0usize,
                    std::ptr::null::<libc::gid_t>(),
                ))?;
                check(libc::syscall(
                    libc::SYS_setresgid,
                    ids.gid,
                    ids.gid,
                    ids.gid,
                ))?;
                check(libc::syscall(
                    libc::SYS_setresuid,
                    ids.uid,
                    ids.uid,
                    ids.uid,
                ))?;
            }
            // After the uid change, which clears it. Tokio spawns from worker threads,
            // which live as long as the runtime.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            // Landlock, then seccomp.
            if let Some(fd) = self.landlock_fd {
                check(libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32))?;
            }
            for program in &self.seccomp {
                seccompiler::apply_filter(program).map_err(|_| std::io::Error::last_os_error())?;
            }
        }
        Ok(())
    }
}

impl Confinement {
    /// To call once the child runs: the parent's `cgroup.procs` descriptors are no longer needed.
    pub(crate) fn started(&mut self) {
        if let Some(group) = &mut self.cgroup {
            group.joined();
        }
    }
}

/// SIGKILLs a child's process group (pip's), then reaps the child itself.
pub(crate) async fn kill_group(child: &mut tokio::process::Child) {
    // The child is not yet reaped, so its pid (also its group id, `process_group(0)`) cannot have
    // been reused.
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // Covers the case where the group signal failed; also reaps the zombie.
    let _ = child.kill().await;
}
