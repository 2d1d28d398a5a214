//! What this process last saw of the kernel histories in S3 (`history.rs`), by key: the body and
//! its ETag, or that the object does not exist.
//!
//! Why: every cell that runs appends to its kernel's history, and every call naming a kernel
//! that is not live here reads it (`state_lost`). Without a cache each of those is a full GET.
//! With it:
//! - a read is a conditional GET (`If-None-Match` on the cached ETag): S3 answers 304 without a
//!   body when nothing changed, and the new body when another environment wrote. A read is never
//!   stale: the cache saves bytes, never freshness.
//! - an append starts from the cached body and writes with `If-Match` on the cached ETag
//!   (`If-None-Match: *` when the history is known not to exist) without reading first. When
//!   another environment wrote meanwhile, S3 refuses the write (412) and the append reads and
//!   retries (`history::append`). So one environment appending pays one PUT instead of a GET and
//!   a PUT, and a concurrent writer is never overwritten.
//!
//! Bounded: bodies of at most [`MAX_CACHED_BYTES`] in all; past that the cache starts over (a
//! miss costs one plain GET).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::s3;

/// Bodies kept at most, in all.
pub(crate) const MAX_CACHED_BYTES: usize = 16 * 1024 * 1024;

/// An object as this process last saw it (read or written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cached {
    /// Not in S3 (a GET said 404).
    Absent,
    /// In S3 with this ETag and body.
    Object { etag: String, body: Arc<Vec<u8>> },
}

impl Cached {
    pub fn object(etag: String, body: Vec<u8>) -> Cached {
        Cached::Object {
            etag,
            body: Arc::new(body),
        }
    }

    fn size(&self) -> usize {
        match self {
            Cached::Absent => 0,
            Cached::Object { body, .. } => body.len(),
        }
    }
}

/// Objects by key. Std mutex: map access only, never held across an S3 call.
#[derive(Default)]
pub(crate) struct ObjectCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Cached>,
    /// Sum of the bodies' sizes in `map`.
    bytes: usize,
}

impl ObjectCache {
    /// What was last seen of `key`, unchecked (`None`: nothing known).
    pub fn get(&self, key: &str) -> Option<Cached> {
        self.entries.lock().ok()?.map.get(key).cloned()
    }

    /// Remembers `key` as `cached`. An object without an ETag (a store that sends none) or one
    /// larger than the whole cache is forgotten instead: nothing could validate it.
    pub fn set(&self, key: &str, cached: Cached) {
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        if let Some(old) = e.map.remove(key) {
            e.bytes -= old.size();
        }
        let unusable = matches!(&cached, Cached::Object { etag, .. } if etag.is_empty())
            || cached.size() > MAX_CACHED_BYTES;
        if unusable {
            return;
        }
        if e.bytes + cached.size() > MAX_CACHED_BYTES {
            e.map.clear();
            e.bytes = 0;
        }
        e.bytes += cached.size();
        e.map.insert(key.to_string(), cached);
    }

    /// Forgets every key under `prefix` (a principal that left this environment).
    pub fn forget_under(&self, prefix: &str) {
        if let Ok(mut e) = self.entries.lock() {
            let gone: Vec<String> = e
                .map
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect();
            for key in gone {
                if let Some(old) = e.map.remove(&key) {
                    e.bytes -= old.size();
                }
            }
        }
    }

    /// The object as S3 holds it now: a conditional GET when its ETag is cached (304: the
    /// cached body), else a plain GET. The answer is remembered.
    pub async fn read(&self, store: &s3::Store, key: &str) -> Result<Cached, s3::Error> {
        let fetched = match self.get(key) {
            Some(Cached::Object { etag, body }) => match store.get_if_changed(key, &etag).await {
                Ok(None) => return Ok(Cached::Object { etag, body }),
                Ok(Some((bytes, etag))) => Ok(Cached::object(etag, bytes)),
                Err(e) => Err(e),
            },
            _ => store
                .get(key)
                .await
                .map(|(bytes, etag)| Cached::object(etag, bytes)),
        };
        let now = match fetched {
            Ok(object) => object,
            Err(s3::Error::NotFound(_)) => Cached::Absent,
            Err(e) => return Err(e),
        };
        self.set(key, now.clone());
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_without_an_etag_are_not_cached_and_a_set_replaces() {
        let c = ObjectCache::default();
        c.set("k", Cached::object(String::new(), b"x".to_vec()));
        assert_eq!(c.get("k"), None);
        c.set("k", Cached::object("\"e1\"".into(), b"one".to_vec()));
        c.set("k", Cached::object("\"e2\"".into(), b"two!".to_vec()));
        assert_eq!(
            c.get("k"),
            Some(Cached::object("\"e2\"".into(), b"two!".to_vec()))
        );
        assert_eq!(c.entries.lock().unwrap().bytes, 4);
        c.set("k", Cached::Absent);
        assert_eq!(c.get("k"), Some(Cached::Absent));
        assert_eq!(c.entries.lock().unwrap().bytes, 0);
    }

    #[test]
    fn the_cache_stays_under_its_byte_bound() {
        let c = ObjectCache::default();
        let big = vec![0u8; MAX_CACHED_BYTES / 2 + 1];
        c.set("a", Cached::object("\"a\"".into(), big.clone()));
        c.set("b", Cached::object("\"b\"".into(), big));
        assert!(c.entries.lock().unwrap().bytes <= MAX_CACHED_BYTES);
        assert_eq!(c.get("a"), None);
        assert!(c.get("b").is_some());
        c.set(
            "huge",
            Cached::object("\"h\"".into(), vec![0; MAX_CACHED_BYTES + 1]),
        );
        assert_eq!(c.get("huge"), None);
    }

    #[test]
    fn forgetting_a_principal_forgets_only_its_keys() {
        let c = ObjectCache::default();
        c.set(
            "p/alice/history/k.jsonl",
            Cached::object("\"1\"".into(), b"a".to_vec()),
        );
        c.set(
            "p/bob/history/k.jsonl",
            Cached::object("\"2\"".into(), b"b".to_vec()),
        );
        c.forget_under("p/alice/");
        assert_eq!(c.get("p/alice/history/k.jsonl"), None);
        assert!(c.get("p/bob/history/k.jsonl").is_some());
        assert_eq!(c.entries.lock().unwrap().bytes, 1);
    }
}
