//! Command-line and environment configuration.
//!
//! One clap `Config` holds the raw options (each also settable by an environment variable, whose
//! name is a documented const below); `Config::resolve` validates them into the `Settings` the rest
//! of the server uses. Nothing else in the crate reads the environment for configuration.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

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

/// Working directory when none is configured, locally and on Lambda (only /tmp is writable).
const DEFAULT_WORKING_DIR: &str = "./notebooks";
const DEFAULT_LAMBDA_WORKING_DIR: &str = "/tmp/notebooks";
/// Where a Lambda layer's Python packages live; kernels need it on their path because their
/// environment is rebuilt from scratch (the runtime's own PYTHONPATH is not inherited).
const DEFAULT_LAMBDA_PYTHONPATH: &str = "/opt/python";
/// HTTP port when none is configured: off Jupyter's 8888/8889, the MCP Inspector's 6274/6277,
/// cargo lambda's 9000 and the usual web-framework ports (3000, 5000, 5173, 8000, 8080), and
/// absent from the IANA-derived /etc/services list.
pub const DEFAULT_PORT: u16 = 8737;
/// Default execution time limit: under the 60 s request timeout of the TypeScript SDK (and so of
/// most MCP hosts), with room for the interrupt grace and the reply.
pub const DEFAULT_EXEC_TIMEOUT_SECS: u64 = 50;
/// Default wait for a busy kernel by the calls that have no timeout of their own: long enough
/// for a short cell to finish, well inside the 60 s most MCP clients wait for a call.
pub const DEFAULT_WAIT_TIMEOUT_SECS: u64 = 30;
/// Default wait of a call for its own work before it answers `running` (see `--call-wait`).
pub const DEFAULT_CALL_WAIT_SECS: u64 = 40;
/// Kernel limit locally when none is configured.
const DEFAULT_MAX_KERNELS: usize = 8;
/// Memory Lambda gives the server itself before kernels are counted, in MiB.
const LAMBDA_SERVER_RESERVE_MB: u64 = 128;

/// RLIMIT_AS is this many times --kernel-memory-mb: address space runs well above resident
/// memory in a threaded Python (thread stacks, reserved arenas, mapped libraries).
const ADDRESS_SPACE_PER_MEMORY: u64 = 2;
const MIB: u64 = 1024 * 1024;

/// Longest timeout a single call may ask for.
pub const MAX_EXEC_TIMEOUT_SECS: u64 = 3600;
/// How long pip may run for one `install_package`.
pub const PIP_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest --workspace-list-cache-ms: how late another environment's change may be seen.
pub const MAX_WORKSPACE_LIST_CACHE_MS: u64 = 60_000;

/// How MCP clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Streamable HTTP at http://HOST:PORT/mcp: many clients, one server.
    Http,
    /// One client over stdin/stdout (the host launches the server); logs go to stderr, and the
    /// server and its kernels stop when stdin closes.
    Stdio,
}

/// An MCP server that gives LLM agents a real Jupyter (ipykernel) kernel.
///
/// Serves MCP over Streamable HTTP at http://HOST:PORT/mcp, or over stdio with
/// `--transport stdio`.
#[derive(Debug, Parser)]
#[command(name = "jupyter-mcp-server", version, about, long_about = None)]
pub struct Config {
    /// How clients connect: `http` (Streamable HTTP at /mcp) or `stdio` (one client that
    /// launched this process; what Claude Desktop, Cursor and VS Code do by default).
    /// Ignored on Lambda.
    #[arg(long, env = ENV_TRANSPORT, value_enum, default_value_t = Transport::Http)]
    pub transport: Transport,

    /// Port to listen on (0 picks a free port and logs it). The default, 8737, is not Jupyter's
    /// own 8888 (or the 8889 Jupyter moves to) nor the default of another common tool.
    #[arg(long, env = ENV_PORT, default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Address to bind. Keep the loopback default unless the port is protected otherwise:
    /// anyone who can reach it can run code.
    #[arg(long, env = ENV_HOST, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Directory for notebooks, installed packages and the kernels' working directory.
    /// Created if missing. [default: ./notebooks, /tmp/notebooks on Lambda]
    #[arg(long, env = ENV_WORKING_DIR)]
    pub working_dir: Option<PathBuf>,

    /// Python interpreter with ipykernel installed (default: `python3` on PATH).
    #[arg(long, env = ENV_PYTHON, default_value = "python3")]
    pub python: PathBuf,

    /// Default time limit for one execution, in seconds (a call may ask for less or more,
    /// up to 3600). On expiry the kernel is interrupted, then restarted if it does not respond.
    /// The default fits inside the 60 s most MCP clients wait for a call, so the model gets a
    /// `timeout` result with the output so far rather than a client-side error.
    #[arg(long, env = ENV_EXEC_TIMEOUT, default_value_t = DEFAULT_EXEC_TIMEOUT_SECS)]
    pub exec_timeout: u64,

    /// How long, in seconds, a call without a timeout of its own (get_variables,
    /// inspect_variable, restart_kernel, install_package's turn) waits for a kernel that is busy
    /// with an earlier call, before it answers `busy`. On Lambda, also cut to the invocation's
    /// remaining time.
    #[arg(long, env = ENV_WAIT_TIMEOUT, default_value_t = DEFAULT_WAIT_TIMEOUT_SECS)]
    pub wait_timeout: u64,

    /// How long, in seconds, execute_code, execute_cell and execute_notebook wait for their work
    /// (and get_execution for an execution) before they answer `running` with an execution id;
    /// the work goes on until it ends or reaches its timeout. A call may ask for less with
    /// `wait`. The default fits inside the 60 s most MCP clients wait for a call.
    #[arg(long, env = ENV_CALL_WAIT, default_value_t = DEFAULT_CALL_WAIT_SECS)]
    pub call_wait: u64,

