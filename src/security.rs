//! Process-level hardening of the server itself.
//!
//! The server is made non-dumpable, so code in a kernel (same OS user) cannot read
//! `/proc/<server>/environ` or `/proc/<server>/mem` or ptrace it: whatever secrets the server's
//! environment holds stay out of user code's reach even though the kernel is our child.

/// Applies what can be applied and says what did.
pub fn harden_server_process() -> Vec<String> {
    let mut applied = Vec::new();
    match nix::sys::prctl::set_dumpable(false) {
        Ok(()) => applied.push("server non-dumpable".to_string()),
        Err(e) => tracing::warn!(error = %e, "could not make the server process non-dumpable"),
    }
    applied
}
