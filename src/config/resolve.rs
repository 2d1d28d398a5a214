//! `Config::resolve`: the raw options become `Settings`, one named step at a time, in the order
//! the checks have always run (with several bad options, the first one here is reported).
//!
//! Each concern's values come from that concern's constructor (`WorkspaceSettings`,
//! `OidcSettings`, `auth::api_keys`, `child::Limits`, `PackageSettings`, `child::Policy`); this
//! file only picks the options each one takes, and checks what belongs to the server as a whole:
//! the timeouts, the kernel count, the working directory, the interpreter, and that a server
//! reachable from the network has some authentication.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    Config, DEFAULT_EXEC_TIMEOUT_SECS, DEFAULT_LAMBDA_EXEC_TIMEOUT_SECS, DEFAULT_LAMBDA_PYTHONPATH,
    DEFAULT_LAMBDA_WORKING_DIR, DEFAULT_MAX_KERNELS, DEFAULT_WORKING_DIR, KernelNetwork,
    LAMBDA_SERVER_RESERVE_MB, LambdaSettings, MAX_EXEC_TIMEOUT_SECS, Settings, Transport,
};
use crate::audit::AuditSettings;
use crate::auth::{self, AuthSettings, OidcOptions, OidcSettings, SecretSettings};
use crate::child::{self, LimitOptions, SandboxOptions};
use crate::packages::{PackageOptions, PackageSettings};
use crate::workspace::{WorkspaceOptions, WorkspaceSettings};

