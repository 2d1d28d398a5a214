//! `Settings`: the checked configuration `Config::resolve` returns, what the server is built
//! from. The values of each concern are that concern's own types (`AuthSettings`,
//! `PackageSettings`, `child::Policy`, ...); the fields here are the server's as a whole.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Tenancy, Transport};
use crate::audit::AuditSettings;
use crate::auth::AuthSettings;
use crate::packages::PackageSettings;

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
    /// Present when running on AWS Lambda (and then `auth.on_lambda` is set).
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

/// What differs on Lambda.
#[derive(Debug, Clone)]
pub struct LambdaSettings {
    /// Stream responses (true) or buffer them.
    pub streaming: bool,
    /// The function's memory, if Lambda said.
    pub memory_mb: Option<u64>,
    pub tenancy: Tenancy,
}

impl Settings {
    /// Whether any authentication source is configured (on Lambda the IAM context is one).
    pub fn has_auth_source(&self) -> bool {
        self.auth.has_source()
    }

    /// Whether a request without valid credentials is refused.
    pub fn requires_credentials(&self) -> bool {
        self.auth.requires_credentials()
    }

    /// Whether the unauthenticated `local` principal keeps the working directory itself: only
    /// where no other principal can exist (see `principal`), and not with a uid per principal
    /// (the operator's directory is never handed to another uid).
    pub fn local_owns_working_dir(&self) -> bool {
        !self.has_auth_source() && self.sandbox.per_principal.is_none()
    }
}
