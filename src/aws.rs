//! The one AWS configuration loader: region, credentials and endpoint overrides
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, ...) from the standard chain, read once per
//! process and shared by every AWS client (Secrets Manager for API keys, S3 for the workspace).
//! On Lambda the chain gives the execution role; kernels never see any of it (their environment
//! is an allowlist, see `child::env`).

//!
//! The HTTPS client is chosen here rather than by SDK features (see Cargo.toml): hyper 1 with
//! rustls on ring, `TCP_NODELAY` on (the builder's default), shared by the credential providers
//! and every service client through the loaded configuration.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

static CONFIG: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();

/// The shared SDK configuration, loaded on first use.
pub(crate) async fn sdk_config() -> &'static SdkConfig {
    CONFIG
        .get_or_init(|| async {
            let https = aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https();
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(https)
                .load()
                .await
        })
        .await
}
