//! How a run tool's answer reads: its result as always when the work ended within `wait`, or
//! `running` with the execution id, the output so far and what to call next. Shared by the run
//! tools, get_execution and MCP tasks (`tasks.rs`).

use rmcp::model::{CallToolResult, ContentBlock};

use crate::kernel::ExecStatus;
use crate::mcp::error::{Show, ToolError, structured};
use crate::mcp::render::{execution_result, notebook_run_result};
use crate::output::OutputItem;
use crate::service::executions::{Answer, Execution, Outcome};
use crate::service::{ExecuteCodeOutput, ExecuteNotebookOutput};

/// The line that tells the model what to call next about a running execution.
pub(crate) fn what_next(e: &Execution) -> String {
    let done = e
        .cells()
        .map(|c| format!(" ({} of {} cells done)", c.done, c.total))
        .unwrap_or_default();
    format!(
        "still running after {:.0} s{done} as execution {id}: call get_execution with execution_id \"{id}\" to wait for the rest and get the result, or cancel_execution to stop it; the kernel's variables are kept either way",
        e.elapsed().as_secs_f64(),
        id = e.id
    )
}

/// A tool's answer: its result as today when the work ended within `wait`, else `running`.
pub(crate) fn answer(a: Answer) -> Result<CallToolResult, ToolError> {
    match a {
        Answer::Done(outcome) => finished(&outcome),
        Answer::Running(e) if e.tool == "execute_notebook" => running_notebook(&e),
        Answer::Running(e) if e.tool == "install_package" => running_install(&e),
        Answer::Running(e) => running_code(&e),
    }
}

/// The result of an execution that ended, as the tool that started it answers.
pub(crate) fn finished(outcome: &Outcome) -> Result<CallToolResult, ToolError> {
    match outcome {
        Outcome::Code(out) => execution_result(out),
        Outcome::Notebook(out) => notebook_run_result(out),
        Outcome::Install(i) => {
            let text = format!("installed {} {}", i.name, i.version);
            let out = InstallPackageOutput {
                name: Some(i.name.clone()),
                version: Some(i.version.clone()),
                status: None,
                execution_id: None,
            };
            structured(vec![ContentBlock::text(text)], &out)
        }
        Outcome::Failed(e) => Ok(e.clone().into_result()),
    }
}

/// install_package's result: the package installed, or (past `wait`) the install still running.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct InstallPackageOutput {
    /// PEP 503 normalized project name (absent while the install runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Installed version, read from the package's `.dist-info` directory (absent while the
    /// install runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `running` when pip goes on after `wait` (poll it with get_execution); absent once
    /// installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// With status `running`: the id get_execution and cancel_execution take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
}

fn running_install(e: &Execution) -> Result<CallToolResult, ToolError> {
    let out = InstallPackageOutput {
        name: None,
        version: None,
        status: Some("running".into()),
        execution_id: Some(e.id.clone()),
    };
    let text = ContentBlock::text(format!("[pip is {}]", what_next(e)));
    structured(vec![text], &out)
}

fn running_code(e: &Execution) -> Result<CallToolResult, ToolError> {
    let live = e.read(false);
    let outputs = (!live.text.is_empty())
        .then(|| OutputItem::Stream {
            name: "stdout".into(),
            text: live.text,
        })
        .into_iter()
        .collect();
    let out = ExecuteCodeOutput {
        status: ExecStatus::Running,
        kernel: e.kernel.clone(),
        execution_count: None,
        duration_ms: e.elapsed().as_millis() as u64,
        outputs,
        truncated: live.dropped_bytes > 0,
        note: Some(what_next(e)),
        notebook: None,
        execution_id: Some(e.id.clone()),
    };
    let mut result = execution_result(&out)?;
    result.is_error = Some(false);
    Ok(result)
}

fn running_notebook(e: &Execution) -> Result<CallToolResult, ToolError> {
    let cells = e.cells().unwrap_or_default();
    let out = ExecuteNotebookOutput {
        status: ExecStatus::Running,
        path: String::new(),
        kernel: e.kernel.clone(),
        revision: String::new(),
        cells: Vec::new(),
        failed_cell: None,
        failed_outputs: Vec::new(),
        not_run: Vec::new(),
        execution_id: Some(e.id.clone()),
        cells_done: Some(cells.done),
        cells_total: Some(cells.total),
    };
    let text = ContentBlock::text(format!("[{}]", what_next(e)));
    structured(vec![text], &out)
}
