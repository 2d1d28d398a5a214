//! Command-line and environment configuration.
//!
//! One clap `Config` holds the raw options (each also settable by an environment variable, whose
//! name is a documented const below); `Config::resolve` validates them into the `Settings` the rest
//! of the server uses. Nothing else in the crate reads the environment for configuration.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

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
/// Maximum number of live kernels.
pub const ENV_MAX_KERNELS: &str = "JUPYTER_MCP_MAX_KERNELS";
/// Seconds of inactivity after which a kernel is shut down.
pub const ENV_IDLE_TIMEOUT: &str = "JUPYTER_MCP_IDLE_TIMEOUT";
/// Cap on the output bytes one call returns.
pub const ENV_MAX_OUTPUT_BYTES: &str = "JUPYTER_MCP_MAX_OUTPUT_BYTES";
/// Extra Host header values accepted (comma separated), e.g. a public hostname.
pub const ENV_ALLOWED_HOSTS: &str = "JUPYTER_MCP_ALLOWED_HOSTS";

/// Longest timeout a single call may ask for.
pub const MAX_EXEC_TIMEOUT_SECS: u64 = 3600;
/// How long pip may run for one `install_package`.
pub const PIP_TIMEOUT: Duration = Duration::from_secs(300);

/// An MCP server that gives LLM agents a real Jupyter (ipykernel) kernel.
///
/// Serves MCP over Streamable HTTP at http://HOST:PORT/mcp.
#[derive(Debug, Parser)]
#[command(name = "jupyter-mcp-server", version, about, long_about = None)]
pub struct Config {
    /// Port to listen on (0 picks a free port and logs it).
    #[arg(long, env = ENV_PORT, default_value_t = 8888)]
    pub port: u16,

    /// Address to bind. Keep the loopback default unless the port is protected otherwise:
    /// anyone who can reach it can run code.
    #[arg(long, env = ENV_HOST, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Directory for notebooks, installed packages and the kernels' working directory.
    /// Created if missing.
    #[arg(long, env = ENV_WORKING_DIR, default_value = "./notebooks")]
    pub working_dir: PathBuf,

    /// Python interpreter with ipykernel installed (default: `python3` on PATH).
    #[arg(long, env = ENV_PYTHON, default_value = "python3")]
    pub python: PathBuf,

    /// Default time limit for one execution, in seconds (a call may ask for less or more,
    /// up to 3600). On expiry the kernel is interrupted, then restarted if it does not respond.
    #[arg(long, env = ENV_EXEC_TIMEOUT, default_value_t = 120)]
    pub exec_timeout: u64,

    /// Maximum number of live kernels (the warm spare not counted).
    #[arg(long, env = ENV_MAX_KERNELS, default_value_t = 8)]
    pub max_kernels: usize,

    /// Shut a kernel down after this many seconds without a call (0 never).
    #[arg(long, env = ENV_IDLE_TIMEOUT, default_value_t = 1800)]
    pub idle_timeout: u64,

    /// Cap on the output bytes (text and images) that one call returns; above it the head and
    /// the tail are kept with a note of what was cut.
    #[arg(long, env = ENV_MAX_OUTPUT_BYTES, default_value_t = 131_072)]
    pub max_output_bytes: usize,

    /// Extra Host header values to accept, comma separated (loopback names are always accepted).
    #[arg(long, env = ENV_ALLOWED_HOSTS, value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: IpAddr,
    pub port: u16,
    /// Absolute, existing directory.
    pub working_dir: PathBuf,
    pub python: PathBuf,
    pub exec_timeout: Duration,
    pub max_kernels: usize,
    /// `None` disables idle reaping.
    pub idle_timeout: Option<Duration>,
    pub max_output_bytes: usize,
    pub allowed_hosts: Vec<String>,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--exec-timeout must be between 1 and {MAX_EXEC_TIMEOUT_SECS} seconds, got {0}")]
    ExecTimeout(u64),
    #[error("--max-kernels must be at least 1")]
    MaxKernels,
    #[error("--max-output-bytes must be at least 1024, got {0}")]
    MaxOutput(usize),
    #[error(
        "Python interpreter {0} not found\nhint: run `make run` (it creates .venv with ipykernel) or pass --python PATH"
    )]
    Python(PathBuf),
    #[error("cannot create or open the working directory {path}: {source}")]
    WorkingDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    /// Validates the options and creates the working directory.
    pub fn resolve(self) -> Result<Settings, Error> {
        if self.exec_timeout == 0 || self.exec_timeout > MAX_EXEC_TIMEOUT_SECS {
            return Err(Error::ExecTimeout(self.exec_timeout));
        }
        if self.max_kernels == 0 {
            return Err(Error::MaxKernels);
        }
        if self.max_output_bytes < 1024 {
            return Err(Error::MaxOutput(self.max_output_bytes));
        }
        let wd_err = |source| Error::WorkingDir {
            path: self.working_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.working_dir).map_err(wd_err)?;
        let working_dir = std::fs::canonicalize(&self.working_dir).map_err(wd_err)?;
        let mut allowed_hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .collect();
        allowed_hosts.extend(self.allowed_hosts.into_iter().filter(|h| !h.is_empty()));
        let python =
            resolve_program(&self.python).ok_or_else(|| Error::Python(self.python.clone()))?;
        Ok(Settings {
            host: self.host,
            port: self.port,
            working_dir,
            python,
            exec_timeout: Duration::from_secs(self.exec_timeout),
            max_kernels: self.max_kernels,
            idle_timeout: (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout)),
            max_output_bytes: self.max_output_bytes,
            allowed_hosts,
        })
    }
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
