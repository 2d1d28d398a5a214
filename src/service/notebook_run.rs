//! Running a notebook's code cells in order in one kernel (execute_notebook), saving each
//! cell's outputs as it finishes, so a timeout or a crash later keeps what already ran.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;

use super::executions::{Answer, Outcome};
use super::{Call, DEFAULT_KERNEL, Error, Execution, NotRun, RunSpec, Service, Turn};
use crate::kernel::ExecStatus;
use crate::notebook::edit::{self, CodeCell};
use crate::output::{OutputItem, ProgressFn};

/// How one cell of execute_notebook went.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CellRun {
    /// Index of the cell.
    pub index: usize,
    /// Id of the cell (absent before nbformat 4.5).
    pub id: Option<String>,
    /// ok, error, timeout, kernel_died or cancelled.
    pub status: ExecStatus,
    pub execution_count: Option<u64>,
    pub duration_ms: u64,
    /// What happened to the kernel or to the saving of the outputs, when it matters.
    pub note: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecuteNotebookOutput {
    /// ok if every cell that ran ended ok; otherwise the status of the first cell that did not;
    /// `running` when the run goes on after `wait` (poll it with get_execution).
    pub status: ExecStatus,
    /// Notebook path, relative to the working directory.
    pub path: String,
    /// Kernel name.
    pub kernel: String,
    /// The notebook's revision after the last save.
    pub revision: String,
    /// The code cells that ran, in order; each one's outputs are saved in the notebook.
    pub cells: Vec<CellRun>,
    /// Index of the first cell that did not end ok.
    pub failed_cell: Option<usize>,
    /// Outputs of that cell (the others' are in the notebook: read_notebook shows them).
    pub failed_outputs: Vec<OutputItem>,
    /// Indexes of the code cells in range that did not run because the run stopped.
    pub not_run: Vec<usize>,
    /// With status `running`: the id get_execution and cancel_execution take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// With status `running`: cells finished so far, of `cells_total`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cells_done: Option<u64>,
    /// With status `running`: the code cells the run has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cells_total: Option<u64>,
}

/// What execute_notebook was asked to do.
pub struct NotebookRun {
    pub path: String,
    pub kernel: Option<String>,
    pub start: Option<usize>,
    pub stop: Option<usize>,
    pub stop_on_error: bool,
    pub timeout: Option<f64>,
    pub max_image_px: Option<u32>,
    pub revision: Option<String>,
}

/// A notebook run whose cells are read and checked, ready to run.
pub struct PreparedRun {
    run: NotebookRun,
    cells: Vec<CodeCell>,
    revision: String,
}

impl PreparedRun {
    /// How many cells it will run at most.
    pub fn total(&self) -> u64 {
        self.cells.len() as u64
    }
}

/// Where a notebook run stands between cells.
struct Progress {
    out: ExecuteNotebookOutput,
    /// The kernel's turn, taken at the first cell and held for every cell after it.
    turn: Option<Result<Turn, NotRun>>,
    stopped: bool,
}

impl Service {
    /// Reads the notebook (checking `revision`) and picks the code cells in range.
    pub async fn prepare_notebook_run(
        &self,
        call: &Call,
        run: NotebookRun,
    ) -> Result<PreparedRun, Error> {
        let (path, revision, start, stop) =
            (run.path.clone(), run.revision.clone(), run.start, run.stop);
        let (cells, revision) = self
            .with_store(call, move |s| {
                s.inspect_for_run(&path, revision.as_deref(), |doc, _| {
                    Ok(range_cells(doc, start, stop))
                })
            })
            .await?;
        let cells = cells.map_err(Error::invalid)?;
        Ok(PreparedRun {
            run,
            cells,
            revision,
        })
    }

    /// execute_notebook as an execution: answers within `wait` (see `start_execution`).
    pub async fn start_notebook(
        self: &Arc<Self>,
        call: &Call,
        prepared: PreparedRun,
        wait: Option<f64>,
        progress: Option<ProgressFn>,
    ) -> Result<Answer, Error> {
        let kernel = prepared.run.kernel.as_deref();
        let total = Some(prepared.total());
        let start = self.start_for(call, "execute_notebook", kernel, wait, total)?;
        self.start_execution(
            call,
            start,
            progress,
            |service, call, progress| async move {
                match service.run_notebook(&call, prepared, progress).await {
                    Ok(out) => Outcome::Notebook(out),
                    Err(e) => Outcome::Failed(e),
                }
            },
        )
        .await
    }

