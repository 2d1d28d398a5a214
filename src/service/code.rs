//! The operations that run code or look at a kernel's state: execute_code, execute_cell,
//! get_variables, inspect_variable.

use std::sync::Arc;

use super::executions::{Answer, Outcome};
use super::wait::{Waited, bounded};
use super::{Call, Error, ExecuteCodeOutput, RunSpec, Service, Status};
use crate::kernel::introspect::{self, Inspection, Variables};
use crate::notebook::edit::{self, CellRef};
use crate::output::ProgressFn;

/// Code to run (execute_code).
pub struct CodeRun {
    pub code: String,
    pub kernel: Option<String>,
    pub timeout: Option<f64>,
    pub max_image_px: Option<u32>,
    /// Append the run as a new cell of this notebook.
    pub notebook: Option<String>,
    /// With `notebook`: the revision it must still have.
    pub revision: Option<String>,
}

/// A notebook cell to run (execute_cell).
pub struct CellRunRequest {
    pub path: String,
    pub cell: CellRef,
    pub kernel: Option<String>,
    pub timeout: Option<f64>,
    pub max_image_px: Option<u32>,
    pub revision: Option<String>,
}

impl Service {
    /// execute_code as an execution: answers within `wait` (see `start_execution`).
    pub async fn start_code(
        self: &Arc<Self>,
        call: &Call,
        run: CodeRun,
        wait: Option<f64>,
        progress: Option<ProgressFn>,
    ) -> Result<Answer, Error> {
        let start = self.start_for(call, "execute_code", run.kernel.as_deref(), wait, None)?;
        self.start_execution(
            call,
            start,
            progress,
            |service, call, progress| async move {
                Outcome::of(service.execute_code(&call, run, progress).await)
            },
        )
        .await
    }

    /// execute_cell as an execution: answers within `wait` (see `start_execution`).
    pub async fn start_cell(
        self: &Arc<Self>,
        call: &Call,
        run: CellRunRequest,
        wait: Option<f64>,
        progress: Option<ProgressFn>,
    ) -> Result<Answer, Error> {
        let start = self.start_for(call, "execute_cell", run.kernel.as_deref(), wait, None)?;
        self.start_execution(
            call,
            start,
            progress,
            |service, call, progress| async move {
                Outcome::of(service.execute_cell(&call, run, progress).await)
            },
        )
        .await
    }

    /// Runs code; with `notebook`, appends it and its outputs as a new cell there. A notebook
    /// path that cannot be saved to, or a stale revision, is refused before the code runs.
    pub async fn execute_code(
        &self,
        call: &Call,
        run: CodeRun,
        progress: Option<ProgressFn>,
    ) -> Result<ExecuteCodeOutput, Error> {
        if let Some(path) = run.notebook.clone() {
            let expected = run.revision.clone();
            self.with_store(call, move |s| match expected {
                Some(rev) => s
                    .inspect_for_run(&path, Some(&rev), |_, _| Ok(()))
                    .map(drop),
                None => s.resolve(&path).map(drop),
            })
            .await?;
        }
        let spec = RunSpec {
            kernel: run.kernel.as_deref(),
            code: &run.code,
            timeout: run.timeout,
            record: run.notebook.is_some(),
            max_image_px: run.max_image_px,
        };
        let (kernel, mut execution) = self.run_code(call, spec, progress).await?;
        let saved = match run.notebook {
            Some(path) => {
                self.append_run(call, path, run.code, run.revision, &mut execution)
                    .await
            }
            None => None,
        };
        Ok(execution.into_output(kernel, saved))
    }

    /// Runs one code cell of a notebook as execute_code runs code, and saves its outputs and
    /// execution count into the cell.
    pub async fn execute_cell(
        &self,
        call: &Call,
        run: CellRunRequest,
        progress: Option<ProgressFn>,
    ) -> Result<ExecuteCodeOutput, Error> {
        let (path, cell_ref, revision) = (run.path.clone(), run.cell, run.revision);
        let (cell, _) = self
            .with_store(call, move |s| {
                s.inspect_for_run(&path, revision.as_deref(), |doc, p| {
                    edit::code_cell(doc, &cell_ref, p)
                })
            })
            .await?;
        let spec = RunSpec {
            kernel: run.kernel.as_deref(),
            code: &cell.source,
            timeout: run.timeout,
            record: true,
            max_image_px: run.max_image_px,
        };
        let (kernel, mut execution) = self.run_code(call, spec, progress).await?;
        let saved = self.save_run(call, &run.path, cell, &mut execution).await;
        Ok(execution.into_output(kernel, saved))
    }

    /// The user's variables in a kernel; none when the kernel is not running.
    pub async fn variables(&self, call: &Call, kernel: Option<&str>) -> Result<Variables, Error> {
        let key = self.key(call, kernel)?;
        let waited = Waited::Kernel {
            tool: "get_variables",
            kernel: &key.name,
        };
        let lease = self.pool.lease_running(&key);
        Ok(
            match bounded(call, self.settings.wait_timeout, waited, lease).await?? {
                Some(lease) => introspect::variables(&lease.kernel).await?,
                None => Variables::default(),
            },
        )
    }

    /// One variable or attribute of a running kernel, described.
    pub async fn inspect(
        &self,
        call: &Call,
        kernel: Option<&str>,
        name: &str,
    ) -> Result<Inspection, Error> {
        let key = self.key(call, kernel)?;
        introspect::validate_name(name)?;
        let waited = Waited::Kernel {
            tool: "inspect_variable",
            kernel: &key.name,
        };
        let lease = self.pool.lease_running(&key);
        let Some(lease) = bounded(call, self.settings.wait_timeout, waited, lease).await?? else {
            return Err(Error::new(
                Status::NotFound,
                format!(
                    "kernel {:?} is not running, so {name:?} is not defined\nhint: execute_code starts it",
                    key.name
                ),
            ));
        };
        Ok(introspect::inspect(&lease.kernel, name).await?)
    }
}
