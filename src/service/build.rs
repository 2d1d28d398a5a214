//! Building the service: the kernels' runtime root, the pool (and its first warm spare), the
//! process hardening and sandbox probe, the audit log, the limits and the workspace mirror.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{LOCAL_PRINCIPAL, Service, homes, principal_dirs};
use crate::config::Settings;
use crate::kernel::LaunchConfig;
use crate::kernel::RuntimeRoot;
use crate::pool::{Pool, PoolConfig};
use crate::{audit, child, limits, principal, workspace};

/// How long a kernel may take to start.
const KERNEL_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot create the kernels' runtime directory: {0}")]
    RuntimeDir(#[source] std::io::Error),
    #[error(transparent)]
    Audit(#[from] audit::Error),
}

impl Service {
    /// Builds the service. The runtime root must live as long as the service (dropping it
    /// removes every kernel's directory).
    pub fn build(
        settings: &Settings,
        stop: CancellationToken,
    ) -> Result<(Arc<Service>, RuntimeRoot), BuildError> {
        let runtime = RuntimeRoot::create().map_err(BuildError::RuntimeDir)?;
        child::remove_abandoned_cgroups();
        let (pool, homes_ready) = build_pool(settings, &runtime, stop);
        let server_hardening = child::harden_server();
        tracing::info!(layers = ?server_hardening, "process hardening");
        let audit = Arc::new(audit::Audit::open(&settings.audit)?);
        let limits = Arc::new(
            limits::Limits::new(
                settings.requests_per_minute_per_principal,
                settings.max_calls_per_principal,
            )
            .with_refusals(settings.unauthenticated_per_minute_per_address.unwrap_or(0)),
        );
        let sandbox_layers = probe_sandbox(settings);
        let service = Arc::new(Service {
            settings: settings.clone(),
            pool,
            server_hardening,
            sandbox_layers,
            install_locks: Default::default(),
            audit,
            tenant: Default::default(),
            limits,
            homes_ready,
            workspace: settings
                .workspace
                .clone()
                .map(|w| Arc::new(workspace::Workspace::new(w))),
            executions: Default::default(),
        });
        Ok((service, runtime))
    }
}

/// The pool, which starts the first warm spare (if any) right away, and the set of homes made.
fn build_pool(
    settings: &Settings,
    runtime: &RuntimeRoot,
    stop: CancellationToken,
) -> (Arc<Pool>, principal::Ready) {
    let launch = LaunchConfig {
        python: settings.python.clone(),
        runtime_root: runtime.path().to_path_buf(),
        startup_timeout: KERNEL_STARTUP_TIMEOUT,
        pythonpath: settings.kernel_pythonpath.clone(),
        sandbox: settings.sandbox.clone(),
    };
    let pool_cfg = PoolConfig {
        launch,
        max_kernels: settings.max_kernels,
        max_kernels_per_principal: settings.max_kernels_per_principal,
        idle_timeout: settings.idle_timeout,
        spare: true,
        // Where credentials are required, `local` never calls: a spare for it would be a
        // kernel (and, on Lambda, an init that waits for it) nobody can use. The first
        // caller's own spare follows its first kernel.
        first_spare_for: (!settings.requires_credentials()).then(|| LOCAL_PRINCIPAL.to_string()),
    };
    // The first warm spare's home is made here the way a call makes it (and marked made),
    // before the kernel binds it. Otherwise the kernel's launch would create it, and the first
    // call, on Lambda, would distrust and replace a home this process had not made, leaving the
    // spare's Landlock rules on the removed directory.
    let homes_ready = principal::Ready::default();
    if let Some(first) = &pool_cfg.first_spare_for
        && let Err(e) = homes_ready.ensure(first, || homes::make_home(settings, first))
    {
        tracing::warn!(error = %e.message, "cannot make the warm spare's directory");
    }
    let dirs_settings = settings.clone();
    let pool = Pool::new(
        pool_cfg,
        move |principal| principal_dirs(&dirs_settings, principal),
        stop,
    );
    (pool, homes_ready)
}

/// Probes how kernels are confined here and logs each layer; warns when the operator's
/// directory is out of the kernels' reach.
fn probe_sandbox(settings: &Settings) -> Vec<child::Layer> {
    let sandbox_layers = settings.sandbox.probe();
    for layer in &sandbox_layers {
        if layer.applied {
            tracing::info!(layer = %layer.name, detail = %layer.detail, "kernel sandbox: applied");
        } else {
            tracing::warn!(layer = %layer.name, reason = %layer.detail, "kernel sandbox: not applied");
        }
    }
    // The operator's directory is never handed to the kernels' uid (only directories the server
    // creates are); say so when that leaves kernels unable to use it.
    if settings.local_owns_working_dir()
        && let Some(ids) = settings.sandbox.ids
        && !child::user::may_use(&settings.working_dir, ids)
    {
        tracing::warn!(
            working_dir = %settings.working_dir.display(),
            uid = ids.uid,
            "kernels run as uid {} and cannot read or write the working directory (the server does not change its owner); give that uid access (e.g. chown or chmod it), or pass --kernel-user",
            ids.uid
        );
    }
    sandbox_layers
}