    /// Maximum number of live kernels (the warm spare not counted). [default: 8; on Lambda the
    /// function's memory divided by --kernel-memory-mb]
    #[arg(long, env = ENV_MAX_KERNELS)]
    pub max_kernels: Option<usize>,

    /// Import path added for kernels and pip (PYTHONPATH), e.g. where a layer's packages are.
    /// [default: none; /opt/python on Lambda]
    #[arg(long, env = ENV_KERNEL_PYTHONPATH)]
    pub kernel_pythonpath: Option<String>,

    /// Memory budget per kernel in MiB: its address-space limit (RLIMIT_AS, and the cgroup
    /// memory limit where one applies) is twice this; on Lambda it also sets the default kernel
    /// limit (the function's memory divided by it). 0 leaves memory unlimited.
    #[arg(long, env = ENV_KERNEL_MEMORY_MB, default_value_t = 512)]
    pub kernel_memory_mb: u64,

    /// Network for kernel code: `deny` refuses AF_INET/AF_INET6/AF_PACKET/AF_NETLINK sockets
    /// (seccomp); `allow` lifts that. install_package works either way (pip is the server's).
    #[arg(long, env = ENV_KERNEL_NETWORK, value_enum, default_value_t = KernelNetwork::Deny)]
    pub kernel_network: KernelNetwork,

    /// When the server runs as root: the user kernels and pip run as (a name or uid), or
    /// `server` to keep root (not recommended). [default: uid/gid 65534 when root; the server's
    /// own uid otherwise]
    #[arg(long, env = ENV_KERNEL_USER)]
    pub kernel_user: Option<String>,

    /// When the server runs as root: run each principal's kernels and pip under its own uid
    /// from --kernel-uid-range, owner of its directory (mode 0700), so the OS itself keeps
    /// principals from signalling each other's kernels or reading each other's files. Refuses
    /// to start when not root or when those uids cannot run --python.
    #[arg(long, env = ENV_KERNEL_UID_PER_PRINCIPAL, conflicts_with = "kernel_user")]
    pub kernel_uid_per_principal: bool,

    /// The uids (and equal gids) --kernel-uid-per-principal assigns, FIRST-LAST: a range no
    /// account uses. A principal keeps its uid across restarts (it is its directory's owner).
    #[arg(long, env = ENV_KERNEL_UID_RANGE, default_value = "200000-265535")]
    pub kernel_uid_range: String,

    /// CPU seconds a kernel may use over its life (RLIMIT_CPU); past it the kernel is killed
    /// and the next call starts a fresh one. 0: unlimited.
    #[arg(long, env = ENV_KERNEL_CPU_SECS, default_value_t = 7200)]
    pub kernel_cpu_secs: u64,

    /// Largest file a kernel may write, in MiB (RLIMIT_FSIZE). 0: unlimited.
    #[arg(long, env = ENV_KERNEL_FILE_SIZE_MB, default_value_t = 1024)]
    pub kernel_file_size_mb: u64,

    /// Descriptors a kernel may hold open (RLIMIT_NOFILE).
    #[arg(long, env = ENV_KERNEL_OPEN_FILES, default_value_t = 1024)]
    pub kernel_open_files: u64,

    /// Processes and threads per kernel: cgroup pids.max, and RLIMIT_NPROC when kernels have
    /// a uid of their own.
    #[arg(long, env = ENV_KERNEL_PROCESSES, default_value_t = 512)]
    pub kernel_processes: u64,

    /// On Lambda: stream responses, so progress of a long cell reaches the client while it runs
    /// (Function URL InvokeMode RESPONSE_STREAM). `false` buffers each response, for
    /// integrations that cannot stream.
    #[arg(long, env = ENV_LAMBDA_STREAMING, default_value_t = true, action = clap::ArgAction::Set)]
    pub lambda_streaming: bool,

    /// Set by AWS Lambda; selects the Lambda front door.
    #[arg(long, env = ENV_LAMBDA_RUNTIME_API, hide = true)]
    pub lambda_runtime_api: Option<String>,

    /// Set by AWS Lambda: the function's memory in MiB.
    #[arg(long, env = ENV_LAMBDA_MEMORY_MB, hide = true)]
    pub lambda_memory_mb: Option<u64>,

    /// Shut a kernel down after this many seconds without a call (0 never).
    #[arg(long, env = ENV_IDLE_TIMEOUT, default_value_t = 1800)]
    pub idle_timeout: u64,

    /// Cap on the output bytes (text and images) that one call returns; above it the head and
    /// the tail are kept with a note of what was cut.
    #[arg(long, env = ENV_MAX_OUTPUT_BYTES, default_value_t = 131_072)]
    pub max_output_bytes: usize,

    /// Only these packages may be installed (comma separated; names are compared after PEP 503
    /// normalization, so `Foo_Bar` matches `foo-bar`). Empty: any package not denied.
    #[arg(long, env = ENV_PACKAGE_ALLOW, value_delimiter = ',')]
    pub package_allow: Vec<String>,

    /// These packages are refused (comma separated, PEP 503 names). Checked before the allow list.
    #[arg(long, env = ENV_PACKAGE_DENY, value_delimiter = ',')]
    pub package_deny: Vec<String>,

    /// The index pip installs from; callers cannot override it. [default: pip's own, PyPI]
    #[arg(long, env = ENV_PACKAGE_INDEX_URL)]
    pub package_index_url: Option<String>,

