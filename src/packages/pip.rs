//! The pip runner behind `install_package`: a separate child process owned by the server (not
//! `!pip` in the kernel), built by `crate::child` like a kernel (environment allowlist, uid,
//! limits, seccomp, Landlock: it may write only the package directory and a private temp
//! directory) except that it keeps the network, with its own process group, a timeout and
//! bounded output. It runs twice: `pip download` under a file-size limit at the download cap,
//! then an offline `pip install` from what was downloaded (see `Installer::install`). It only
//! ever gets a requirement that passed the policy (`policy::Requirement`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::PackageSettings;
use super::policy::{Requirement, normalize_name};

const MIB: u64 = 1024 * 1024;
/// How many trailing lines of pip output are kept for error reports.
pub(crate) const PIP_TAIL_LINES: usize = 40;
/// Longest single line of pip output kept, in bytes (the rest of the line is dropped).
const PIP_LINE_MAX_BYTES: usize = 500;
/// How long to wait for pip's pipes to close after pip itself exited.
const PIPE_DRAIN_GRACE: Duration = Duration::from_secs(2);

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

/// A package pip installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub(crate) struct Installed {
    /// PEP 503 normalized project name.
    pub(crate) name: String,
    /// Installed version, read from the package's `.dist-info` directory.
    pub(crate) version: String,
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
    source: PackageSettings,
}

impl Installer {
    pub(crate) fn new(
        policy: crate::child::Policy,
        home: PathBuf,
        target: PathBuf,
        timeout: Duration,
        source: PackageSettings,
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
    use crate::packages::parse_requirement;

    fn ok(spec: &str) -> Requirement {
        parse_requirement(spec).unwrap()
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
            PackageSettings::default(),
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
            PackageSettings::default(),
        );
        let started = std::time::Instant::now();
        let err = installer.install(&ok("numpy")).await.unwrap_err();
        assert!(matches!(err, InstallError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
