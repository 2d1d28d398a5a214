//! The seccomp filter of a child: a denylist of the syscalls that reach outside the sandbox.
//!
//! Compiled here, in the server, before `fork` (the `seccompiler` crate allocates); the child
//! only installs the finished program. Denied calls fail with `EPERM` (clone3 with `ENOSYS`, so
//! glibc falls back to `clone`, whose flags the filter can see) rather than killing the
//! process, so hostile code gets an error it can print and the kernel keeps serving.
//!
//! Signals: `kill`, `rt_sigqueueinfo` and `pidfd_open` aimed at the server's pid or any of its
//! threads (Linux delivers `kill(tid)` to the thread's process), at its process group, or at
//! `-1` are refused; `tgkill`/`rt_tgsigqueueinfo` aimed at the server's thread group are
//! refused; `tkill` (obsolete, glibc does not use it) and `pidfd_send_signal` (which also takes
//! a `/proc/<pid>` directory) are refused outright. Threads the server starts after the child
//! was spawned are not in its filter: Landlock's signal scoping (ABI 6) and a separate uid
//! close that gap where they apply.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// Syscalls no child needs and that reach the server, other processes or the host.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_process_madvise,
    libc::SYS_kcmp,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_tkill,
    libc::SYS_pidfd_send_signal,
];

/// Address families refused when the network is not allowed (IPC kernels need only AF_UNIX).
/// AF_NETLINK is refused except NETLINK_ROUTE (protocol 0): libzmq lists the interfaces with
/// getifaddrs() at start-up and aborts if that fails, and an unprivileged route socket can only
/// read the interface and route tables.
const DENIED_FAMILIES: &[i32] = &[libc::AF_INET, libc::AF_INET6, libc::AF_PACKET];

/// clone() flags that create namespaces (what `unshare` would do).
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter: {0}")]
pub struct Error(String);

/// Who the filter protects.
#[derive(Debug, Clone)]
pub(crate) struct Protected {
    /// The server's pid and the ids of its threads when the child is built.
    pub tids: Vec<u32>,
    /// The server's process group.
    pub pgid: u32,
}

impl Protected {
    /// The running server, read from /proc/self.
    pub(crate) fn server() -> Protected {
        let pid = std::process::id();
        let mut tids: Vec<u32> = std::fs::read_dir("/proc/self/task")
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                    .collect()
            })
            .unwrap_or_default();
        if !tids.contains(&pid) {
            tids.push(pid);
        }
        let pgid = nix::unistd::getpgrp().as_raw().unsigned_abs();
        Protected { tids, pgid }
    }
}

fn eq(arg: u8, value: u64) -> Result<SeccompRule, Error> {
    masked(arg, u64::from(u32::MAX), value)
}

/// `(arg & mask) == value` on the low 32 bits (pids and families are C ints).
fn masked(arg: u8, mask: u64, value: u64) -> Result<SeccompRule, Error> {
    let cond = SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(mask),
        value,
    )
    .map_err(|e| Error(e.to_string()))?;
    SeccompRule::new(vec![cond]).map_err(|e| Error(e.to_string()))
}

/// `socket(AF_NETLINK, _, protocol != NETLINK_ROUTE)`.
fn netlink_except_route() -> Result<SeccompRule, Error> {
    let cond = |arg, op, value| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
            .map_err(|e| Error(e.to_string()))
    };
    SeccompRule::new(vec![
        cond(0, SeccompCmpOp::Eq, int(i64::from(libc::AF_NETLINK)))?,
        cond(2, SeccompCmpOp::Ne, int(i64::from(libc::NETLINK_ROUTE)))?,
    ])
    .map_err(|e| Error(e.to_string()))
}

/// A C int as the 32-bit pattern the filter compares (so -1 is 0xffff_ffff).
fn int(v: i64) -> u64 {
    u64::from(v as i32 as u32)
}

/// Compiles the filter for this architecture.
pub(crate) fn compile(protected: &Protected, network: bool) -> Result<Vec<BpfProgram>, Error> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in DENIED {
        rules.insert(*nr, Vec::new());
    }
    let mut clone = Vec::new();
    for flag in NAMESPACE_FLAGS {
        clone.push(masked(0, *flag, *flag)?);
    }
    rules.insert(libc::SYS_clone, clone);

    let mut pid_targets = vec![int(-1), int(-i64::from(protected.pgid))];
    pid_targets.extend(protected.tids.iter().map(|t| u64::from(*t)));
    let by_pid = |arg: u8| -> Result<Vec<SeccompRule>, Error> {
        pid_targets.iter().map(|v| eq(arg, *v)).collect()
    };
    rules.insert(libc::SYS_kill, by_pid(0)?);
    rules.insert(libc::SYS_rt_sigqueueinfo, by_pid(0)?);
    rules.insert(libc::SYS_pidfd_open, by_pid(0)?);
    let server = u64::from(std::process::id());
    rules.insert(libc::SYS_tgkill, vec![eq(0, server)?]);
    rules.insert(libc::SYS_rt_tgsigqueueinfo, vec![eq(0, server)?]);
    if !network {
        let families = DENIED_FAMILIES
            .iter()
            .map(|f| eq(0, int(i64::from(*f))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut socket = families.clone();
        socket.push(netlink_except_route()?);
        rules.insert(libc::SYS_socket, socket);
        rules.insert(libc::SYS_socketpair, families);
    }
    let arch: seccompiler::TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| Error(e.to_string()))?;
    let program = |rules, errno: i32| -> Result<BpfProgram, Error> {
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno.unsigned_abs()),
            arch,
        )
        .map_err(|e| Error(e.to_string()))?;
        filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| Error(e.to_string()))
    };
    // clone3 hides its flags in memory a filter cannot read: ENOSYS makes glibc fall back to
    // clone, whose flags the first program checks. Filters stack; both are installed.
    Ok(vec![
        program(rules, libc::EPERM)?,
        program(
            BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
            libc::ENOSYS,
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_with_and_without_network() {
        let p = Protected {
            tids: vec![1234, 1235],
            pgid: 1234,
        };
        let closed = compile(&p, false).unwrap();
        let open = compile(&p, true).unwrap();
        assert_eq!(closed.len(), 2);
        assert!(closed[0].len() > open[0].len());
    }

    #[test]
    fn negative_pids_compare_as_c_ints() {
        assert_eq!(int(-1), 0xffff_ffff);
        assert_eq!(int(-42), 0xffff_ffd6);
    }
}
