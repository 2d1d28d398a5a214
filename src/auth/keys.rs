//! API keys: the server stores only their SHA-256 digests, each mapped to a principal.
//!
//! A bearer token is hashed and compared with every configured digest in constant time
//! (`subtle`), so neither the comparison nor the position of a match in the table shows in the
//! response time. Parse errors name the file and line but never echo the value on it: a line
//! that is wrong may be a raw key pasted by mistake.
//!
//! A key's principal name has no `:` and is not `local` (`principal::valid_key_name`), so no key
//! holder shares a name with an OIDC or IAM principal or the unauthenticated caller: a keys-file
//! line or `JUPYTER_MCP_API_KEYS` entry that breaks this stops start-up; a Secrets Manager entry
//! that does is skipped with a warning when the table is built (`KeyTable::new`).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::principal::{self, Principal};

/// Length of a SHA-256 digest in hex.
const DIGEST_HEX_LEN: usize = 64;

/// One configured key: whose it is and the SHA-256 of the key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub principal: String,
    pub digest: [u8; 32],
}

impl std::fmt::Debug for KeyEntry {
    // The digest is not the key, but nothing key-related needs to reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read the API keys file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}: {reason}\nhint: each line is `PRINCIPAL SHA256HEX`; `jupyter-mcp-server hash-key` prints the digest of a key"
    )]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "JUPYTER_MCP_API_KEYS entry {entry}: {reason}\nhint: the value is `principal:sha256hex,principal2:sha256hex`"
    )]
    Inline { entry: usize, reason: String },
    #[error(
        "one API key digest is configured for two principals ({0} and {1})\nhint: give every principal its own key"
    )]
    Duplicate(String, String),
}

/// Reads `PRINCIPAL SHA256HEX` lines; `#` starts a comment, blank lines are skipped.
pub fn read_keys_file(path: &Path) -> Result<Vec<KeyEntry>, KeysError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_keys_file(&text).map_err(|(line, reason)| KeysError::Line {
        path: path.to_path_buf(),
        line,
        reason,
    })
}

/// The lines of a keys file; an error carries the 1-based line number.
pub fn parse_keys_file(text: &str) -> Result<Vec<KeyEntry>, (usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, digest] = fields.as_slice() else {
            return Err((i + 1, format!("expected 2 fields, found {}", fields.len())));
        };
        out.push(key_entry(name, digest).map_err(|reason| (i + 1, reason))?);
    }
    Ok(out)
}

/// `principal:sha256hex,...` entries.
pub fn parse_keys_inline(text: &str) -> Result<Vec<KeyEntry>, KeysError> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
        .map(|(i, item)| {
            let (name, digest) = item.rsplit_once(':').ok_or_else(|| KeysError::Inline {
                entry: i + 1,
                reason: "expected principal:sha256hex".into(),
            })?;
            key_entry(name.trim(), digest.trim()).map_err(|reason| KeysError::Inline {
                entry: i + 1,
                reason,
            })
        })
        .collect()
}

/// Refuses one digest for two principals: which one a key means would depend on the order.
pub fn check_unique(entries: &[KeyEntry]) -> Result<(), KeysError> {
    for (i, a) in entries.iter().enumerate() {
        if let Some(b) = entries[i + 1..]
            .iter()
            .find(|b| b.digest == a.digest && b.principal != a.principal)
        {
            return Err(KeysError::Duplicate(
                a.principal.clone(),
                b.principal.clone(),
            ));
        }
    }
    Ok(())
}

/// An entry of the keys file or `JUPYTER_MCP_API_KEYS`: `entry` plus the key-name rule.
fn key_entry(name: &str, digest: &str) -> Result<KeyEntry, String> {
    principal::valid_key_name(name).map_err(|e| e.to_string())?;
    entry(name, digest)
}

pub(super) fn entry(name: &str, digest: &str) -> Result<KeyEntry, String> {
    principal::valid_name(name).map_err(|e| e.to_string())?;
    Ok(KeyEntry {
        principal: name.to_string(),
        digest: parse_digest(digest)?,
    })
}

fn parse_digest(hex: &str) -> Result<[u8; 32], String> {
    let bad = || {
        format!(
            "the digest must be {DIGEST_HEX_LEN} hex digits (the SHA-256 of the key, never the key itself); this one has {} characters",
            hex.chars().count()
        )
    };
    if hex.len() != DIGEST_HEX_LEN || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The SHA-256 of a key, as bytes.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The configured keys, ready for lookups.
#[derive(Debug, Default)]
pub struct KeyTable {
    entries: Vec<KeyEntry>,
}

impl KeyTable {
    /// The table of `entries`, without those whose principal name is not a key name (only a
    /// Secrets Manager secret can bring one here: the file and env parsers refuse them), each
    /// skipped with a warning naming it.
    pub fn new(entries: Vec<KeyEntry>) -> KeyTable {
        let entries = entries
            .into_iter()
            .filter(|e| match principal::valid_key_name(&e.principal) {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(principal = %e.principal.escape_debug(), %error, "API key entry skipped");
                    false
                }
            })
            .collect();
        KeyTable { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The principal whose key this is. Every entry is compared, in constant time, whatever
    /// matches.
    pub fn lookup(&self, key: &str) -> Option<Principal> {
        let presented = digest(key);
        let mut found: Option<&KeyEntry> = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(entry);
            }
        }
        found.and_then(|e| Principal::api_key(&e.principal).ok())
    }
}

