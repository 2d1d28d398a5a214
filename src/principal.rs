//! Who is calling, and where their things live: the one home of "principal".
//!
//! The auth middleware (`auth`) decides who a request comes from and puts a `Principal` into the
//! HTTP request's extensions; rmcp hands the request parts to the tools, and `mcp::App::principal`
//! reads it back. Everything a caller owns is keyed by the principal's name: kernels in the pool,
//! the notebook store, the package directory, the pip lock.
//!
//! Directories: every principal gets `WORKING_DIR/<dir_name>` (mode 0700) with its own
//! `.packages`. The one exception is the unauthenticated `local` principal of a server with no
//! authentication source off Lambda: it is the only principal such a server can ever have, so it
//! keeps the working directory itself, where notebooks were before principals existed.
//!
//! Names: one namespace for every source, kept apart by construction so that no source can name
//! a principal of another. API-key names (keys file, `JUPYTER_MCP_API_KEYS`, Secrets Manager)
//! contain no `:` and are never `local`; an OIDC principal is `oidc:<claim value>`; an IAM
//! principal is its ARN (`arn:...`); the unauthenticated caller is `local`. So a token whose
//! claim is `alice` or `local` is `oidc:alice` / `oidc:local`, never the key holder `alice` or the
//! anonymous caller, and no key name can equal an ARN or an OIDC name.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The principal of every request on a server without authentication.
pub const LOCAL: &str = "local";
/// The start of every OIDC principal's name (then the principal claim's value).
pub const OIDC_PREFIX: &str = "oidc:";
/// The start of every IAM principal's name (an ARN).
pub const IAM_PREFIX: &str = "arn:";

/// Longest principal name accepted (an IAM role-session ARN is at most about 200 bytes).
pub const MAX_NAME_LEN: usize = 256;
/// Hex digits of the name's SHA-256 at the start of a directory name: 64 bits keep distinct
/// names apart even when their sanitized forms are equal.
const DIR_HASH_HEX: usize = 16;
/// Characters of the sanitized name kept in a directory name, for people reading `ls`.
const DIR_NAME_CHARS: usize = 40;

/// How a principal was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// No authentication: loopback without an auth source, or `--insecure-no-auth`.
    Unauthenticated,
    /// A bearer API key, matched by its SHA-256 digest.
    ApiKey,
    /// A verified OpenID Connect JWT.
    Oidc,
    /// The IAM identity Lambda's Function URL (or API Gateway) verified.
    AwsIam,
}

/// A caller. Carried in the HTTP request's extensions from the auth middleware to the tools.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    name: String,
    source: Source,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error(
        "invalid principal name: use 1 to {MAX_NAME_LEN} bytes of printable characters without spaces"
    )]
    InvalidName,
    #[error(
        "an API key's principal name cannot contain `:` or be `local`: those are kept for OIDC (`oidc:...`), IAM (`arn:...`) and unauthenticated callers"
    )]
    ReservedKeyName,
    #[error("an IAM principal must be an ARN (`arn:...`)")]
    NotAnArn,
}

impl Principal {
    /// The unauthenticated caller.
    pub fn local() -> Principal {
        Principal {
            name: LOCAL.to_string(),
            source: Source::Unauthenticated,
        }
    }

    /// The holder of an API key named `name` (see `valid_key_name`).
    pub fn api_key(name: &str) -> Result<Principal, Error> {
        valid_key_name(name)?;
        Ok(Principal {
            name: name.to_string(),
            source: Source::ApiKey,
        })
    }

    /// The subject of a verified OIDC token whose principal claim is `claim`: `oidc:<claim>`.
    pub fn oidc(claim: &str) -> Result<Principal, Error> {
        let name = format!("{OIDC_PREFIX}{claim}");
        valid_name(claim)?;
        valid_name(&name)?;
        Ok(Principal {
            name,
            source: Source::Oidc,
        })
    }

