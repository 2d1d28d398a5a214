//! The S3 mirror's settings, checked: a bucket name S3 accepts, a key prefix that cannot climb
//! out of its place, sizes of at least 1 MiB and a LIST cache of at most a minute.
//!
//! `config` hands the raw `--workspace-*` options to `WorkspaceSettings::from_options` and wraps
//! `SettingsError`; the rules about S3 names and prefixes belong to the mirror.

use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// Largest --workspace-list-cache-ms: how late another environment's change may be seen.
pub const MAX_WORKSPACE_LIST_CACHE_MS: u64 = 60_000;

/// Where and how much to mirror (from `--workspace-*`).
#[derive(Debug, Clone)]
pub struct WorkspaceSettings {
    pub bucket: String,
    /// Empty or ending in `/`.
    pub prefix: String,
    /// Files larger than this are not mirrored.
    pub max_file_bytes: u64,
    /// Bytes restored on a principal's first call at most.
    pub restore_max_bytes: u64,
    /// Bytes one call writes through at most (the rest waits for the next call).
    pub call_budget_bytes: u64,
    /// Path-style addressing, when an endpoint override points at an S3-compatible server.
    pub path_style: bool,
    /// A LIST of a principal's files younger than this stands in for the next call's (zero:
    /// every call lists). Bounds how late another environment's change is seen here.
    pub list_cache: Duration,
}

/// The raw `--workspace-*` options, as given.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceOptions<'a> {
    /// `--workspace-bucket`; `None` or empty: no mirror.
    pub bucket: Option<&'a str>,
    pub prefix: &'a str,
    pub max_file_mb: u64,
    pub restore_max_mb: u64,
    pub call_budget_mb: u64,
    pub list_cache_ms: u64,
    /// An S3 endpoint override is set (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`).
    pub endpoint_override: bool,
}

/// A `--workspace-*` option that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "--workspace-bucket {0:?} is not an S3 bucket name (3 to 63 lower-case letters, digits, `.` and `-`)"
    )]
    Bucket(String),
    #[error(
        "--workspace-prefix {0:?} must be a relative key prefix without `..`, backslashes or control characters"
    )]
    Prefix(String),
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error(
        "--workspace-list-cache-ms {0} is over {MAX_WORKSPACE_LIST_CACHE_MS} (a minute)\nhint: it bounds how late a change saved in another environment is seen; keep it short, or 0"
    )]
    ListCache(u64),
}

impl WorkspaceSettings {
    /// The S3 mirror, when a bucket is given: a valid bucket name, a prefix ending in `/` (or
    /// empty), and sizes of at least 1 MiB.
    pub fn from_options(
        options: &WorkspaceOptions<'_>,
    ) -> Result<Option<WorkspaceSettings>, SettingsError> {
        let Some(bucket) = options.bucket.filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(SettingsError::Bucket(bucket.to_string()));
        }
        let prefix = checked_prefix(options.prefix)?;
        for (name, value) in [
            ("workspace-max-file-mb", options.max_file_mb),
            ("workspace-restore-max-mb", options.restore_max_mb),
            ("workspace-call-budget-mb", options.call_budget_mb),
        ] {
            if value == 0 {
                return Err(SettingsError::Zero(name));
            }
        }
        if options.list_cache_ms > MAX_WORKSPACE_LIST_CACHE_MS {
            return Err(SettingsError::ListCache(options.list_cache_ms));
        }
        Ok(Some(WorkspaceSettings {
            bucket: bucket.to_string(),
            prefix,
            max_file_bytes: options.max_file_mb * MIB,
            restore_max_bytes: options.restore_max_mb * MIB,
            call_budget_bytes: options.call_budget_mb * MIB,
            list_cache: Duration::from_millis(options.list_cache_ms),
            path_style: options.endpoint_override,
        }))
    }
}

/// `--workspace-prefix` without a leading `/` and with a trailing one (unless empty); refused
/// when it could name keys outside its place.
fn checked_prefix(raw: &str) -> Result<String, SettingsError> {
    let mut prefix = raw.trim_start_matches('/').to_string();
    let prefix_ok = prefix.len() <= 512
        && !prefix.chars().any(|c| c.is_control() || c == '\\')
        && !prefix.split('/').any(|seg| seg == ".." || seg == ".");
    if !prefix_ok {
        return Err(SettingsError::Prefix(raw.to_string()));
    }
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(prefix)
}
