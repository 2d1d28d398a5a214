//! The uid a child runs as. Locally as root, kernels and pip drop to an unprivileged uid
//! (`--kernel-user NAME|UID`, default 65534 `nobody`), so the OS itself refuses them the server's
//! files, signals to the server, and everything root could otherwise override. The directories
//! a child must write are handed to that uid (`give`).
//!
//! With `--kernel-uid-per-principal`, each principal gets its own uid from `--kernel-uid-range`
//! (`assign`), so the OS also keeps principals apart: one principal's kernel cannot signal
//! another's, nor read its directory or connection files, whatever the other layers do. The
//! record of who has which uid is the owner of the principal's directory: stable across
//! restarts, and a collision (two names hashing to one uid) moves the newcomer to the next free
//! uid of the range.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

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
    #[error(
        "--kernel-uid-range {0:?}: expected FIRST-LAST, two uids with 0 < FIRST <= LAST\nhint: e.g. --kernel-uid-range 200000-265535 (a range no account in /etc/passwd uses)"
    )]
    Range(String),
    #[error(
        "--kernel-uid-per-principal needs the server to run as root (only root can switch uid)\nhint: drop the option, or run as root"
    )]
    PerPrincipalNotRoot,
    #[error(
        "--kernel-uid-per-principal: uid {uid} of --kernel-uid-range cannot run {python} ({why})\nhint: install Python where any user can read it (e.g. /usr/local or /opt)"
    )]
    PerPrincipalUnreachable {
        uid: u32,
        python: String,
        why: String,
    },
}

/// `--kernel-uid-range FIRST-LAST`: the uids (and equal gids) principals' kernels run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub first: u32,
    pub last: u32,
}

impl std::str::FromStr for Range {
    type Err = Error;

    fn from_str(s: &str) -> Result<Range, Error> {
        let bad = || Error::Range(s.to_string());
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: u32 = a.trim().parse().map_err(|_| bad())?;
        let last: u32 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last || last == u32::MAX {
            return Err(bad());
        }
        Ok(Range { first, last })
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl Range {
    fn len(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    pub fn contains(&self, uid: u32) -> bool {
        (self.first..=self.last).contains(&uid)
    }

    /// The uid a directory name hashes to (FNV-1a: stable across builds and platforms, unlike
    /// std's hasher), before collisions move it.
    fn slot(&self, name: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h % self.len()
    }
}

/// Checks `--kernel-uid-per-principal`: the server must be root, and a uid of the range must be
/// able to run the interpreter (all of them can or none: they own nothing but their own
/// directories).
pub fn check_per_principal(range: Range, python: &Path) -> Result<(), Error> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::PerPrincipalNotRoot);
    }
    let ids = Ids {
        uid: range.first,
        gid: range.first,
    };
    can_run(python, ids).map_err(|why| Error::PerPrincipalUnreachable {
        uid: range.first,
        python: python.display().to_string(),
        why,
    })
}

/// Serializes uid assignments in this process, so two new principals cannot both take a free
/// uid (scan, then chown, is not atomic).
static ASSIGNING: Mutex<()> = Mutex::new(());

/// The ids of the principal whose directory is `home` (a directory the server created under the
/// working directory): the owner of `home` when it is already in the range, else the first free
/// uid from the name's slot on, which `home` is then given (owner and group, mode 0700). A uid is
/// free when no sibling directory owns it and no account in /etc/passwd has it.
pub(crate) fn assign(range: Range, home: &Path) -> std::io::Result<Ids> {
    use std::os::unix::fs::PermissionsExt;
    let owned = |uid: u32| Ids { uid, gid: uid };
    let meta = std::fs::metadata(home)?;
    if range.contains(meta.uid()) {
        return Ok(owned(meta.uid()));
    }
    let _one = ASSIGNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Looked again under the lock: another call may just have assigned it.
    let meta = std::fs::metadata(home)?;
    if range.contains(meta.uid()) {
        return Ok(owned(meta.uid()));
    }
    let parent = home.parent().unwrap_or(home);
    let mut taken = HashSet::new();
    for entry in std::fs::read_dir(parent)?.flatten() {
        if entry.path() != home
            && let Ok(m) = entry.metadata()
            && m.is_dir()
        {
            taken.insert(m.uid());
        }
    }
    let name = home
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let start = range.slot(&name);
    for i in 0..range.len() {
        let uid = range.first + ((start + i) % range.len()) as u32;
        let account = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .is_some();
        if taken.contains(&uid) || account {
            continue;
        }
        give(home, owned(uid))?;
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))?;
        return Ok(owned(uid));
    }
    Err(std::io::Error::other(format!(
        "every uid of --kernel-uid-range {range} is taken\nhint: widen the range"
    )))
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

/// Whether `ids` may enter, list and write `dir`, by its owner and mode bits (group and ACLs
/// aside: a warning helper, not a check anything relies on).
pub fn may_use(dir: &Path, ids: Ids) -> bool {
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    let mode = meta.mode();
    let bits = if meta.uid() == ids.uid {
        mode >> 6
    } else if meta.gid() == ids.gid {
        mode >> 3
    } else {
        mode
    };
    bits & 0o7 == 0o7
}

/// Hands a directory (not its contents) to the child's uid.
pub(crate) fn give(path: &Path, ids: Ids) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(ids.uid), Some(ids.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_bad_ranges_are_refused() {
        let r: Range = "200000-265535".parse().unwrap();
        assert_eq!((r.first, r.last, r.len()), (200000, 265535, 65536));
        for bad in ["", "5", "0-10", "10-5", "a-b", "1-4294967295", "-5"] {
            assert!(bad.parse::<Range>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slots_are_stable_and_inside_the_range() {
        let r: Range = "1000-1009".parse().unwrap();
        assert_eq!(r.slot("abc-alice"), r.slot("abc-alice"));
        assert!(r.slot("x") < 10);
        // Known value: a change of hash would move every principal's uid.
        assert_eq!(
            Range {
                first: 1,
                last: 1000
            }
            .slot("alice"),
            0x508b_2abb_65a0_3907_u64 % 1000
        );
    }

    #[test]
    fn assign_gives_each_directory_its_own_uid_even_on_a_collision() {
        if !nix::unistd::geteuid().is_root() {
            return; // chown needs root; the attack suite covers the real thing
        }
        let wd = tempfile::tempdir().unwrap();
        // A two-uid range: the second directory takes the other uid whatever its slot, the
        // third finds none.
        let r: Range = "250001-250002".parse().unwrap();
        let a = wd.path().join("a");
        let b = wd.path().join("b");
        let c = wd.path().join("c");
        for d in [&a, &b, &c] {
            std::fs::create_dir(d).unwrap();
        }
        let ia = assign(r, &a).unwrap();
        let ib = assign(r, &b).unwrap();
        assert_ne!(ia.uid, ib.uid);
        assert!(r.contains(ia.uid) && r.contains(ib.uid));
        assert_eq!(
            assign(r, &a).unwrap(),
            ia,
            "stable: read back from the owner"
        );
        assert!(assign(r, &c).is_err(), "range exhausted");
        let m = std::fs::metadata(&a).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (ia.uid, ia.uid, 0o700)
        );
    }

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
