//! The one AWS configuration loader: region, credentials and endpoint overrides
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, ...) from the standard chain, read once per
//! process and shared by every AWS client (Secrets Manager for API keys, S3 for the workspace).
//! On Lambda the chain gives the execution role; kernels never see any of it (their environment
//! is an allowlist, see `child::env`).

use aws_config::SdkConfig;

static CONFIG: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();

/// The shared SDK configuration, loaded on first use.
pub(crate) async fn sdk_config() -> &'static SdkConfig {
    CONFIG.get_or_init(aws_config::load_from_env).await
}
