//! OpenID Connect JWTs, verified with `jsonwebtoken` (no hand-written crypto).
//!
//! No algorithm confusion: only RS256 and ES256 are accepted, the header's `alg` must match the
//! type of the JWK its `kid` names (an RSA key verifies only RS256, a P-256 key only ES256), and
//! HMAC and `none` never verify anything (`none` does not even parse). `iss`, `aud` and `exp` are
//! required; `nbf` is checked when present; both with `LEEWAY_SECS` of clock skew. The JWKS is
//! cached; a token naming a key id not in the cache triggers one refetch, at most every
//! `MIN_REFETCH` (so a stream of made-up ids cannot hammer the issuer). The principal is
//! `oidc:<claim value>` (`Principal::oidc`), so no token can name a key holder, an IAM ARN or
//! `local`.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::settings::{JwksSource, OidcSettings};
use crate::principal::Principal;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// Shortest time between two JWKS fetches triggered by unknown key ids.
const MIN_REFETCH: Duration = Duration::from_secs(30);
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Why a token was refused, or the configuration failed. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a well-formed JWT")]
    Malformed,
    #[error("algorithm {0} is not accepted (only RS256 and ES256)")]
    Algorithm(String),
    #[error("the token names a signing key the issuer does not publish")]
    UnknownKey,
    #[error("the key the token names is not a {0} key")]
    KeyMismatch(&'static str),
    #[error("{0}")]
    Invalid(&'static str),
    #[error("the token has no string claim {0:?} to name the principal")]
    NoPrincipalClaim(String),
    #[error("the issuer's keys are unavailable: {0}")]
    Jwks(String),
    #[error("cannot read the JWKS file {path}: {reason}")]
    JwksFile {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Verifies JWTs of one issuer and audience.
pub struct Verifier {
    issuer: String,
    audience: String,
    claim: String,
    url: Option<String>,
    /// The cached key set; std lock, never held across an await.
    keys: RwLock<Arc<JwkSet>>,
    /// When the JWKS was last fetched; std lock, short sections only.
    fetched: Mutex<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

impl Verifier {
    /// A verifier; a JWKS file is read now (a bad one stops start-up), a URL on first use.
    pub fn new(settings: &OidcSettings) -> Result<Verifier, Error> {
        let (url, keys) = match &settings.jwks {
            JwksSource::Url(url) => (Some(url.clone()), JwkSet { keys: vec![] }),
            JwksSource::File(path) => {
                let err = |reason: String| Error::JwksFile {
                    path: path.clone(),
                    reason,
                };
                let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
                let set = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
                (None, set)
            }
        };
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| Error::Jwks(e.to_string()))?;
        Ok(Verifier {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            claim: settings.principal_claim.clone(),
            url,
            keys: RwLock::new(Arc::new(keys)),
            fetched: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            http,
        })
    }

    /// The principal a valid token names.
    pub async fn verify(&self, token: &str) -> Result<Principal, Error> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(Error::Algorithm(format!("{:?}", header.alg)));
        }
        let jwk = match self.find(header.kid.as_deref()) {
            Some(k) => k,
            None => {
                self.refetch().await?;
                self.find(header.kid.as_deref()).ok_or(Error::UnknownKey)?
            }
        };
        let key = decoding_key(&jwk, header.alg)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| Error::Invalid(reason(e.kind())))?;
        let name = data
            .claims
            .get(&self.claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::NoPrincipalClaim(self.claim.clone()))?;
        Principal::oidc(name).map_err(|_| Error::NoPrincipalClaim(self.claim.clone()))
    }

    /// The key `kid` names; without a kid, the only key of a one-key set.
    fn find(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read().ok()?.clone();
        match kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        }
    }

    /// Fetches the JWKS again, unless it was fetched less than `MIN_REFETCH` ago.
    async fn refetch(&self) -> Result<(), Error> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        let _one = self.fetching.lock().await;
        let recent = self
            .fetched
            .lock()
            .ok()
            .and_then(|f| *f)
            .is_some_and(|t| t.elapsed() < MIN_REFETCH);
        if recent {
            return Ok(());
        }
        if let Ok(mut f) = self.fetched.lock() {
            *f = Some(Instant::now());
        }
        let set = self.fetch(url).await?;
        tracing::info!(keys = set.keys.len(), "fetched the OIDC issuer's keys");
        if let Ok(mut keys) = self.keys.write() {
            *keys = Arc::new(set);
        }
        Ok(())
    }

    async fn fetch(&self, url: &str) -> Result<JwkSet, Error> {
        let fail = |e: &dyn std::fmt::Display| Error::Jwks(e.to_string());
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| fail(&e))?;
        let bytes = resp.bytes().await.map_err(|e| fail(&e))?;
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(Error::Jwks(format!("over {MAX_JWKS_BYTES} bytes")));
        }
        serde_json::from_slice(&bytes).map_err(|e| fail(&e))
    }
}

/// The verifying key, only if the JWK's type fits the algorithm (and its own `alg`, if it
/// names one, is the same).
fn decoding_key(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, Error> {
    let expected = if alg == Algorithm::RS256 {
        "RSA"
    } else {
        "P-256"
    };
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        _ => false,
    };
    let declared_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|declared| format!("{declared:?}") == format!("{alg:?}"));
    if !fits || !declared_ok {
        return Err(Error::KeyMismatch(expected));
    }
    DecodingKey::from_jwk(jwk).map_err(|_| Error::KeyMismatch(expected))
}

/// A fixed reason per failure kind (no library text that might quote the input).
fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "the token has expired",
        K::ImmatureSignature => "the token is not valid yet (nbf)",
        K::InvalidAudience => "the token is for another audience",
        K::InvalidIssuer => "the token is from another issuer",
        K::InvalidSignature => "the signature does not verify",
        K::MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss, aud)",
        K::InvalidAlgorithm => "the algorithm does not match the key",
        _ => "the token is invalid",
    }
}

/// Three base64url parts separated by dots.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}
