//! Principals' homes and tenancy: the directory each principal works in, made once and owned
//! as it should be, and on Lambda with single tenancy the switch from one principal to the next.

use super::{Error, Service, Status};
use crate::config::Settings;
use crate::principal::{Principal, PrincipalDirs};

impl Service {
    /// Admits a principal a door has established: switches tenancy if needed and makes sure its
    /// directory exists. Every operation of a call runs after this.
    pub fn admit(&self, principal: &Principal) -> Result<(), Error> {
        self.switch_tenant(principal.name());
        self.homes_ready.ensure(principal.name(), || {
            make_home(&self.settings, principal.name())
        })
    }

    /// Single tenancy on Lambda (every process shares one OS user there): before the execution
    /// environment serves another principal, everything the previous one could have left is
    /// removed: every kernel and the warm spare (all of them were the previous tenant's), all of
    /// the working directory (other principals' directories included: in single tenancy only the
    /// previous tenant's kernels ran, and without Landlock they could write anywhere in it), and
    /// the kernels' runtime and temp directories. The new principal's directory is then made
    /// afresh. Lambda sends an environment one request at a time, so no call of the previous
    /// principal is running. Files a kernel wrote elsewhere under /tmp (possible only where
    /// Landlock does not apply) are not found here.
    fn switch_tenant(&self, principal: &str) {
        let single = self
            .settings
            .lambda
            .as_ref()
            .is_some_and(|l| l.tenancy == crate::config::Tenancy::Single);
        if !single {
            return;
        }
        let previous = match self.tenant.lock() {
            Ok(mut tenant) if tenant.as_deref() != Some(principal) => {
                tenant.replace(principal.to_string())
            }
            _ => return,
        };
        let Some(previous) = previous else {
            return;
        };
        let executions = self.executions.forget_owner(&previous);
        let (kernels, spare) = self.pool.retire_all();
        if let Some(ws) = &self.workspace {
            ws.forget(&previous);
        }
        let (removed, errors) = if self.settings.local_owns_working_dir() {
            // Not reachable on Lambda (where `local` has a directory of its own); the operator's
            // directory is never emptied.
            (0, Vec::new())
        } else {
            crate::principal::empty_dir(&self.settings.working_dir)
        };
        for e in &errors {
            tracing::error!(error = %e, "lambda single tenancy: could not remove something the previous principal left");
        }
        self.homes_ready.forget_all();
        tracing::warn!(
            from = %previous,
            to = %principal,
            kernels_stopped = kernels,
            executions_dropped = executions,
            spare_stopped = spare,
            entries_removed = removed,
            files_removed = errors.is_empty(),
            "lambda single tenancy: this environment now serves another principal"
        );
    }
}

/// Creates a principal's directory (0700) and hands it to the uid its kernels run as. The
/// operator's working directory, which `local` may use as its own, is left as it is.
pub(super) fn make_home(settings: &Settings, principal: &str) -> Result<(), Error> {
    let dirs = principal_dirs(settings, principal);
    let io_error = |message: String| Error::new(Status::IoError, message);
    // On Lambda every process shares one OS user: a home this process did not make may
    // hold what another tenant planted there (see `PrincipalDirs::create`).
    let made = dirs
        .create(settings.lambda.is_some())
        .map_err(|e| io_error(format!("cannot create your working directory: {e}")))?;
    if made == crate::principal::Made::Replaced {
        tracing::warn!(
            principal,
            "a principal directory this process did not make was not empty and private: replaced with an empty one"
        );
    }
    if dirs.home != settings.working_dir {
        settings
            .sandbox
            .own_home(&dirs.home)
            .map_err(|e| io_error(e.to_string()))?;
    }
    Ok(())
}

/// The directories of a principal: `WORKING_DIR/<principal dir>`, or the working directory
/// itself for `local` on a server where no other principal can exist (see `principal`).
pub fn principal_dirs(settings: &Settings, principal: &str) -> PrincipalDirs {
    PrincipalDirs::of(
        &settings.working_dir,
        principal,
        settings.local_owns_working_dir(),
    )
}