const MIB: u64 = 1024 * 1024;

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
    #[error(
        "refusing to listen on {0} without authentication: anyone who reaches it could run code\nhint: configure --api-keys-file, JUPYTER_MCP_API_KEYS or --oidc-issuer, bind 127.0.0.1, or pass --insecure-no-auth if the network itself is trusted"
    )]
    NoAuth(IpAddr),
    #[error("--{0} must be at least 1")]
    PerPrincipalZero(&'static str),
    #[error("cannot create or open the working directory {path}: {source}")]
    WorkingDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] auth::SettingsError),
    #[error(transparent)]
    Sandbox(#[from] child::SettingsError),
    #[error(transparent)]
    Packages(#[from] crate::packages::SettingsError),
    #[error(transparent)]
    Workspace(#[from] crate::workspace::SettingsError),
}

impl Config {
    /// Validates the options and creates the working directory.
    pub fn resolve(self) -> Result<Settings, Error> {
        let workspace = WorkspaceSettings::from_options(&self.workspace_options())?;
        self.check_timeouts()?;
        let lambda = self.lambda();
        let max_kernels = self.max_kernels(lambda.as_ref())?;
        let working_dir = self.working_dir(lambda.is_some())?;
        let oidc = OidcSettings::from_options(self.oidc_options())?;
        let python =
            resolve_program(&self.python).ok_or_else(|| Error::Python(self.python.clone()))?;
        let auth = self.auth(oidc, lambda.is_some())?;
        if lambda.is_none()
            && !self.host.is_loopback()
            && !auth.has_source()
            && !auth.insecure_no_auth
        {
            return Err(Error::NoAuth(self.host));
        }
        let max_kernels_per_principal = match self.max_kernels_per_principal {
            Some(0) => return Err(Error::PerPrincipalZero("max-kernels-per-principal")),
            Some(n) => n.min(max_kernels),
            None => max_kernels,
        };
        let limits = child::Limits::from_options(&self.limit_options())?;
        let packages = PackageSettings::from_options(self.package_options())?;
        let kernel_pythonpath = self.kernel_pythonpath.clone().or_else(|| {
            lambda
                .as_ref()
                .map(|_| DEFAULT_LAMBDA_PYTHONPATH.to_string())
        });
        let sandbox = child::Policy::from_options(
            self.sandbox_options(python.clone(), kernel_pythonpath.clone()),
            limits,
            self.kernel_processes,
        )?;
        let max_calls_per_principal =
            at_least_one(self.max_calls_per_principal, "max-calls-per-principal")?;
        let requests_per_minute_per_principal = at_least_one(
            self.requests_per_minute_per_principal,
            "requests-per-minute-per-principal",
        )?;
        Ok(Settings {
            transport: self.transport,
            host: self.host,
            port: self.port,
            working_dir,
            python,
            exec_timeout: Duration::from_secs(self.exec_timeout_secs()),
            wait_timeout: Duration::from_secs(self.wait_timeout),
            call_wait: Duration::from_secs(self.call_wait),
            max_kernels,
            idle_timeout: (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout)),
            max_output_bytes: self.max_output_bytes,
            max_image_px: self.max_image_px,
            allowed_hosts: allowed_hosts(self.allowed_hosts),
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
            max_calls_per_principal,
            requests_per_minute_per_principal,
            unauthenticated_per_minute_per_address: (self.unauthenticated_per_minute_per_address
                > 0)
            .then_some(self.unauthenticated_per_minute_per_address),
        })
    }

    /// `--exec-timeout`, or its default here (locally, or on Lambda).
    fn exec_timeout_secs(&self) -> u64 {
        self.exec_timeout
            .unwrap_or(if self.lambda_runtime_api.is_some() {
                DEFAULT_LAMBDA_EXEC_TIMEOUT_SECS
            } else {
                DEFAULT_EXEC_TIMEOUT_SECS
            })
    }

    /// `--exec-timeout` and `--wait-timeout`: from 1 s to `MAX_EXEC_TIMEOUT_SECS`.
    fn check_timeouts(&self) -> Result<(), Error> {
        let exec_timeout = self.exec_timeout_secs();
        if exec_timeout == 0 || exec_timeout > MAX_EXEC_TIMEOUT_SECS {
            return Err(Error::ExecTimeout(exec_timeout));
        }
        if self.wait_timeout == 0 || self.wait_timeout > MAX_EXEC_TIMEOUT_SECS {
            return Err(Error::WaitTimeout(self.wait_timeout));
        }
        if self.call_wait == 0 || self.call_wait > MAX_EXEC_TIMEOUT_SECS {
            return Err(Error::CallWait(self.call_wait));
        }
        Ok(())
    }

    /// On Lambda (the runtime API is set): what differs there.
    fn lambda(&self) -> Option<LambdaSettings> {
        self.lambda_runtime_api.as_ref().map(|_| LambdaSettings {
            streaming: self.lambda_streaming,
            memory_mb: self.lambda_memory_mb,
            tenancy: self.lambda_tenancy,
        })
    }

    /// `--max-kernels`, or its default: 8 locally, what fits in the function's memory on Lambda.
    fn max_kernels(&self, lambda: Option<&LambdaSettings>) -> Result<usize, Error> {
        let max_kernels = match (self.max_kernels, lambda) {
            (Some(n), _) => n,
            (None, Some(l)) => lambda_max_kernels(l.memory_mb, self.kernel_memory_mb),
            (None, None) => DEFAULT_MAX_KERNELS,
        };
        if max_kernels == 0 {
            return Err(Error::MaxKernels);
        }
        Ok(max_kernels)
    }

    /// Checks `--max-output-bytes`, then creates the working directory (or its default, under
    /// /tmp on Lambda) and returns its canonical path.
    fn working_dir(&self, on_lambda: bool) -> Result<PathBuf, Error> {
        if self.max_output_bytes < 1024 {
            return Err(Error::MaxOutput(self.max_output_bytes));
        }
        let working_dir = self.working_dir.clone().unwrap_or_else(|| {
            PathBuf::from(if on_lambda {
                DEFAULT_LAMBDA_WORKING_DIR
            } else {
                DEFAULT_WORKING_DIR
            })
        });
        let wd_err = |source| Error::WorkingDir {
            path: working_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&working_dir).map_err(wd_err)?;
        std::fs::canonicalize(&working_dir).map_err(wd_err)
    }

    /// Who may call: the API keys (file, then inline), the secret, `--public-url`, and the
    /// OIDC issuer checked before the interpreter was looked for.
    fn auth(&self, oidc: Option<OidcSettings>, on_lambda: bool) -> Result<AuthSettings, Error> {
        let api_keys = auth::api_keys(self.api_keys_file.as_deref(), self.api_keys.as_deref())?;
        Ok(AuthSettings {
            api_keys,
            oidc,
            api_keys_secret: SecretSettings::from_options(
                self.api_keys_secret_id.clone(),
                self.api_keys_cache_seconds,
            ),
            insecure_no_auth: self.insecure_no_auth,
            public_url: self
                .public_url
                .as_deref()
                .map(auth::public_url)
                .transpose()?,
            on_lambda,
        })
    }

    fn workspace_options(&self) -> WorkspaceOptions<'_> {
        WorkspaceOptions {
            bucket: self.workspace_bucket.as_deref(),
            prefix: &self.workspace_prefix,
            max_file_mb: self.workspace_max_file_mb,
            restore_max_mb: self.workspace_restore_max_mb,
            call_budget_mb: self.workspace_call_budget_mb,
            list_cache_ms: self.workspace_list_cache_ms,
            endpoint_override: self.aws_endpoint_url_s3.is_some()
                || self.aws_endpoint_url.is_some(),
        }
    }

    fn oidc_options(&self) -> OidcOptions {
        OidcOptions {
            issuer: self.oidc_issuer.clone(),
            audience: self.oidc_audience.clone(),
            jwks_url: self.oidc_jwks_url.clone(),
            jwks_file: self.oidc_jwks_file.clone(),
            principal_claim: self.oidc_principal_claim.clone(),
        }
    }

    fn limit_options(&self) -> LimitOptions {
        LimitOptions {
            memory_mb: self.kernel_memory_mb,
            cpu_secs: self.kernel_cpu_secs,
            file_size_mb: self.kernel_file_size_mb,
            open_files: self.kernel_open_files,
            processes: self.kernel_processes,
        }
    }

    fn package_options(&self) -> PackageOptions<'_> {
        PackageOptions {
            allow: &self.package_allow,
            deny: &self.package_deny,
            index_url: self.package_index_url.as_deref(),
            download_timeout_secs: self.package_download_timeout,
            max_download_mb: self.package_max_download_mb,
        }
    }

    fn sandbox_options(&self, python: PathBuf, pythonpath: Option<String>) -> SandboxOptions<'_> {
        SandboxOptions {
            python,
            pythonpath,
            network: self.kernel_network == KernelNetwork::Allow,
            user: self.kernel_user.as_deref(),
            uid_per_principal: self.kernel_uid_per_principal,
            uid_range: &self.kernel_uid_range,
        }
    }
}

/// A per-principal limit that, when given, must be at least 1 (`None`: no limit).
fn at_least_one<T: Default + PartialEq>(
    value: Option<T>,
    flag: &'static str,
) -> Result<Option<T>, Error> {
    match value {
        Some(n) if n == T::default() => Err(Error::PerPrincipalZero(flag)),
        n => Ok(n),
    }
}

/// The Host header values accepted: the loopback names, then `--allowed-hosts` (blanks dropped).
fn allowed_hosts(extra: Vec<String>) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .collect();
    hosts.extend(extra.into_iter().filter(|h| !h.is_empty()));
    hosts
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
    use clap::Parser;

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

    /// The cap itself is checked in `packages`; here, its default.
    #[test]
    fn the_download_cap_defaults_to_200_mib() {
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
