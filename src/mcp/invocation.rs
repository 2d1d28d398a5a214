//! What a request says about the invocation it belongs to: on Lambda, its request id and its
//! deadline (from the `lambda_runtime::Context` that `lambda_http` puts in the HTTP request's
//! extensions, which rmcp passes on). Locally there is neither.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::RoleServer;
use rmcp::service::RequestContext;

/// Time kept back from the invocation's deadline: after a timeout the kernel gets
/// `INTERRUPT_GRACE` to stop, and the reply needs a moment to travel.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

fn lambda_context(ctx: &RequestContext<RoleServer>) -> Option<&lambda_runtime::Context> {
    ctx.extensions
        .get::<axum::http::request::Parts>()?
        .extensions
        .get::<lambda_runtime::Context>()
}

/// The Lambda request id, if this request is a Lambda invocation.
pub fn request_id(ctx: &RequestContext<RoleServer>) -> Option<String> {
    lambda_context(ctx).map(|c| c.request_id.clone())
}

/// How long code may run in this invocation, so that the client always gets a `timeout`
/// result instead of a killed invocation. `None` locally.
pub fn time_left_for_code(ctx: &RequestContext<RoleServer>) -> Option<Duration> {
    let deadline_ms = lambda_context(ctx)?.deadline;
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(left.saturating_sub(crate::kernel::INTERRUPT_GRACE + DEADLINE_MARGIN))
}

/// The span a tool call runs in: tool name, and the request id on Lambda, so every log line of
/// an invocation can be found by its id.
pub fn span(ctx: &RequestContext<RoleServer>, tool: &str) -> tracing::Span {
    match request_id(ctx) {
        Some(id) => tracing::info_span!("tool", tool, requestId = %id),
        None => tracing::info_span!("tool", tool),
    }
}