    /// The IAM identity with this ARN.
    pub fn iam(arn: &str) -> Result<Principal, Error> {
        valid_name(arn)?;
        if !arn.starts_with(IAM_PREFIX) {
            return Err(Error::NotAnArn);
        }
        Ok(Principal {
            name: arn.to_string(),
            source: Source::AwsIam,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn source(&self) -> Source {
        self.source
    }
}

/// Checks a principal name: printable, no whitespace, bounded.
pub fn valid_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if ok { Ok(()) } else { Err(Error::InvalidName) }
}

/// Checks an API key's principal name: a valid name without `:` that is not `local`, so it can
/// never be an OIDC name, an ARN or the unauthenticated caller (see the module doc).
pub fn valid_key_name(name: &str) -> Result<(), Error> {
    valid_name(name)?;
    if name.contains(':') || name == LOCAL {
        return Err(Error::ReservedKeyName);
    }
    Ok(())
}

/// The directory name of a principal: a hash prefix (so no two names share a directory and no
/// name can be `..`, absolute or hidden) plus the name with everything but ASCII letters,
/// digits, `-`, `_` and `.` replaced by `_` (so an operator can tell whose it is).
pub fn dir_name(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = hex(&digest).chars().take(DIR_HASH_HEX).collect();
    let readable: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(DIR_NAME_CHARS)
        .collect();
    format!("{hash}-{readable}")
}

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A principal's directories: the kernel's working directory (and HOME, and the notebook root)
/// and the package target, which is on the kernel's `sys.path`.
#[derive(Debug, Clone)]
pub struct PrincipalDirs {
    pub home: PathBuf,
    pub packages: PathBuf,
}

impl PrincipalDirs {
    /// The directories of `name` under `working_dir`; `shared_root` gives the `local` principal
    /// the working directory itself (see the module doc).
    pub fn of(working_dir: &Path, name: &str, shared_root: bool) -> PrincipalDirs {
        let home = if shared_root && name == LOCAL {
            working_dir.to_path_buf()
        } else {
            working_dir.join(dir_name(name))
        };
        PrincipalDirs {
            packages: home.join(".packages"),
            home,
        }
    }

    /// Creates the home directory (0700) if it is missing. The working directory itself is left
    /// as the operator made it.
    ///
    /// With `distrust_existing` (Lambda, where every process shares one OS user, so a previous
    /// tenant's kernel, or a previous process in the same execution environment, may have made
    /// it), a home that already exists is kept only if it is an empty 0700 directory owned by
    /// this process's user; anything else is removed and made again, so nothing planted in it
    /// (a module in `.packages` for the next kernel to import) is ever used. The caller asks
    /// only for homes this process has not made itself (`Ready`).
    pub fn create(&self, distrust_existing: bool) -> std::io::Result<Made> {
        use std::os::unix::fs::DirBuilderExt;
        let mkdir = || std::fs::DirBuilder::new().mode(0o700).create(&self.home);
        match mkdir() {
            Ok(()) => return Ok(Made::Created),
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) if !distrust_existing || is_clean_home(&self.home)? => return Ok(Made::Kept),
            Err(_) => {}
        }
        remove_entry(&self.home)?;
        // Fails (AlreadyExists) if something made it again in between: refused, not trusted.
        mkdir()?;
        Ok(Made::Replaced)
    }
}

/// What `PrincipalDirs::create` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    Created,
    /// It existed and was kept: trusted, or an empty 0700 directory of this process's user.
    Kept,
    /// It existed and was not clean: removed and made again, empty.
    Replaced,
}

/// Whether `path` is a real directory (not a link), owned by this process's user, mode 0700 and
/// empty.
fn is_clean_home(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    Ok(meta.is_dir()
        && meta.uid() == nix::unistd::geteuid().as_raw()
        && meta.mode() & 0o7777 == 0o700
        && std::fs::read_dir(path)?.next().is_none())
}

/// Removes `path` whatever it is, without following a link: a file or link is unlinked, a
/// directory removed with everything in it. A directory its (same-uid) author made unreadable
/// is made readable first, so that cannot keep it.
pub fn remove_entry(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    open_up(path);
    std::fs::remove_dir_all(path)
}

