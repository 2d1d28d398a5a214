//! The environment variables of the configuration: one documented const per variable, each
//! the `env` of a `Config` option (or, for the AWS ones, read only where said).

/// How MCP clients reach the server: `http` (default) or `stdio`.
pub const ENV_TRANSPORT: &str = "JUPYTER_MCP_TRANSPORT";
/// Port to listen on.
pub const ENV_PORT: &str = "JUPYTER_MCP_PORT";
/// Address to bind.
pub const ENV_HOST: &str = "JUPYTER_MCP_HOST";
/// Directory for notebooks, installed packages and kernel working directories.
pub const ENV_WORKING_DIR: &str = "JUPYTER_MCP_WORKING_DIR";
/// Python interpreter that has ipykernel installed.
pub const ENV_PYTHON: &str = "JUPYTER_MCP_PYTHON";
/// Default execution timeout, in seconds.
pub const ENV_EXEC_TIMEOUT: &str = "JUPYTER_MCP_EXEC_TIMEOUT";
/// `--wait-timeout`.
pub const ENV_WAIT_TIMEOUT: &str = "JUPYTER_MCP_WAIT_TIMEOUT";
pub const ENV_CALL_WAIT: &str = "JUPYTER_MCP_CALL_WAIT";
/// Maximum number of live kernels.
pub const ENV_MAX_KERNELS: &str = "JUPYTER_MCP_MAX_KERNELS";
/// Seconds of inactivity after which a kernel is shut down.
pub const ENV_IDLE_TIMEOUT: &str = "JUPYTER_MCP_IDLE_TIMEOUT";
/// Cap on the output bytes one call returns.
pub const ENV_MAX_OUTPUT_BYTES: &str = "JUPYTER_MCP_MAX_OUTPUT_BYTES";
/// Longest side, in pixels, of an image sent to the model.
pub const ENV_MAX_IMAGE_PX: &str = "JUPYTER_MCP_MAX_IMAGE_PX";
/// The URL clients reach this server at, when a proxy or load balancer is in front of it.
pub const ENV_PUBLIC_URL: &str = "JUPYTER_MCP_PUBLIC_URL";
/// Extra Host header values accepted (comma separated), e.g. a public hostname.
pub const ENV_ALLOWED_HOSTS: &str = "JUPYTER_MCP_ALLOWED_HOSTS";

