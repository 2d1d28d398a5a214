//! The requirement policy of `install_package`: what an agent's requirement string may be, and
//! whether the operator's lists let the package in.
//!
//! An agent's requirement string reaches pip only after `parse_requirement` has reduced it to
//! a plain PEP 508 name, optional extras and an optional version specifier. pip is never run
//! through a shell, so the policy is not what stops injection; it stops pip *options*, URLs,
//! local paths and markers, which would let a caller pick the index, fetch arbitrary code or
//! read files. `check_lists` then applies `--package-deny` and `--package-allow` by PEP 503 name
//! (`normalize_name`).

use super::PackageSettings;

/// Longest requirement string accepted, in bytes.
pub(crate) const MAX_REQUIREMENT_BYTES: usize = 200;
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
    settings: &PackageSettings,
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

    fn lists(allow: &[&str], deny: &[&str]) -> PackageSettings {
        PackageSettings {
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
