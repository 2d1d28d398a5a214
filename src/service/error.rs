//! The one failure type of the service: a machine-readable [`Status`] and a message for the
//! model, built from every engine error in one place.
//!
//! Every door shows it the same way (the MCP layer as an `isError` result whose first line is
//! `status: <status>`); the status is an enum so that a new one is a reviewed change, and the
//! mapping from each engine error is an exhaustive `match` where the engine's error is ours.
//! Messages come from the engine errors, which never carry environment values, keys or other
//! principals' paths.

use crate::{files, kernel, notebook, packages, pool};

/// What kind of failure a call ended in, as the results name it (`status: not_found`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    Conflict,
    Busy,
    IoError,
    TooLarge,
    Cancelled,
    /// The execution lives in another Lambda execution environment (or did, before it was
    /// recycled).
    Elsewhere,
    Timeout,
    Unavailable,
    Unauthenticated,
    LimitReached,
    OverQuota,
    Refused,
    InstallFailed,
    KernelDied,
    KernelStartFailed,
    KernelError,
    InternalError,
    Error,
}

impl Status {
    /// The name results carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InvalidArgument => "invalid_argument",
            Status::NotFound => "not_found",
            Status::AlreadyExists => "already_exists",
            Status::Conflict => "conflict",
            Status::Busy => "busy",
            Status::IoError => "io_error",
            Status::TooLarge => "too_large",
            Status::Cancelled => "cancelled",
            Status::Elsewhere => "elsewhere",
            Status::Timeout => "timeout",
            Status::Unavailable => "unavailable",
            Status::Unauthenticated => "unauthenticated",
            Status::LimitReached => "limit_reached",
            Status::OverQuota => "over_quota",
            Status::Refused => "refused",
            Status::InstallFailed => "install_failed",
            Status::KernelDied => "kernel_died",
            Status::KernelStartFailed => "kernel_start_failed",
            Status::KernelError => "kernel_error",
            Status::InternalError => "internal_error",
            Status::Error => "error",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call: a status and a message that says what to do next.
#[derive(Debug, Clone)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(Status::InvalidArgument, message)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl From<pool::Error> for Error {
    fn from(e: pool::Error) -> Self {
        let status = match &e {
            pool::Error::TooManyKernels { .. } | pool::Error::TooManyKernelsForPrincipal { .. } => {
                Status::LimitReached
            }
            pool::Error::InvalidName(_) => Status::InvalidArgument,
            pool::Error::NoSuchKernel(_) => Status::NotFound,
            pool::Error::ShuttingDown => Status::Unavailable,
            pool::Error::StoppedWhileQueued(_) => Status::Cancelled,
            pool::Error::Kernel(k) => return kernel_error(k, e.to_string()),
        };
        Error::new(status, e.to_string())
    }
}

impl From<kernel::Error> for Error {
    fn from(e: kernel::Error) -> Self {
        let message = e.to_string();
        kernel_error(&e, message)
    }
}

fn kernel_error(e: &kernel::Error, message: String) -> Error {
    let status = match e {
        kernel::Error::InvalidName(_) => Status::InvalidArgument,
        kernel::Error::NotFound(_) => Status::NotFound,
        kernel::Error::Died => Status::KernelDied,
        kernel::Error::Spawn { .. }
        | kernel::Error::StartupExited { .. }
        | kernel::Error::StartupTimeout { .. }
        | kernel::Error::RuntimeDir { .. } => Status::KernelStartFailed,
        _ => Status::KernelError,
    };
    Error::new(status, message)
}

impl From<notebook::Error> for Error {
    fn from(e: notebook::Error) -> Self {
        let message = e.to_string();
        notebook_error(&e, message)
    }
}

fn notebook_error(e: &notebook::Error, message: String) -> Error {
    let status = match e {
        notebook::Error::NotFound { .. } => Status::NotFound,
        notebook::Error::AlreadyExists { .. } => Status::AlreadyExists,
        notebook::Error::NoSuchCell { .. } | notebook::Error::CellGone { .. } => Status::NotFound,
        notebook::Error::Conflict { .. } => Status::Conflict,
        notebook::Error::Busy { .. } => Status::Busy,
        notebook::Error::Io { .. } => Status::IoError,
        notebook::Error::WriteTooLarge { .. }
        | notebook::Error::EditTooLarge { .. }
        | notebook::Error::ReadTooLarge { .. } => Status::TooLarge,
        _ => Status::InvalidArgument,
    };
    Error::new(status, message)
}

impl From<files::Error> for Error {
    fn from(e: files::Error) -> Self {
        let status = match &e {
            files::Error::Path(p) => return notebook_error(p, e.to_string()),
            files::Error::NotFound { .. } => Status::NotFound,
            files::Error::AlreadyExists { .. } => Status::AlreadyExists,
            files::Error::TooLarge { .. } => Status::TooLarge,
            files::Error::Io { .. } => Status::IoError,
            _ => Status::InvalidArgument,
        };
        Error::new(status, e.to_string())
    }
}

impl From<crate::quota::Error> for Error {
    fn from(e: crate::quota::Error) -> Self {
        Error::new(Status::OverQuota, e.to_string())
    }
}

impl From<packages::PolicyError> for Error {
    fn from(e: packages::PolicyError) -> Self {
        Error::new(Status::Refused, e.to_string())
    }
}

impl From<packages::InstallError> for Error {
    fn from(e: packages::InstallError) -> Self {
        let status = match &e {
            packages::InstallError::Timeout { .. } => Status::Timeout,
            packages::InstallError::DownloadTooLarge { .. } => Status::Refused,
            _ => Status::InstallFailed,
        };
        Error::new(status, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_distinct_snake_case_name() {
        use Status::*;
        let all = [
            InvalidArgument,
            NotFound,
            AlreadyExists,
            Conflict,
            Busy,
            IoError,
            TooLarge,
            Cancelled,
            Elsewhere,
            Timeout,
            Unavailable,
            Unauthenticated,
            LimitReached,
            OverQuota,
            Refused,
            InstallFailed,
            KernelDied,
            KernelStartFailed,
            KernelError,
            InternalError,
            Error,
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), all.len());
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