/// A new random key: 32 bytes from the OS generator (through two v4 UUIDs, 244 random bits),
/// in hex with a prefix that makes it recognizable in a secret scanner.
pub fn generate_key() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!(
        "jmcp_{}{}",
        principal::hex(a.as_bytes()),
        principal::hex(b.as_bytes())
    )
}

/// What `jupyter-mcp-server hash-key` prints for `input` (stdin's text; `None` or blank: make a
/// key). Only a generated key is printed back.
pub fn hash_key_report(input: Option<&str>) -> String {
    let given = input
        .map(|s| s.trim_end_matches(['\r', '\n']))
        .filter(|s| !s.is_empty());
    let (key, generated) = match given {
        Some(k) => (k.to_string(), false),
        None => (generate_key(), true),
    };
    let digest = principal::hex(&digest(&key));
    let mut out = String::new();
    if generated {
        out.push_str(&format!("key:    {key}\n"));
    }
    out.push_str(&format!("sha256: {digest}\n"));
    out.push_str(&format!(
        "keys-file line: PRINCIPAL {digest}\n(give the key to its holder as `Authorization: Bearer <key>`; configure only the digest)\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn a_keys_file_maps_digests_to_principals() {
        let text = format!("# team\n\nalice {ABC_SHA256}  # laptop\n");
        let entries = parse_keys_file(&text).unwrap();
        assert_eq!(entries.len(), 1);
        let table = KeyTable::new(entries);
        assert_eq!(table.lookup("abc").unwrap().name(), "alice");
        assert!(table.lookup("abd").is_none());
        assert!(table.lookup("").is_none());
        assert!(
            table.lookup(ABC_SHA256).is_none(),
            "the digest is not the key"
        );
    }

    #[test]
    fn a_malformed_line_is_reported_by_number_without_its_value() {
        let text = format!("alice {ABC_SHA256}\nbob my-raw-secret-key\n");
        let (line, reason) = parse_keys_file(&text).unwrap_err();
        assert_eq!(line, 2);
        assert!(!reason.contains("my-raw-secret-key"), "{reason}");
        assert_eq!(parse_keys_file("alice").unwrap_err().0, 1);
        assert_eq!(
            parse_keys_file(&format!("a b {ABC_SHA256}")).unwrap_err().0,
            1
        );
        assert!(parse_keys_file(&format!("alice {}", &ABC_SHA256[1..])).is_err());
        assert!(parse_keys_file(&format!("alice {}g", &ABC_SHA256[1..])).is_err());
    }

    /// `local` and names with `:` belong to other sources: refused in a file and inline, skipped
    /// in a table (as a Secrets Manager secret builds it).
    #[test]
    fn reserved_principal_names_are_not_key_names() {
        for name in ["local", "a:b", "oidc:alice"] {
            let text = format!("alice {ABC_SHA256}\n{name} {ABC_SHA256}\n");
            let (line, reason) = parse_keys_file(&text).unwrap_err();
            assert_eq!(line, 2, "{name}");
            assert!(
                reason.contains("cannot contain `:` or be `local`"),
                "{reason}"
            );
        }
        let err = parse_keys_inline(&format!("alice:{ABC_SHA256},local:{ABC_SHA256}")).unwrap_err();
        assert!(err.to_string().contains("entry 2"), "{err}");
        let err = parse_keys_inline(&format!("a:b:{ABC_SHA256}")).unwrap_err();
        assert!(err.to_string().contains("entry 1"), "{err}");
        let digest = parse_digest(ABC_SHA256).unwrap();
        let table = KeyTable::new(vec![KeyEntry {
            principal: "local".into(),
            digest,
        }]);
        assert!(table.is_empty() && table.lookup("abc").is_none());
    }

    #[test]
    fn inline_keys_parse_and_errors_name_the_entry() {
        let e = parse_keys_inline(&format!("alice:{ABC_SHA256}, bob:{ABC_SHA256}")).unwrap();
        assert_eq!(e.len(), 2);
        assert!(matches!(check_unique(&e), Err(KeysError::Duplicate(..))));
        let err = parse_keys_inline(&format!("alice:{ABC_SHA256},bob")).unwrap_err();
        assert!(err.to_string().contains("entry 2"), "{err}");
    }

    #[test]
    fn hash_key_prints_a_generated_key_but_never_a_given_one() {
        let given = hash_key_report(Some("abc\n"));
        assert!(given.contains(ABC_SHA256));
        assert!(!given.contains("key:    "));
        let made = hash_key_report(None);
        let key = made
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("key:")
            .trim();
        assert!(key.starts_with("jmcp_") && key.len() == 5 + 64, "{key}");
        assert!(made.contains(&principal::hex(&digest(key))));
        assert_ne!(generate_key(), generate_key());
    }
}
