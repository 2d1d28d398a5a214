//! Package installs: the requirement policy and the pip runner behind `install_package`.
//!
//! An agent's requirement string reaches pip only after `parse_requirement` has reduced it to
//! a plain PEP 508 name, optional extras and an optional version specifier. pip is never run
//! through a shell, so the policy is not what stops injection; it stops pip *options*, URLs,
//! local paths and markers, which would let a caller pick the index, fetch arbitrary code or
//! read files. The runner is a separate child process owned by the server (not `!pip` in the
//! kernel), built by `crate::child` like a kernel (environment allowlist, uid, limits, seccomp,
//! Landlock: it may write only the package directory and a private temp directory) except that
//! it keeps the network, with its own process group, a timeout and bounded output. It runs
//! twice: `pip download` under a file-size limit at the download cap, then an offline
//! `pip install` from what was downloaded (see `Installer::install`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

const MIB: u64 = 1024 * 1024;
/// Longest requirement string accepted, in bytes.
pub(crate) const MAX_REQUIREMENT_BYTES: usize = 200;
/// How many trailing lines of pip output are kept for error reports.
pub(crate) const PIP_TAIL_LINES: usize = 40;
/// Longest single line of pip output kept, in bytes (the rest of the line is dropped).
const PIP_LINE_MAX_BYTES: usize = 500;
/// How long to wait for pip's pipes to close after pip itself exited.
const PIPE_DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Shown with every refusal so the caller knows what would be accepted.
const ALLOWED: &str = "give a PyPI project name with optional extras and version specifiers and no spaces, \
                       e.g. `pandas`, `requests[socks]`, `numpy==2.0.1`, `pandas>=2,<3`";
/// Characters that are never part of a name, extras or specifier list.
const SHELL_META: &[char] = &[
    '|', '&', '$', '`', '\'', '"', '(', ')', '{', '}', '?', '#', '%', '^', '\\',
];
/// Version specifier operators, longest first so `===` is not read as `==` + `=`.
const OPERATORS: [&str; 8] = ["===", "==", "!=", "<=", ">=", "~=", "<", ">"];

/// Why a requirement string was refused before pip ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PolicyError {
    #[error("package requirement is empty; {ALLOWED}", ALLOWED = ALLOWED)]
    Empty,
    #[error("package requirement is {len} bytes, over the {max}-byte limit; {ALLOWED}", ALLOWED = ALLOWED)]
    TooLong { len: usize, max: usize },
    #[error("package requirement starts with `-`, which pip reads as an option; options are not allowed: {ALLOWED}", ALLOWED = ALLOWED)]
    PipOption,
    #[error("package requirement is a URL or direct reference; only packages from the default index are allowed: {ALLOWED}", ALLOWED = ALLOWED)]
    Url,
    #[error("package requirement is a file path or archive; only packages from the default index are allowed: {ALLOWED}", ALLOWED = ALLOWED)]
    Path,
    #[error("package requirement has an environment marker (`;`); markers are not allowed: {ALLOWED}", ALLOWED = ALLOWED)]
    Marker,
    #[error("package requirement contains whitespace; {ALLOWED}", ALLOWED = ALLOWED)]
    Whitespace,
    #[error("package requirement contains `{ch}`, which is not allowed outside a version; {ALLOWED}", ALLOWED = ALLOWED)]
    ShellMeta { ch: char },
    #[error("package requirement is not valid: {reason}; {ALLOWED}", ALLOWED = ALLOWED)]
    Invalid { reason: String },
    #[error(
        "package `{name}` is on this server's deny list (--package-deny); pick another package"
    )]
    Denied { name: String },
    #[error(
        "package `{name}` is not on this server's allow list (--package-allow); allowed: {allowed}"
    )]
    NotAllowed { name: String, allowed: String },
}

/// Applies `--package-deny` then `--package-allow` to a parsed requirement (by its PEP 503
/// name). Only the named package is checked: its dependencies come from the same fixed index.
pub(crate) fn check_lists(
    req: &Requirement,
    settings: &crate::config::PackageSettings,
) -> Result<(), PolicyError> {
    if settings.deny.contains(&req.normalized) {
        return Err(PolicyError::Denied {
            name: req.normalized.clone(),
        });
    }
    if !settings.allow.is_empty() && !settings.allow.contains(&req.normalized) {
        return Err(PolicyError::NotAllowed {
            name: req.normalized.clone(),
            allowed: settings.allow.join(", "),
        });
    }
    Ok(())
}

