//! Authentication: who is calling, decided in an axum middleware before rmcp sees the request.
//!
//! Sources, tried in this order: the IAM identity of a Lambda event (`iam`), a bearer API key
//! (`keys`), a bearer OpenID Connect JWT (`oidc`). A request that passes gets a `Principal` in its
//! extensions; one that does not gets 401 with a JSON-RPC error body and
//! `WWW-Authenticate: Bearer resource_metadata=...` (RFC 9728), is recorded in the audit log, and
//! never reaches a tool. It fails closed: where credentials are required (any source configured,
//! or Lambda) a request without them is refused; only a server with no source on loopback, or
//! one started with `--insecure-no-auth`, lets them through as `local`. Tokens never reach a log
//! or an error message: refusals name what was wrong, not what was sent.

mod iam;
mod keys;
pub(crate) mod oidc;
mod secret;
mod settings;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

pub use keys::{
    KeyEntry, KeyTable, KeysError, check_unique, hash_key_report, parse_keys_inline, read_keys_file,
};
pub use settings::{
    AuthSettings, JwksSource, OidcOptions, OidcSettings, SecretSettings, SettingsError, api_keys,
    public_url,
};

use crate::audit::{Audit, Refused};
use crate::limits::{LimitError, Limits};
use crate::principal::Principal;

/// The JSON-RPC error code of a refused request (in the server-defined range).
const UNAUTHORIZED_CODE: i32 = -32001;
/// The JSON-RPC error code of a request over a per-principal limit.
const LIMITED_CODE: i32 = -32002;
/// Path of the protected-resource metadata (RFC 9728).
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
/// The MCP endpoint's path, the protected resource.
pub const MCP_PATH: &str = "/mcp";
/// Most of a refused request's body read to find its JSON-RPC id (a single request is small;
/// past this the 401 says `id: null` rather than buffer an unauthenticated caller's upload).
const REFUSED_BODY_BYTES: usize = 64 * 1024;
/// How long a refused request's body may take to arrive before the 401 goes without its id.
const REFUSED_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a request was refused. The text goes to the client and the audit log: never a token.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    #[error("no credentials: send `Authorization: Bearer <API key or token>`")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("the bearer credentials are not a known API key or a valid token")]
    Unknown,
    #[error("the token was refused: {0}")]
    Token(String),
    #[error("the identity in the request is not a usable principal name")]
    BadPrincipal,
}

impl Refusal {
    /// The RFC 6750 error code, when credentials were presented.
    fn oauth_error(&self) -> Option<&'static str> {
        match self {
            Refusal::Missing => None,
            Refusal::NotBearer => Some("invalid_request"),
            _ => Some("invalid_token"),
        }
    }
}

/// Decides who a request comes from.
pub struct Authenticator {
    keys: KeyTable,
    secret: Option<secret::SecretKeys>,
    oidc: Option<oidc::Verifier>,
    /// Credentials are required (see `AuthSettings::requires_credentials`).
    required: bool,
    /// Credentials are checked when presented (some source is configured).
    checking: bool,
    /// On Lambda: the IAM identity of the event is a source, and URLs are https.
    lambda: bool,
    issuer: Option<String>,
    /// `--public-url`: the base of the metadata links, instead of the Host header.
    public_url: Option<String>,
    audit: Arc<Audit>,
    /// The request rate is checked here, right after authentication.
    limits: Arc<Limits>,
}

impl Authenticator {
    pub fn new(
        settings: &AuthSettings,
        audit: Arc<Audit>,
        limits: Arc<Limits>,
    ) -> Result<Authenticator, oidc::Error> {
        let oidc = settings
            .oidc
            .as_ref()
            .map(oidc::Verifier::new)
            .transpose()?;
        let keys = KeyTable::new(settings.api_keys.clone());
        let secret = settings
            .api_keys_secret
            .as_ref()
            .map(|s| secret::SecretKeys::new(s.id.clone(), s.cache_for));
        Ok(Authenticator {
            checking: !keys.is_empty() || oidc.is_some() || secret.is_some(),
            keys,
            secret,
            oidc,
            required: settings.requires_credentials(),
            lambda: settings.on_lambda,
            issuer: settings.oidc.as_ref().map(|o| o.issuer.clone()),
            public_url: settings.public_url.clone(),
            audit,
            limits,
        })
    }

