//! Deadlines for every wait an operation makes: for a kernel's turn (behind a running cell that
//! may run for an hour), for a kernel to start, for the principal's pip lock.
//!
//! A call never outlives its deadline: execute_code's is its timeout; the operations that have
//! no timeout of their own (get_variables, inspect_variable, restart_kernel, install_package's
//! turn) wait at most `--wait-timeout`. Either is cut to what a Lambda invocation has left
//! (`Call::within_invocation`, the one clamp), so an invocation is never killed mid-wait and the
//! caller gets an answer that says what to do instead.

use std::future::Future;
use std::time::Duration;

use super::{Call, Error, Status};

/// The answer when a Lambda invocation has no time left for the call.
fn no_time_left() -> Error {
    Error::new(
        Status::Timeout,
        "this invocation has no time left for this call\nhint: raise the function's timeout, or call again",
    )
}

impl Call {
    /// `limit` cut to the Lambda invocation's remaining time; `timeout` when none is left.
    pub fn limit(&self, limit: Duration) -> Result<Duration, Error> {
        self.within_invocation(limit).ok_or_else(no_time_left)
    }
}

/// What a call was waiting for, for the `busy` message.
pub enum Waited<'a> {
    /// The turn (or the start) of a kernel.
    Kernel { tool: &'a str, kernel: &'a str },
    /// The principal's pip lock.
    Install,
}

fn busy(waited: Waited<'_>, limit: Duration) -> Error {
    let secs = limit.as_secs_f64();
    let message = match waited {
        Waited::Kernel { tool, kernel } => format!(
            "kernel {kernel:?} stayed busy with an earlier call (or was still starting) for {secs:.0} s, so {tool} gave up waiting and did nothing\nhint: call again when the running cell has finished; interrupt_kernel stops it; another kernel name runs in parallel"
        ),
        Waited::Install => format!(
            "another install_package of yours was still running after {secs:.0} s, so this one did not start\nhint: call again when that install has finished (one pip runs at a time per user)"
        ),
    };
    Error::new(Status::Busy, message)
}

/// Runs `wait` for at most `limit` (cut to the invocation): its output, `busy` on expiry,
/// `cancelled` when the caller gives up first. Dropping `wait` on expiry must leave nothing
/// behind (the pool's leases and starts have drop guards for this).
pub async fn bounded<T>(
    call: &Call,
    limit: Duration,
    waited: Waited<'_>,
    wait: impl Future<Output = T>,
) -> Result<T, Error> {
    let limit = call.limit(limit)?;
    tokio::select! {
        out = wait => Ok(out),
        _ = tokio::time::sleep(limit) => Err(busy(waited, limit)),
        _ = call.cancel.cancelled() => Err(Error::new(
            Status::Cancelled,
            "cancelled by the client while waiting; nothing was done",
        )),
    }
}
