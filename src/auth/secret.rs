//! API key digests kept in AWS Secrets Manager: the secret's value is a JSON object
//! `{"principal": "sha256hex", ...}`, read with `aws-config` (region, credentials and
//! `AWS_ENDPOINT_URL` from the standard chain) and `aws-sdk-secretsmanager`.
//!
//! The table is cached for `--api-keys-cache-seconds`; a key it does not hold makes one re-read
//! at most every `MIN_UNKNOWN_REREAD`, so a rotated key works at once while a stream of wrong
//! keys cannot turn into a stream of API calls.
//!
//! Fails closed: once the cache is older than `--api-keys-cache-seconds`, keys from it are no
//! longer accepted. If the secret cannot be read then, requests with its keys are refused until
//! a read succeeds (a key removed from the secret must stop working within the cache time, even
//! while Secrets Manager is unreachable). A failed read is retried at most every
//! `RETRY_AFTER_FAILURE`, so an outage costs one API call per interval, not one per request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::keys::{self, KeyTable};
use crate::principal::Principal;

/// Shortest time between two re-reads caused by unknown keys.
const MIN_UNKNOWN_REREAD: Duration = Duration::from_secs(60);

/// Shortest time between a failed read and the next attempt.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the API keys secret {id}: {reason}")]
    Read { id: String, reason: String },
    #[error("the API keys secret {id} is not a JSON object of principal: sha256hex: {reason}")]
    Format { id: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reread {
    /// The cache is stale.
    IfStale,
    /// A key the fresh table does not hold (a rotation).
    Always,
}

/// The cached table, when it was read, and when a read last failed.
struct Cached {
    table: Arc<KeyTable>,
    read_at: Option<Instant>,
    failed_at: Option<Instant>,
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
                failed_at: None,
            }),
            unknown_reread: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The principal whose key this is, reading the secret when the cache is stale, and once
    /// more (rate-limited) when the key is unknown. None when the key is not in a fresh table,
    /// including when the table is stale and the secret cannot be read (fail closed).
    pub async fn lookup(&self, key: &str) -> Option<Principal> {
        if !self.table().1 {
            self.reread(Reread::IfStale).await;
        }
        let (table, fresh) = self.table();
        if !fresh {
            return None;
        }
        if let Some(p) = table.lookup(key) {
            return Some(p);
        }
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
        self.reread(Reread::Always).await;
        let (table, fresh) = self.table();
        if fresh { table.lookup(key) } else { None }
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

    /// Reads the secret into the cache, one read at a time; skipped while a failed read is
    /// recent (`RETRY_AFTER_FAILURE`), and, for `IfStale`, when a read made while this one
    /// waited for its turn left the table fresh.
    async fn reread(&self, when: Reread) {
        let _one = self.reading.lock().await;
        if when == Reread::IfStale && self.table().1 {
            return;
        }
        let recent_failure = match self.cached.lock() {
            Ok(c) => c
                .failed_at
                .is_some_and(|t| t.elapsed() < RETRY_AFTER_FAILURE),
            Err(_) => false,
        };
        if recent_failure {
            return;
        }
        let result = self.read().await;
        let Ok(mut c) = self.cached.lock() else {
            return;
        };
        match result {
            Ok(table) => {
                tracing::info!(secret = %self.id, principals = table.len(), "read the API keys secret");
                *c = Cached {
                    table: Arc::new(table),
                    read_at: Some(Instant::now()),
                    failed_at: None,
                };
            }
            Err(e) => {
                c.failed_at = Some(Instant::now());
                let stale = c.read_at.is_none_or(|t| t.elapsed() >= self.cache_for);
                if stale {
                    tracing::error!(error = %e, "API keys from Secrets Manager unavailable and the cached table is older than --api-keys-cache-seconds: its keys are refused until a read succeeds");
                } else {
                    tracing::error!(error = %e, "API keys from Secrets Manager unavailable; the cached table stays in use until it is older than --api-keys-cache-seconds");
                }
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