    /// pip's network timeout, in seconds (each connection attempt; the whole install is also
    /// bounded by 300 s and the call's deadline).
    #[arg(long, env = ENV_PACKAGE_DOWNLOAD_TIMEOUT, default_value_t = 60)]
    pub package_download_timeout: u64,

    /// Largest download of one install_package, in MiB. pip first downloads with RLIMIT_FSIZE
    /// at this size (the kernel refuses any write past it, whatever the index says), the
    /// downloads together must fit in it too, and only then installs from them offline. 0: no
    /// cap.
    #[arg(long, env = ENV_PACKAGE_MAX_DOWNLOAD_MB, default_value_t = 200)]
    pub package_max_download_mb: u64,

    /// Disk quota of a principal's directory (notebooks, files, packages), in MiB. Checked
    /// before and after each execution and every 2 s while one runs; over it, executions are
    /// refused until files are deleted. 0: no quota.
    #[arg(long, env = ENV_DISK_QUOTA_MB, default_value_t = 0)]
    pub disk_quota_mb: u64,

    /// Mirror each principal's directory (notebooks, files; not packages) to this S3 bucket and
    /// record each kernel's history there, so another execution environment (Lambda) or a
    /// restarted server finds the files and can restore the kernel. Uses the standard AWS
    /// credential chain of the server; kernels never get credentials.
    #[arg(long, env = ENV_WORKSPACE_BUCKET)]
    pub workspace_bucket: Option<String>,

    /// Key prefix of the workspaces in --workspace-bucket (each principal gets
    /// PREFIX<principal dir>/).
    #[arg(long, env = ENV_WORKSPACE_PREFIX, default_value = "workspaces/")]
    pub workspace_prefix: String,

    /// Files larger than this (MiB) are not mirrored to S3; the result says so.
    #[arg(long, env = ENV_WORKSPACE_MAX_FILE_MB, default_value_t = 50)]
    pub workspace_max_file_mb: u64,

    /// At most this much (MiB) is restored from S3 on a principal's first call in a process;
    /// the result says what stayed in S3.
    #[arg(long, env = ENV_WORKSPACE_RESTORE_MAX_MB, default_value_t = 256)]
    pub workspace_restore_max_mb: u64,

    /// At most this much (MiB) is written to S3 after one call; the rest is saved by the next
    /// calls, and the result says so.
    #[arg(long, env = ENV_WORKSPACE_CALL_BUDGET_MB, default_value_t = 64)]
    pub workspace_call_budget_mb: u64,

    /// A call that starts less than this long (ms) after this process last listed the
    /// principal's files in S3 skips the LIST: a file another execution environment changed
    /// meanwhile is seen here up to this much later (a write here is still conditional, so both
    /// versions are kept, never overwritten). 0 (the default): every call that uses files lists
    /// first, and a change saved elsewhere is seen by the next call here.
    #[arg(long, env = ENV_WORKSPACE_LIST_CACHE_MS, default_value_t = 0)]
    pub workspace_list_cache_ms: u64,

    #[arg(long, env = ENV_AWS_ENDPOINT_URL_S3, hide = true)]
    pub aws_endpoint_url_s3: Option<String>,

    #[arg(long, env = ENV_AWS_ENDPOINT_URL, hide = true)]
    pub aws_endpoint_url: Option<String>,

    /// Longest side, in pixels, of an image sent to the model (vision models scale larger ones
    /// down anyway); larger images are downscaled and the original is saved and linked.
    #[arg(long, env = ENV_MAX_IMAGE_PX, default_value_t = 1568, value_parser = clap::value_parser!(u32).range(16..=16384))]
    pub max_image_px: u32,

    /// The URL clients reach this server at (scheme, host, optional port and path prefix, e.g.
    /// https://jupyter.example.com), when a proxy is in front of it: the OAuth metadata's
    /// `resource` and the `resource_metadata` link of every 401 are built from it instead of the
    /// request's Host header.
    #[arg(long, env = ENV_PUBLIC_URL)]
    pub public_url: Option<String>,

    /// Extra Host header values to accept, comma separated (loopback names are always accepted).
    #[arg(long, env = ENV_ALLOWED_HOSTS, value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Serve without authentication where it is otherwise required (a non-loopback --host, or
    /// Lambda): anyone who reaches the server runs code as one shared principal. Logged as a
    /// warning and reported by get_kernel_status.
    #[arg(long, env = ENV_INSECURE_NO_AUTH)]
    pub insecure_no_auth: bool,

    /// API keys: a file of `PRINCIPAL SHA256HEX` lines (`#` comments and blank lines ignored).
    /// Only digests are stored; `jupyter-mcp-server hash-key` makes a key and its digest.
    #[arg(long, env = ENV_API_KEYS_FILE)]
    pub api_keys_file: Option<PathBuf>,

    /// API keys inline, as `principal:sha256hex,principal2:sha256hex`.
    #[arg(long, env = ENV_API_KEYS, hide_env_values = true)]
    pub api_keys: Option<String>,

    /// API keys from an AWS Secrets Manager secret (name or ARN) whose value is a JSON object
    /// `{"principal": "sha256hex", ...}`; region, credentials and endpoint come from the
    /// standard AWS configuration (AWS_REGION, AWS_ENDPOINT_URL, the role on Lambda).
    #[arg(long, env = ENV_API_KEYS_SECRET_ID)]
    pub api_keys_secret_id: Option<String>,

    /// How long the secret's keys are cached, in seconds: past it they are accepted only after
    /// a successful re-read (fail closed). An unknown key re-reads it at most once a minute.
    #[arg(long, env = ENV_API_KEYS_CACHE_SECONDS, default_value_t = 300)]
    pub api_keys_cache_seconds: u64,

