//! API key digests kept in AWS Secrets Manager: the secret's value is a JSON object
//! `{"principal": "sha256hex", ...}`, read with `aws-config` (region, credentials and
//! `AWS_ENDPOINT_URL` from the standard chain) and `aws-sdk-secretsmanager`.
//!
//! The table is cached for `--api-keys-cache-seconds`; a key it does not hold makes one re-read
//! at most every `MIN_UNKNOWN_REREAD`, so a rotated key works at once while a stream of wrong
//! keys cannot turn into a stream of API calls. A failed read fails closed (the request is
//! refused) and keeps the previous table.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::keys::{self, KeyTable};
use crate::principal::Principal;

/// Shortest time between two re-reads caused by unknown keys.
const MIN_UNKNOWN_REREAD: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the API keys secret {id}: {reason}")]
    Read { id: String, reason: String },
    #[error("the API keys secret {id} is not a JSON object of principal: sha256hex: {reason}")]
    Format { id: String, reason: String },
}

/// The cached table and when it was read.
struct Cached {
    table: Arc<KeyTable>,
    read_at: Option<Instant>,
}

pub struct SecretKeys {
    id: String,
    cache_for: Duration,
    client: tokio::sync::OnceCell<aws_sdk_secretsmanager::Client>,
    /// Std mutex, short sections only.
    cached: Mutex<Cached>,
    /// When an unknown key last caused a re-read.
    unknown_reread: Mutex<Option<Instant>>,
    /// One read at a time.
    reading: tokio::sync::Mutex<()>,
}

impl SecretKeys {
    pub fn new(id: String, cache_for: Duration) -> SecretKeys {
        SecretKeys {
            id,
            cache_for,
            client: tokio::sync::OnceCell::new(),
            cached: Mutex::new(Cached {
                table: Arc::new(KeyTable::default()),
                read_at: None,
            }),
            unknown_reread: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The principal whose key this is, reading the secret when the cache is stale, and once
    /// more (rate-limited) when the key is unknown.
    pub async fn lookup(&self, key: &str) -> Option<Principal> {
        let (table, fresh) = self.table();
        if !fresh {
            self.reread().await;
        }
        if let Some(p) = self.table().0.lookup(key) {
            return Some(p);
        }
        drop(table);
        let allowed = match self.unknown_reread.lock() {
            Ok(mut last) if last.is_none_or(|t| t.elapsed() >= MIN_UNKNOWN_REREAD) => {
                *last = Some(Instant::now());
                true
            }
            _ => false,
        };
        if !allowed {
            return None;
        }
        self.reread().await;
        self.table().0.lookup(key)
    }

    fn table(&self) -> (Arc<KeyTable>, bool) {
        match self.cached.lock() {
            Ok(c) => (
                Arc::clone(&c.table),
                c.read_at.is_some_and(|t| t.elapsed() < self.cache_for),
            ),
            Err(_) => (Arc::new(KeyTable::default()), false),
        }
    }

    async fn reread(&self) {
        let _one = self.reading.lock().await;
        match self.read().await {
            Ok(table) => {
                tracing::info!(secret = %self.id, principals = table.len(), "read the API keys secret");
                if let Ok(mut c) = self.cached.lock() {
                    *c = Cached {
                        table: Arc::new(table),
                        read_at: Some(Instant::now()),
                    };
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "API keys from Secrets Manager unavailable; keeping the last table")
            }
        }
    }

    async fn read(&self) -> Result<KeyTable, Error> {
        let client = self
            .client
            .get_or_init(|| async {
                aws_sdk_secretsmanager::Client::new(crate::aws::sdk_config().await)
            })
            .await;
        let out = client
            .get_secret_value()
            .secret_id(&self.id)
            .send()
            .await
            .map_err(|e| Error::Read {
                id: self.id.clone(),
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            })?;
        let text = out.secret_string().ok_or_else(|| Error::Format {
            id: self.id.clone(),
            reason: "the secret has no string value".into(),
        })?;
        parse_secret(text).map_err(|reason| Error::Format {
            id: self.id.clone(),
            reason,
        })
    }
}

/// `{"principal": "sha256hex", ...}` as a key table. Errors never quote a value.
pub fn parse_secret(text: &str) -> Result<KeyTable, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object (line {})", e.line()))?;
    let mut entries = Vec::new();
    for (name, value) in map {
        let digest = value
            .as_str()
            .ok_or_else(|| format!("the value of {name:?} is not a string"))?;
        entries.push(keys::entry(&name, digest).map_err(|r| format!("{name:?}: {r}"))?);
    }
    keys::check_unique(&entries).map_err(|e| e.to_string())?;
    Ok(KeyTable::new(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn a_secret_maps_principals_to_digests() {
        let table = parse_secret(&format!("{{\"alice\": \"{ABC_SHA256}\"}}")).unwrap();
        assert_eq!(table.lookup("abc").unwrap().name(), "alice");
    }

    #[test]
    fn a_malformed_secret_is_refused_without_quoting_it() {
        assert!(parse_secret("[]").is_err());
        assert!(parse_secret("{\"alice\": 1}").is_err());
        let err = parse_secret("{\"alice\": \"raw-key-by-mistake\"}").unwrap_err();
        assert!(!err.contains("raw-key-by-mistake"), "{err}");
        assert!(parse_secret(&format!("{{\"a b\": \"{ABC_SHA256}\"}}")).is_err());
    }
}
