//! The IAM identity Lambda has already verified: a Function URL with `AuthType: AWS_IAM` (and
//! API Gateway with IAM authorization) checks the SigV4 signature and puts the caller's ARN in the
//! event's request context, which `lambda_http` exposes in the HTTP request's extensions. Locally
//! no request carries a Lambda request context.
//!
//! The ARN is trusted as it stands, which holds only for events that AWS built: those that came
//! through the Function URL or API Gateway. A direct `lambda:InvokeFunction` (or
//! `InvokeWithResponseStream`) delivers a payload its caller wrote, request context included,
//! and nothing in the event tells the two apart. So whoever may invoke the function directly can
//! name any principal. That is kept out by IAM policy, not here: callers get
//! `lambda:InvokeFunction` only under `lambda:InvokedViaFunctionUrl = true` (docs/lambda.md, and
//! template.yaml grants no direct invoke); the residual risk is stated there.

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
