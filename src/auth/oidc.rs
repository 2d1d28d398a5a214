//! OpenID Connect JWTs (placeholder until the verifier lands).

use crate::config::OidcSettings;
use crate::principal::Principal;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("OpenID Connect is not supported by this build")]
    Unsupported,
}

pub struct Verifier;

impl Verifier {
    pub fn new(_settings: &OidcSettings) -> Result<Verifier, Error> {
        Err(Error::Unsupported)
    }

    pub async fn verify(&self, _token: &str) -> Result<Principal, Error> {
        Err(Error::Unsupported)
    }
}

/// Three base64url parts separated by dots.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}
