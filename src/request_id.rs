//! One id per HTTP request, so an audit record, a log line and what the client saw can be put
//! side by side: Lambda's request id when the request is a Lambda invocation (the id CloudWatch
//! and the caller already know), else a fresh UUID. The outermost middleware puts it into the
//! request's extensions before anything else runs (authentication refusals carry it too) and
//! returns it as the `x-request-id` response header. A client's own `x-request-id` is not
//! trusted: the id is the server's, so two requests can never share one.

use axum::http::HeaderValue;

/// The response header that carries the request id.
pub const HEADER: &str = "x-request-id";

/// The id of one HTTP request, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// Lambda's id for an invocation, a new UUID otherwise.
    fn of(extensions: &axum::http::Extensions) -> RequestId {
        match extensions.get::<lambda_runtime::Context>() {
            Some(c) if !c.request_id.is_empty() => RequestId(c.request_id.clone()),
            _ => RequestId(uuid::Uuid::new_v4().to_string()),
        }
    }

    /// The id of the request whose extensions these are, if the middleware saw it.
    pub fn get(extensions: &axum::http::Extensions) -> Option<&str> {
        extensions.get::<RequestId>().map(|r| r.0.as_str())
    }
}

/// The middleware: tags the request and its response.
pub async fn middleware(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = RequestId::of(request.extensions());
    let header = HeaderValue::from_str(&id.0).ok();
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    if let Some(value) = header {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_request_gets_a_fresh_uuid() {
        let a = RequestId::of(&axum::http::Extensions::new());
        let b = RequestId::of(&axum::http::Extensions::new());
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(&a.0).is_ok(), "{a:?}");
    }

    #[test]
    fn a_lambda_request_keeps_lambdas_id() {
        let mut extensions = axum::http::Extensions::new();
        let mut context = lambda_runtime::Context::default();
        context.request_id = "iam-0001".into();
        extensions.insert(context);
        assert_eq!(RequestId::of(&extensions).0, "iam-0001");
    }
}