    /// Accept OpenID Connect JWTs from this issuer (exact `iss` value). Needs --oidc-audience
    /// and --oidc-jwks-url or --oidc-jwks-file.
    #[arg(long, env = ENV_OIDC_ISSUER)]
    pub oidc_issuer: Option<String>,

    /// The audience (`aud`) a JWT must be issued for, e.g. this server's URL.
    #[arg(long, env = ENV_OIDC_AUDIENCE)]
    pub oidc_audience: Option<String>,

    /// URL of the issuer's JSON Web Key Set; cached, and fetched again (at most every 30 s) when
    /// a token names a key id it does not hold.
    #[arg(long, env = ENV_OIDC_JWKS_URL)]
    pub oidc_jwks_url: Option<String>,

    /// A JSON Web Key Set file, instead of --oidc-jwks-url.
    #[arg(long, env = ENV_OIDC_JWKS_FILE)]
    pub oidc_jwks_file: Option<PathBuf>,

    /// The JWT claim that names the principal.
    #[arg(long, env = ENV_OIDC_PRINCIPAL_CLAIM, default_value = "sub")]
    pub oidc_principal_claim: String,

    /// Also append the audit records (one JSON line per tool call or refused request, always
    /// written to stdout) to this file.
    #[arg(long, env = ENV_AUDIT_LOG)]
    pub audit_log: Option<PathBuf>,

    /// Put the code a call ran (execute_code, execute_cell, execute_notebook, restore_kernel; up
    /// to 4 KiB) into audit records, not only its SHA-256.
    #[arg(long, env = ENV_AUDIT_CODE)]
    pub audit_code: bool,

    /// Kernels one principal may have at once (at most --max-kernels). [default: no limit
    /// beyond --max-kernels]
    #[arg(long, env = ENV_MAX_KERNELS_PER_PRINCIPAL)]
    pub max_kernels_per_principal: Option<usize>,

    /// Tool calls one principal may have running at once; more are refused. [default: no limit]
    #[arg(long, env = ENV_MAX_CALLS_PER_PRINCIPAL)]
    pub max_calls_per_principal: Option<usize>,

    /// Requests (of any kind) one principal may send per minute, as a burst refilled evenly
    /// over the minute; more get HTTP 429. [default: no limit]
    #[arg(long, env = ENV_REQUESTS_PER_MINUTE_PER_PRINCIPAL)]
    pub requests_per_minute_per_principal: Option<u32>,

    /// Requests without valid credentials one client address (the TCP peer, or the source IP
    /// Lambda reports) may send per minute, as a burst refilled evenly over the minute. Past it
    /// the address gets HTTP 429 with Retry-After, without its credentials being checked, until
    /// then: guessing keys is slowed to this rate. 0: no limit. Behind a proxy every client
    /// shares the proxy's address.
    #[arg(long, env = ENV_UNAUTHENTICATED_PER_MINUTE_PER_ADDRESS, default_value_t = 30)]
    pub unauthenticated_per_minute_per_address: u32,

    /// On Lambda: `single` stops the previous principal's kernels and removes its files before
    /// an execution environment serves another principal; `shared` keeps them side by side
    /// (they share one OS user).
    #[arg(long, env = ENV_LAMBDA_TENANCY, value_enum, default_value_t = Tenancy::Single)]
    pub lambda_tenancy: Tenancy,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print the SHA-256 digest of an API key read from stdin, or of a new random key (printed
    /// too) when stdin is a terminal or empty.
    HashKey,
}

/// How principals share a Lambda execution environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tenancy {
    Single,
    Shared,
}

/// `--kernel-network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelNetwork {
    Deny,
    Allow,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub transport: Transport,
    pub host: IpAddr,
    pub port: u16,
    /// Absolute, existing directory.
    pub working_dir: PathBuf,
    pub python: PathBuf,
    pub exec_timeout: Duration,
    /// How long a call without its own timeout waits for a busy kernel (see `--wait-timeout`).
    pub wait_timeout: Duration,
    /// How long a call waits for its work before it answers `running` (see `--call-wait`).
    pub call_wait: Duration,
    pub max_kernels: usize,
    /// `None` disables idle reaping.
    pub idle_timeout: Option<Duration>,
    pub max_output_bytes: usize,
    /// Longest side of an image sent to the model, in pixels.
    pub max_image_px: u32,
    pub allowed_hosts: Vec<String>,
    /// PYTHONPATH for kernels and pip.
    pub kernel_pythonpath: Option<String>,
    /// Present when running on AWS Lambda.
    pub lambda: Option<LambdaSettings>,
    /// How kernels and pip are confined.
    pub sandbox: crate::child::Policy,
    /// Which packages install_package accepts and where pip gets them.
    pub packages: PackageSettings,
    /// Disk quota per principal directory; `None`: none.
    pub disk_quota_bytes: Option<u64>,
    /// The S3 mirror of the workspaces; `None`: none.
    pub workspace: Option<crate::workspace::WorkspaceSettings>,
    pub auth: AuthSettings,
    pub audit: AuditSettings,
    /// Kernels one principal may have (at most `max_kernels`).
    pub max_kernels_per_principal: usize,
    /// Concurrent tool calls per principal (`None`: no limit).
    pub max_calls_per_principal: Option<usize>,
    /// Requests per minute per principal (`None`: no limit).
    pub requests_per_minute_per_principal: Option<u32>,
    /// Refused requests per client address per minute; `None`: no limit.
    pub unauthenticated_per_minute_per_address: Option<u32>,
}

