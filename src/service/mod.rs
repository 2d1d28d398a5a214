//! The service: the application state every front door serves, and the operations they call.
//!
//! The MCP layer turns a request into a [`Call`] (who asks, when they give up, how long the
//! invocation lasts, where the call's records go) and makes one service call with it; the
//! service never sees rmcp, axum or Lambda types, so the same operation serves a tool call, a
//! resource request, or work that no request waits for. Below it sit the engine pieces it
//! composes: the kernel pool, notebooks and files, outputs, packages and the workspace mirror.

mod build;
mod call;
mod code;
mod error;
mod execution;
pub(crate) mod executions;
mod homes;
mod install;
pub(crate) mod journal;
mod kernels;
mod live;
mod notebook_run;
mod restore;
mod run;
mod save;
mod wait;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::audit::Audit;
use crate::config::Settings;
use crate::limits::Limits;
use crate::notebook::NotebookStore;
use crate::pool::{KernelKey, Pool};

pub use build::BuildError;
pub use call::{Call, CodeLog};
pub use code::{CellRunRequest, CodeRun};
pub use error::{Error, Status};
pub use execution::{ExecuteCodeOutput, Execution, SavedCell};
pub use homes::principal_dirs;
pub use journal::{Journal, StateLost};
pub use kernels::{KernelAction, KernelList, KernelStatus};
pub use notebook_run::{ExecuteNotebookOutput, NotebookRun};
pub use restore::RestoreKernelOutput;
pub use run::{NotRun, RunSpec, Turn};
pub use save::OriginalNames;

/// The kernel name used when a call names none.
pub const DEFAULT_KERNEL: &str = "default";

/// The principal of every request on a server without authentication.
pub const LOCAL_PRINCIPAL: &str = crate::principal::LOCAL;

/// Everything the operations share; built once ([`Service::build`]) before any door opens.
pub struct Service {
    pub settings: Settings,
    pub pool: Arc<Pool>,
    /// Hardening that applied to the server process (only what succeeded).
    pub server_hardening: Vec<String>,
    /// How kernels are confined on this machine (the start-up probe: applied or why not).
    pub sandbox_layers: Vec<crate::child::Layer>,
    /// One pip at a time per principal (two `--target` runs into one package directory can
    /// leave it half-written); principals do not wait for each other. Std mutex: map access only.
    install_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub audit: Arc<Audit>,
    /// On Lambda with `--lambda-tenancy single`: the one principal this execution environment
    /// serves now. Std mutex, short sections.
    tenant: Mutex<Option<String>>,
    pub limits: Arc<Limits>,
    /// Principals whose directory is made and owned as it should be (once per principal).
    homes_ready: crate::principal::Ready,
    /// The S3 mirror of the workspaces and kernel histories (`--workspace-bucket`).
    pub workspace: Option<Arc<crate::workspace::Workspace>>,
    /// Work that outlives its call: running, and finished within the bounds.
    executions: executions::Executions,
}

impl Service {
    /// The (principal, kernel name) a call acts on.
    pub fn key(&self, call: &Call, kernel: Option<&str>) -> Result<KernelKey, Error> {
        Ok(KernelKey::new(
            call.principal.name(),
            kernel.unwrap_or(DEFAULT_KERNEL),
        )?)
    }

    pub fn notebooks(&self, principal: &str) -> Result<NotebookStore, crate::notebook::Error> {
        NotebookStore::new(principal_dirs(&self.settings, principal).home)
    }

    /// The principal's files: the same directory and confinement as its notebooks.
    pub fn files(&self, principal: &str) -> Result<crate::files::Files, crate::notebook::Error> {
        Ok(crate::files::Files::new(self.notebooks(principal)?))
    }

    /// Runs a blocking operation on the caller's notebook store off the async threads.
    pub async fn with_store<T: Send + 'static>(
        &self,
        call: &Call,
        op: impl FnOnce(NotebookStore) -> Result<T, crate::notebook::Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.notebooks(call.principal.name())?;
        run_blocking(store, op).await
    }

    /// Runs a blocking operation on the caller's files off the async threads.
    pub async fn with_files<T: Send + 'static>(
        &self,
        call: &Call,
        op: impl FnOnce(crate::files::Files) -> Result<T, crate::files::Error> + Send + 'static,
    ) -> Result<T, Error> {
        let files = self.files(call.principal.name())?;
        run_blocking(files, op).await
    }

    /// The principal's disk quota, when one is configured.
    fn quota(&self, principal: &str) -> Option<crate::quota::Quota> {
        let limit = self.settings.disk_quota_bytes?;
        let home = principal_dirs(&self.settings, principal).home;
        Some(crate::quota::Quota::new(home, limit))
    }

    /// The longest image side a call asked for, within 16 px and the server's --max-image-px.
    pub fn max_image_px(&self, requested: Option<u32>) -> u32 {
        let max_px = self.settings.max_image_px;
        requested.map_or(max_px, |px| px.clamp(16, max_px))
    }

    /// The pip lock of one principal.
    fn install_lock(&self, principal: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.install_locks.lock() {
            Ok(mut locks) => Arc::clone(locks.entry(principal.to_string()).or_default()),
            // A poisoned map only means a panic elsewhere; a fresh lock still serializes
            // nothing wrongly for this call's own directory.
            Err(_) => Arc::default(),
        }
    }

    /// Resource requests see the workspace as tool calls do: restored or refreshed from S3
    /// first (their notes have nowhere to go but the log).
    pub async fn refresh_workspace(&self, principal: &str) {
        if let Some(ws) = &self.workspace {
            let home = principal_dirs(&self.settings, principal).home;
            let report = ws.before_call(principal, &home).await;
            if let Some(text) = report.text() {
                tracing::info!(principal, report = %text, "workspace refreshed for a resource request");
            }
        }
    }
}

/// Runs a blocking file-system operation (notebook or file store) off the async threads and
/// maps its engine error to the service's.
async fn run_blocking<S: Send + 'static, T: Send + 'static, E: Send + 'static>(
    store: S,
    op: impl FnOnce(S) -> Result<T, E> + Send + 'static,
) -> Result<T, Error>
where
    Error: From<E>,
{
    tokio::task::spawn_blocking(move || op(store))
        .await
        .map_err(|e| Error::new(Status::InternalError, e.to_string()))?
        .map_err(Error::from)
}
