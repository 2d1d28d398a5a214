//! The IAM identity Lambda has already verified: a Function URL with `AuthType: AWS_IAM` (and
//! API Gateway with IAM authorization) checks the SigV4 signature and puts the caller's ARN in the
//! event's request context, which `lambda_http` exposes in the HTTP request's extensions. The
//! event is built by AWS, not by the caller, so the ARN can be trusted as it stands. Locally no
//! request carries a Lambda request context.

use lambda_http::request::RequestContext;

/// The caller's IAM ARN, if the event has one.
pub fn caller_arn(extensions: &axum::http::Extensions) -> Option<String> {
    let arn = match extensions.get::<RequestContext>()? {
        // Function URLs and HTTP APIs (payload format 2.0).
        RequestContext::ApiGatewayV2(c) => c.authorizer.as_ref()?.iam.as_ref()?.user_arn.clone(),
        // REST APIs with AWS_IAM authorization.
        RequestContext::ApiGatewayV1(c) => c.identity.user_arn.clone(),
        _ => None,
    };
    arn.filter(|a| !a.is_empty())
}

/// The caller's source IP as API Gateway or the Function URL saw it.
pub(super) fn source_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    let ip = match extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(c) => c.http.source_ip.clone(),
        RequestContext::ApiGatewayV1(c) => c.identity.source_ip.clone(),
        _ => None,
    }?;
    ip.parse().ok()
}