/// Who may call, validated.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// API key digests and their principals, from the file and the environment.
    pub api_keys: Vec<crate::auth::KeyEntry>,
    pub oidc: Option<OidcSettings>,
    /// API keys kept in AWS Secrets Manager.
    pub api_keys_secret: Option<SecretSettings>,
    pub insecure_no_auth: bool,
    /// `--public-url` without a trailing slash: the base of the links in 401s and the metadata.
    pub public_url: Option<String>,
}

/// The Secrets Manager key source.
#[derive(Debug, Clone)]
pub struct SecretSettings {
    pub id: String,
    pub cache_for: Duration,
}

/// A validated OpenID Connect configuration.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwksSource,
    pub principal_claim: String,
}

/// Where the issuer's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
}

/// Where audit records go.
#[derive(Debug, Clone, Default)]
pub struct AuditSettings {
    pub file: Option<PathBuf>,
    pub include_code: bool,
    /// Write records to stderr instead of stdout: over the stdio transport stdout is the
    /// protocol stream, and a record there would break the client.
    pub to_stderr: bool,
}

impl Settings {
    /// Whether any authentication source is configured (on Lambda the IAM context is one).
    pub fn has_auth_source(&self) -> bool {
        !self.auth.api_keys.is_empty()
            || self.auth.oidc.is_some()
            || self.auth.api_keys_secret.is_some()
            || self.lambda.is_some()
    }

    /// Whether a request without valid credentials is refused.
    pub fn requires_credentials(&self) -> bool {
        self.has_auth_source() && !self.auth.insecure_no_auth
    }

    /// Whether the unauthenticated `local` principal keeps the working directory itself: only
    /// where no other principal can exist (see `principal`), and not with a uid per principal
    /// (the operator's directory is never handed to another uid).
    pub fn local_owns_working_dir(&self) -> bool {
        !self.has_auth_source() && self.sandbox.per_principal.is_none()
    }
}

