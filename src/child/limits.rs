//! Resource limits of a child (rlimits): what one kernel may take of the machine.
//!
//! Set between `fork` and `exec` with `setrlimit`, which is a plain syscall. RLIMIT_NPROC counts
//! every process of the child's *real uid*: it binds only when the child has a uid of its own
//! (as root it does not bind at all, and under the server's own uid it would count the user's
//! other processes), so it is set only then; elsewhere a cgroup's `pids.max` does that job.

/// The limits, in the units setrlimit takes. `None` leaves a limit as inherited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_AS, bytes of address space.
    pub address_space_bytes: Option<u64>,
    /// RLIMIT_CPU, seconds of CPU time (SIGXCPU, then SIGKILL a second later).
    pub cpu_secs: Option<u64>,
    /// RLIMIT_FSIZE, largest file the child may write, bytes.
    pub file_size_bytes: Option<u64>,
    /// RLIMIT_NOFILE, open descriptors.
    pub open_files: Option<u64>,
    /// RLIMIT_NPROC, processes and threads of the child's uid.
    pub processes: Option<u64>,
}

/// (resource, value) pairs ready for setrlimit; RLIMIT_CORE is always 0 (a core dump of a
/// kernel would write its memory, keys included, to disk).
pub(crate) fn pairs(limits: &Limits, own_uid: bool) -> Vec<(libc::__rlimit_resource_t, u64)> {
    let mut out = vec![(libc::RLIMIT_CORE, 0)];
    let mut push = |res, v: Option<u64>| {
        if let Some(v) = v {
            out.push((res, v));
        }
    };
    push(libc::RLIMIT_AS, limits.address_space_bytes);
    push(libc::RLIMIT_CPU, limits.cpu_secs);
    push(libc::RLIMIT_FSIZE, limits.file_size_bytes);
    push(libc::RLIMIT_NOFILE, limits.open_files);
    if own_uid {
        push(libc::RLIMIT_NPROC, limits.processes);
    }
    out
}

/// A line per limit, for the report.
pub(crate) fn describe(limits: &Limits, own_uid: bool) -> Vec<(String, bool, String)> {
    let mb = |b: u64| b / (1024 * 1024);
    let mut out = Vec::new();
    let mut line = |name: &str, v: Option<String>| match v {
        Some(v) => out.push((name.to_string(), true, v)),
        None => out.push((name.to_string(), false, "not configured".to_string())),
    };
    line(
        "RLIMIT_AS",
        limits.address_space_bytes.map(|b| format!("{} MiB", mb(b))),
    );
    line("RLIMIT_CPU", limits.cpu_secs.map(|s| format!("{s} s")));
    line(
        "RLIMIT_FSIZE",
        limits.file_size_bytes.map(|b| format!("{} MiB", mb(b))),
    );
    line("RLIMIT_NOFILE", limits.open_files.map(|n| n.to_string()));
    line("RLIMIT_CORE", Some("0".into()));
    if own_uid {
        line("RLIMIT_NPROC", limits.processes.map(|n| n.to_string()));
    } else {
        out.push((
            "RLIMIT_NPROC".into(),
            false,
            "the child shares the server's uid (RLIMIT_NPROC would count the user's other processes, and does not bind root); a cgroup pids.max applies where the server can create one".into(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nproc_only_with_an_own_uid_and_core_always_zero() {
        let l = Limits {
            processes: Some(100),
            ..Limits::default()
        };
        assert!(
            !pairs(&l, false)
                .iter()
                .any(|(r, _)| *r == libc::RLIMIT_NPROC)
        );
        assert!(pairs(&l, true).contains(&(libc::RLIMIT_NPROC, 100)));
        assert!(pairs(&l, false).contains(&(libc::RLIMIT_CORE, 0)));
    }
}