/// Gives the owner rwx on every directory under `dir` (links not followed), best effort.
fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            open_up(&entry.path());
        }
    }
}

/// Removes everything in `dir` (not `dir` itself). Returns how many entries were removed and
/// the errors of those that could not be.
pub fn empty_dir(dir: &Path) -> (usize, Vec<std::io::Error>) {
    let mut removed = 0;
    let mut errors = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                match entry.and_then(|e| remove_entry(&e.path())) {
                    Ok(()) => removed += 1,
                    Err(e) => errors.push(e),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(e),
    }
    (removed, errors)
}

/// The principals whose directory this process has made ready (created, and handed to the
/// kernels' uid): once per principal, not on every call. The server forgets a principal when it
/// removes its directory (Lambda's single tenancy), so the next call makes it again. Std mutex:
/// set access only, the directory work happens outside it.
#[derive(Debug, Default)]
pub struct Ready(Mutex<HashSet<String>>);

impl Ready {
    /// Makes `name`'s directory ready with `make` unless this process already did.
    pub fn ensure<E>(&self, name: &str, make: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        if self.0.lock().is_ok_and(|set| set.contains(name)) {
            return Ok(());
        }
        make()?;
        if let Ok(mut set) = self.0.lock() {
            set.insert(name.to_string());
        }
        Ok(())
    }