/// Checks `--public-url` and drops a trailing slash: an absolute http(s) URL with a host and
/// no query or fragment, whose text is safe inside the quoted `WWW-Authenticate` parameter.
fn public_url(raw: &str) -> Result<String, Error> {
    let bad = || Error::PublicUrl(raw.to_string());
    let uri: axum::http::Uri = raw.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    let clean = raw
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'?' | b'#'));
    if !(scheme_ok && host_ok && clean) {
        return Err(bad());
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// install_package's policy and pip's source.
#[derive(Debug, Clone, Default)]
pub struct PackageSettings {
    /// PEP 503 normalized names; empty allows any name not denied.
    pub allow: Vec<String>,
    /// PEP 503 normalized names.
    pub deny: Vec<String>,
    /// `--index-url` for pip.
    pub index_url: Option<String>,
    /// pip's `--timeout`.
    pub download_timeout: Duration,
    /// Cap on one install's downloads, each file and all together; `None`: no cap.
    pub max_download_bytes: Option<u64>,
}

/// What differs on Lambda.
#[derive(Debug, Clone)]
pub struct LambdaSettings {
    /// Stream responses (true) or buffer them.
    pub streaming: bool,
    /// The function's memory, if Lambda said.
    pub memory_mb: Option<u64>,
    pub tenancy: Tenancy,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--exec-timeout must be between 1 and {MAX_EXEC_TIMEOUT_SECS} seconds, got {0}")]
    ExecTimeout(u64),
    #[error("--wait-timeout must be between 1 and {MAX_EXEC_TIMEOUT_SECS} seconds, got {0}")]
    WaitTimeout(u64),
    #[error("--call-wait must be between 1 and {MAX_EXEC_TIMEOUT_SECS} seconds, got {0}")]
    CallWait(u64),
    #[error("--max-kernels must be at least 1")]
    MaxKernels,
    #[error("--max-output-bytes must be at least 1024, got {0}")]
    MaxOutput(usize),
    #[error(
        "Python interpreter {0} not found\nhint: run `make run` (it creates .venv with ipykernel) or pass --python PATH"
    )]
    Python(PathBuf),
    #[error(transparent)]
    KernelUser(#[from] crate::child::user::Error),
    #[error("--package-index-url must be an http(s) URL without spaces or quotes, got {0:?}")]
    IndexUrl(String),
    #[error(
        "--package-allow/--package-deny: {0:?} is not a package name (letters, digits, `.`, `_`, `-`)"
    )]
    PackageName(String),
    #[error("--package-download-timeout must be between 1 and 300 seconds, got {0}")]
    DownloadTimeout(u64),
    #[error("--kernel-open-files must be at least 64, got {0}")]
    OpenFiles(u64),
    #[error("--kernel-processes must be at least 32, got {0}")]
    Processes(u64),
    #[error(
        "refusing to listen on {0} without authentication: anyone who reaches it could run code\nhint: configure --api-keys-file, JUPYTER_MCP_API_KEYS or --oidc-issuer, bind 127.0.0.1, or pass --insecure-no-auth if the network itself is trusted"
    )]
    NoAuth(IpAddr),
    #[error(
        "--public-url {0:?} is not an absolute http(s) URL without query or fragment\nhint: e.g. --public-url https://jupyter.example.com (the base the clients use, without /mcp)"
    )]
    PublicUrl(String),
    #[error(transparent)]
    Keys(#[from] crate::auth::KeysError),
    #[error("--oidc-issuer needs {0}")]
    OidcIncomplete(&'static str),
    #[error("--oidc-jwks-url and --oidc-jwks-file exclude each other: give one")]
    OidcTwoJwks,
    #[error("--{0} is set but --oidc-issuer is not\nhint: give --oidc-issuer too, or drop --{0}")]
    OidcWithoutIssuer(&'static str),
    #[error("--{0} must be at least 1")]
    PerPrincipalZero(&'static str),
    #[error(
        "--workspace-bucket {0:?} is not an S3 bucket name (3 to 63 lower-case letters, digits, `.` and `-`)"
    )]
    WorkspaceBucket(String),
    #[error(
        "--workspace-prefix {0:?} must be a relative key prefix without `..`, backslashes or control characters"
    )]
    WorkspacePrefix(String),
    #[error("--{0} must be at least 1")]
    WorkspaceZero(&'static str),
    #[error(
        "--workspace-list-cache-ms {0} is over {MAX_WORKSPACE_LIST_CACHE_MS} (a minute)\nhint: it bounds how late a change saved in another environment is seen; keep it short, or 0"
    )]
    WorkspaceListCache(u64),
    #[error("cannot create or open the working directory {path}: {source}")]
    WorkingDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    /// The S3 mirror, when a bucket is given: a valid bucket name, a prefix ending in `/` (or
    /// empty), and sizes of at least 1 MiB.
    fn workspace_settings(&self) -> Result<Option<crate::workspace::WorkspaceSettings>, Error> {
        let Some(bucket) = self.workspace_bucket.clone().filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(Error::WorkspaceBucket(bucket));
        }
        let mut prefix = self.workspace_prefix.trim_start_matches('/').to_string();
        let prefix_ok = prefix.len() <= 512
            && !prefix.chars().any(|c| c.is_control() || c == '\\')
            && !prefix.split('/').any(|seg| seg == ".." || seg == ".");
        if !prefix_ok {
            return Err(Error::WorkspacePrefix(self.workspace_prefix.clone()));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        for (name, value) in [
            ("workspace-max-file-mb", self.workspace_max_file_mb),
            ("workspace-restore-max-mb", self.workspace_restore_max_mb),
            ("workspace-call-budget-mb", self.workspace_call_budget_mb),
        ] {
            if value == 0 {
                return Err(Error::WorkspaceZero(name));
            }
        }
        if self.workspace_list_cache_ms > MAX_WORKSPACE_LIST_CACHE_MS {
            return Err(Error::WorkspaceListCache(self.workspace_list_cache_ms));
        }
        Ok(Some(crate::workspace::WorkspaceSettings {
            bucket,
            prefix,
            max_file_bytes: self.workspace_max_file_mb * MIB,
            restore_max_bytes: self.workspace_restore_max_mb * MIB,
            call_budget_bytes: self.workspace_call_budget_mb * MIB,
            list_cache: Duration::from_millis(self.workspace_list_cache_ms),
            path_style: self.aws_endpoint_url_s3.is_some() || self.aws_endpoint_url.is_some(),
        }))
    }

    /// Validates the options and creates the working directory.
    pub fn resolve(self) -> Result<Settings, Error> {
        let workspace = self.workspace_settings()?;
        if self.exec_timeout == 0 || self.exec_timeout > MAX_EXEC_TIMEOUT_SECS {
            return Err(Error::ExecTimeout(self.exec_timeout));
        }
        if self.wait_timeout == 0 || self.wait_timeout > MAX_EXEC_TIMEOUT_SECS {
            return Err(Error::WaitTimeout(self.wait_timeout));
        }
        if self.call_wait == 0 || self.call_wait > MAX_EXEC_TIMEOUT_SECS {
            return Err(Error::CallWait(self.call_wait));
        }
        let lambda = self.lambda_runtime_api.as_ref().map(|_| LambdaSettings {
            streaming: self.lambda_streaming,
            memory_mb: self.lambda_memory_mb,
            tenancy: self.lambda_tenancy,
        });
        let max_kernels = match (self.max_kernels, &lambda) {
            (Some(n), _) => n,
            (None, Some(l)) => lambda_max_kernels(l.memory_mb, self.kernel_memory_mb),
            (None, None) => DEFAULT_MAX_KERNELS,
        };
        if max_kernels == 0 {
            return Err(Error::MaxKernels);
        }
        let working_dir = self.working_dir.clone().unwrap_or_else(|| {
            PathBuf::from(if lambda.is_some() {
                DEFAULT_LAMBDA_WORKING_DIR
            } else {
                DEFAULT_WORKING_DIR
            })
        });
        if self.max_output_bytes < 1024 {
            return Err(Error::MaxOutput(self.max_output_bytes));
        }
        let wd_err = |source| Error::WorkingDir {
            path: working_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&working_dir).map_err(wd_err)?;
        let working_dir = std::fs::canonicalize(&working_dir).map_err(wd_err)?;
        let oidc = self.oidc()?;
        let mut allowed_hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .collect();
        allowed_hosts.extend(self.allowed_hosts.into_iter().filter(|h| !h.is_empty()));
        let python =
            resolve_program(&self.python).ok_or_else(|| Error::Python(self.python.clone()))?;
        let mut api_keys = Vec::new();
        if let Some(path) = &self.api_keys_file {
            api_keys.extend(crate::auth::read_keys_file(path)?);
        }
        if let Some(inline) = &self.api_keys {
            api_keys.extend(crate::auth::parse_keys_inline(inline)?);
        }
        crate::auth::check_unique(&api_keys)?;
        let auth = AuthSettings {
            api_keys,
            oidc,
            api_keys_secret: self.api_keys_secret_id.clone().map(|id| SecretSettings {
                id,
                cache_for: Duration::from_secs(self.api_keys_cache_seconds),
            }),
            insecure_no_auth: self.insecure_no_auth,
            public_url: self.public_url.as_deref().map(public_url).transpose()?,
        };
        let sources =
            !auth.api_keys.is_empty() || auth.oidc.is_some() || auth.api_keys_secret.is_some();
        if lambda.is_none() && !self.host.is_loopback() && !sources && !self.insecure_no_auth {
            return Err(Error::NoAuth(self.host));
        }
        let max_kernels_per_principal = match self.max_kernels_per_principal {
            Some(0) => return Err(Error::PerPrincipalZero("max-kernels-per-principal")),
            Some(n) => n.min(max_kernels),
            None => max_kernels,
        };
        if self.kernel_open_files < 64 {
            return Err(Error::OpenFiles(self.kernel_open_files));
        }
        if self.kernel_processes < 32 {
            return Err(Error::Processes(self.kernel_processes));
        }
        let packages = package_settings(
            &self.package_allow,
            &self.package_deny,
            self.package_index_url.as_deref(),
            self.package_download_timeout,
            self.package_max_download_mb,
        )?;
        let nonzero = |v: u64| (v > 0).then_some(v);
        let kernel_pythonpath = self.kernel_pythonpath.or_else(|| {
            lambda
                .as_ref()
                .map(|_| DEFAULT_LAMBDA_PYTHONPATH.to_string())
        });
        let uid_range: crate::child::user::Range = self.kernel_uid_range.parse()?;
        let per_principal = if self.kernel_uid_per_principal {
            crate::child::user::check_per_principal(uid_range, &python)?;
            Some(uid_range)
        } else {
            None
        };
        let (ids, ids_note) = match per_principal {
            Some(_) => (None, String::new()),
            None => match crate::child::user::resolve(self.kernel_user.as_deref(), &python)? {
                crate::child::user::Choice::Drop(ids) => (Some(ids), String::new()),
                crate::child::user::Choice::Keep(why) => (None, why),
            },
        };
        let sandbox = crate::child::Policy {
            python: python.clone(),
            pythonpath: kernel_pythonpath.clone(),
            network: self.kernel_network == KernelNetwork::Allow,
            ids,
            per_principal,
            ids_note,
            limits: crate::child::Limits {
                address_space_bytes: nonzero(self.kernel_memory_mb)
                    .map(|mb| mb * ADDRESS_SPACE_PER_MEMORY * MIB),
                cpu_secs: nonzero(self.kernel_cpu_secs),
                file_size_bytes: nonzero(self.kernel_file_size_mb).map(|mb| mb * MIB),
                open_files: Some(self.kernel_open_files),
                processes: Some(self.kernel_processes),
            },
            cgroup_pids_max: self.kernel_processes,
        };
        Ok(Settings {
            transport: self.transport,
            host: self.host,
            port: self.port,
            working_dir,
            python,
            exec_timeout: Duration::from_secs(self.exec_timeout),
            wait_timeout: Duration::from_secs(self.wait_timeout),
            call_wait: Duration::from_secs(self.call_wait),
            max_kernels,
            idle_timeout: (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout)),
            max_output_bytes: self.max_output_bytes,
            max_image_px: self.max_image_px,
            allowed_hosts,
            kernel_pythonpath,
            lambda,
            sandbox,
            packages,
            disk_quota_bytes: (self.disk_quota_mb > 0).then(|| self.disk_quota_mb * MIB),
            workspace,
            auth,
            audit: AuditSettings {
                file: self.audit_log,
                include_code: self.audit_code,
                to_stderr: self.transport == Transport::Stdio,
            },
            max_kernels_per_principal,
            max_calls_per_principal: match self.max_calls_per_principal {
                Some(0) => return Err(Error::PerPrincipalZero("max-calls-per-principal")),
                n => n,
            },
            requests_per_minute_per_principal: match self.requests_per_minute_per_principal {
                Some(0) => {
                    return Err(Error::PerPrincipalZero("requests-per-minute-per-principal"));
                }
                n => n,
            },
            unauthenticated_per_minute_per_address: (self.unauthenticated_per_minute_per_address
                > 0)
            .then_some(self.unauthenticated_per_minute_per_address),
        })
    }

    fn oidc(&self) -> Result<Option<OidcSettings>, Error> {
        let Some(issuer) = self.oidc_issuer.clone() else {
            if self.oidc_audience.is_some() {
                return Err(Error::OidcWithoutIssuer("oidc-audience"));
            }
            if self.oidc_jwks_url.is_some() {
                return Err(Error::OidcWithoutIssuer("oidc-jwks-url"));
            }
            if self.oidc_jwks_file.is_some() {
                return Err(Error::OidcWithoutIssuer("oidc-jwks-file"));
            }
            return Ok(None);
        };
        let audience = self
            .oidc_audience
            .clone()
            .ok_or(Error::OidcIncomplete("--oidc-audience"))?;
        let jwks = match (&self.oidc_jwks_url, &self.oidc_jwks_file) {
            (Some(url), None) => JwksSource::Url(url.clone()),
            (None, Some(path)) => JwksSource::File(path.clone()),
            (Some(_), Some(_)) => return Err(Error::OidcTwoJwks),
            (None, None) => {
                return Err(Error::OidcIncomplete("--oidc-jwks-url or --oidc-jwks-file"));
            }
        };
        Ok(Some(OidcSettings {
            issuer,
            audience,
            jwks,
            principal_claim: self.oidc_principal_claim.clone(),
        }))
    }
}

