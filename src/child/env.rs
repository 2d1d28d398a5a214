//! The environment a child starts with: built from scratch, never inherited.
//!
//! A denylist would miss whatever secret the server's environment happens to hold (on Lambda the
//! execution role's credentials, `AWS_LAMBDA_RUNTIME_API`, `_LAMBDA_*`, `_X_AMZN_TRACE_ID`), so
//! `env_clear()` comes first and only the names below are set. Kernels and pip share the list;
//! the few differences (pip's PYTHONPATH, the kernel's IPython and matplotlib directories) are
//! explicit in `for_kernel` and `for_pip`.

use std::path::Path;

/// Names of the server's environment a child may inherit, copied only when set.
/// LD_LIBRARY_PATH is there because a relocated interpreter (Lambda's /var/lang) may need it to
/// find libpython.
pub(crate) const INHERITED: &[&str] = &["LANG", "LC_ALL", "TZ", "LD_LIBRARY_PATH"];

/// Variables every child gets, whatever it is.
fn base(python: &Path, home: &Path, tmp: &Path) -> Vec<(String, String)> {
    let python_bin = python
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| format!("{}:", p.display()))
        .unwrap_or_default();
    let mut env = vec![
        (
            "PATH".to_string(),
            format!("{python_bin}/usr/local/bin:/usr/bin:/bin"),
        ),
        ("HOME".into(), home.display().to_string()),
        ("TMPDIR".into(), tmp.display().to_string()),
        // glibc reserves 64 MiB of address space per thread arena; under RLIMIT_AS that budget
        // is better spent on data.
        ("MALLOC_ARENA_MAX".into(), "2".into()),
    ];
    for name in INHERITED {
        if let Ok(value) = std::env::var(name) {
            env.push(((*name).into(), value));
        }
    }
    if !env.iter().any(|(k, _)| k == "LANG") {
        env.push(("LANG".into(), "C.UTF-8".into()));
    }
    env
}

/// A kernel's environment. `runtime` is its private runtime directory: HOME, IPython's and
/// matplotlib's configuration live there, so nothing a kernel writes into them reaches the next
/// kernel. `tmp` is its private TMPDIR, kept apart from the runtime directory: user code may
/// fill it with gigabytes, and removing it must not delay the removal of the kernel's sockets
/// and key. No `PYTHON*` variable is set: the interpreter runs isolated (`-I`) and the launcher
/// adds the layer's path itself.
pub(crate) fn for_kernel(python: &Path, runtime: &Path, tmp: &Path) -> Vec<(String, String)> {
    let mut env = base(python, &runtime.join("home"), tmp);
    env.extend([
        (
            "IPYTHONDIR".to_string(),
            runtime.join("ipython").display().to_string(),
        ),
        (
            "MPLCONFIGDIR".into(),
            runtime.join("mpl").display().to_string(),
        ),
        // Plots come back as display_data images rather than opening windows.
        (
            "MPLBACKEND".into(),
            "module://matplotlib_inline.backend_inline".into(),
        ),
        // ipykernel's debugger warns about frozen modules at every start otherwise.
        ("PYDEVD_DISABLE_FILE_VALIDATION".into(), "1".into()),
    ]);
    env
}

/// pip's environment: its private temporary directory as HOME and TMPDIR, and PYTHONPATH when
/// pip lives in a layer rather than in the interpreter's site-packages. No `PIP_*` variable
/// passes, so the index is the one the server's command line chose.
pub(crate) fn for_pip(
    python: &Path,
    tmp: &Path,
    pythonpath: Option<&str>,
) -> Vec<(String, String)> {
    let mut env = base(python, tmp, tmp);
    if let Some(path) = pythonpath {
        env.push(("PYTHONPATH".into(), path.to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &[&str] = &[
        "PATH",
        "HOME",
        "TMPDIR",
        "MALLOC_ARENA_MAX",
        "IPYTHONDIR",
        "MPLCONFIGDIR",
        "MPLBACKEND",
        "PYDEVD_DISABLE_FILE_VALIDATION",
        "LANG",
        "LC_ALL",
        "TZ",
        "LD_LIBRARY_PATH",
    ];

    #[test]
    fn kernel_env_holds_only_allowlisted_names_and_no_python_variables() {
        let env = for_kernel(
            Path::new("/opt/venv/bin/python"),
            Path::new("/tmp/rt/k1"),
            Path::new("/tmp/rt/tmp/k1"),
        );
        for (k, _) in &env {
            assert!(ALLOWED.contains(&k.as_str()), "unexpected variable {k}");
            assert!(!k.starts_with("PYTHON"), "{k} would be ignored under -I");
        }
        let get = |name: &str| &env.iter().find(|(k, _)| k == name).unwrap().1;
        assert!(get("PATH").starts_with("/opt/venv/bin:"));
        assert_eq!(get("HOME"), "/tmp/rt/k1/home");
        assert_eq!(get("TMPDIR"), "/tmp/rt/tmp/k1");
    }

    #[test]
    fn pip_env_adds_only_pythonpath() {
        let env = for_pip(
            Path::new("/opt/venv/bin/python"),
            Path::new("/tmp/p"),
            Some("/opt/python"),
        );
        for (k, _) in &env {
            assert!(
                ALLOWED.contains(&k.as_str()) || k == "PYTHONPATH",
                "unexpected variable {k}"
            );
        }
        assert!(
            env.iter()
                .any(|(k, v)| k == "PYTHONPATH" && v == "/opt/python")
        );
    }
}
