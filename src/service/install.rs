//! Installing a package for a principal's kernel: the policy check, one pip at a time per
//! principal, the kernel's import caches refreshed, and the install recorded in its history.

use std::sync::Arc;

use super::executions::{Answer, Outcome};
use super::wait::{Waited, bounded};
use super::{Call, Error, Service, Status, principal_dirs};
use crate::config::PIP_TIMEOUT;
use crate::packages::{Installed, Installer, parse_requirement};
use crate::pool;
use crate::workspace::history::Record;

impl Service {
    /// install_package as an execution: answers within `wait` (see `start_execution`); pip goes
    /// on after the call answers `running` (a large wheel takes longer than a client waits).
    pub async fn start_install(
        self: &Arc<Self>,
        call: &Call,
        kernel: Option<&str>,
        package: String,
        wait: Option<f64>,
    ) -> Result<Answer, Error> {
        let key = self.key(call, kernel)?;
        let start = self.start_for(call, "install_package", kernel, wait, None)?;
        self.start_execution(call, start, None, |service, call, _| async move {
            match service.install(&call, &key, package).await {
                Ok(installed) => Outcome::Install(installed),
                Err(e) => Outcome::Failed(e),
            }
        })
        .await
    }

    /// Installs one requirement for the principal of `key` (policy check, one pip at a time per
    /// principal, import caches refreshed) and records it in the kernel's history.
    pub async fn install(
        &self,
        call: &Call,
        key: &pool::KernelKey,
        package: String,
    ) -> Result<Installed, Error> {
        let requirement = parse_requirement(&package)?;
        crate::packages::check_lists(&requirement, &self.settings.packages)?;
        let dirs = principal_dirs(&self.settings, &key.principal);
        // One pip at a time per principal: two `--target --upgrade` runs into one directory
        // can leave it half-written. The wait for the other install has a deadline.
        let lock = self.install_lock(&key.principal);
        let wait = self.settings.wait_timeout;
        let _one_at_a_time = bounded(call, wait, Waited::Install, lock.lock()).await?;
        let installer = Installer::new(
            self.settings.sandbox.clone(),
            dirs.home,
            dirs.packages,
            call.limit(PIP_TIMEOUT)?,
            self.settings.packages.clone(),
        );
        // A cancelled call drops pip (kill_on_drop).
        let installed = tokio::select! {
            installed = installer.install(&requirement) => installed,
            _ = call.cancel.cancelled() => return Err(Error::new(Status::Cancelled, "cancelled by the client; pip was stopped")),
        };
        // One record per install that reached pip (the call's span names the principal).
        match &installed {
            Ok(i) => {
                tracing::info!(principal = %key.principal, package = %i.name, version = %i.version, outcome = "installed", "package install")
            }
            Err(e) => {
                tracing::info!(principal = %key.principal, package = %requirement.normalized, outcome = "failed", error = %e, "package install")
            }
        }
        let installed = installed?;
        self.after_install(call, key, package).await;
        Ok(installed)
    }

    /// Records the install in the kernel's history and refreshes the kernel's import caches.
    async fn after_install(&self, call: &Call, key: &pool::KernelKey, package: String) {
        let generation = self.pool.status(key).info.filter(|i| i.alive).map(|i| i.id);
        call.record(
            &key.name,
            Record::Install {
                generation,
                package,
            },
        );
        // Python notices new files by the directory's mtime; refreshing the import caches
        // now closes the same-tick gap, but never waits behind a running cell.
        if let Some(lease) = self.pool.try_lease_idle(key) {
            let _ = lease
                .kernel
                .run_internal("__import__('importlib').invalidate_caches()")
                .await;
        }
    }
}
