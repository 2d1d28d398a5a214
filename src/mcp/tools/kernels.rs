//! Kernel lifecycle tools: status, restart, interrupt, list, shut down.

use crate::mcp::args::Parameters;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mcp::JupyterMcp;
use crate::mcp::error::{respond, structured};
use crate::mcp::wait::{Waited, bounded};
use crate::pool::{KernelState, Status};
use crate::workspace::history::{Record, now_secs};

/// Arguments of the tools that act on one kernel.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelArgs {
    /// Kernel name (default "default"). Each name is a separate Python process with its own state.
    pub kernel: Option<String>,
}

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
    pub state_lost: Option<crate::mcp::continuity::StateLost>,
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

impl JupyterMcp {
    /// How this server authenticates, in one line.
    fn authentication(&self) -> String {
        let s = &self.app.settings;
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
        state_lost: Option<crate::mcp::continuity::StateLost>,
    ) -> KernelStatus {
        let s = &self.app.settings;
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
                server: self.app.server_hardening.clone(),
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

impl JupyterMcp {
    /// What is not in force: authentication, then each sandbox layer that did not apply, the
    /// kernel's own spawn-time report replacing the start-up probe's line of the same name.
    fn not_applied(&self, info: Option<&crate::kernel::KernelInfo>) -> Vec<String> {
        let mut out = Vec::new();
        if !self.app.settings.requires_credentials() {
            out.push("authentication (callers are not identified)".into());
        }
        let kernel = info.map(|i| i.not_applied.as_slice()).unwrap_or_default();
        let probe = self
            .app
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

#[tool_router(router = kernel_tools, vis = "pub(crate)")]
impl JupyterMcp {
    /// Report a kernel's state (not_started, starting, idle, busy, dead), execution count,
    /// uptime, Python and ipykernel versions, memory use and the limits in force. Does not start
    /// a kernel.
    #[tool(
        output_schema = schema_for_output::<KernelStatus>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_kernel_status(
        &self,
        Parameters(KernelArgs { kernel }): Parameters<KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        respond((|| {
            let key = self.key(&ctx, kernel.as_deref())?;
            let lost = crate::mcp::continuity::state_lost(&ctx);
            structured(
                vec![],
                &self.kernel_status_lost(self.app.pool.status(&key), &key.principal, lost),
            )
        })())
    }

    /// Restart a kernel: kills its Python process (every variable is lost, a running call ends)
    /// and starts a fresh one.
    #[tool(
        output_schema = schema_for_output::<KernelStatus>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn restart_kernel(
        &self,
        Parameters(KernelArgs { kernel }): Parameters<KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let key = self.key(&ctx, kernel.as_deref())?;
            // The kill is at once; the wait for the new kernel's start has a deadline (a start
            // abandoned here frees its slot, and the next call starts the kernel).
            let waited = Waited::Kernel {
                tool: "restart_kernel",
                kernel: &key.name,
            };
            let restarted = self.app.pool.restart(&key);
            let lease = bounded(&ctx, self.app.settings.wait_timeout, waited, restarted).await??;
            let generation = lease.kernel.id().to_string();
            drop(lease);
            let start = Record::Start {
                generation,
                at: now_secs(),
            };
            crate::mcp::continuity::record(&ctx, &key.name, start);
            structured(
                vec![],
                &self.kernel_status(self.app.pool.status(&key), &key.principal),
            )
        };
        respond(result.await)
    }

    /// Interrupt the code running on a kernel (like Ctrl-C), keeping its state. The running
    /// execute_code call returns with what it printed so far.
    #[tool(
        output_schema = schema_for_output::<KernelAction>(),
        annotations(destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn interrupt_kernel(
        &self,
        Parameters(KernelArgs { kernel }): Parameters<KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = async {
            let key = self.key(&ctx, kernel.as_deref())?;
            self.app.pool.interrupt(&key).await?;
            structured(
                vec![],
                &KernelAction {
                    kernel: key.name,
                    action: "interrupted".into(),
                },
            )
        };
        respond(result.await)
    }

    /// Shut a kernel down and free its place under the kernel limit (its state is lost).
    #[tool(
        output_schema = schema_for_output::<KernelAction>(),
        annotations(destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn shutdown_kernel(
        &self,
        Parameters(KernelArgs { kernel }): Parameters<KernelArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        respond((|| {
            let key = self.key(&ctx, kernel.as_deref())?;
            let generation = self.app.pool.status(&key).info.map(|i| i.id);
            self.app.pool.shutdown_kernel(&key)?;
            crate::mcp::continuity::record(&ctx, &key.name, Record::Shutdown { generation });
            structured(
                vec![],
                &KernelAction {
                    kernel: key.name,
                    action: "shut_down".into(),
                },
            )
        })())
    }

    /// List your kernels with their state.
    #[tool(
        output_schema = schema_for_output::<KernelList>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_kernels(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        respond((|| {
            let principal = self.app.principal(&ctx)?;
            let kernels = self
                .app
                .pool
                .list(principal.name())
                .into_iter()
                .map(|s| self.kernel_status(s, principal.name()))
                .collect();
            structured(
                vec![],
                &KernelList {
                    kernels,
                    max_kernels: self.app.settings.max_kernels_per_principal,
                },
            )
        })())
    }
}
