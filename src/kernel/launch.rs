//! Starting one ipykernel child process.
//!
//! The kernel gets a 0700 runtime directory holding its 0600 connection file and its IPC
//! sockets (no TCP: nothing is reachable over the network), its HOME, IPython and matplotlib
//! directories, and a log file for its stdout/stderr; and a 0700 temp directory beside it (all
//! removed with it, so nothing it plants there reaches the next kernel). How the process is confined (environment,
//! uid, limits, seccomp, Landlock) is `crate::child`'s business.
//!
//! Start-up path: `python -I -B -c LAUNCHER`. `-I` means no current directory, no user
//! site-packages and no `PYTHON*` variable on the way in; the launcher makes the process
//! non-dumpable (execve resets the flag, so the child cannot keep it from before exec), inserts
//! the layer's paths (`--kernel-pythonpath`) after the standard library, and starts ipykernel as
//! found on that path, never from a writable directory.

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
    /// How long start-up may take before it is abandoned.
    pub startup_timeout: Duration,
    /// PYTHONPATH for the kernel (where ipykernel lives when it is not in the interpreter's
    /// own site-packages, e.g. a Lambda layer).
    pub pythonpath: Option<String>,
    /// How the kernel process is confined.
    pub sandbox: crate::child::Policy,
}

/// A spawned kernel process with its connection details, not yet connected.
pub(super) struct Spawned {
    pub child: Child,
    pub info: ConnectionInfo,
    pub dir: RuntimeDir,
    /// The kernel's cgroup (if any), to sweep when it ends.
    pub confinement: crate::child::Confinement,
    /// Layers that could not apply to this kernel, with the reason.
    pub not_applied: Vec<crate::child::Layer>,
}

/// Where the kernels' temp directories live, under the runtime root: apart from the runtime
/// directories (see `RuntimeDir`).
const TMP_DIRS: &str = "tmp";