/// Why a pip install failed after the policy accepted the requirement.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InstallError {
    #[error("could not start pip ({source}); check that the kernel Python exists and has pip")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("could not confine pip: {0}")]
    Sandbox(#[from] crate::child::Error),
    #[error(
        "could not create pip's temporary directory ({source}); check the system temp directory"
    )]
    TempDir {
        #[source]
        source: std::io::Error,
    },
    #[error("could not wait for pip ({source}); try the install again")]
    Wait {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "pip did not finish within {timeout_secs} s and was stopped; try again, or pick a smaller package or an exact version"
    )]
    Timeout { timeout_secs: u64 },
    #[error("pip failed ({status}); check the package name and version. Last lines of pip output:\n{}", .last_lines.join("\n"))]
    PipFailed {
        status: String,
        last_lines: Vec<String>,
    },
    #[error(
        "pip reported success but no `{name}-*.dist-info` was found in the target; check the package name"
    )]
    VersionNotFound { name: String },
    #[error(
        "a download for this install is over this server's {cap_mb} MiB cap (--package-max-download-mb){detail}; nothing was installed. Pick a smaller package or another version, or ask the operator to raise the cap"
    )]
    DownloadTooLarge { cap_mb: u64, detail: String },
    #[error("could not read the package target directory ({source}); check its permissions")]
    ReadTarget {
        #[source]
        source: std::io::Error,
    },
}

/// A requirement that passed the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirement {
    /// Project name as the caller spelled it.
    pub(crate) name: String,
    /// PEP 503 normalized name: lowercase, runs of `-`, `_`, `.` replaced by one `-`.
    pub(crate) normalized: String,
    /// Extras, as given, in order.
    pub(crate) extras: Vec<String>,
    /// Comma-separated version specifiers, e.g. `>=2,<3`; empty for any version.
    pub(crate) specifier: String,
}

impl Requirement {
    /// The exact argument to hand pip (after `--`).
    pub(crate) fn to_pip_arg(&self) -> String {
        let mut arg = self.name.clone();
        if !self.extras.is_empty() {
            arg.push('[');
            arg.push_str(&self.extras.join(","));
            arg.push(']');
        }
        arg.push_str(&self.specifier);
        arg
    }
}

/// A package pip installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub(crate) struct Installed {
    /// PEP 503 normalized project name.
    pub(crate) name: String,
    /// Installed version, read from the package's `.dist-info` directory.
    pub(crate) version: String,
}

/// Checks `spec` against the policy and splits it into name, extras and specifiers.
pub(crate) fn parse_requirement(spec: &str) -> Result<Requirement, PolicyError> {
    refuse_forbidden_forms(spec)?;
    let name_end = spec
        .find(['[', '<', '>', '=', '!', '~', ','])
        .unwrap_or(spec.len());
    let (name, rest) = spec.split_at(name_end);
    if let Some(ch) = name.chars().find(|c| *c == '*') {
        return Err(PolicyError::ShellMeta { ch });
    }
    if !is_pep508_name(name) {
        return Err(invalid(
            "the project name must be letters, digits, `.`, `_` or `-`, starting and ending with a letter or digit",
        ));
    }
    let (extras, specifier) = split_extras(rest)?;
    check_specifiers(specifier)?;
    Ok(Requirement {
        name: name.to_owned(),
        normalized: normalize_name(name),
        extras,
        specifier: specifier.to_owned(),
    })
}

/// PEP 503 normalization: lowercase, and each run of `-`, `_`, `.` becomes one `-`.
pub(crate) fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator_run {
                out.push('-');
            }
            in_separator_run = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_separator_run = false;
        }
    }
    out
}

/// The refusals that get their own variant, checked in order of how specific they are.
fn refuse_forbidden_forms(spec: &str) -> Result<(), PolicyError> {
    if spec.is_empty() {
        return Err(PolicyError::Empty);
    }
    if spec.len() > MAX_REQUIREMENT_BYTES {
        return Err(PolicyError::TooLong {
            len: spec.len(),
            max: MAX_REQUIREMENT_BYTES,
        });
    }
    if spec.starts_with('-') {
        return Err(PolicyError::PipOption);
    }
    if is_url(spec) {
        return Err(PolicyError::Url);
    }
    if spec.contains(';') {
        return Err(PolicyError::Marker);
    }
    if is_path(spec) {
        return Err(PolicyError::Path);
    }
    if spec.chars().any(char::is_whitespace) {
        return Err(PolicyError::Whitespace);
    }
    if let Some(ch) = spec.chars().find(|c| SHELL_META.contains(c)) {
        return Err(PolicyError::ShellMeta { ch });
    }
    Ok(())
}

