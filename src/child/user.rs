//! The uid a child runs as. Locally as root, kernels and pip drop to an unprivileged uid
//! (`--kernel-user NAME|UID`, default 65534 `nobody`), so the OS itself refuses them the server's
//! files, signals to the server, and everything root could otherwise override. The directories
//! a child must write are handed to that uid (`give`).

use std::path::Path;

/// Used when the server is root and no `--kernel-user` was given (`nobody` on Debian and most
/// distributions).
pub const DEFAULT_UNPRIVILEGED: u32 = 65534;

/// A uid and its primary gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// Why `--kernel-user` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "--kernel-user {0:?}: no such user\nhint: give a user name from /etc/passwd, a numeric uid, or `server` to keep the server's uid"
    )]
    Unknown(String),
    #[error(
        "--kernel-user {0:?} needs the server to run as root (only root can switch uid)\nhint: drop the option, or run as root"
    )]
    NotRoot(String),
    #[error(
        "--kernel-user {user:?}: uid {uid} cannot run {python} ({why})\nhint: install Python where that user can read it (e.g. /usr/local or /opt), or pass --kernel-user server"
    )]
    Unreachable {
        user: String,
        uid: u32,
        python: String,
        why: String,
    },
    #[error(
        "--kernel-user {0:?} is root; kernels would be unconfined\nhint: pick an unprivileged user, or `server` to keep the server's uid knowingly"
    )]
    Root(String),
}

/// What `--kernel-user` resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Children run as these ids.
    Drop(Ids),
    /// Children keep the server's uid; the reason is reported.
    Keep(String),
}

/// Resolves the option and checks that the uid can run the interpreter (a Python under
/// `/root`, say, cannot be run by `nobody`). The default falls back to the server's uid with
/// the reason; an explicit user that cannot run it is an error.
pub fn resolve(option: Option<&str>, python: &Path) -> Result<Choice, Error> {
    let ids = match parse(option)? {
        None if nix::unistd::geteuid().is_root() => {
            return Ok(Choice::Keep(
                "--kernel-user server keeps root for children (capabilities are still dropped)"
                    .into(),
            ));
        }
        None => {
            return Ok(Choice::Keep(
                "the server is not root: children share its uid, so the OS does not keep kernels from signalling each other".into(),
            ));
        }
        Some(ids) => ids,
    };
    match can_run(python, ids) {
        Ok(()) => Ok(Choice::Drop(ids)),
        Err(why) if option.is_none() => Ok(Choice::Keep(format!(
            "uid {} cannot run {} ({why}); children keep the server's uid. Install Python where that user can read it, or pass --kernel-user",
            ids.uid,
            python.display()
        ))),
        Err(why) => Err(Error::Unreachable {
            user: option.unwrap_or_default().to_string(),
            uid: ids.uid,
            python: python.display().to_string(),
            why,
        }),
    }
}

/// Runs `python -I -c pass` as `ids`.
fn can_run(python: &Path, ids: Ids) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let status = std::process::Command::new(python)
        .args(["-I", "-c", "pass"])
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .gid(ids.gid)
        .uid(ids.uid)
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("it exited with {status}"))
    }
}

/// The ids the option names: `None` for `server` or, when not root, for no option.
fn parse(option: Option<&str>) -> Result<Option<Ids>, Error> {
    let root = nix::unistd::geteuid().is_root();
    let spec = match option {
        Some("server") => return Ok(None),
        None if !root => return Ok(None),
        None => {
            return Ok(Some(Ids {
                uid: DEFAULT_UNPRIVILEGED,
                gid: DEFAULT_UNPRIVILEGED,
            }));
        }
        Some(s) => s,
    };
    if !root {
        return Err(Error::NotRoot(spec.to_string()));
    }
    let ids = match spec.parse::<u32>() {
        Ok(uid) => {
            let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map_or(uid, |u| u.gid.as_raw());
            Ids { uid, gid }
        }
        Err(_) => {
            let user = nix::unistd::User::from_name(spec)
                .ok()
                .flatten()
                .ok_or_else(|| Error::Unknown(spec.to_string()))?;
            Ids {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            }
        }
    };
    if ids.uid == 0 {
        return Err(Error::Root(spec.to_string()));
    }
    Ok(Some(ids))
}

/// Hands a directory (not its contents) to the child's uid.
pub(crate) fn give(path: &Path, ids: Ids) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(ids.uid), Some(ids.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_keeps_the_server_uid() {
        assert_eq!(parse(Some("server")).unwrap(), None);
    }

    #[test]
    fn unknown_user_is_refused_with_a_hint() {
        if nix::unistd::geteuid().is_root() {
            let e = parse(Some("no-such-user-xyz")).unwrap_err();
            assert!(e.to_string().contains("no such user"));
            assert!(matches!(parse(Some("0")), Err(Error::Root(_))));
            assert_eq!(parse(None).unwrap().unwrap().uid, DEFAULT_UNPRIVILEGED);
        } else {
            assert!(matches!(parse(Some("nobody")), Err(Error::NotRoot(_))));
        }
    }
}