/// Validates and normalizes the package options.
fn package_settings(
    allow: &[String],
    deny: &[String],
    index_url: Option<&str>,
    timeout_secs: u64,
    max_download_mb: u64,
) -> Result<PackageSettings, Error> {
    let names = |list: &[String]| -> Result<Vec<String>, Error> {
        list.iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(|n| {
                let valid = n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                if valid {
                    Ok(crate::packages::normalize_name(n))
                } else {
                    Err(Error::PackageName(n.to_string()))
                }
            })
            .collect()
    };
    if let Some(url) = index_url {
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        if !scheme_ok
            || url
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '"' | '\''))
        {
            return Err(Error::IndexUrl(url.to_string()));
        }
    }
    if timeout_secs == 0 || timeout_secs > 300 {
        return Err(Error::DownloadTimeout(timeout_secs));
    }
    Ok(PackageSettings {
        allow: names(allow)?,
        deny: names(deny)?,
        index_url: index_url.map(str::to_string),
        download_timeout: Duration::from_secs(timeout_secs),
        max_download_bytes: (max_download_mb > 0).then(|| max_download_mb.saturating_mul(MIB)),
    })
}

/// Kernels that fit in a Lambda function's memory: what is left after the server's own share,
/// divided by the per-kernel budget, and at least one.
fn lambda_max_kernels(function_mb: Option<u64>, kernel_mb: u64) -> usize {
    let Some(total) = function_mb else {
        return 1;
    };
    let fit = total.saturating_sub(LAMBDA_SERVER_RESERVE_MB) / kernel_mb.max(1);
    usize::try_from(fit).unwrap_or(1).max(1)
}