fn is_url(spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    lower.contains("://")
        || lower.contains('@')
        || lower.starts_with("file:")
        || ["git+", "hg+", "svn+", "bzr+"]
            .iter()
            .any(|vcs| lower.contains(vcs))
}

fn is_path(spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    spec.contains('/')
        || spec.contains('\\')
        || spec == "."
        || spec == ".."
        || [".whl", ".tar.gz", ".tgz", ".tar.bz2", ".zip"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// `[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?`
fn is_pep508_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        _ => false,
    }
}

/// Splits an optional leading `[a,b]` off `rest`; returns the extras and what follows.
fn split_extras(rest: &str) -> Result<(Vec<String>, &str), PolicyError> {
    let Some(inner_and_after) = rest.strip_prefix('[') else {
        return Ok((Vec::new(), rest));
    };
    let Some((inner, after)) = inner_and_after.split_once(']') else {
        return Err(invalid(
            "extras must be closed with `]`, e.g. `requests[socks]`",
        ));
    };
    let extras: Vec<String> = inner.split(',').map(str::to_owned).collect();
    if !extras.iter().all(|e| is_pep508_name(e)) {
        return Err(invalid(
            "each extra must be a name like `socks`, separated by `,`",
        ));
    }
    Ok((extras, after))
}

/// `op version (, op version)*` with versions of `[A-Za-z0-9.*+!]` starting with a letter or digit.
fn check_specifiers(specifier: &str) -> Result<(), PolicyError> {
    if specifier.is_empty() {
        return Ok(());
    }
    for clause in specifier.split(',') {
        let Some(op) = OPERATORS.iter().find(|op| clause.starts_with(**op)) else {
            return Err(invalid(
                "each version specifier must start with ==, !=, <=, >=, <, >, ~= or ===",
            ));
        };
        let version = &clause[op.len()..];
        let starts_ok = version
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let chars_ok = version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '*' | '+' | '!'));
        if !starts_ok || !chars_ok {
            return Err(invalid(
                "versions must be letters, digits, `.`, `*`, `+` or `!`, e.g. `==2.0.1` or `==2.*`",
            ));
        }
    }
    Ok(())
}

fn invalid(reason: &str) -> PolicyError {
    PolicyError::Invalid {
        reason: reason.to_owned(),
    }
}

/// Runs pip into one target directory with one interpreter.
#[derive(Debug, Clone)]
pub(crate) struct Installer {
    /// How pip is confined; its `python` is the interpreter whose pip does the install (the
    /// kernel's), its `pythonpath` where pip lives when not in that interpreter (a layer).
    policy: crate::child::Policy,
    /// The principal's directory (whose owner is pip's uid under `--kernel-uid-per-principal`).
    home: PathBuf,
    /// `--target` directory; the kernel must have it on `sys.path` to import what lands here.
    target: PathBuf,
    /// Wall-clock limit for one pip run; on expiry pip's whole process group is killed.
    timeout: Duration,
    /// Index and network timeout, from the configuration only.
    source: crate::config::PackageSettings,
}

impl Installer {
    pub(crate) fn new(
        policy: crate::child::Policy,
        home: PathBuf,
        target: PathBuf,
        timeout: Duration,
        source: crate::config::PackageSettings,
    ) -> Self {
        Self {
            policy,
            home,
            target,
            timeout,
            source,
        }
    }

