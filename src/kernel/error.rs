//! Errors of the kernel layer. Messages say what happened and what to do next; they never
//! include environment values or connection keys.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "could not start the Python interpreter {python}: {source}\nhint: pass --python PATH to an interpreter with ipykernel installed (make run creates .venv)"
    )]
    Spawn {
        python: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the kernel exited during start-up ({status}); its last output:\n{log_tail}\nhint: --python must name an interpreter with ipykernel installed (`python -m ipykernel_launcher` must work)"
    )]
    StartupExited { status: String, log_tail: String },
    #[error(
        "the kernel did not become ready within {secs} s; its last output:\n{log_tail}\nhint: a loaded machine starts Python slowly; retry, and check that --python has ipykernel"
    )]
    StartupTimeout { secs: u64, log_tail: String },
    #[error("cannot prepare the kernel's runtime directory {path}: {source}")]
    RuntimeDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot confine the kernel: {0}")]
    Sandbox(#[from] crate::child::Error),
    #[error("kernel messaging failed: {0}")]
    Protocol(#[from] jupyter_zmq_client::RuntimeError),
    #[error("the kernel has died; the next call starts a fresh one")]
    Died,
    #[error("the kernel did not answer a {request} within {secs} s")]
    NoReply { request: &'static str, secs: u64 },
    #[error(
        "invalid variable name {0:?}: give a Python identifier or a dotted attribute path such as df.columns"
    )]
    InvalidName(String),
    #[error("{0}\nhint: get_variables lists the names that exist")]
    NotFound(String),
    #[error("the kernel returned an unexpected answer: {0}")]
    Unexpected(String),
}