/// An absolute path for the interpreter: the kernel runs in another directory with its own PATH,
/// so a relative path or a bare name would not resolve there. Symlinks are kept (a venv's
/// `python` is one, and resolving it would leave the venv).
fn resolve_program(program: &std::path::Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        let path = std::path::absolute(program).ok()?;
        return path.is_file().then_some(path);
    }
    let search = std::env::var_os("PATH")?;
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_checked_and_lose_a_trailing_slash() {
        assert_eq!(
            public_url("https://jupyter.example.com/").unwrap(),
            "https://jupyter.example.com"
        );
        assert_eq!(
            public_url("http://10.0.0.5:8737/prod").unwrap(),
            "http://10.0.0.5:8737/prod"
        );
        for bad in [
            "jupyter.example.com",
            "/mcp",
            "ftp://example.com",
            "https://example.com/?a=b",
            "https://example.com/#x",
            "https://exa\"mple.com",
            "https://",
            "",
        ] {
            assert!(public_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lambda_kernel_limit_follows_function_memory() {
        assert_eq!(lambda_max_kernels(Some(128), 512), 1);
        assert_eq!(lambda_max_kernels(Some(1024), 512), 1);
        assert_eq!(lambda_max_kernels(Some(2048), 512), 3);
        assert_eq!(lambda_max_kernels(Some(10240), 512), 19);
        assert_eq!(lambda_max_kernels(None, 512), 1);
        assert_eq!(lambda_max_kernels(Some(4096), 0), 3968);
    }

    #[test]
    fn lambda_is_detected_and_changes_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let wd = dir.path().join("nb");
        let config = Config::parse_from([
            "jupyter-mcp-server",
            "--lambda-runtime-api",
            "127.0.0.1:9001",
            "--lambda-memory-mb",
            "2048",
            "--working-dir",
            wd.to_str().unwrap(),
            "--python",
            "/bin/sh",
        ]);
        let settings = config.resolve().unwrap();
        let lambda = settings.lambda.unwrap();
        assert!(lambda.streaming);
        assert_eq!(settings.max_kernels, 3);
    }

    #[test]
    fn package_names_are_normalized_per_pep503() {
        let p = package_settings(
            &["Foo_Bar".into(), " ".into()],
            &["A.B".into()],
            None,
            60,
            200,
        )
        .unwrap();
        assert_eq!(p.allow, vec!["foo-bar"]);
        assert_eq!(p.deny, vec!["a-b"]);
    }

    #[test]
    fn a_bad_package_name_is_refused() {
        assert!(matches!(
            package_settings(&["x;y".into()], &[], None, 60, 200),
            Err(Error::PackageName(_))
        ));
    }

    #[test]
    fn an_index_url_must_be_http() {
        for bad in ["file:///etc", "ftp://x", "https://x y", "pypi.org"] {
            assert!(
                matches!(
                    package_settings(&[], &[], Some(bad), 60, 200),
                    Err(Error::IndexUrl(_))
                ),
                "{bad}"
            );
        }
        assert!(package_settings(&[], &[], Some("https://pypi.org/simple"), 60, 200).is_ok());
    }

    #[test]
    fn a_zero_download_timeout_is_refused() {
        assert!(matches!(
            package_settings(&[], &[], None, 0, 200),
            Err(Error::DownloadTimeout(0))
        ));
    }

    #[test]
    fn the_download_cap_is_in_bytes_and_zero_lifts_it() {
        let p = package_settings(&[], &[], None, 60, 3).unwrap();
        assert_eq!(p.max_download_bytes, Some(3 * 1024 * 1024));
        let p = package_settings(&[], &[], None, 60, 0).unwrap();
        assert_eq!(p.max_download_bytes, None);
        let config = Config::parse_from(["jupyter-mcp-server"]);
        assert_eq!(config.package_max_download_mb, 200);
    }

    #[test]
    fn without_the_runtime_api_it_is_local() {
        let dir = tempfile::tempdir().unwrap();
        let wd = dir.path().join("nb");
        let config = Config::parse_from([
            "jupyter-mcp-server",
            "--working-dir",
            wd.to_str().unwrap(),
            "--python",
            "/bin/sh",
        ]);
        let settings = config.resolve().unwrap();
        assert!(settings.lambda.is_none());
        assert_eq!(settings.max_kernels, 8);
    }
}
