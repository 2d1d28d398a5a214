//! Kernel lifecycle operations and the kernel status report: status, restart, interrupt,
//! shut down, list.

use schemars::JsonSchema;
use serde::Serialize;

use super::wait::{Waited, bounded};
use super::{Call, Error, Service};
use crate::pool::{KernelState, Status};
use crate::workspace::history::{Record, now_secs};

/// The limits a kernel runs under.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Limits {
    /// Default time limit of one execution, in seconds.
    pub exec_timeout_secs: u64,
    /// Output bytes one call returns at most.
    pub max_output_bytes: usize,
    /// Live kernels allowed.
    pub max_kernels: usize,
    /// Idle kernels are shut down after this many seconds (absent: never).
    pub idle_timeout_secs: Option<u64>,
}

/// State of one kernel.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KernelStatus {
    /// Kernel name.
    pub kernel: String,
    /// not_started, starting, idle, busy or dead.
    pub state: KernelState,
    /// Number of the last stored execution (0 for a fresh kernel).
    pub execution_count: Option<u64>,
    /// Seconds since this kernel process started; a restart resets it.
    pub uptime_secs: Option<f64>,
    pub python_version: Option<String>,
    pub ipykernel_version: Option<String>,
    /// Resident memory of the kernel process.
    pub memory_rss_bytes: Option<u64>,
    pub limits: Limits,
    pub security: Security,
    /// Present when this kernel has no live state here but its history (with
    /// --workspace-bucket) shows cells or installs that ran in another execution environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_lost: Option<super::StateLost>,
}

/// Which protections are in force, as verified, and which this version does not have.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Security {
    /// Who you are to this server (your kernels, notebooks and packages are keyed by it).
    pub principal: String,
    /// How callers are authenticated, or that they are not.
    pub authentication: String,
    /// Applied to the server process (e.g. non-dumpable).
    pub server: Vec<String>,
    /// Verified on the kernel process from /proc (empty until a kernel runs): no_new_privs,
    /// capabilities, seccomp, uid, non-dumpable, cgroup, rlimits. Landlock, which /proc does
    /// not show, is listed as set at spawn.
    pub kernel: Vec<String>,
    /// Protections not in force here, each with the reason, so nobody assumes them.
    pub not_applied: Vec<String>,
}

/// Every kernel of the caller.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KernelList {
    pub kernels: Vec<KernelStatus>,
    pub max_kernels: usize,
}

/// Result of interrupt_kernel / shutdown_kernel.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KernelAction {
    pub kernel: String,
    /// What was done: interrupted or shut_down.
    pub action: String,
}

impl Service {
    /// How this server authenticates, in one line.
    fn authentication(&self) -> String {
        let s = &self.settings;
        let mut sources = Vec::new();
        if !s.auth.api_keys.is_empty() {
            sources.push("API keys".to_string());
        }
        if s.auth.api_keys_secret.is_some() {
            sources.push("API keys from AWS Secrets Manager".to_string());
        }
        if let Some(o) = &s.auth.oidc {
            sources.push(format!("OpenID Connect JWTs from {}", o.issuer));
        }
        if s.lambda.is_some() {
            sources.push("AWS IAM (Lambda request context)".to_string());
        }
        match (sources.is_empty(), s.auth.insecure_no_auth) {
            (true, false) => "none: loopback only, every caller is the principal `local`".into(),
            (true, true) => {
                "DISABLED by --insecure-no-auth: every caller is the principal `local`".into()
            }
            (false, false) => format!("required: {}", sources.join(", ")),
            (false, true) => format!(
                "optional (--insecure-no-auth: callers without credentials are `local`): {}",
                sources.join(", ")
            ),
        }
    }

    fn kernel_status(&self, status: Status, principal: &str) -> KernelStatus {
        self.kernel_status_lost(status, principal, None)
    }

    fn kernel_status_lost(
        &self,
        status: Status,
        principal: &str,
        state_lost: Option<super::StateLost>,
    ) -> KernelStatus {
        let s = &self.settings;
        let info = status.info.as_ref();
        KernelStatus {
            kernel: status.name,
            state: status.state,
            execution_count: info.map(|i| i.execution_count),
            uptime_secs: info.map(|i| (i.uptime.as_secs_f64() * 10.0).round() / 10.0),
            python_version: info.map(|i| i.python_version.clone()),
            ipykernel_version: info.map(|i| i.ipykernel_version.clone()),
            memory_rss_bytes: info.and_then(|i| i.memory_rss_bytes),
            limits: Limits {
                exec_timeout_secs: s.exec_timeout.as_secs(),
                max_output_bytes: s.max_output_bytes,
                max_kernels: s.max_kernels,
                idle_timeout_secs: s.idle_timeout.map(|d| d.as_secs()),
            },
            security: Security {
                principal: principal.to_string(),
                authentication: self.authentication(),
                server: self.server_hardening.clone(),
                kernel: info.map(kernel_layers).unwrap_or_default(),
                not_applied: self.not_applied(info),
            },
            state_lost,
        }
    }
}