/// The per-kernel runtime directory and temp directory; removed when dropped, so no socket or
/// key outlives the kernel, whatever path ends it.
///
/// A kernel is often dropped where blocking is wrong: on a runtime thread, even inside the
/// pool's lock. So the drop removes only the connection file (the key) at once, and hands the
/// directories (which user code may have filled with gigabytes, in TMPDIR or HOME) to a
/// blocking thread. Without a runtime, or if the runtime is gone before that thread runs, the
/// runtime root's own removal at exit (`RuntimeRoot`) takes them.
#[derive(Debug)]
pub(super) struct RuntimeDir {
    pub path: PathBuf,
    /// The kernel's TMPDIR.
    pub tmp: PathBuf,
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path.join(CONNECTION_FILE));
        let dirs = [
            std::mem::take(&mut self.path),
            std::mem::take(&mut self.tmp),
        ];
        let remove = move || {
            for dir in dirs.iter().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::remove_dir_all(dir);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// The connection file's name in a runtime directory.
const CONNECTION_FILE: &str = "connection.json";

impl RuntimeDir {
    pub fn log_path(&self) -> PathBuf {
        self.path.join("kernel.log")
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

/// Runs ipykernel from an isolated interpreter. `{layer}` becomes a JSON list of paths.
/// The layer's paths go before site-packages (so a layer can provide ipykernel) but after the
/// standard library (so nothing there shadows `os` or `json`). prctl(PR_SET_DUMPABLE, 0) keeps
/// other processes of the same uid out of `/proc/<kernel>/mem` and `environ`.
const LAUNCHER: &str = r#"import sys
try:
    import ctypes
    if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")
except Exception as e:
    print("jupyter-mcp launcher: could not make the kernel non-dumpable:", e, file=sys.stderr)
layer = [p for p in {layer} if p and p not in sys.path]
at = next((i for i, p in enumerate(sys.path) if p.endswith("-packages")), len(sys.path))
sys.path[at:at] = layer
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"#;

/// The launcher's source with the layer's paths filled in.
fn launcher(pythonpath: Option<&str>) -> Result<String, Error> {
    let layer: Vec<String> = pythonpath
        .map(|p| {
            std::env::split_paths(p)
                .map(|x| x.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let list = serde_json::to_string(&layer).map_err(|e| Error::Unexpected(e.to_string()))?;
    Ok(LAUNCHER.replace("{layer}", &list))
}

/// Creates the runtime directory and connection file and spawns `python -m ipykernel_launcher`.
pub(super) fn spawn(
    cfg: &LaunchConfig,
    id: &str,
    home: &Path,
    packages: &Path,
) -> Result<Spawned, Error> {
    let dir = create_dirs(&cfg.runtime_root, id)?;
    let path = dir.path.clone();
    let dir_err = |source| Error::RuntimeDir {
        path: path.clone(),
        source,
    };
    let (info, conn_path) = write_connection_file(&path)?;
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.log_path())
        .map_err(dir_err)?;
    let log2 = log.try_clone().map_err(dir_err)?;

    std::fs::DirBuilder::new()
        .recursive(true)
        .create(packages)
        .map_err(dir_err)?;
    let prepared = prepare_sandbox(cfg, id, home, packages, &dir, &conn_path)?;
    let not_applied = prepared.report.clone();

    // Rust opens every descriptor with O_CLOEXEC, so the child inherits only these three.
    let mut cmd = Command::new(&cfg.python);
    cmd.args(["-I", "-B", "-c"])
        .arg(launcher(cfg.pythonpath.as_deref())?)
        .arg("-f")
        .arg(&conn_path)
        .env_clear()
        .envs(cfg.sandbox.kernel_env(&path, &dir.tmp))
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // Own session: an interrupt or kill of the group reaches whatever the kernel forked.
    let mut confinement = prepared.apply(&mut cmd);
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        python: cfg.python.clone(),
        source,
    })?;
    confinement.started();
    Ok(Spawned {
        child,
        info,
        dir,
        confinement,
        not_applied,
    })
}

/// The directories one kernel gets under `root`: its runtime directory `root/<id>` (with its
/// `ipython`, `mpl` and `home`) and its temp directory `root/tmp/<id>`. Removed again when the
/// returned guard drops, a failure half-way included.
fn create_dirs(root: &Path, id: &str) -> Result<RuntimeDir, Error> {
    let path = root.join(id);
    let dir_err = |source| Error::RuntimeDir {
        path: path.clone(),
        source,
    };
    // 0711: a kernel under its own uid may pass through to its directory, not list the others.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .map_err(dir_err)?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .map_err(dir_err)?;
    let tmp = root.join(TMP_DIRS).join(id);
    let dir = RuntimeDir {
        path: path.clone(),
        tmp: tmp.clone(),
    };
    for sub in KERNEL_SUBDIRS {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(path.join(sub))
            .map_err(dir_err)?;
    }
    // 0711 like the root: a kernel passes through to its own temp directory only.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root.join(TMP_DIRS))
        .map_err(dir_err)?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(dir_err)?;
    Ok(dir)
}

/// The kernel's own directories inside its runtime directory (IPython's, matplotlib's, HOME).
const KERNEL_SUBDIRS: [&str; 3] = ["ipython", "mpl", "home"];

/// Writes a new connection file (IPC sockets in `path`, a fresh key) into the runtime
/// directory `path`, 0600 and never over an existing file; returns it and its path.
fn write_connection_file(path: &Path) -> Result<(ConnectionInfo, PathBuf), Error> {
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
    let conn_path = path.join(CONNECTION_FILE);
    let json = serde_json::to_vec(&info).map_err(|e| Error::Unexpected(e.to_string()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&conn_path)
        .and_then(|mut f| f.write_all(&json))
        .map_err(|source| Error::RuntimeDir {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((info, conn_path))
}

/// The kernel's confinement, prepared before fork: it may write its principal's directory
/// (`home`), its package directory and its own runtime and temp directories, and those it
/// creates are handed to its uid.
fn prepare_sandbox(
    cfg: &LaunchConfig,
    id: &str,
    home: &Path,
    packages: &Path,
    dir: &RuntimeDir,
    conn_path: &Path,
) -> Result<crate::child::Prepared, Error> {
    let subdirs: Vec<PathBuf> = KERNEL_SUBDIRS.iter().map(|s| dir.path.join(s)).collect();
    // Not `home`: the principal's directory was handed over when the server created it, and
    // the `local` principal's may be the operator's working directory, which stays theirs.
    let mut own: Vec<&Path> = vec![packages, &dir.path, conn_path, &dir.tmp];
    own.extend(subdirs.iter().map(PathBuf::as_path));
    let write = [
        home.to_path_buf(),
        packages.to_path_buf(),
        dir.path.clone(),
        dir.tmp.clone(),
    ];
    cfg.sandbox
        .prepare(crate::child::Role::Kernel, id, home, &[], &write, &own)
        .map_err(Error::from)
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
    fn launcher_puts_the_layer_in_a_json_list() {
        let code = launcher(Some("/opt/python:/opt/x")).unwrap();
        assert!(code.contains(r#"["/opt/python","/opt/x"]"#));
        assert!(launcher(None).unwrap().contains("for p in []"));
    }
}
