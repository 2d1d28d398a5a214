//! What every front door serves: the service and the authenticator in front of it, built once
//! from the settings before a door opens. The HTTP router and the Lambda door take it whole;
//! the stdio door, which has no credentials to check, takes only the service.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::service::Service;

/// Why a front door could not serve (start-up, bind, the transport).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot listen on {addr}: {source}\nhint: pick another --port, or stop what uses this one"
    )]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Service(#[from] crate::service::BuildError),
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("the Lambda runtime failed: {0}")]
    Lambda(String),
    #[error(
        "the stdio transport failed: {0}\nhint: the client must speak MCP (JSON-RPC lines) on stdin"
    )]
    Stdio(String),
    #[error("cannot set up OpenID Connect: {0}")]
    Oidc(#[from] crate::auth::oidc::Error),
}

/// The service and its authenticator.
pub struct App {
    pub service: Arc<Service>,
    pub auth: Arc<Authenticator>,
}

/// Builds the service and the authenticator. The runtime root must live as long as the service.
pub fn build_app(
    settings: &Settings,
    stop: CancellationToken,
) -> Result<(Arc<App>, crate::kernel::RuntimeRoot), Error> {
    let (service, runtime) = Service::build(settings, stop)?;
    let auth = Arc::new(Authenticator::new(
        &settings.auth,
        Arc::clone(&service.audit),
        Arc::clone(&service.limits),
    )?);
    if settings.auth.insecure_no_auth {
        tracing::warn!(
            "--insecure-no-auth: requests without credentials are served as the shared principal `local`; anyone who reaches this server can run code"
        );
    }
    Ok((Arc::new(App { service, auth }), runtime))
}