    /// The principal of a request, or why it is refused.
    pub async fn authenticate(
        &self,
        parts: &axum::http::request::Parts,
    ) -> Result<Principal, Refusal> {
        if self.lambda
            && let Some(arn) = iam::caller_arn(&parts.extensions)
        {
            return Principal::iam(&arn).map_err(|_| Refusal::BadPrincipal);
        }
        let presented = parts.headers.get(header::AUTHORIZATION);
        match presented {
            Some(value) if self.checking => {
                let token = bearer(value).ok_or(Refusal::NotBearer)?;
                self.check_token(token).await
            }
            _ if self.required => Err(Refusal::Missing),
            // No source configured: nothing to check a header against, so it is ignored.
            _ => Ok(Principal::local()),
        }
    }

    async fn check_token(&self, token: &str) -> Result<Principal, Refusal> {
        if let Some(principal) = self.keys.lookup(token) {
            return Ok(principal);
        }
        if let Some(secret) = &self.secret
            && let Some(principal) = secret.lookup(token).await
        {
            return Ok(principal);
        }
        match &self.oidc {
            Some(verifier) if oidc::looks_like_jwt(token) => verifier
                .verify(token)
                .await
                .map_err(|e| Refusal::Token(e.to_string())),
            _ => Err(Refusal::Unknown),
        }
    }

    /// The RFC 9728 metadata document for `resource` (the MCP endpoint `<base>/mcp`, or the
    /// server `<base>` for the path-less document: RFC 9728 §3.3 has a document name the very
    /// identifier its well-known URL was formed from).
    fn metadata(&self, resource: &str) -> serde_json::Value {
        serde_json::json!({
            "resource": resource,
            "authorization_servers": self.issuer.iter().collect::<Vec<_>>(),
            "bearer_methods_supported": ["header"],
            "resource_name": "jupyter-mcp-server",
        })
    }

    /// This server's base URL: `--public-url`, else as the client reached it (for links in 401s
    /// and the metadata).
    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let scheme = if self.lambda { "https" } else { "http" };
        // The Host header is the caller's own; it is only echoed back to them, and only when
        // it looks like a host name, so it cannot break out of the header's quoted string.
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            })
            .unwrap_or("localhost");
        format!("{scheme}://{host}")
    }

    /// 401 for `refusal`, answering the JSON-RPC request `id` when it had one.
    fn unauthorized(
        &self,
        headers: &HeaderMap,
        refusal: &Refusal,
        id: serde_json::Value,
    ) -> axum::response::Response {
        let base = self.base_url(headers);
        // The MCP endpoint's own document (RFC 9728 §3.1: the well-known part goes between
        // the host and the resource's path), whose `resource` is the URL the client called.
        let mut challenge =
            format!("Bearer resource_metadata=\"{base}{RESOURCE_METADATA_PATH}{MCP_PATH}\"");
        if let Some(code) = refusal.oauth_error() {
            challenge.push_str(&format!(", error=\"{code}\""));
        }
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": UNAUTHORIZED_CODE, "message": format!("Unauthorized: {refusal}")},
        });
        let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750).
