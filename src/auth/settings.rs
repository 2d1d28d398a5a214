//! Who may call, as checked values: the API key digests, the Secrets Manager source, the OpenID
//! Connect issuer and `--public-url`, each built here from the raw options `config` hands over.
//!
//! Why here and not in `config`: parsing a key file, pairing the OIDC options and checking the
//! public URL are auth's rules, and `Authenticator::new` needs only these values. `config` calls
//! the constructors below and wraps `SettingsError`; nothing in `auth` reads the flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys::{self, KeyEntry, KeysError};

/// Who may call, validated.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// API key digests and their principals, from the file and the environment.
    pub api_keys: Vec<KeyEntry>,
    pub oidc: Option<OidcSettings>,
    /// API keys kept in AWS Secrets Manager.
    pub api_keys_secret: Option<SecretSettings>,
    pub insecure_no_auth: bool,
    /// `--public-url` without a trailing slash: the base of the links in 401s and the metadata.
    pub public_url: Option<String>,
    /// Running on AWS Lambda: the IAM identity of an event is a source, and URLs are https.
    pub on_lambda: bool,
}

/// The Secrets Manager key source.
#[derive(Debug, Clone)]
pub struct SecretSettings {
    pub id: String,
    pub cache_for: Duration,
}

/// A validated OpenID Connect configuration.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwksSource,
    pub principal_claim: String,
}

/// Where the issuer's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
}

/// The raw OIDC options, as given (`--oidc-*`).
#[derive(Debug, Clone, Default)]
pub struct OidcOptions {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<PathBuf>,
    pub principal_claim: String,
}

/// An authentication option that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "--public-url {0:?} is not an absolute http(s) URL without query or fragment\nhint: e.g. --public-url https://jupyter.example.com (the base the clients use, without /mcp)"
    )]
    PublicUrl(String),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error("--oidc-issuer needs {0}")]
    OidcIncomplete(&'static str),
    #[error("--oidc-jwks-url and --oidc-jwks-file exclude each other: give one")]
    OidcTwoJwks,
    #[error("--{0} is set but --oidc-issuer is not\nhint: give --oidc-issuer too, or drop --{0}")]
    OidcWithoutIssuer(&'static str),
}

impl AuthSettings {
    /// Whether any authentication source is configured (on Lambda the IAM context is one).
    pub fn has_source(&self) -> bool {
        !self.api_keys.is_empty()
            || self.oidc.is_some()
            || self.api_keys_secret.is_some()
            || self.on_lambda
    }

    /// Whether a request without valid credentials is refused.
    pub fn requires_credentials(&self) -> bool {
        self.has_source() && !self.insecure_no_auth
    }
}

impl SecretSettings {
    /// `--api-keys-secret-id` with `--api-keys-cache-seconds`; `None` without a secret.
    pub fn from_options(id: Option<String>, cache_seconds: u64) -> Option<SecretSettings> {
        id.map(|id| SecretSettings {
            id,
            cache_for: Duration::from_secs(cache_seconds),
        })
    }
}

impl OidcSettings {
    /// Pairs the OIDC options: none without an issuer (and then no other OIDC option may be
    /// set), else an audience and exactly one JWKS source.
    pub fn from_options(options: OidcOptions) -> Result<Option<OidcSettings>, SettingsError> {
        let Some(issuer) = options.issuer else {
            if options.audience.is_some() {
                return Err(SettingsError::OidcWithoutIssuer("oidc-audience"));
            }
            if options.jwks_url.is_some() {
                return Err(SettingsError::OidcWithoutIssuer("oidc-jwks-url"));
            }
            if options.jwks_file.is_some() {
                return Err(SettingsError::OidcWithoutIssuer("oidc-jwks-file"));
            }
            return Ok(None);
        };
        let audience = options
            .audience
            .ok_or(SettingsError::OidcIncomplete("--oidc-audience"))?;
        let jwks = match (options.jwks_url, options.jwks_file) {
            (Some(url), None) => JwksSource::Url(url),
            (None, Some(path)) => JwksSource::File(path),
            (Some(_), Some(_)) => return Err(SettingsError::OidcTwoJwks),
            (None, None) => {
                return Err(SettingsError::OidcIncomplete(
                    "--oidc-jwks-url or --oidc-jwks-file",
                ));
            }
        };
        Ok(Some(OidcSettings {
            issuer,
            audience,
            jwks,
            principal_claim: options.principal_claim,
        }))
    }
}

/// The API key digests of `--api-keys-file` and then `--api-keys`, each principal once.
pub fn api_keys(file: Option<&Path>, inline: Option<&str>) -> Result<Vec<KeyEntry>, SettingsError> {
    let mut entries = Vec::new();
    if let Some(path) = file {
        entries.extend(keys::read_keys_file(path)?);
    }
    if let Some(inline) = inline {
        entries.extend(keys::parse_keys_inline(inline)?);
    }
    keys::check_unique(&entries)?;
    Ok(entries)
}

/// Checks `--public-url` and drops a trailing slash: an absolute http(s) URL with a host and
/// no query or fragment, whose text is safe inside the quoted `WWW-Authenticate` parameter.
pub fn public_url(raw: &str) -> Result<String, SettingsError> {
    let bad = || SettingsError::PublicUrl(raw.to_string());
    let uri: axum::http::Uri = raw.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    let clean = raw
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'?' | b'#'));
    if !(scheme_ok && host_ok && clean) {
        return Err(bad());
    }
    Ok(raw.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_checked_and_lose_a_trailing_slash() {
        assert_eq!(
            public_url("https://jupyter.example.com/").unwrap(),
            "https://jupyter.example.com"
        );
        assert_eq!(
            public_url("http://10.0.0.5:8737/prod").unwrap(),
            "http://10.0.0.5:8737/prod"
        );
        for bad in [
            "jupyter.example.com",
            "/mcp",
            "ftp://example.com",
            "https://example.com/?a=b",
            "https://example.com/#x",
            "https://exa\"mple.com",
            "https://",
            "",
        ] {
            assert!(public_url(bad).is_err(), "{bad:?}");
        }
    }
}
