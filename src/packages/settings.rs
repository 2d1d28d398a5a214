//! The operator's package settings, checked: the allow and deny lists (PEP 503 names), the
//! index pip uses, pip's network timeout and the download cap.
//!
//! `config` hands the raw `--package-*` options to `PackageSettings::from_options` and wraps
//! `SettingsError`; what a package name or an index URL may be is the policy's business.

use std::time::Duration;

use super::policy::normalize_name;

const MIB: u64 = 1024 * 1024;
/// Longest `--package-download-timeout`, in seconds: the whole install is bounded by 300 s.
const MAX_DOWNLOAD_TIMEOUT_SECS: u64 = 300;

/// install_package's policy and pip's source.
#[derive(Debug, Clone, Default)]
pub struct PackageSettings {
    /// PEP 503 normalized names; empty allows any name not denied.
    pub allow: Vec<String>,
    /// PEP 503 normalized names.
    pub deny: Vec<String>,
    /// `--index-url` for pip.
    pub index_url: Option<String>,
    /// pip's `--timeout`.
    pub download_timeout: Duration,
    /// Cap on one install's downloads, each file and all together; `None`: no cap.
    pub max_download_bytes: Option<u64>,
}

/// The raw `--package-*` options, as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct PackageOptions<'a> {
    pub allow: &'a [String],
    pub deny: &'a [String],
    pub index_url: Option<&'a str>,
    pub download_timeout_secs: u64,
    /// 0: no cap.
    pub max_download_mb: u64,
}

/// A `--package-*` option that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--package-index-url must be an http(s) URL without spaces or quotes, got {0:?}")]
    IndexUrl(String),
    #[error(
        "--package-allow/--package-deny: {0:?} is not a package name (letters, digits, `.`, `_`, `-`)"
    )]
    PackageName(String),
    #[error("--package-download-timeout must be between 1 and 300 seconds, got {0}")]
    DownloadTimeout(u64),
}

impl PackageSettings {
    /// Validates and normalizes the package options.
    pub fn from_options(options: PackageOptions<'_>) -> Result<PackageSettings, SettingsError> {
        if let Some(url) = options.index_url {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok
                || url
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '"' | '\''))
            {
                return Err(SettingsError::IndexUrl(url.to_string()));
            }
        }
        let timeout_secs = options.download_timeout_secs;
        if timeout_secs == 0 || timeout_secs > MAX_DOWNLOAD_TIMEOUT_SECS {
            return Err(SettingsError::DownloadTimeout(timeout_secs));
        }
        Ok(PackageSettings {
            allow: names(options.allow)?,
            deny: names(options.deny)?,
            index_url: options.index_url.map(str::to_string),
            download_timeout: Duration::from_secs(timeout_secs),
            max_download_bytes: (options.max_download_mb > 0)
                .then(|| options.max_download_mb.saturating_mul(MIB)),
        })
    }
}

/// A comma-separated list's names, blanks dropped, each PEP 503 normalized; a name with any
/// other character than letters, digits, `.`, `_` and `-` is refused.
fn names(list: &[String]) -> Result<Vec<String>, SettingsError> {
    list.iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(|n| {
            let valid = n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if valid {
                Ok(normalize_name(n))
            } else {
                Err(SettingsError::PackageName(n.to_string()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package_settings(
        allow: &[String],
        deny: &[String],
        index_url: Option<&str>,
        download_timeout_secs: u64,
        max_download_mb: u64,
    ) -> Result<PackageSettings, SettingsError> {
        PackageSettings::from_options(PackageOptions {
            allow,
            deny,
            index_url,
            download_timeout_secs,
            max_download_mb,
        })
    }

    #[test]
    fn package_names_are_normalized_per_pep503() {
        let p = package_settings(
            &["Foo_Bar".into(), " ".into()],
            &["A.B".into()],
            None,
            60,
            200,
        )
        .unwrap();
        assert_eq!(p.allow, vec!["foo-bar"]);
        assert_eq!(p.deny, vec!["a-b"]);
    }

    #[test]
    fn a_bad_package_name_is_refused() {
        assert!(matches!(
            package_settings(&["x;y".into()], &[], None, 60, 200),
            Err(SettingsError::PackageName(_))
        ));
    }

    #[test]
    fn an_index_url_must_be_http() {
        for bad in ["file:///etc", "ftp://x", "https://x y", "pypi.org"] {
            assert!(
                matches!(
                    package_settings(&[], &[], Some(bad), 60, 200),
                    Err(SettingsError::IndexUrl(_))
                ),
                "{bad}"
            );
        }
        assert!(package_settings(&[], &[], Some("https://pypi.org/simple"), 60, 200).is_ok());
    }

    #[test]
    fn a_zero_download_timeout_is_refused() {
        assert!(matches!(
            package_settings(&[], &[], None, 0, 200),
            Err(SettingsError::DownloadTimeout(0))
        ));
    }

    #[test]
    fn the_download_cap_is_in_bytes_and_zero_lifts_it() {
        let p = package_settings(&[], &[], None, 60, 3).unwrap();
        assert_eq!(p.max_download_bytes, Some(3 * 1024 * 1024));
        let p = package_settings(&[], &[], None, 60, 0).unwrap();
        assert_eq!(p.max_download_bytes, None);
    }
}