    /// Installs `req` with pip and reports the version that landed in the target.
    ///
    /// Two pip runs within one deadline. `pip download` fetches the requirement and its
    /// dependencies into a private directory with RLIMIT_FSIZE at `--package-max-download-mb`:
    /// the kernel refuses the write that would pass the cap, so no index and no lying
    /// Content-Length can make it bigger (a size hook in pip would trust pip; a directory
    /// watcher would overshoot by its interval). The files together must fit the cap too. Then
    /// `pip install --no-index --find-links` installs from those files only, under the kernel's
    /// own file-size limit (an extracted library may be larger than its wheel).
    pub(crate) async fn install(&self, req: &Requirement) -> Result<Installed, InstallError> {
        let tmp = tempfile::Builder::new()
            .prefix("jmcp-pip-")
            .tempdir()
            .map_err(|source| InstallError::TempDir { source })?;
        std::fs::create_dir_all(&self.target)
            .map_err(|source| InstallError::ReadTarget { source })?;
        let downloads = tmp.path().join("downloads");
        std::fs::create_dir(&downloads).map_err(|source| InstallError::TempDir { source })?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let cap = self.source.max_download_bytes;

        let mut capped = self.policy.clone();
        if cap.is_some() {
            capped.limits.file_size_bytes = cap;
        }
        let fetched = self
            .run_pip(
                &capped,
                self.download_command(req, tmp.path(), &downloads),
                &[tmp.path().to_path_buf()],
                &[tmp.path(), &downloads],
                deadline,
            )
            .await;
        match (fetched, cap) {
            (Err(InstallError::PipFailed { status, last_lines }), Some(cap))
                if hit_file_size_limit(&status, &last_lines) =>
            {
                return Err(InstallError::DownloadTooLarge {
                    cap_mb: cap / MIB,
                    detail: last_lines
                        .iter()
                        .rev()
                        .find(|l| l.trim_start().starts_with("Downloading "))
                        .map(|l| format!(" ({})", l.trim()))
                        .unwrap_or_default(),
                });
            }
            (fetched, _) => fetched?,
        }
        if let Some(cap) = cap {
            let total = dir_bytes(&downloads);
            if total > cap {
                return Err(InstallError::DownloadTooLarge {
                    cap_mb: cap / MIB,
                    detail: format!(
                        " (the requirement and its dependencies are {} MiB in all)",
                        total.div_ceil(MIB)
                    ),
                });
            }
        }

        self.run_pip(
            &self.policy,
            self.install_command(req, tmp.path(), &downloads),
            &[self.target.clone(), tmp.path().to_path_buf()],
            &[&self.target, tmp.path()],
            deadline,
        )
        .await?;
        let version = find_installed_version(&self.target, &req.normalized)?;
        Ok(Installed {
            name: req.normalized.clone(),
            version,
        })
    }

    /// Runs one confined pip command to its end (or the deadline), keeping its last lines.
    async fn run_pip(
        &self,
        policy: &crate::child::Policy,
        mut cmd: Command,
        write: &[PathBuf],
        own: &[&Path],
        deadline: tokio::time::Instant,
    ) -> Result<(), InstallError> {
        let prepared =
            policy.prepare(crate::child::Role::Pip, "pip", &self.home, &[], write, own)?;
        let _confinement = prepared.apply(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|source| InstallError::Spawn { source })?;
        let tail = Arc::new(Mutex::new(LineTail::default()));
        let readers = [
            child
                .stdout
                .take()
                .map(|out| tokio::spawn(drain(out, Arc::clone(&tail)))),
            child
                .stderr
                .take()
                .map(|err| tokio::spawn(drain(err, Arc::clone(&tail)))),
        ];
        let status = match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(waited) => waited.map_err(|source| InstallError::Wait { source })?,
            Err(_) => {
                crate::child::kill_group(&mut child).await;
                return Err(InstallError::Timeout {
                    timeout_secs: self.timeout.as_secs(),
                });
            }
        };
        for reader in readers.into_iter().flatten() {
            // A grandchild holding the pipe open must not stall us; drop what it still says.
            let _ = tokio::time::timeout(PIPE_DRAIN_GRACE, reader).await;
        }
        if !status.success() {
            return Err(pip_failed(status, &tail));
        }
        Ok(())
    }

    /// `python -m pip SUBCOMMAND` with what both runs share: no prompts, no cache, no version
    /// check, wheels only (no sdist is built, so no package's setup.py or build backend runs on
    /// this machine; packages without wheels fail instead), the allowlisted environment, and
    /// the private temp directory as its working directory.
    fn pip(&self, subcommand: &str, tmp: &Path) -> Command {
        let mut cmd = Command::new(&self.policy.python);
        cmd.args(["-m", "pip", subcommand])
            .args([
                "--no-input",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "--progress-bar",
                "off",
                "--only-binary",
                ":all:",
            ])
            .env_clear()
            .envs(self.policy.pip_env(tmp))
            .current_dir(tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // `child` gives it its own group, so a timeout kills pip and what it started at once.
        cmd
    }

    /// Fetches the requirement and its dependencies from the configured index into `downloads`.
    fn download_command(&self, req: &Requirement, tmp: &Path, downloads: &Path) -> Command {
        let mut cmd = self.pip("download", tmp);
        cmd.arg("--dest")
            .arg(downloads)
            .arg("--timeout")
            .arg(self.source.download_timeout.as_secs().max(1).to_string());
        if let Some(index) = &self.source.index_url {
            cmd.arg("--index-url").arg(index);
        }
        cmd.arg("--").arg(req.to_pip_arg());
        cmd
    }

    /// Installs from `downloads` only (no network) into the target.
    fn install_command(&self, req: &Requirement, tmp: &Path, downloads: &Path) -> Command {
        let mut cmd = self.pip("install", tmp);
        cmd.arg("--target")
            .arg(&self.target)
            .args(["--upgrade", "--no-warn-script-location", "--no-index"])
            .arg("--find-links")
            .arg(downloads)
            .arg("--")
            .arg(req.to_pip_arg());
        cmd
    }
}

