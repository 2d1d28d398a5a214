//! Process-level hardening of the server and of the kernels it starts.
//!
//! The server is made non-dumpable, so code in a kernel (same OS user) cannot read
//! `/proc/<server>/environ` or `/proc/<server>/mem` or ptrace it: whatever secrets the server's
//! environment holds stay out of user code's reach even though the kernel is our child.
//! Non-dumpable only binds processes without `CAP_SYS_PTRACE`, so a kernel also starts with an
//! empty capability bounding set: when the server runs as root, the kernel's `execve` then
//! grants it no capabilities, and it cannot override the check (nor any other permission check).

/// Applies what can be applied and says what did.
pub fn harden_server_process() -> Vec<String> {
    let mut applied = Vec::new();
    match nix::sys::prctl::set_dumpable(false) {
        Ok(()) => applied.push("server non-dumpable".to_string()),
        Err(e) => tracing::warn!(error = %e, "could not make the server process non-dumpable"),
    }
    applied
}

/// Restrictions a child the server starts (a kernel, pip) takes on between `fork` and `exec`:
/// every descriptor above stdio closed at exec (the server may have inherited some, and Rust
/// only marks its own close-on-exec; Linux 5.11+), no capabilities after exec (bounding and ambient sets
/// emptied), `no_new_privs` (no setuid binary can raise them again), and death with the server
/// thread that spawned it, so a killed server leaves no child behind. Failures are ignored
/// here: without privileges there are no capabilities to drop, and the child still starts.
pub(crate) fn restrict_child(cmd: &mut tokio::process::Command) {
    #[expect(
        unsafe_code,
        reason = "pre_exec is the only hook between fork and exec; the closure only makes prctl calls"
    )]
    // SAFETY: the closure runs in the forked child before exec. It calls only close_range(2) and
    // prctl(2), which are async-signal-safe, allocate nothing and touch no shared state; stdio
    // (0-2) is already in place when pre_exec runs and is left alone.
    unsafe {
        cmd.pre_exec(|| {
            // Mark rather than close: Rust's exec-error pipe must survive until exec.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
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
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            // Tokio spawns from its worker threads, which live as long as the runtime.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
}
