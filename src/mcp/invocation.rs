//! What a request says about the invocation it belongs to: its request id (see `request_id`),
//! the caller's address, and on Lambda its deadline (from the `lambda_runtime::Context` that
//! `lambda_http` puts in the HTTP request's extensions, which rmcp passes on). Locally there is
//! no deadline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::RoleServer;
use rmcp::service::RequestContext;

/// Deadlines below this (September 2001 in epoch milliseconds) are not epoch times: the
/// `cargo lambda` emulator sends its timeout, a relative 600000, as the deadline. They are
/// treated as "no deadline known".
const EARLIEST_EPOCH_DEADLINE_MS: u64 = 1_000_000_000_000;

/// Time kept back from the invocation's deadline: after a timeout the kernel gets
/// `INTERRUPT_GRACE` to stop, and the reply needs a moment to travel.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

fn lambda_context(ctx: &RequestContext<RoleServer>) -> Option<&lambda_runtime::Context> {
    parts(ctx)?.extensions.get::<lambda_runtime::Context>()
}

fn parts(ctx: &RequestContext<RoleServer>) -> Option<&axum::http::request::Parts> {
    ctx.extensions.get::<axum::http::request::Parts>()
}

/// The HTTP request's id (`request_id`: Lambda's on Lambda, a UUID otherwise), or Lambda's
/// from the invocation context; none over stdio.
pub fn request_id(ctx: &RequestContext<RoleServer>) -> Option<String> {
    parts(ctx)
        .and_then(|p| crate::request_id::RequestId::get(&p.extensions))
        .map(str::to_string)
        .or_else(|| lambda_context(ctx).map(|c| c.request_id.clone()))
}

/// The caller's IP address, as the HTTP door saw it; none over stdio.
pub fn client_addr(ctx: &RequestContext<RoleServer>) -> Option<String> {
    parts(ctx)
        .and_then(|p| crate::auth::client_addr(&p.extensions))
        .map(|a| a.to_string())
}

/// How long code may run in this invocation, so that the client always gets a `timeout`
/// result instead of a killed invocation. `None` locally.
pub fn time_left_for_code(ctx: &RequestContext<RoleServer>) -> Option<Duration> {
    time_left(lambda_context(ctx)?.deadline, SystemTime::now())
}

fn time_left(deadline_ms: u64, now: SystemTime) -> Option<Duration> {
    if deadline_ms < EARLIEST_EPOCH_DEADLINE_MS {
        return None;
    }
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline.duration_since(now).unwrap_or_default();
    Some(left.saturating_sub(crate::kernel::INTERRUPT_GRACE + DEADLINE_MARGIN))
}

/// The span a tool call runs in: tool name, caller, and the request id on Lambda, so every log
/// line of an invocation can be found by its id.
pub fn span(ctx: &RequestContext<RoleServer>, tool: &str, principal: &str) -> tracing::Span {
    match request_id(ctx) {
        Some(id) => tracing::info_span!("tool", tool, principal, requestId = %id),
        None => tracing::info_span!("tool", tool, principal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn code_gets_the_time_left_minus_grace_and_margin() {
        let now = 1_800_000_000_000;
        let left = time_left(now + 30_000, at(now)).unwrap();
        assert_eq!(
            left,
            Duration::from_secs(30) - crate::kernel::INTERRUPT_GRACE - DEADLINE_MARGIN
        );
    }

    #[test]
    fn a_deadline_too_close_or_past_leaves_nothing() {
        let now = 1_800_000_000_000;
        assert_eq!(time_left(now + 1_000, at(now)), Some(Duration::ZERO));
        assert_eq!(time_left(now - 5_000, at(now)), Some(Duration::ZERO));
    }

    #[test]
    fn a_relative_emulator_deadline_means_none_known() {
        assert_eq!(time_left(600_000, at(1_800_000_000_000)), None);
    }
}