fn bearer(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The id of a JSON-RPC request body (a string or a number), read up to `REFUSED_BODY_BYTES`
/// for at most `REFUSED_BODY_WAIT`; `null` for anything else (a batch, a notification, not
/// JSON, too big, too slow).
async fn rpc_id(body: axum::body::Body) -> serde_json::Value {
    use serde_json::Value;
    let read = tokio::time::timeout(
        REFUSED_BODY_WAIT,
        axum::body::to_bytes(body, REFUSED_BODY_BYTES),
    )
    .await;
    let Ok(Ok(bytes)) = read else {
        return Value::Null;
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut request)) => match request.remove("id") {
            Some(id @ (Value::String(_) | Value::Number(_))) => id,
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// The middleware: authenticates every request except the discovery document, and records each
/// refusal.
pub async fn middleware(
    axum::extract::State(auth): axum::extract::State<Arc<Authenticator>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if request.uri().path().starts_with("/.well-known/") {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let request_id = crate::request_id::RequestId::get(&parts.extensions).map(str::to_string);
    let addr = client_addr(&parts.extensions);
    let refused = |rpc_id: Option<String>, principal: Option<&str>, reason: &str| {
        auth.audit.refused(&Refused {
            request_id: request_id.as_deref(),
            rpc_id,
            client_addr: addr.map(|a| a.to_string()),
            principal,
            reason,
        })
    };
    // An address over its refusal budget is answered without reading its body.
    if let (Some(refusals), Some(addr)) = (&auth.limits.refusals, addr)
        && let Err(limit) = refusals.check(addr)
    {
        refused(None, None, &limit.to_string());
        return too_many_requests(&limit);
    }
    match auth.authenticate(&parts).await {
        Ok(principal) => {
            if let Err(limit) = auth.limits.check_rate(principal.name()) {
                let id = rpc_id(body).await;
                refused(id_text(&id), Some(principal.name()), &limit.to_string());
                return too_many_requests(&limit);
            }
            parts.extensions.insert(principal);
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(refusal) => {
            tracing::warn!(reason = %refusal, path = parts.uri.path(), "request refused");
            if let (Some(refusals), Some(addr)) = (&auth.limits.refusals, addr)
                && let Err(limit) = refusals.refused(addr)
            {
                refused(None, None, &refusal.to_string());
                tracing::warn!(%addr, "too many refused requests from one address");
                return too_many_requests(&limit);
            }
            let id = rpc_id(body).await;
            refused(id_text(&id), None, &refusal.to_string());
            auth.unauthorized(&parts.headers, &refusal, id)
        }
    }
}

/// A JSON-RPC id as the audit log writes it: a string, numbers in decimal.
fn id_text(id: &serde_json::Value) -> Option<String> {
    match id {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Where a request comes from: the TCP peer locally, the source IP Lambda reports there.
pub(crate) fn client_addr(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| iam::source_ip(extensions))
}

/// 429 with a JSON-RPC error body and `Retry-After`.
fn too_many_requests(limit: &LimitError) -> axum::response::Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": LIMITED_CODE, "message": limit.to_string()},
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    if let LimitError::Rate { retry_secs, .. } | LimitError::Unauthenticated { retry_secs, .. } =
        limit
        && let Ok(v) = HeaderValue::from_str(&retry_secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// GET `/.well-known/oauth-protected-resource/mcp` (the MCP endpoint's document, which every
/// 401 links) and `/.well-known/oauth-protected-resource` (the server's, for clients that look
/// there first).
pub async fn resource_metadata(
    axum::extract::State(auth): axum::extract::State<Arc<Authenticator>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> axum::response::Response {
    let base = auth.base_url(&headers);
    let resource = if uri.path().ends_with(MCP_PATH) {
        format!("{base}{MCP_PATH}")
    } else {
        base
    };
    axum::Json(auth.metadata(&resource)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Source;

    /// Auth settings as `config` would build them from these options: on Lambda or not,
    /// `--insecure-no-auth`, inline `--api-keys` and `--public-url`.
    #[derive(Default)]
    struct Options<'a> {
        lambda: bool,
        insecure_no_auth: bool,
        api_keys: Option<&'a str>,
        public_url: Option<&'a str>,
    }

    fn authenticator(o: Options) -> Authenticator {
        let settings = AuthSettings {
            api_keys: api_keys(None, o.api_keys).unwrap(),
            insecure_no_auth: o.insecure_no_auth,
            public_url: o.public_url.map(|u| public_url(u).unwrap()),
            on_lambda: o.lambda,
            ..AuthSettings::default()
        };
        let audit = Arc::new(Audit::open(&crate::audit::AuditSettings::default()).unwrap());
        Authenticator::new(&settings, audit, Arc::new(Limits::new(None, None))).unwrap()
    }

    /// The request parts lambda_http makes of an event in `events/`.
    fn event_parts(json: &str, bearer: Option<&str>) -> axum::http::request::Parts {
        let request = lambda_http::request::from_str(json).unwrap();
        let (mut parts, _) = request.into_parts();
        if let Some(token) = bearer {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
            parts.headers.insert(header::AUTHORIZATION, value);
        }
        parts
    }

    const LAMBDA: Options = Options {
        lambda: true,
        insecure_no_auth: false,
        api_keys: None,
        public_url: None,
    };
    const IAM_V2: &str = include_str!("../../events/function-url-iam-alice.json");
    const IAM_V1: &str = include_str!("../../events/apigw-rest-v1-iam-bob.json");
    const IAM_HTTP_V2: &str = include_str!("../../events/apigw-http-v2-iam-carol.json");
    const NO_CREDENTIALS: &str = include_str!("../../events/function-url-no-credentials.json");
    const NO_IAM: &str = include_str!("../../events/function-url-tools-list.json");
    const ALICE_ARN: &str = "arn:aws:iam::123456789012:user/alice";

    #[tokio::test]
    async fn on_lambda_the_function_url_iam_arn_is_the_principal() {
        let p = authenticator(LAMBDA)
            .authenticate(&event_parts(IAM_V2, None))
            .await
            .unwrap();
        assert_eq!((p.name(), p.source()), (ALICE_ARN, Source::AwsIam));
    }

    #[tokio::test]
    async fn on_lambda_the_rest_api_iam_arn_is_the_principal() {
        let p = authenticator(LAMBDA)
            .authenticate(&event_parts(IAM_V1, None))
            .await
            .unwrap();
        assert_eq!(p.name(), "arn:aws:sts::123456789012:assumed-role/ci/bob");
    }

    /// template.yaml's HTTP API (payload 2.0, `AWS_IAM` authorizer): the ARN is in
    /// `requestContext.authorizer.iam`, as for a Function URL, but the domain is API Gateway's.
    #[tokio::test]
    async fn on_lambda_the_http_api_iam_arn_is_the_principal() {
        let parts = event_parts(IAM_HTTP_V2, None);
        assert!(matches!(
            parts.extensions.get::<lambda_http::request::RequestContext>(),
            Some(lambda_http::request::RequestContext::ApiGatewayV2(c))
                if c.domain_name.as_deref() == Some("h77papi456.execute-api.us-east-1.amazonaws.com")
        ));
        let p = authenticator(LAMBDA).authenticate(&parts).await.unwrap();
        assert_eq!(
            (p.name(), p.source()),
            (
                "arn:aws:sts::123456789012:assumed-role/analyst/carol",
                Source::AwsIam
            )
        );
    }

    #[tokio::test]
    async fn on_lambda_a_request_without_iam_or_bearer_is_refused() {
        let auth = authenticator(LAMBDA);
        let refused = auth.authenticate(&event_parts(NO_CREDENTIALS, None)).await;
        assert_eq!(refused, Err(Refusal::Missing));
        let refused = auth.authenticate(&event_parts(NO_IAM, None)).await;
        assert_eq!(refused, Err(Refusal::Missing));
        let refused = auth.authenticate(&event_parts(NO_IAM, Some("guess"))).await;
        assert_eq!(
            refused,
            Err(Refusal::Missing),
            "no key source: nothing matches"
        );
    }

    #[tokio::test]
    async fn on_lambda_insecure_no_auth_serves_local() {
        let p = authenticator(Options {
            insecure_no_auth: true,
            ..LAMBDA
        })
        .authenticate(&event_parts(NO_IAM, None))
        .await
        .unwrap();
        assert_eq!(p, Principal::local());
    }

    #[tokio::test]
    async fn on_lambda_a_bearer_key_works_without_iam() {
        let digest = crate::principal::hex(&keys::digest("k1"));
        let inline = format!("carol:{digest}");
        let auth = authenticator(Options {
            api_keys: Some(&inline),
            ..LAMBDA
        });
        let p = auth
            .authenticate(&event_parts(NO_IAM, Some("k1")))
            .await
            .unwrap();
        assert_eq!(p.name(), "carol");
        let refused = auth.authenticate(&event_parts(NO_IAM, Some("k2"))).await;
        assert_eq!(refused, Err(Refusal::Unknown));
    }

    /// Off Lambda nothing can put a Lambda request context into a request, but even if it were
    /// there it would not be trusted.
    #[tokio::test]
    async fn off_lambda_an_iam_context_is_ignored() {
        let p = authenticator(Options::default())
            .authenticate(&event_parts(IAM_V2, None))
            .await
            .unwrap();
        assert_eq!(p, Principal::local());
    }

    #[tokio::test]
    async fn a_refused_requests_id_is_found_only_in_a_single_small_request() {
        use serde_json::json;
        let id = |body: String| rpc_id(axum::body::Body::from(body));
        let req =
            |id: serde_json::Value| json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
        assert_eq!(id(req(json!(7)).to_string()).await, json!(7));
        assert_eq!(id(req(json!("abc")).to_string()).await, json!("abc"));
        for not_an_id in [json!(null), json!({"a": 1}), json!([1]), json!(true)] {
            assert_eq!(id(req(not_an_id).to_string()).await, json!(null));
        }
        assert_eq!(
            id(json!([req(json!(1))]).to_string()).await,
            json!(null),
            "batch"
        );
        assert_eq!(id("not json".into()).await, json!(null));
        let padded = json!({"jsonrpc": "2.0", "id": 9, "method": "x", "params": {"p": "x".repeat(REFUSED_BODY_BYTES)}});
        assert_eq!(id(padded.to_string()).await, json!(null), "over the cap");
    }

    #[test]
    fn the_public_url_replaces_the_host_header() {
        let auth = authenticator(Options {
            public_url: Some("https://jupyter.example.com/"),
            ..Options::default()
        });
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("10.0.0.7:8737"));
        assert_eq!(auth.base_url(&headers), "https://jupyter.example.com");
        let auth = authenticator(Options::default());
        assert_eq!(auth.base_url(&headers), "http://10.0.0.7:8737");
    }

    #[test]
    fn only_bearer_tokens_are_taken() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer(&v("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&v("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&v("Basic YTpi")), None);
        assert_eq!(bearer(&v("Bearer ")), None);
        assert_eq!(bearer(&v("Bearerabc")), None);
    }
}