    /// Runs the prepared cells in order. No other call's code runs between two cells; the first
    /// cell's timeout covers the wait for the kernel's turn. `progress` gets one line per cell.
    pub async fn run_notebook(
        &self,
        call: &Call,
        prepared: PreparedRun,
        mut progress: Option<ProgressFn>,
    ) -> Result<ExecuteNotebookOutput, Error> {
        let PreparedRun {
            run,
            cells,
            mut revision,
        } = prepared;
        let mut state = Progress {
            out: ExecuteNotebookOutput {
                status: ExecStatus::Ok,
                path: crate::notebook::display_path(&run.path),
                kernel: run.kernel.clone().unwrap_or_else(|| DEFAULT_KERNEL.into()),
                revision: String::new(),
                cells: Vec::new(),
                failed_cell: None,
                failed_outputs: Vec::new(),
                not_run: Vec::new(),
                execution_id: None,
                cells_done: None,
                cells_total: None,
            },
            turn: None,
            stopped: false,
        };
        for (n, cell) in cells.into_iter().enumerate() {
            if state.stopped {
                state.out.not_run.push(cell.pos.index);
                continue;
            }
            let mut execution = self.run_cell(call, &run, &cell, &mut state).await?;
            if let Some(saved) = self
                .save_run(call, &run.path, cell.clone(), &mut execution)
                .await
            {
                revision = saved.revision;
            }
            if let Some(p) = progress.as_mut() {
                // One line per cell: updates the client has not taken yet are merged.
                let line = format!("cell {}: {}\n", cell.pos.index, execution.status.as_str());
                p(n as u64 + 1, line);
            }
            state.record(cell, execution, run.stop_on_error);
        }
        state.out.revision = revision;
        Ok(state.out)
    }

    /// Runs one cell in the held turn (taking it at the first cell).
    async fn run_cell(
        &self,
        call: &Call,
        run: &NotebookRun,
        cell: &CodeCell,
        state: &mut Progress,
    ) -> Result<Execution, Error> {
        let clock = self.start_clock(call, run.timeout)?;
        let held = match state.turn.take() {
            Some(held) => held,
            None => self.take_turn(call, run.kernel.as_deref(), clock).await?,
        };
        match held {
            Ok(mut held) => {
                state.out.kernel = held.name().to_owned();
                let spec = RunSpec {
                    kernel: run.kernel.as_deref(),
                    code: &cell.source,
                    timeout: run.timeout,
                    record: true,
                    max_image_px: run.max_image_px,
                };
                let execution = self.run_in_turn(call, &mut held, spec, clock, None).await?;
                state.turn = Some(Ok(held));
                Ok(execution)
            }
            // The wait for the kernel's turn ended first (timeout, cancel, a restart): this
            // cell did not run, and the run stops.
            Err((kernel, not_run)) => {
                state.out.kernel = kernel;
                Ok(not_run)
            }
        }
    }
}

impl Progress {
    /// Adds a cell's run to the output; stops the run at a failure that calls for it.
    fn record(&mut self, cell: CodeCell, execution: Execution, stop_on_error: bool) {
        let status = execution.status;
        let index = cell.pos.index;
        self.out.cells.push(CellRun {
            index,
            id: cell.pos.id,
            status,
            execution_count: execution.execution_count,
            duration_ms: execution.duration_ms(),
            note: execution.note.clone(),
        });
        if status != ExecStatus::Ok && self.out.failed_cell.is_none() {
            self.out.status = status;
            self.out.failed_cell = Some(index);
            self.out.failed_outputs = execution.outputs;
        }
        self.stopped = status != ExecStatus::Ok && (stop_on_error || status != ExecStatus::Error);
    }
}

/// The code cells with a non-blank source in `start..stop`, or why the range is wrong.
fn range_cells(
    doc: &crate::notebook::Doc<'_>,
    start: Option<usize>,
    stop: Option<usize>,
) -> Result<Vec<CodeCell>, String> {
    let len = doc.cells.len();
    let (start, stop) = (start.unwrap_or(0), stop.unwrap_or(len));
    if start > stop || stop > len {
        return Err(format!(
            "start {start} and stop {stop} must satisfy start <= stop <= {len} (the number of cells)"
        ));
    }
    Ok(edit::code_cells(doc, start, stop)
        .into_iter()
        .filter(|c| !c.source.trim().is_empty())
        .collect())
}
