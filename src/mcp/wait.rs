//! Deadlines for every wait a tool call makes: for a kernel's turn (behind a running cell that
//! may run for an hour), for a kernel to start, for the principal's pip lock.
//!
//! A call never outlives its deadline: execute_code's is its timeout; the calls that have no
//! timeout of their own (get_variables, inspect_variable, restart_kernel, install_package's
//! turn) wait at most `--wait-timeout`. Either is cut to what a Lambda invocation has left
//! (`invocation::clamp_to_invocation`, the one clamp), so an invocation is never killed mid-wait
//! and the caller gets an answer that says what to do instead.

use std::future::Future;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::service::RequestContext;

use super::error::ToolError;
use super::invocation;

/// The answer when a Lambda invocation has no time left for the call.
fn no_time_left() -> ToolError {
    ToolError {
        status: "timeout",
        message: "this invocation has no time left for this call\nhint: raise the function's timeout, or call again".into(),
    }
}

/// `limit` cut to the Lambda invocation's remaining time (less a margin); `timeout` when none
/// is left.
pub(crate) fn within_invocation(
    limit: Duration,
    ctx: &RequestContext<RoleServer>,
) -> Result<Duration, ToolError> {
    invocation::clamp_to_invocation(limit, ctx).ok_or_else(no_time_left)
}

/// What a call was waiting for, for the `busy` message.
pub(crate) enum Waited<'a> {
    /// The turn (or the start) of a kernel.
    Kernel { tool: &'a str, kernel: &'a str },
    /// The principal's pip lock.
    Install,
}

fn busy(waited: Waited<'_>, limit: Duration) -> ToolError {
    let secs = limit.as_secs_f64();
    let message = match waited {
        Waited::Kernel { tool, kernel } => format!(
            "kernel {kernel:?} stayed busy with an earlier call (or was still starting) for {secs:.0} s, so {tool} gave up waiting and did nothing\nhint: call again when the running cell has finished; interrupt_kernel stops it; another kernel name runs in parallel"
        ),
        Waited::Install => format!(
            "another install_package of yours was still running after {secs:.0} s, so this one did not start\nhint: call again when that install has finished (one pip runs at a time per user)"
        ),
    };
    ToolError {
        status: "busy",
        message,
    }
}

/// Runs `wait` for at most `--wait-timeout` (cut to the invocation): its output, `busy` on
/// expiry, `cancelled` when the client gives up first. Dropping `wait` on expiry must leave
/// nothing behind (the pool's leases and starts have drop guards for this).
pub(crate) async fn bounded<T>(
    ctx: &RequestContext<RoleServer>,
    limit: Duration,
    waited: Waited<'_>,
    wait: impl Future<Output = T>,
) -> Result<T, ToolError> {
    let limit = within_invocation(limit, ctx)?;
    tokio::select! {
        out = wait => Ok(out),
        _ = tokio::time::sleep(limit) => Err(busy(waited, limit)),
        _ = ctx.ct.cancelled() => Err(ToolError {
            status: "cancelled",
            message: "cancelled by the client while waiting; nothing was done".into(),
        }),
    }
}