    /// Forgets every principal (every directory was removed).
    pub fn forget_all(&self) {
        if let Ok(mut set) = self.0.lock() {
            set.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_are_safe_and_distinct() {
        for name in ["..", "/etc", ".hidden", "a/../../b", "a b", "ü", ""] {
            let d = dir_name(name);
            assert!(!d.contains('/'), "{d}");
            assert!(!d.starts_with('.'), "{d}");
            assert_eq!(d.len(), DIR_HASH_HEX + 1 + d[DIR_HASH_HEX + 1..].len());
        }
        // Same sanitized form, different principals, different directories.
        assert_ne!(dir_name("a/b"), dir_name("a_b"));
        assert!(dir_name("alice").ends_with("-alice"));
        let arn = dir_name("arn:aws:iam::123456789012:user/bob");
        assert!(
            arn.ends_with("-arn_aws_iam__123456789012_user_bob"),
            "{arn}"
        );
        assert!(dir_name(&"x".repeat(300)).len() <= DIR_HASH_HEX + 1 + DIR_NAME_CHARS);
    }

    #[test]
    fn local_keeps_the_working_dir_only_on_a_shared_root() {
        let wd = Path::new("/w");
        assert_eq!(PrincipalDirs::of(wd, LOCAL, true).home, wd);
        assert_ne!(PrincipalDirs::of(wd, LOCAL, false).home, wd);
        let alice = PrincipalDirs::of(wd, "alice", true);
        assert_eq!(alice.home, wd.join(dir_name("alice")));
        assert_eq!(alice.packages, alice.home.join(".packages"));
    }

    #[test]
    fn a_directory_is_made_once_until_forgotten() {
        let ready = Ready::default();
        let made = std::cell::Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            Ok::<(), ()>(())
        };
        ready.ensure("alice", make).unwrap();
        ready.ensure("alice", make).unwrap();
        assert_eq!(made.get(), 1);
        ready.ensure("bob", make).unwrap();
        assert_eq!(made.get(), 2);
        ready.forget_all();
        ready.ensure("alice", make).unwrap();
        assert_eq!(made.get(), 3);
        // A failure is not remembered as ready.
        assert!(ready.ensure("carol", || Err(())).is_err());
        ready.ensure("carol", make).unwrap();
        assert_eq!(made.get(), 4);
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn an_existing_home_is_kept_when_trusted() {
        let wd = tempfile::tempdir().unwrap();
        let dirs = PrincipalDirs::of(wd.path(), "alice", false);
        assert_eq!(dirs.create(true).unwrap(), Made::Created);
        assert_eq!(mode(&dirs.home), 0o700);
        std::fs::write(dirs.home.join("notes.ipynb"), "{}").unwrap();
        // Locally a home with files is the principal's own work from an earlier run.
        assert_eq!(dirs.create(false).unwrap(), Made::Kept);
        assert!(dirs.home.join("notes.ipynb").exists());
    }

    #[test]
    fn a_distrusted_home_is_kept_only_empty_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let wd = tempfile::tempdir().unwrap();
        let dirs = PrincipalDirs::of(wd.path(), "bob", false);
        assert_eq!(dirs.create(true).unwrap(), Made::Created);
        assert_eq!(dirs.create(true).unwrap(), Made::Kept, "empty, 0700, ours");

        // Planted for the next kernel to import: replaced, and the module is gone.
        std::fs::create_dir(&dirs.packages).unwrap();
        std::fs::write(dirs.packages.join("numpy.py"), "print('planted')").unwrap();
        assert_eq!(dirs.create(true).unwrap(), Made::Replaced);
        assert!(!dirs.packages.exists());
        assert_eq!(mode(&dirs.home), 0o700);

        // Empty but open to others: replaced with a private one.
        std::fs::set_permissions(&dirs.home, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(dirs.create(true).unwrap(), Made::Replaced);
        assert_eq!(mode(&dirs.home), 0o700);

        // A link in its place (to a directory the planter controls) is removed, not followed.
        std::fs::remove_dir(&dirs.home).unwrap();
        let elsewhere = wd.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("keep.txt"), "x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &dirs.home).unwrap();
        assert_eq!(dirs.create(true).unwrap(), Made::Replaced);
        assert!(std::fs::symlink_metadata(&dirs.home).unwrap().is_dir());
        assert!(elsewhere.join("keep.txt").exists());
    }

    #[test]
    fn emptying_a_directory_removes_unreadable_subdirectories_too() {
        use std::os::unix::fs::PermissionsExt;
        let wd = tempfile::tempdir().unwrap();
        let locked = wd.path().join("a/b");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("f"), "x").unwrap();
        std::fs::write(wd.path().join("top.txt"), "x").unwrap();
        std::fs::set_permissions(wd.path().join("a"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        let (removed, errors) = empty_dir(wd.path());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(removed, 2);
        assert_eq!(std::fs::read_dir(wd.path()).unwrap().count(), 0);
        assert!(wd.path().exists());
    }

    #[test]
    fn names_with_spaces_or_controls_are_refused() {
        assert!(Principal::api_key("alice").is_ok());
        for bad in ["", "a b", "a\nb", "a\u{7}"] {
            assert_eq!(Principal::api_key(bad), Err(Error::InvalidName), "{bad:?}");
            assert_eq!(Principal::oidc(bad), Err(Error::InvalidName), "{bad:?}");
            assert_eq!(Principal::iam(bad), Err(Error::InvalidName), "{bad:?}");
        }
        assert!(Principal::api_key(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(
            Principal::oidc(&"x".repeat(MAX_NAME_LEN)).is_err(),
            "prefix counts"
        );
    }

    /// No source can name another source's principal: keys never hold `:` or `local`, OIDC
    /// names always start with `oidc:`, IAM names with `arn:`.
    #[test]
    fn each_source_has_its_own_names() {
        for reserved in ["local", "a:b", "oidc:alice", "arn:aws:iam::1:user/alice"] {
            assert_eq!(
                Principal::api_key(reserved),
                Err(Error::ReservedKeyName),
                "{reserved}"
            );
        }
        let oidc = Principal::oidc("alice").unwrap();
        assert_eq!((oidc.name(), oidc.source()), ("oidc:alice", Source::Oidc));
        assert_eq!(Principal::oidc("local").unwrap().name(), "oidc:local");
        assert_ne!(oidc, Principal::api_key("alice").unwrap());
        assert_ne!(dir_name(oidc.name()), dir_name("alice"));
        assert_eq!(Principal::iam("alice"), Err(Error::NotAnArn));
        assert_eq!(Principal::iam("oidc:alice"), Err(Error::NotAnArn));
        let arn = "arn:aws:iam::123456789012:user/alice";
        assert_eq!(Principal::iam(arn).unwrap().source(), Source::AwsIam);
    }
}
