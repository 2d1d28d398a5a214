//! Command-line and environment configuration: the one place that turns flags and environment
//! into each module's own settings.
//!
//! One clap `Config` holds the raw options (each also settable by an environment variable, whose
//! name is a documented const in `env`); `Config::resolve` (`resolve.rs`) checks them into the
//! `Settings` the rest of the server uses (`settings.rs`). Each concern checks its own values
//! with its own constructor and error (`audit`, `auth`, `packages`, `workspace`, `child`), which
//! `config::Error` wraps; none of them imports `config`. Nothing else in the crate reads the
//! environment for configuration.

mod env;
mod resolve;
mod settings;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

pub use env::*;
pub use resolve::Error;
pub use settings::{LambdaSettings, Settings};

// The settings each concern owns, at the paths they had when `config` defined them.
pub use crate::audit::AuditSettings;
pub use crate::auth::{AuthSettings, JwksSource, OidcSettings, SecretSettings};
pub use crate::packages::PackageSettings;
pub use crate::workspace::MAX_WORKSPACE_LIST_CACHE_MS;

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
/// Default execution time limit locally: an hour. A call no longer has to finish inside the
/// client's own timeout: past `--call-wait` it answers `running` and the work goes on.
pub const DEFAULT_EXEC_TIMEOUT_SECS: u64 = 3600;
/// Default execution time limit on Lambda: 15 minutes, the longest a function may be configured
/// to run (an execution advances only while an invocation runs in its environment).
pub const DEFAULT_LAMBDA_EXEC_TIMEOUT_SECS: u64 = 900;
/// Default wait for a busy kernel by the calls that have no timeout of their own: long enough
/// for a short cell to finish, well inside the 60 s most MCP clients wait for a call.
pub const DEFAULT_WAIT_TIMEOUT_SECS: u64 = 30;
/// Default wait of a call for its own work before it answers `running` (see `--call-wait`).
pub const DEFAULT_CALL_WAIT_SECS: u64 = 40;
/// Kernel limit locally when none is configured.
const DEFAULT_MAX_KERNELS: usize = 8;
/// Memory Lambda gives the server itself before kernels are counted, in MiB.
const LAMBDA_SERVER_RESERVE_MB: u64 = 128;
/// Longest timeout a single call may ask for.
pub const MAX_EXEC_TIMEOUT_SECS: u64 = 3600;
/// How long pip may run for one `install_package`.
pub const PIP_TIMEOUT: Duration = Duration::from_secs(300);

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
    /// Work still running after --call-wait goes on in the background (the call answers
    /// `running`), so this no longer has to fit the client's timeout. [default: 3600; on Lambda
    /// 900, the longest a function runs]
    #[arg(long, env = ENV_EXEC_TIMEOUT)]
    pub exec_timeout: Option<u64>,

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