/// Bytes in a directory's regular files (one level: `pip download` writes flat).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Whether pip failed on RLIMIT_FSIZE: Python ignores SIGXFSZ, so the write fails with EFBIG
/// ("[Errno 27] File too large"); a child that does not ignore it dies of the signal.
fn hit_file_size_limit(status: &str, last_lines: &[String]) -> bool {
    status.contains("SIGXFSZ")
        || status.contains("signal: 25")
        || last_lines
            .iter()
            .any(|l| l.contains("[Errno 27]") || l.contains("File too large"))
}

fn pip_failed(status: ExitStatus, tail: &Mutex<LineTail>) -> InstallError {
    let last_lines = match tail.lock() {
        Ok(mut tail) => tail.finish(),
        Err(poisoned) => poisoned.into_inner().finish(),
    };
    InstallError::PipFailed {
        status: status.to_string(),
        last_lines,
    }
}

/// Reads a pipe to its end, feeding the shared tail.
async fn drain(mut pipe: impl AsyncRead + Unpin, tail: Arc<Mutex<LineTail>>) {
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut tail) = tail.lock() {
                    tail.push(&buf[..n]);
                }
            }
        }
    }
}

/// The last `PIP_TAIL_LINES` lines of a byte stream, each capped at `PIP_LINE_MAX_BYTES`.
#[derive(Debug, Default)]
struct LineTail {
    lines: VecDeque<String>,
    current: Vec<u8>,
}

impl LineTail {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line();
            } else if self.current.len() < PIP_LINE_MAX_BYTES {
                self.current.push(b);
            }
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.current)
            .trim_end_matches('\r')
            .to_owned();
        self.current.clear();
        if line.trim().is_empty() {
            return;
        }
        if self.lines.len() == PIP_TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn finish(&mut self) -> Vec<String> {
        self.end_line();
        self.lines.iter().cloned().collect()
    }
}

