//! MCP tasks (the 2026-07-28 extension `io.modelcontextprotocol/tasks`, SEP-2663, as rmcp
//! implements it): a task is a view of an execution (`service::executions`), with the same id.
//!
//! A run tool (execute_code, execute_cell, execute_notebook) called by a client that declared the
//! tasks extension answers as any call does while its work ends within `wait`; work still going
//! answers a task (`resultType: "task"`) instead of a `running` result. `tasks/get` shows the
//! execution (`working` with a status message, then `completed` with the tool's own result,
//! `isError` results included), `tasks/cancel` stops it like cancel_execution. An execution
//! started without tasks can be read as a task too, and a task with get_execution. Unknown and
//! other principals' ids are one and the same JSON-RPC error.
//!
//! The 2025-11-25 experimental tasks (a `task` parameter on `tools/call`, `tasks/result`,
//! `tasks/list`) are not offered: rmcp routes only SEP-2663's methods.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rmcp::model::{
    CallToolResponse, CreateTaskResult, DetailedTask, Task, TaskPayload, TaskStatus,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::answer::{answer, finished, what_next};
use super::error::{ToolError, respond};
use crate::service::executions::{Answer, Execution, KEEP_FINISHED};

/// How often a client should poll `tasks/get` (it has no wait of its own).
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Who `tasks/cancel` is, in an execution's result.
pub(crate) const TASKS_CANCEL: &str = "tasks/cancel";

/// Whether the request declared the tasks extension (SEP-2663).
fn client_has_tasks(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.client_capabilities()
        .is_some_and(|c| c.supports_tasks())
}

impl super::JupyterMcp {
    /// A run tool's answer: a task for work still going when the client speaks tasks;
    /// otherwise the result as `answer` gives it.
    pub(crate) fn respond_to(
        &self,
        ctx: &RequestContext<RoleServer>,
        a: Result<Answer, ToolError>,
    ) -> Result<CallToolResponse, ErrorData> {
        let exec_timeout = self.service.settings.exec_timeout;
        match a {
            Ok(Answer::Running(e)) if client_has_tasks(ctx) => Ok(CallToolResponse::Task(
                CreateTaskResult::new(task_of(&e, exec_timeout)),
            )),
            other => respond(other.and_then(answer)).map(CallToolResponse::Complete),
        }
    }
}

fn iso8601(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The task's base fields. Its time to live is an upper bound: the run's own limit and the hour
/// a finished result is kept (the 32 newest per principal may go sooner).
fn task_of(e: &Execution, exec_timeout: Duration) -> Task {
    let created = e.started_wall();
    let updated = e.finished_wall().unwrap_or_else(SystemTime::now);
    let ttl = exec_timeout + KEEP_FINISHED;
    let status = if e.outcome().is_some() {
        TaskStatus::Completed
    } else {
        TaskStatus::Working
    };
    Task::new(e.id.clone(), status, iso8601(created), iso8601(updated))
        .with_ttl_ms(ttl.as_millis() as u64)
        .with_poll_interval_ms(POLL_INTERVAL.as_millis() as u64)
}

/// `tasks/get`'s answer for an execution.
pub(crate) fn detailed(e: &Arc<Execution>, exec_timeout: Duration) -> DetailedTask {
    let task = task_of(e, exec_timeout);
    let Some(outcome) = e.outcome() else {
        return DetailedTask::new(task.with_status_message(what_next(e)), TaskPayload::Working);
    };
    if e.stopped_by().as_deref() == Some(TASKS_CANCEL) {
        return DetailedTask::new(task, TaskPayload::Cancelled);
    }
    let result = finished(&outcome)
        .unwrap_or_else(super::error::Show::into_result)
        .into_json_object();
    DetailedTask::new(task, TaskPayload::Completed { result })
}

/// A rendered result as the JSON object a completed task carries.
trait IntoJsonObject {
    fn into_json_object(self) -> rmcp::model::JsonObject;
}

impl IntoJsonObject for rmcp::model::CallToolResult {
    fn into_json_object(self) -> rmcp::model::JsonObject {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => rmcp::model::JsonObject::new(),
        }
    }
}

/// An id `tasks/get` or `tasks/cancel` cannot serve, as the JSON-RPC error those methods have.
pub(crate) fn unknown_task(e: ToolError) -> ErrorData {
    ErrorData::invalid_params(format!("{}: {}", e.status, e.message), None)
}
