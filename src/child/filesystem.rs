//! The Landlock ruleset of a child: what it may read and what it may write.
//!
//! Built in the server before `fork` (the `landlock` crate opens a descriptor per path and
//! allocates); the child only calls `landlock_restrict_self` on the finished ruleset's
//! descriptor. Read-only: system directories, the interpreter's prefix, the layer paths
//! (PYTHONPATH, `/opt` on Lambda). Read-write: only the directories the caller names (for a
//! kernel, its principal's directory, its runtime directory and its temp directory), plus the
//! harmless character devices. Everything else, including other principals' directories and
//! other kernels' runtime directories, is out of reach. With Landlock ABI 6 the ruleset also
//! scopes signals and abstract unix sockets: the child cannot signal a process outside its own
//! Landlock domain (the server, other kernels) nor connect to an abstract socket outside it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};

/// The ABI the rules are written against; older Linux gets what it supports (best effort) and
/// the report says so.
const TARGET_ABI: ABI = ABI::V6;

/// System paths readable (and executable) by every child.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc",
    "/opt",
    "/var/lang",
    "/proc",
    "/sys",
    "/dev",
];
/// Character devices a child may also write (and use terminal ioctls on): the harmless ones,
/// and the pseudo-terminals that IPython's `!cmd` shell escapes open (pexpect needs a pty).
const DEVICES_WRITE: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

/// What Landlock this Linux offers, found by asking for each level in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Files and signal/abstract-socket scoping (ABI 6+).
    Scoped,
    /// Files only.
    FilesOnly,
    /// Not supported, not enabled, or refused.
    None,
}

pub(crate) fn support() -> Support {
    let try_level = |scoped: bool| {
        let rules = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(ABI::V1));
        let rules = match (rules, scoped) {
            (Ok(r), true) => r.scope(Scope::Signal),
            (r, _) => r,
        };
        rules.and_then(|r| r.create()).is_ok()
    };
    if try_level(true) {
        Support::Scoped
    } else if try_level(false) {
        Support::FilesOnly
    } else {
        Support::None
    }
}

/// Why the ruleset could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the Landlock ruleset: {0}")]
pub struct Error(String);

/// The interpreter's own tree: the venv (path as given, a symlink is not resolved) and the
/// installation it points to (resolved), each two levels up from `bin/python`.
pub(crate) fn interpreter_paths(python: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let prefix = |p: &Path| p.parent().and_then(Path::parent).map(Path::to_path_buf);
    out.extend(prefix(python));
    if let Ok(real) = std::fs::canonicalize(python) {
        out.extend(prefix(&real));
    }
    if let Some(venv) = prefix(python)
        && let Ok(real) = std::fs::canonicalize(venv)
    {
        out.push(real);
    }
    out
}

/// Builds the ruleset; `None` when this Linux has no Landlock (nothing to apply).
pub(crate) fn build(read: &[PathBuf], write: &[PathBuf]) -> Result<Option<OwnedFd>, Error> {
    let err = |e: landlock::RulesetError| Error(e.to_string());
    let all = AccessFs::from_all(TARGET_ABI);
    let read_access = AccessFs::from_read(TARGET_ABI);
    let created = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(err)?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)
        .map_err(err)?
        .create()
        .map_err(err)?;
    let mut created = created;
    let readable = SYSTEM_READ
        .iter()
        .map(PathBuf::from)
        .chain(read.iter().cloned());
    for path in readable {
        created = add(created, &path, read_access)?;
    }
    for dev in DEVICES_WRITE {
        // File rules may carry only file rights.
        created = add(
            created,
            Path::new(dev),
            AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev,
        )?;
    }
    for path in write {
        created = add(created, path, all)?;
    }
    Ok(created.into())
}

/// Adds a rule for `path` when it exists (a missing system directory is not an error).
fn add(
    created: landlock::RulesetCreated,
    path: &Path,
    access: landlock::BitFlags<AccessFs>,
) -> Result<landlock::RulesetCreated, Error> {
    let access = if path.is_file() {
        access
            & (AccessFs::ReadFile
                | AccessFs::WriteFile
                | AccessFs::Execute
                | AccessFs::Truncate
                | AccessFs::IoctlDev)
    } else {
        access
    };
    match PathFd::new(path) {
        Ok(fd) => created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| Error(format!("{}: {e}", path.display()))),
        Err(_) => Ok(created),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_paths_include_the_venv_and_its_base() {
        let paths = interpreter_paths(Path::new("/opt/venv/bin/python"));
        assert_eq!(paths[0], PathBuf::from("/opt/venv"));
    }

    #[test]
    fn builds_a_ruleset_or_reports_none() {
        let dir = tempfile::tempdir().unwrap();
        let built = build(&[], &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(built.is_some(), support() != Support::None);
    }
}
