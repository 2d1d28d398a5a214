//! Building the confinement `Policy` from the operator's raw `--kernel-*` options: the resource
//! limits in setrlimit's units, and the uid children run as (checked against the interpreter).
//!
//! `config` hands the options over in two steps, `Limits::from_options` and then
//! `Policy::from_options`, and wraps `SettingsError`; how a child is confined stays here.

use std::path::PathBuf;

use super::{Limits, Policy, user};

/// RLIMIT_AS is this many times --kernel-memory-mb: address space runs well above resident
/// memory in a threaded Python (thread stacks, reserved arenas, mapped libraries).
const ADDRESS_SPACE_PER_MEMORY: u64 = 2;
const MIB: u64 = 1024 * 1024;

/// The raw resource options, as given; 0 means unlimited where the flag says so.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitOptions {
    /// `--kernel-memory-mb`.
    pub memory_mb: u64,
    /// `--kernel-cpu-secs`.
    pub cpu_secs: u64,
    /// `--kernel-file-size-mb`.
    pub file_size_mb: u64,
    /// `--kernel-open-files`.
    pub open_files: u64,
    /// `--kernel-processes`.
    pub processes: u64,
}

/// The raw options of who children run as and what they may reach.
#[derive(Debug, Clone)]
pub struct SandboxOptions<'a> {
    /// The interpreter, already resolved to an absolute path.
    pub python: PathBuf,
    pub pythonpath: Option<String>,
    /// `--kernel-network allow`.
    pub network: bool,
    /// `--kernel-user`.
    pub user: Option<&'a str>,
    /// `--kernel-uid-per-principal`.
    pub uid_per_principal: bool,
    /// `--kernel-uid-range`.
    pub uid_range: &'a str,
}

/// A `--kernel-*` option that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    User(#[from] user::Error),
    #[error("--kernel-open-files must be at least 64, got {0}")]
    OpenFiles(u64),
    #[error("--kernel-processes must be at least 32, got {0}")]
    Processes(u64),
}

impl Limits {
    /// The limits of a kernel: enough descriptors and processes for ipykernel to start, and 0
    /// lifting the memory, CPU and file-size limits.
    pub fn from_options(options: &LimitOptions) -> Result<Limits, SettingsError> {
        if options.open_files < 64 {
            return Err(SettingsError::OpenFiles(options.open_files));
        }
        if options.processes < 32 {
            return Err(SettingsError::Processes(options.processes));
        }
        let nonzero = |v: u64| (v > 0).then_some(v);
        Ok(Limits {
            address_space_bytes: nonzero(options.memory_mb)
                .map(|mb| mb * ADDRESS_SPACE_PER_MEMORY * MIB),
            cpu_secs: nonzero(options.cpu_secs),
            file_size_bytes: nonzero(options.file_size_mb).map(|mb| mb * MIB),
            open_files: Some(options.open_files),
            processes: Some(options.processes),
        })
    }
}

impl Policy {
    /// The policy: a uid per principal (checked that those uids can run the interpreter), or
    /// one uid for all children (resolved from `--kernel-user`, or the server's with the
    /// reason), with `limits` and a cgroup `pids.max` of `cgroup_pids_max`.
    pub fn from_options(
        options: SandboxOptions<'_>,
        limits: Limits,
        cgroup_pids_max: u64,
    ) -> Result<Policy, SettingsError> {
        let uid_range: user::Range = options.uid_range.parse()?;
        let per_principal = if options.uid_per_principal {
            user::check_per_principal(uid_range, &options.python)?;
            Some(uid_range)
        } else {
            None
        };
        let (ids, ids_note) = match per_principal {
            Some(_) => (None, String::new()),
            None => match user::resolve(options.user, &options.python)? {
                user::Choice::Drop(ids) => (Some(ids), String::new()),
                user::Choice::Keep(why) => (None, why),
            },
        };
        Ok(Policy {
            python: options.python,
            pythonpath: options.pythonpath,
            network: options.network,
            ids,
            per_principal,
            ids_note,
            limits,
            cgroup_pids_max,
        })
    }
}