/// Extra import path for kernels (PYTHONPATH), e.g. a Lambda layer's site-packages.
pub const ENV_KERNEL_PYTHONPATH: &str = "JUPYTER_MCP_KERNEL_PYTHONPATH";
/// Per-kernel memory budget on Lambda, in MiB: the kernel limit is the function's memory
/// divided by it.
pub const ENV_KERNEL_MEMORY_MB: &str = "JUPYTER_MCP_KERNEL_MEMORY_MB";
/// Whether kernel code may open network sockets: `deny` (default) or `allow`.
pub const ENV_KERNEL_NETWORK: &str = "JUPYTER_MCP_KERNEL_NETWORK";
/// The user kernels and pip run as when the server is root: a name, a uid, or `server`.
pub const ENV_KERNEL_USER: &str = "JUPYTER_MCP_KERNEL_USER";
/// Run each principal's kernels and pip under its own uid (root only): `true` or `false`.
pub const ENV_KERNEL_UID_PER_PRINCIPAL: &str = "JUPYTER_MCP_KERNEL_UID_PER_PRINCIPAL";
/// The uids `--kernel-uid-per-principal` takes from: `FIRST-LAST`.
pub const ENV_KERNEL_UID_RANGE: &str = "JUPYTER_MCP_KERNEL_UID_RANGE";
/// RLIMIT_CPU of a kernel, in seconds of CPU time (0: unlimited).
pub const ENV_KERNEL_CPU_SECS: &str = "JUPYTER_MCP_KERNEL_CPU_SECS";
/// RLIMIT_FSIZE of a kernel, in MiB (0: unlimited).
pub const ENV_KERNEL_FILE_SIZE_MB: &str = "JUPYTER_MCP_KERNEL_FILE_SIZE_MB";
/// RLIMIT_NOFILE of a kernel.
pub const ENV_KERNEL_OPEN_FILES: &str = "JUPYTER_MCP_KERNEL_OPEN_FILES";
/// Processes (and threads) of a kernel: cgroup pids.max, and RLIMIT_NPROC under its own uid.
pub const ENV_KERNEL_PROCESSES: &str = "JUPYTER_MCP_KERNEL_PROCESSES";
/// Packages install_package may install (comma separated, PEP 503 names); empty: any.
pub const ENV_PACKAGE_ALLOW: &str = "JUPYTER_MCP_PACKAGE_ALLOW";
/// Packages install_package refuses (comma separated, PEP 503 names).
pub const ENV_PACKAGE_DENY: &str = "JUPYTER_MCP_PACKAGE_DENY";
/// The package index pip uses (no per-call override).
pub const ENV_PACKAGE_INDEX_URL: &str = "JUPYTER_MCP_PACKAGE_INDEX_URL";
/// pip's network timeout per connection attempt, in seconds.
pub const ENV_PACKAGE_DOWNLOAD_TIMEOUT: &str = "JUPYTER_MCP_PACKAGE_DOWNLOAD_TIMEOUT";
/// Largest download of one install, in MiB (0: no cap).
pub const ENV_PACKAGE_MAX_DOWNLOAD_MB: &str = "JUPYTER_MCP_PACKAGE_MAX_DOWNLOAD_MB";
/// Per-principal disk quota of the working directory, in MiB (0: none).
pub const ENV_DISK_QUOTA_MB: &str = "JUPYTER_MCP_DISK_QUOTA_MB";
/// S3 bucket of the durable workspace (none: files live only on this machine).
pub const ENV_WORKSPACE_BUCKET: &str = "JUPYTER_MCP_WORKSPACE_BUCKET";
/// Key prefix of the workspaces in the bucket.
pub const ENV_WORKSPACE_PREFIX: &str = "JUPYTER_MCP_WORKSPACE_PREFIX";
/// Largest file mirrored to S3, in MiB.
pub const ENV_WORKSPACE_MAX_FILE_MB: &str = "JUPYTER_MCP_WORKSPACE_MAX_FILE_MB";
/// Bytes restored from S3 on a principal's first call, in MiB.
pub const ENV_WORKSPACE_RESTORE_MAX_MB: &str = "JUPYTER_MCP_WORKSPACE_RESTORE_MAX_MB";
/// Bytes one call writes through to S3, in MiB.
pub const ENV_WORKSPACE_CALL_BUDGET_MB: &str = "JUPYTER_MCP_WORKSPACE_CALL_BUDGET_MB";
/// How long a LIST of a principal's files in S3 stands in for the next calls', in ms (0: never).
pub const ENV_WORKSPACE_LIST_CACHE_MS: &str = "JUPYTER_MCP_WORKSPACE_LIST_CACHE_MS";
/// The standard S3 endpoint override of the AWS SDKs (read here only to pick path-style
/// addressing for S3-compatible endpoints; the SDK reads it itself).
pub const ENV_AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
/// The standard endpoint override for every AWS service.
pub const ENV_AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// On Lambda, stream responses (Function URL `InvokeMode: RESPONSE_STREAM`) or buffer them.
pub const ENV_LAMBDA_STREAMING: &str = "JUPYTER_MCP_LAMBDA_STREAMING";
/// Run without authentication even where it is required (a non-loopback address, Lambda).
pub const ENV_INSECURE_NO_AUTH: &str = "JUPYTER_MCP_INSECURE_NO_AUTH";
/// File of `PRINCIPAL SHA256HEX` lines: the API keys' digests and whose they are.
pub const ENV_API_KEYS_FILE: &str = "JUPYTER_MCP_API_KEYS_FILE";
/// API key digests inline: `principal:sha256hex,principal2:sha256hex`.
pub const ENV_API_KEYS: &str = "JUPYTER_MCP_API_KEYS";
/// AWS Secrets Manager secret holding `{"principal": "sha256hex", ...}`.
pub const ENV_API_KEYS_SECRET_ID: &str = "JUPYTER_MCP_API_KEYS_SECRET_ID";
/// How long the secret's keys are cached, in seconds.
pub const ENV_API_KEYS_CACHE_SECONDS: &str = "JUPYTER_MCP_API_KEYS_CACHE_SECONDS";
/// OpenID Connect issuer whose JWTs are accepted (the `iss` claim).
pub const ENV_OIDC_ISSUER: &str = "JUPYTER_MCP_OIDC_ISSUER";
/// Audience a JWT must name (the `aud` claim).
pub const ENV_OIDC_AUDIENCE: &str = "JUPYTER_MCP_OIDC_AUDIENCE";
/// Where the issuer's signing keys (JWKS) are served.
pub const ENV_OIDC_JWKS_URL: &str = "JUPYTER_MCP_OIDC_JWKS_URL";
/// A file holding the issuer's signing keys (JWKS), instead of a URL.
pub const ENV_OIDC_JWKS_FILE: &str = "JUPYTER_MCP_OIDC_JWKS_FILE";
/// The JWT claim that names the principal.
pub const ENV_OIDC_PRINCIPAL_CLAIM: &str = "JUPYTER_MCP_OIDC_PRINCIPAL_CLAIM";
/// File the audit records are appended to (besides stdout).
pub const ENV_AUDIT_LOG: &str = "JUPYTER_MCP_AUDIT_LOG";
/// Put the code itself (capped) into audit records, not only its SHA-256.
pub const ENV_AUDIT_CODE: &str = "JUPYTER_MCP_AUDIT_CODE";
/// Kernels one principal may have at once.
pub const ENV_MAX_KERNELS_PER_PRINCIPAL: &str = "JUPYTER_MCP_MAX_KERNELS_PER_PRINCIPAL";
/// Tool calls one principal may have running at once.
pub const ENV_MAX_CALLS_PER_PRINCIPAL: &str = "JUPYTER_MCP_MAX_CALLS_PER_PRINCIPAL";
/// Requests one principal may send per minute.
pub const ENV_REQUESTS_PER_MINUTE_PER_PRINCIPAL: &str =
    "JUPYTER_MCP_REQUESTS_PER_MINUTE_PER_PRINCIPAL";
/// Requests without valid credentials one client address may send per minute before it gets
/// 429 (0: no limit).
pub const ENV_UNAUTHENTICATED_PER_MINUTE_PER_ADDRESS: &str =
    "JUPYTER_MCP_UNAUTHENTICATED_PER_MINUTE_PER_ADDRESS";
/// On Lambda: `single` (one principal per execution environment at a time) or `shared`.
pub const ENV_LAMBDA_TENANCY: &str = "JUPYTER_MCP_LAMBDA_TENANCY";
/// Set by Lambda: the Runtime API address. Its presence selects the Lambda front door.
pub const ENV_LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// Set by Lambda: the function's memory in MiB.
pub const ENV_LAMBDA_MEMORY_MB: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";
