//! A running child's protections, read back from /proc: what the process really has, not what
//! was asked for at spawn time. Also the process-tree sweep used where no cgroup holds a child.

/// The layers visible in /proc for `pid`, one line each. Landlock has no /proc field; it is
/// reported from the spawn-time ruleset (see `Policy::prepare`).
pub fn verified(pid: u32) -> Vec<String> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let mut out = vec!["environment allowlist".to_string()];
    if field("NoNewPrivs:") == Some("1") {
        out.push("no_new_privs".into());
    }
    if field("CapBnd:").is_some_and(|v| v.chars().all(|c| c == '0')) {
        out.push("no capabilities (empty bounding set)".into());
    }
    if field("Seccomp:") == Some("2") {
        let n = field("Seccomp_filters:").unwrap_or("?");
        out.push(format!("seccomp filter ({n} filters)"));
    }
    let uid = field("Uid:")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u32>().ok());
    if let Some(uid) = uid {
        out.push(format!("uid {uid}"));
        // A non-dumpable process's /proc files belong to root, whatever its uid.
        if uid != 0
            && let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/environ"))
            && std::os::unix::fs::MetadataExt::uid(&meta) == 0
        {
            out.push("non-dumpable".into());
        }
    }
    if let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        out.extend(cgroups(&cg));
    }
    if let Ok(limits) = std::fs::read_to_string(format!("/proc/{pid}/limits")) {
        for (label, name) in [
            ("Max address space", "RLIMIT_AS"),
            ("Max cpu time", "RLIMIT_CPU"),
            ("Max file size", "RLIMIT_FSIZE"),
            ("Max open files", "RLIMIT_NOFILE"),
            ("Max processes", "RLIMIT_NPROC"),
            ("Max core file size", "RLIMIT_CORE"),
        ] {
            if let Some(soft) = limits
                .lines()
                .find_map(|l| l.strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                && soft != "unlimited"
            {
                out.push(format!("{name} {soft}"));
            }
        }
    }
    out
}

/// The kernel cgroups a /proc/<pid>/cgroup text names: the v1 pids one (its memory one has the
/// same name) and the v2 one.
fn cgroups(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if !path.contains("/jupyter-mcp-") {
            continue;
        }
        if ctrls.is_empty() {
            out.push(format!("cgroup v2 {path}"));
        } else if ctrls.split(',').any(|c| c == "pids") {
            out.push(format!("cgroup v1 {path}"));
        }
    }
    out
}

/// Parent pid of every process, from /proc.
fn parents() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// SIGKILLs every descendant of `root` (not `root` itself), deepest last found first.
pub(crate) fn kill_descendants(root: u32) {
    let all = parents();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    for pid in found.into_iter().skip(1) {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_cgroups_of_both_hierarchies_are_named() {
        let text = "8:pids:/jupyter-mcp-p1-ab\n4:memory:/x/jupyter-mcp-p1-ab\n1:cpu:/\n0::/jupyter-mcp-p1-ab\n";
        assert_eq!(
            cgroups(text),
            vec![
                "cgroup v1 /jupyter-mcp-p1-ab".to_string(),
                "cgroup v2 /jupyter-mcp-p1-ab".to_string()
            ]
        );
        assert!(cgroups("8:pids:/\n0::/\n").is_empty());
    }
}