/// What /proc shows of the kernel, plus Landlock when its ruleset was installed at spawn.
fn kernel_layers(info: &crate::kernel::KernelInfo) -> Vec<String> {
    let mut out = info.restrictions.clone();
    let landlock_missing = info
        .not_applied
        .iter()
        .any(|l| l.name == "landlock" && !l.applied);
    if !out.is_empty() && !landlock_missing {
        out.push("landlock (ruleset installed at spawn; /proc cannot show it)".into());
    }
    out
}

impl Service {
    /// What is not in force: authentication, then each sandbox layer that did not apply, the
    /// kernel's own spawn-time report replacing the start-up probe's line of the same name.
    fn not_applied(&self, info: Option<&crate::kernel::KernelInfo>) -> Vec<String> {
        let mut out = Vec::new();
        if !self.settings.requires_credentials() {
            out.push("authentication (callers are not identified)".into());
        }
        let kernel = info.map(|i| i.not_applied.as_slice()).unwrap_or_default();
        let probe = self
            .sandbox_layers
            .iter()
            .filter(|l| !kernel.iter().any(|k| k.name == l.name));
        out.extend(
            probe
                .chain(kernel)
                .filter(|l| !l.applied)
                .map(|l| format!("{}: {}", l.name, l.detail)),
        );
        out
    }
}

impl Service {
    /// A kernel's status (never starts one), with the state check's finding.
    pub fn kernel_status_of(
        &self,
        call: &Call,
        kernel: Option<&str>,
    ) -> Result<KernelStatus, Error> {
        let key = self.key(call, kernel)?;
        let lost = call.state_lost();
        Ok(self.kernel_status_lost(self.pool.status(&key), &key.principal, lost))
    }

    /// Kills a kernel and starts a fresh one; the wait for the new kernel's start has a
    /// deadline (a start abandoned here frees its slot, and the next call starts the kernel).
    pub async fn restart(&self, call: &Call, kernel: Option<&str>) -> Result<KernelStatus, Error> {
        let key = self.key(call, kernel)?;
        let waited = Waited::Kernel {
            tool: "restart_kernel",
            kernel: &key.name,
        };
        let restarted = self.pool.restart(&key);
        let lease = bounded(call, self.settings.wait_timeout, waited, restarted).await??;
        let generation = lease.kernel.id().to_string();
        drop(lease);
        let start = Record::Start {
            generation,
            at: now_secs(),
        };
        call.record(&key.name, start);
        Ok(self.kernel_status(self.pool.status(&key), &key.principal))
    }

    /// Interrupts the code running on a kernel, keeping its state.
    pub async fn interrupt(
        &self,
        call: &Call,
        kernel: Option<&str>,
    ) -> Result<KernelAction, Error> {
        let key = self.key(call, kernel)?;
        self.pool.interrupt(&key).await?;
        Ok(KernelAction {
            kernel: key.name,
            action: "interrupted".into(),
        })
    }

    /// Shuts a kernel down, freeing its place under the kernel limit.
    pub fn shutdown(&self, call: &Call, kernel: Option<&str>) -> Result<KernelAction, Error> {
        let key = self.key(call, kernel)?;
        let generation = self.pool.status(&key).info.map(|i| i.id);
        self.pool.shutdown_kernel(&key)?;
        call.record(&key.name, Record::Shutdown { generation });
        Ok(KernelAction {
            kernel: key.name,
            action: "shut_down".into(),
        })
    }

    /// Every kernel of the caller.
    pub fn list_kernels(&self, call: &Call) -> KernelList {
        let principal = call.principal.name();
        let kernels = self
            .pool
            .list(principal)
            .into_iter()
            .map(|s| self.kernel_status(s, principal))
            .collect();
        KernelList {
            kernels,
            max_kernels: self.settings.max_kernels_per_principal,
        }
    }
}
