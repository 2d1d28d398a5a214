//! Starting one ipykernel child process.
//!
//! The kernel gets a 0700 runtime directory holding its 0600 connection file and its IPC
//! sockets (no TCP: nothing is reachable over the network), a log file for its stdout/stderr, and
//! an environment built from an allowlist: `env_clear()` first, then only what a kernel needs.
//! A denylist would miss whatever secret the server's environment happens to hold (on Lambda the
//! execution role's credentials), so nothing is inherited by default.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jupyter_protocol::{ConnectionInfo, Transport};
use tokio::process::{Child, Command};

use super::Error;

/// Socket file suffixes of the five channels under IPC (`ipc://{prefix}-{n}`).
const SHELL: u16 = 1;
const IOPUB: u16 = 2;
const STDIN: u16 = 3;
const CONTROL: u16 = 4;
const HB: u16 = 5;

/// How much of the kernel's log an error message quotes.
const LOG_TAIL_BYTES: usize = 2048;

/// What every kernel is started with.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    /// Interpreter with ipykernel installed.
    pub python: PathBuf,
    /// Parent of the per-kernel runtime directories.
    pub runtime_root: PathBuf,
    /// The kernel's initial working directory (also its HOME).
    pub cwd: PathBuf,
    /// How long start-up may take before it is abandoned.
    pub startup_timeout: Duration,
    /// PYTHONPATH for the kernel (where ipykernel lives when it is not in the interpreter's
    /// own site-packages, e.g. a Lambda layer).
    pub pythonpath: Option<String>,
}

/// A spawned kernel process with its connection details, not yet connected.
pub(super) struct Spawned {
    pub child: Child,
    pub info: ConnectionInfo,
    pub dir: RuntimeDir,
}

/// The per-kernel runtime directory; removed when dropped, so no socket or key outlives the
/// kernel, whatever path ends it.
#[derive(Debug)]
pub(super) struct RuntimeDir(pub PathBuf);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl RuntimeDir {
    pub fn log_path(&self) -> PathBuf {
        self.0.join("kernel.log")
    }

    /// The end of the kernel's log, for error messages.
    pub fn log_tail(&self) -> String {
        let bytes = std::fs::read(self.log_path()).unwrap_or_default();
        let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
        let tail = String::from_utf8_lossy(&bytes[start..]).trim().to_string();
        if tail.is_empty() {
            "(nothing)".into()
        } else {
            tail
        }
    }
}

/// Names of the server's environment variables a kernel may inherit, copied only when set.
/// Everything else (credentials, tokens, the Lambda runtime's variables) stays out.
/// LD_LIBRARY_PATH is there because a relocated interpreter (Lambda's /var/lang) may need it to
/// find libpython.
const INHERITED_ENV: &[&str] = &["LANG", "LC_ALL", "TZ", "LD_LIBRARY_PATH"];

/// Builds the kernel's environment from scratch.
pub(crate) fn kernel_env(cfg: &LaunchConfig, dir: &Path) -> Vec<(String, String)> {
    let python_bin = cfg
        .python
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| format!("{}:", p.display()))
        .unwrap_or_default();
    let mut env = vec![
        (
            "PATH".into(),
            format!("{python_bin}/usr/local/bin:/usr/bin:/bin"),
        ),
        ("HOME".into(), cfg.cwd.display().to_string()),
        ("TMPDIR".into(), dir.join("tmp").display().to_string()),
        (
            "IPYTHONDIR".into(),
            dir.join("ipython").display().to_string(),
        ),
        ("MPLCONFIGDIR".into(), dir.join("mpl").display().to_string()),
        // Plots come back as display_data images rather than opening windows.
        (
            "MPLBACKEND".into(),
            "module://matplotlib_inline.backend_inline".into(),
        ),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        // ipykernel's debugger warns about frozen modules at every start otherwise.
        ("PYDEVD_DISABLE_FILE_VALIDATION".into(), "1".into()),
    ];
    if let Some(path) = &cfg.pythonpath {
        env.push(("PYTHONPATH".into(), path.clone()));
    }
    for name in INHERITED_ENV {
        if let Ok(value) = std::env::var(name) {
            env.push(((*name).into(), value));
        }
    }
    if !env.iter().any(|(k, _)| k == "LANG") {
        env.push(("LANG".into(), "C.UTF-8".into()));
    }
    env
}