/// Finds `TARGET/<dist>-<version>.dist-info` whose dist name normalizes to `normalized`.
///
/// If several match (an upgrade can leave an old one behind), the newest directory wins.
pub(crate) fn find_installed_version(
    target: &Path,
    normalized: &str,
) -> Result<String, InstallError> {
    let entries =
        std::fs::read_dir(target).map_err(|source| InstallError::ReadTarget { source })?;
    let mut best: Option<(std::time::SystemTime, String)> = None;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(stem) = file_name
            .to_str()
            .and_then(|n| n.strip_suffix(".dist-info"))
        else {
            continue;
        };
        // Wheel dist-info names escape `-` in the name, so the last `-` splits off the version.
        let Some((dist, version)) = stem.rsplit_once('-') else {
            continue;
        };
        if normalize_name(dist) != normalized || version.is_empty() {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(t, _)| modified > *t) {
            best = Some((modified, version.to_owned()));
        }
    }
    best.map(|(_, version)| version)
        .ok_or_else(|| InstallError::VersionNotFound {
            name: normalized.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> Requirement {
        parse_requirement(spec).unwrap()
    }

    fn refused(spec: &str) -> PolicyError {
        parse_requirement(spec).unwrap_err()
    }

    #[test]
    fn accepts_plain_name() {
        let req = ok("numpy");
        assert_eq!(
            (
                req.name.as_str(),
                req.normalized.as_str(),
                req.specifier.as_str()
            ),
            ("numpy", "numpy", "")
        );
        assert_eq!(req.to_pip_arg(), "numpy");
    }

    #[test]
    fn accepts_pinned_version() {
        let req = ok("numpy==2.0.1");
        assert_eq!(req.specifier, "==2.0.1");
        assert_eq!(req.to_pip_arg(), "numpy==2.0.1");
    }

    #[test]
    fn accepts_version_range() {
        let req = ok("pandas>=2,<3");
        assert_eq!(
            (req.name.as_str(), req.specifier.as_str()),
            ("pandas", ">=2,<3")
        );
        assert_eq!(req.to_pip_arg(), "pandas>=2,<3");
    }

    #[test]
    fn accepts_extras() {
        let req = ok("requests[socks]");
        assert_eq!(req.extras, ["socks"]);
        assert_eq!(req.to_pip_arg(), "requests[socks]");
        assert_eq!(
            ok("requests[socks,security]~=2.31").to_pip_arg(),
            "requests[socks,security]~=2.31"
        );
    }

    #[test]
    fn accepts_wildcard_epoch_and_arbitrary_equality() {
        assert_eq!(ok("numpy==2.*").specifier, "==2.*");
        assert_eq!(ok("foo!=1!2.0").specifier, "!=1!2.0");
        assert_eq!(ok("foo===1.0+local").specifier, "===1.0+local");
    }

    #[test]
    fn refuses_marker_with_shell_command() {
        assert_eq!(refused("numpy; rm -rf /"), PolicyError::Marker);
    }

    #[test]
    fn refuses_index_url_option() {
        assert_eq!(refused("--index-url http://evil"), PolicyError::PipOption);
    }

    #[test]
    fn refuses_editable_option() {
        assert_eq!(refused("-e ."), PolicyError::PipOption);
    }

    #[test]
    fn refuses_vcs_url() {
        assert_eq!(refused("git+https://github.com/x/y"), PolicyError::Url);
    }

    #[test]
    fn refuses_relative_wheel_path() {
        assert_eq!(refused("../x.whl"), PolicyError::Path);
    }

    #[test]
    fn refuses_absolute_wheel_path() {
        assert_eq!(refused("/tmp/x.whl"), PolicyError::Path);
    }

    #[test]
    fn refuses_bare_archive_name() {
        assert_eq!(refused("x.tar.gz"), PolicyError::Path);
        // Any case: pip treats `A.zIP` as a local archive too.
        assert_eq!(refused("A.zIP"), PolicyError::Path);
        assert_eq!(refused("."), PolicyError::Path);
    }

    #[test]
    fn refuses_wheel_url() {
        assert_eq!(refused("https://x/y.whl"), PolicyError::Url);
    }

    #[test]
    fn refuses_direct_reference() {
        assert_eq!(refused("pkg @ https://x"), PolicyError::Url);
        assert_eq!(refused("pkg@file:x"), PolicyError::Url);
    }

    #[test]
    fn refuses_space_before_version() {
        assert_eq!(refused("numpy ==1"), PolicyError::Whitespace);
    }

    #[test]
    fn refuses_command_substitution() {
        assert_eq!(refused("$(reboot)"), PolicyError::ShellMeta { ch: '$' });
    }

    #[test]
    fn refuses_pipe() {
        assert_eq!(refused("a|b"), PolicyError::ShellMeta { ch: '|' });
    }

    #[test]
    fn refuses_glob_in_name() {
        assert_eq!(refused("num*"), PolicyError::ShellMeta { ch: '*' });
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(refused(""), PolicyError::Empty);
    }

    #[test]
    fn refuses_too_long() {
        assert_eq!(
            refused(&"a".repeat(300)),
            PolicyError::TooLong {
                len: 300,
                max: MAX_REQUIREMENT_BYTES
            }
        );
    }

    #[test]
    fn refuses_malformed_forms() {
        for spec in [
            "numpy=1",
            "numpy==",
            "numpy==>1",
            "_x",
            "x_",
            "a[b",
            "a[]",
            "a[b]c",
            "numpy,",
            "a:b",
            "a==1,",
        ] {
            assert!(
                matches!(refused(spec), PolicyError::Invalid { .. }),
                "{spec} should be invalid"
            );
        }
    }

    #[test]
    fn refusal_messages_say_what_is_allowed() {
        assert!(refused("a|b").to_string().contains("numpy==2.0.1"));
    }

    fn lists(allow: &[&str], deny: &[&str]) -> crate::config::PackageSettings {
        crate::config::PackageSettings {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn denied_package_is_refused_under_any_spelling() {
        for spec in ["requests", "Requests==2.0", "REQUESTS[socks]"] {
            assert!(matches!(
                check_lists(&ok(spec), &lists(&[], &["requests"])),
                Err(PolicyError::Denied { .. })
            ));
        }
        assert!(matches!(
            check_lists(&ok("Py_YAML"), &lists(&[], &["py-yaml"])),
            Err(PolicyError::Denied { .. })
        ));
    }

    #[test]
    fn package_outside_the_allow_list_is_refused() {
        let err = check_lists(&ok("numpy"), &lists(&["pandas", "six"], &[])).unwrap_err();
        assert!(err.to_string().contains("pandas, six"), "{err}");
        assert!(check_lists(&ok("Pandas>=2"), &lists(&["pandas"], &[])).is_ok());
        assert!(check_lists(&ok("anything"), &lists(&[], &[])).is_ok());
    }

    #[test]
    fn normalizes_pep503() {
        assert_eq!(normalize_name("Foo_Bar.baz"), "foo-bar-baz");
        assert_eq!(normalize_name("A--_.B"), "a-b");
        assert_eq!(ok("Foo_Bar.baz").normalized, "foo-bar-baz");
    }

    #[test]
    fn line_tail_keeps_last_lines_capped() {
        let mut tail = LineTail::default();
        for i in 0..100 {
            tail.push(format!("line {i}\r\n").as_bytes());
        }
        tail.push(&[b'x'; 2000]);
        let lines = tail.finish();
        assert_eq!(lines.len(), PIP_TAIL_LINES);
        assert_eq!(lines[0], "line 61");
        assert_eq!(lines[PIP_TAIL_LINES - 1].len(), PIP_LINE_MAX_BYTES);
    }

    #[test]
    fn finds_version_in_dist_info() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "foo_bar-1.2.3.dist-info",
            "foo_bar",
            "other-9.0.dist-info",
            "foo_barbaz-0.1.dist-info",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        assert_eq!(
            find_installed_version(dir.path(), "foo-bar").unwrap(),
            "1.2.3"
        );
        assert_eq!(
            find_installed_version(dir.path(), &normalize_name("Foo.Bar")).unwrap(),
            "1.2.3"
        );
        assert!(matches!(
            find_installed_version(dir.path(), "missing"),
            Err(InstallError::VersionNotFound { .. })
        ));
    }

    #[test]
    fn missing_target_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            find_installed_version(&dir.path().join("nope"), "x"),
            Err(InstallError::ReadTarget { .. })
        ));
    }

    /// The server's uid and no limits: the runner is under test here, not the sandbox.
    fn test_policy(python: PathBuf) -> crate::child::Policy {
        crate::child::Policy {
            python,
            pythonpath: None,
            network: false,
            ids: None,
            per_principal: None,
            ids_note: String::new(),
            limits: crate::child::Limits::default(),
            cgroup_pids_max: 64,
        }
    }

    #[tokio::test]
    async fn failing_pip_reports_last_lines() {
        // A stand-in "python" that prints and fails exercises the runner without the network.
        let dir = tempfile::tempdir().unwrap();
        let installer = Installer::new(
            test_policy("/bin/sh".into()),
            dir.path().into(),
            dir.path().into(),
            Duration::from_secs(10),
            crate::config::PackageSettings::default(),
        );
        let err = installer.install(&ok("numpy")).await.unwrap_err();
        assert!(matches!(err, InstallError::PipFailed { .. }), "{err}");
    }

    #[test]
    fn a_file_size_limit_failure_is_recognized() {
        let efbig = vec![
            "  Downloading big-1.0-py3-none-any.whl (3.1 MB)".to_string(),
            "OSError: [Errno 27] File too large".to_string(),
        ];
        assert!(hit_file_size_limit("exit status: 2", &efbig));
        assert!(hit_file_size_limit("signal: 25 (SIGXFSZ)", &[]));
        assert!(!hit_file_size_limit(
            "exit status: 1",
            &["ERROR: No matching distribution found for nope".to_string()]
        ));
    }

    #[tokio::test]
    async fn slow_pip_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("slowpython");
        std::fs::write(&script, "#!/bin/sh\nsleep 30 &\nsleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let installer = Installer::new(
            test_policy(script),
            dir.path().into(),
            dir.path().into(),
            Duration::from_millis(300),
            crate::config::PackageSettings::default(),
        );
        let started = std::time::Instant::now();
        let err = installer.install(&ok("numpy")).await.unwrap_err();
        assert!(matches!(err, InstallError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

/// Property tests: nothing but a plain requirement passes the policy, and every plain
/// requirement does, unchanged on its way to pip.
#[cfg(test)]
mod requirement_props {
    use super::*;
    use proptest::prelude::*;

    fn name_ok(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
    }

    fn clause_ok(c: &str) -> bool {
        let ops = ["===", "==", "!=", "<=", ">=", "~=", "<", ">"];
        ops.iter().any(|op| {
            c.strip_prefix(op).is_some_and(|v| {
                v.chars().next().is_some_and(|f| f.is_ascii_alphanumeric())
                    && v.chars()
                        .all(|x| x.is_ascii_alphanumeric() || ".*+!".contains(x))
            })
        })
    }

    /// The plain grammar, written apart from the parser: NAME [ '[' NAME (',' NAME)* ']' ]
    /// [ CLAUSE (',' CLAUSE)* ].
    fn plain(s: &str) -> bool {
        let end = s
            .find(['[', '<', '>', '=', '!', '~', ','])
            .unwrap_or(s.len());
        let (name, mut rest) = s.split_at(end);
        if !name_ok(name) {
            return false;
        }
        if let Some(inner) = rest.strip_prefix('[') {
            let Some((extras, after)) = inner.split_once(']') else {
                return false;
            };
            if !extras.split(',').all(name_ok) {
                return false;
            }
            rest = after;
        }
        rest.is_empty() || rest.split(',').all(clause_ok)
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9]{1,6}",
            Just("-".to_string()),
            Just(".".to_string()),
            Just("_".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just("==".to_string()),
            Just(">=".to_string()),
            Just("<".to_string()),
            Just("~=".to_string()),
            Just("===".to_string()),
            Just("*".to_string()),
            Just("+".to_string()),
            Just("!".to_string()),
            Just("@".to_string()),
            Just(";".to_string()),
            Just(" ".to_string()),
            Just("/".to_string()),
            Just("://".to_string()),
            Just("$(".to_string()),
            Just("`".to_string()),
            Just("|".to_string()),
            Just("\n".to_string()),
            Just("git+".to_string()),
            Just("file:".to_string()),
            Just("..".to_string()),
            Just("\\".to_string()),
            any::<char>().prop_map(String::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn only_plain_requirements_pass(parts in proptest::collection::vec(piece(), 1..8)) {
            let spec = parts.concat();
            if let Ok(r) = parse_requirement(&spec) {
                prop_assert!(plain(&spec), "{spec:?} passed but is not a plain requirement");
                prop_assert_eq!(r.to_pip_arg(), spec.clone());
                prop_assert!(!spec.starts_with('-'));
            }
        }

        #[test]
        fn arbitrary_text_passes_only_when_plain(spec in "\\PC{0,40}") {
            if parse_requirement(&spec).is_ok() {
                prop_assert!(plain(&spec), "{spec:?}");
            }
        }

        #[test]
        fn every_plain_requirement_passes_unchanged(
            name in "[a-zA-Z0-9]([a-zA-Z0-9._-]{0,10}[a-zA-Z0-9])?",
            extras in proptest::collection::vec("[a-z0-9]{1,5}", 0..3),
            clauses in proptest::collection::vec(
                ("(===|==|!=|<=|>=|~=|<|>)", "[0-9][0-9a-z.*+!]{0,6}"), 0..3),
        ) {
            let mut spec = name.clone();
            if !extras.is_empty() {
                spec.push_str(&format!("[{}]", extras.join(",")));
            }
            let clauses: Vec<String> = clauses.into_iter().map(|(op, v)| op + &v).collect();
            spec.push_str(&clauses.join(","));
            // A name that spells a VCS scheme or file: prefix is refused as a URL on purpose,
            // and one ending in an archive suffix (`A.zIP`) as a path to a local archive.
            prop_assume!(!is_url(&spec) && !is_path(&spec));
            let r = parse_requirement(&spec);
            prop_assert!(r.is_ok(), "{spec:?} was refused: {r:?}");
            prop_assert_eq!(r.map(|r| r.to_pip_arg()).unwrap_or_default(), spec);
        }
    }
}