/// Creates the runtime directory and connection file and spawns `python -m ipykernel_launcher`.
pub(super) fn spawn(cfg: &LaunchConfig, id: &str) -> Result<Spawned, Error> {
    let path = cfg.runtime_root.join(id);
    let dir_err = |source| Error::RuntimeDir {
        path: path.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.runtime_root)
        .map_err(dir_err)?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .map_err(dir_err)?;
    let dir = RuntimeDir(path.clone());
    for sub in ["tmp", "ipython", "mpl"] {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(path.join(sub))
            .map_err(dir_err)?;
    }

    let info = ConnectionInfo {
        ip: path.join("k").display().to_string(),
        transport: Transport::IPC,
        shell_port: SHELL,
        iopub_port: IOPUB,
        stdin_port: STDIN,
        control_port: CONTROL,
        hb_port: HB,
        key: format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
        signature_scheme: "hmac-sha256".into(),
        kernel_name: Some("python3".into()),
    };
    let conn_path = path.join("connection.json");
    let json = serde_json::to_vec(&info).map_err(|e| Error::Unexpected(e.to_string()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&conn_path)
        .and_then(|mut f| f.write_all(&json))
        .map_err(dir_err)?;
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.log_path())
        .map_err(dir_err)?;
    let log2 = log.try_clone().map_err(dir_err)?;

    // Rust opens every descriptor with O_CLOEXEC, so the child inherits only these three.
    let mut cmd = Command::new(&cfg.python);
    crate::security::restrict_child(&mut cmd);
    let child = cmd
        .args(["-m", "ipykernel_launcher", "-f"])
        .arg(&conn_path)
        .env_clear()
        .envs(kernel_env(cfg, &path))
        .current_dir(&cfg.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Own process group: an interrupt or kill reaches whatever the kernel forked.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Spawn {
            python: cfg.python.clone(),
            source,
        })?;
    Ok(Spawned { child, info, dir })
}

/// The socket files the kernel binds, which must exist before a client connects (a ZeroMQ IPC
/// connect to a missing file fails rather than waiting).
pub(super) fn socket_paths(info: &ConnectionInfo) -> Vec<PathBuf> {
    [SHELL, IOPUB, STDIN, CONTROL, HB]
        .iter()
        .map(|n| PathBuf::from(format!("{}-{n}", info.ip)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_env_holds_only_allowlisted_names() {
        let cfg = LaunchConfig {
            python: "/opt/venv/bin/python".into(),
            runtime_root: "/tmp/rt".into(),
            cwd: "/work".into(),
            startup_timeout: Duration::from_secs(1),
            pythonpath: Some("/opt/python".into()),
        };
        let env = kernel_env(&cfg, Path::new("/tmp/rt/k1"));
        let allowed = [
            "PATH",
            "HOME",
            "TMPDIR",
            "IPYTHONDIR",
            "MPLCONFIGDIR",
            "MPLBACKEND",
            "PYTHONDONTWRITEBYTECODE",
            "PYDEVD_DISABLE_FILE_VALIDATION",
            "LANG",
            "LC_ALL",
            "TZ",
            "LD_LIBRARY_PATH",
            "PYTHONPATH",
        ];
        for (k, _) in &env {
            assert!(allowed.contains(&k.as_str()), "unexpected variable {k}");
        }
        let path = &env.iter().find(|(k, _)| k == "PATH").unwrap().1;
        assert!(path.starts_with("/opt/venv/bin:"));
    }
}
