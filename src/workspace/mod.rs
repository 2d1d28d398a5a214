//! The durable workspace: with `--workspace-bucket`, each principal's directory is mirrored to
//! `s3://BUCKET/PREFIX<principal dir>/files/`, and each kernel's history is kept beside it in
//! `PREFIX<principal dir>/history/<kernel>.jsonl` (see `history.rs`).
//!
//! Why: on Lambda a request lands in whichever execution environment is free; without a mirror
//! the files of the previous request are somewhere else (or gone with a recycled environment).
//! So the workspace is restored lazily on a principal's first call in this process, and every
//! call that may have changed files writes them through before its response goes out: a
//! response means "saved". Writes are conditional (`If-Match` on the ETag last seen,
//! `If-None-Match: *` for new objects); when another environment changed a file meanwhile, both
//! versions are kept (theirs keeps the name, ours is saved beside it) and the result says so.
//!
//! Round trips are what a call pays for this, so only what can be checked cheaply is cached:
//! the histories by ETag (`cache.rs`: conditional reads, appends without a read), and, only when
//! `--workspace-list-cache-ms` asks for it, the LIST of a principal's files for that long.
//!
//! S3 trouble (bucket missing, access denied, endpoint down) never fails a call: the local work
//! is kept, the result carries a note, and the next call tries again. The S3 client lives in the
//! server; kernels never get credentials.

pub(crate) mod cache;
pub(crate) mod history;
pub(crate) mod s3;
mod settings;
pub(crate) mod sync;

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

pub use settings::{
    MAX_WORKSPACE_LIST_CACHE_MS, SettingsError, WorkspaceOptions, WorkspaceSettings,
};
use sync::{Stamp, Synced};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    S3(#[from] s3::Error),
    #[error(
        "the kernel's history is over {} MiB and is no longer appended to\nhint: shutdown_kernel ends this history's generation",
        history::MAX_HISTORY_BYTES >> 20
    )]
    HistoryFull,
    #[error("the kernel's history kept changing under concurrent writers; retry the call")]
    HistoryBusy,
}

/// What the mirror did for one call, for the result's text and `_meta`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    /// Files restored from S3 (first call of this principal in this environment).
    #[serde(skip_serializing_if = "is_zero")]
    pub restored: usize,
    /// Files written to S3.
    #[serde(skip_serializing_if = "is_zero")]
    pub saved: usize,
    /// Files deleted from S3.
    #[serde(skip_serializing_if = "is_zero")]
    pub deleted: usize,
    /// Files changed meanwhile by another environment, as "path (yours: other path)".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// Files not mirrored because of their size.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub too_large: Vec<String>,
    /// Sentences for the model (failures, caps, conflicts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.restored == 0
            && self.saved == 0
            && self.deleted == 0
            && self.conflicts.is_empty()
            && self.notes.is_empty()
    }

    /// One line for the model, when something is worth saying.
    pub fn text(&self) -> Option<String> {
        if self.notes.is_empty() && self.restored == 0 {
            return None;
        }
        let mut parts = Vec::new();
        if self.restored > 0 {
            parts.push(format!(
                "brought {} file(s) of your workspace from S3",
                self.restored
            ));
        }
        parts.extend(self.notes.iter().cloned());
        Some(format!("[workspace: {}]", parts.join("; ")))
    }

    pub fn merge(&mut self, other: Report) {
        self.restored += other.restored;
        self.saved += other.saved;
        self.deleted += other.deleted;
        self.conflicts.extend(other.conflicts);
        self.too_large.extend(other.too_large);
        self.notes.extend(other.notes);
    }
}

/// One principal's mirror state in this process.
#[derive(Default)]
struct Mirror {
    /// The workspace was restored from S3 (only then are local changes written through).
    restored: bool,
    /// What S3 holds of each file, as of our last look.
    synced: BTreeMap<String, Synced>,
    /// Files skipped for their size, at the stamp they were skipped (told once per version).
    too_large: BTreeMap<String, Stamp>,
    /// When the last successful LIST was asked for (`--workspace-list-cache-ms`).
    listed_at: Option<ListedAt>,
}

/// A moment on both clocks. Why both: the monotonic clock is immune to the wall clock being set,
/// but a frozen execution environment (Lambda between invocations) may not advance it; the wall
/// clock keeps running there. A cached LIST counts as fresh only while both agree it is.
#[derive(Debug, Clone, Copy)]
struct ListedAt {
    at: Instant,
    wall: SystemTime,
}

impl ListedAt {
    fn now() -> ListedAt {
        ListedAt {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Whether a LIST asked for at `self` may stand in for one at `now`: less than `max` later
    /// on both clocks (a wall clock set back counts as expired; `max` zero: never).
    fn fresh(&self, now: ListedAt, max: Duration) -> bool {
        now.at.saturating_duration_since(self.at) < max
            && now.wall.duration_since(self.wall).is_ok_and(|d| d < max)
    }
}

/// The mirror of every principal's directory.
pub struct Workspace {
    settings: WorkspaceSettings,
    store: s3::Store,
    /// Distinguishes this environment in the names of conflict copies.
    env_tag: String,
    /// The kernel histories as last read or written here (validated by ETag; `cache.rs`).
    histories: cache::ObjectCache,
    /// Per principal; each mirror's async mutex serializes its restore and write-throughs.
    /// Std mutex: map access only.
    mirrors: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Mirror>>>>,
}

impl Workspace {
    pub(crate) fn new(settings: WorkspaceSettings) -> Workspace {
        let store = s3::Store::new(settings.bucket.clone(), settings.path_style);
        let id = uuid::Uuid::new_v4().simple().to_string();
        Workspace {
            settings,
            store,
            env_tag: id[..6].to_string(),
            histories: cache::ObjectCache::default(),
            mirrors: Mutex::default(),
        }
    }

    /// `s3://bucket/prefix`, for notes and logs.
    pub(crate) fn location(&self) -> String {
        format!("s3://{}/{}", self.store.bucket(), self.settings.prefix)
    }

    fn base(&self, principal: &str) -> String {
        format!(
            "{}{}/",
            self.settings.prefix,
            crate::principal::dir_name(principal)
        )
    }

    fn files_prefix(&self, principal: &str) -> String {
        format!("{}files/", self.base(principal))
    }

    fn history_key(&self, principal: &str, kernel: &str) -> String {
        format!("{}history/{kernel}.jsonl", self.base(principal))
    }

    fn mirror(&self, principal: &str) -> Arc<tokio::sync::Mutex<Mirror>> {
        match self.mirrors.lock() {
            Ok(mut m) => Arc::clone(m.entry(principal.to_string()).or_default()),
            Err(_) => Arc::default(),
        }
    }

    /// Before a call: brings the principal's directory up to date with S3. The first call in
    /// this process restores the workspace; later calls pull what other environments changed
    /// since (one LIST, then only the objects whose ETag moved), so a file saved elsewhere is
    /// read here. A file changed on both sides is left for the write-through, which keeps both.
    /// With `list_cache`, a call that starts within it of the last LIST skips this (our own
    /// writes are in `synced` already; another environment's are seen at most that late).
    pub(crate) async fn before_call(&self, principal: &str, home: &Path) -> Report {
        let mirror = self.mirror(principal);
        let mut m = mirror.lock().await;
        let mut report = Report::default();
        let first = !m.restored;
        let now = ListedAt::now();
        if !first
            && m.listed_at
                .is_some_and(|t| t.fresh(now, self.settings.list_cache))
        {
            return report;
        }
        match self.pull(principal, home, &mut m, &mut report, first).await {
            Ok(()) => {
                m.restored = true;
                m.listed_at = Some(now);
            }
            Err(e) => {
                tracing::warn!(principal, error = %e, "workspace restore failed");
                report.notes.push(format!(
                    "your workspace could not be {} {}: {e}; local files are kept and the next call tries again",
                    if first { "restored from" } else { "refreshed from" },
                    self.location()
                ));
            }
        }
        report
    }

    async fn pull(
        &self,
        principal: &str,
        home: &Path,
        m: &mut Mirror,
        report: &mut Report,
        first: bool,
    ) -> Result<(), s3::Error> {
        let prefix = self.files_prefix(principal);
        let listed = self.store.list(&prefix).await?;
        let mut total: u64 = 0;
        let mut left_out = (0usize, 0u64);
        let mut seen = std::collections::BTreeSet::new();
        for object in listed {
            let Some(rel) = object.key.strip_prefix(&prefix).map(str::to_string) else {
                continue;
            };
            if !sync::safe_relative(&rel) {
                continue;
            }
            seen.insert(rel.clone());
            let known = m.synced.get(&rel).cloned();
            if known.as_ref().is_some_and(|k| k.etag == object.etag) {
                continue;
            }
            if object.size > self.settings.max_file_bytes {
                if first {
                    report.too_large.push(rel);
                }
                continue;
            }
            if total + object.size > self.settings.restore_max_bytes {
                left_out = (left_out.0 + 1, left_out.1 + object.size);
                continue;
            }
            let got = match self.store.get(&object.key).await {
                Ok(got) => got,
                Err(s3::Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            total += got.0.len() as u64;
            let known = known.map(|k| k.stamp);
            self.place_pulled(home, rel, got, known, m, report).await;
        }
        remove_deleted_elsewhere(home, &seen, m, report);
        if !report.too_large.is_empty() {
            report.notes.push(format!(
                "not restored, over --workspace-max-file-mb: {}",
                report.too_large.join(", ")
            ));
        }
        if left_out.0 > 0 {
            report.notes.push(format!(
                "restore cap of {} MiB reached: {} file(s) ({} MiB) stay in S3 only\nhint: raise --workspace-restore-max-mb, or delete files you no longer need",
                self.settings.restore_max_bytes >> 20,
                left_out.0,
                left_out.1.div_ceil(1 << 20)
            ));
        }
        if first {
            tracing::info!(
                principal,
                restored = report.restored,
                bytes = total,
                "workspace restored"
            );
        }
        Ok(())
    }

    /// Writes one file pulled from S3 into `home` (see [`place`]) and records it: restored, or
    /// a conflict whose local version was kept beside it, or a note why it was not.
    /// `got` is the object's body and ETag, `known` the stamp the file had when last mirrored.
    async fn place_pulled(
        &self,
        home: &Path,
        rel: String,
        got: (Vec<u8>, String),
        known: Option<Stamp>,
        m: &mut Mirror,
        report: &mut Report,
    ) {
        let (bytes, etag) = got;
        let tag = self.conflict_tag();
        let outcome = tokio::task::spawn_blocking({
            let home = home.to_path_buf();
            let rel = rel.clone();
            move || place(&home, &rel, &bytes, &tag, known)
        })
        .await;
        match outcome {
            Ok(Ok(Some(Placed { stamp, kept_ours }))) => {
                m.synced.insert(rel.clone(), Synced { stamp, etag });
                if let Some(ours) = kept_ours {
                    report.notes.push(format!(
                        "CONFLICT: {rel} differed from the copy in S3: the S3 copy keeps the name, this environment's version is saved as {ours}"
                    ));
                    report.conflicts.push(format!("{rel} (yours: {ours})"));
                } else {
                    report.restored += 1;
                }
            }
            // Changed here too: the write-through after the call keeps both.
            Ok(Ok(None)) => {}
            Ok(Err(e)) => report.notes.push(format!("{rel} was not restored: {e}")),
            Err(e) => report.notes.push(format!("{rel} was not restored: {e}")),
        }
    }

    fn conflict_tag(&self) -> String {
        format!("{}-{}", self.env_tag, history::now_secs())
    }

    /// After a call that may have changed files: writes new and changed files through (within
    /// the per-call budget) and mirrors deletions.
    pub(crate) async fn after_call(&self, principal: &str, home: &Path) -> Report {
        let mirror = self.mirror(principal);
        let mut m = mirror.lock().await;
        let mut report = Report::default();
        if !m.restored {
            report.notes.push(
                "the changes of this call are kept locally and not yet saved to S3 (the workspace was not restored; the next call tries again)".into(),
            );
            return report;
        }
        let walked = tokio::task::spawn_blocking({
            let home = home.to_path_buf();
            move || sync::walk(&home)
        })
        .await;
        let Ok((now, cut)) = walked else {
            return report;
        };
        if cut {
            report.notes.push(format!(
                "only the first {} files of your directory are mirrored",
                sync::MAX_FILES
            ));
        }
        let plan = sync::plan(&now, &m.synced);
        let ControlFlow::Continue(waiting) = self
            .upload_changed(principal, home, &now, plan.upload, &mut m, &mut report)
            .await
        else {
            return report;
        };
        if self
            .mirror_deletions(principal, plan.delete, &mut m, &mut report)
            .await
            .is_break()
        {
            return report;
        }
        if !report.too_large.is_empty() {
            report.notes.push(format!(
                "not saved to S3, over --workspace-max-file-mb ({} MiB): {}",
                self.settings.max_file_bytes >> 20,
                report.too_large.join(", ")
            ));
        }
        if waiting.0 > 0 {
            report.notes.push(format!(
                "{} file(s) ({} MiB) over this call's write-through budget are saved by the next calls",
                waiting.0,
                waiting.1.div_ceil(1 << 20)
            ));
        }
        report
    }

    /// Uploads the new and changed files (`upload`, from the plan) within the per-call budget.
    /// Continues with the files (count, bytes) left for the next calls; breaks when an upload
    /// failed (the report says so, and the rest waits for the next call).
    async fn upload_changed(
        &self,
        principal: &str,
        home: &Path,
        now: &sync::Manifest,
        upload: Vec<(String, u64)>,
        m: &mut Mirror,
        report: &mut Report,
    ) -> ControlFlow<(), (usize, u64)> {
        let mut budget = self.settings.call_budget_bytes;
        let mut waiting = (0usize, 0u64);
        for (rel, size) in upload {
            if size > self.settings.max_file_bytes {
                let stamp = now.get(&rel).copied();
                if m.too_large.get(&rel).copied() != stamp {
                    report.too_large.push(rel.clone());
                    if let Some(s) = stamp {
                        m.too_large.insert(rel, s);
                    }
                }
                continue;
            }
            if size > budget {
                waiting = (waiting.0 + 1, waiting.1 + size);
                continue;
            }
            budget -= size;
            if let Err(e) = self.upload(principal, home, &rel, m, report).await {
                tracing::warn!(principal, error = %e, "workspace write-through failed");
                report.notes.push(format!(
                    "not saved to {}: {e}; your files are kept here and the next call tries again",
                    self.location()
                ));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(waiting)
    }

    /// Deletes from S3 the mirrored files gone from disk (`delete`, from the plan); one changed
    /// in another environment meanwhile is kept there. Breaks when a deletion failed.
    async fn mirror_deletions(
        &self,
        principal: &str,
        delete: Vec<String>,
        m: &mut Mirror,
        report: &mut Report,
    ) -> ControlFlow<()> {
        for rel in delete {
            let Some(etag) = m.synced.get(&rel).map(|s| s.etag.clone()) else {
                continue;
            };
            let key = format!("{}{rel}", self.files_prefix(principal));
            match self.store.delete(&key, &etag).await {
                Ok(()) => {
                    m.synced.remove(&rel);
                    report.deleted += 1;
                }
                Err(s3::Error::Conflict(_)) => {
                    m.synced.remove(&rel);
                    report.notes.push(format!(
                        "{rel} was changed in another environment, so its S3 copy was kept (not deleted)"
                    ));
                }
                Err(e) => {
                    report.notes.push(format!(
                        "the deletion of {rel} was not saved to {}: {e}",
                        self.location()
                    ));
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Uploads one file; on a conflict keeps both versions (theirs takes the name here too).
    async fn upload(
        &self,
        principal: &str,
        home: &Path,
        rel: &str,
        m: &mut Mirror,
        report: &mut Report,
    ) -> Result<(), s3::Error> {
        let path = home.join(rel);
        let read = tokio::task::spawn_blocking(move || read_regular(&path)).await;
        let Ok(Ok((bytes, stamp))) = read else {
            // Gone or replaced by something that is not a regular file since the walk.
            return Ok(());
        };
        let key = format!("{}{rel}", self.files_prefix(principal));
        let last = m.synced.get(rel).map(|s| s.etag.clone());
        match self.store.put(&key, bytes.clone(), last.as_deref()).await {
            Ok(etag) => {
                m.synced.insert(rel.to_string(), Synced { stamp, etag });
                report.saved += 1;
                Ok(())
            }
            Err(s3::Error::Conflict(_)) if last.is_some() && self.gone(&key).await => {
                // Deleted in another environment since: ours is simply new again.
                let etag = self.store.put(&key, bytes, None).await?;
                m.synced.insert(rel.to_string(), Synced { stamp, etag });
                report.saved += 1;
                Ok(())
            }
            Err(s3::Error::Conflict(_)) => {
                let ours = sync::conflict_name(rel, &self.conflict_tag());
                let ours_key = format!("{}{ours}", self.files_prefix(principal));
                let ours_etag = self.store.put(&ours_key, bytes.clone(), None).await?;
                let (theirs, theirs_etag) = self.store.get(&key).await?;
                let placed = tokio::task::spawn_blocking({
                    let home = home.to_path_buf();
                    let (rel, ours) = (rel.to_string(), ours.clone());
                    move || keep_both(&home, &rel, &ours, &bytes, &theirs)
                })
                .await;
                if let Ok(Ok((ours_stamp, theirs_stamp))) = placed {
                    m.synced.insert(
                        rel.to_string(),
                        Synced {
                            stamp: theirs_stamp,
                            etag: theirs_etag,
                        },
                    );
                    m.synced.insert(
                        ours.clone(),
                        Synced {
                            stamp: ours_stamp,
                            etag: ours_etag,
                        },
                    );
                }
                report.saved += 1;
                report.conflicts.push(format!("{rel} (yours: {ours})"));
                report.notes.push(format!(
                    "CONFLICT: {rel} was changed in another environment meanwhile; both versions are kept: theirs as {rel}, yours as {ours}"
                ));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets what this process knew of a principal's mirror, when its local directory is
    /// removed (Lambda single tenancy): its next call restores from S3 again, rather than taking
    /// the missing files for deletions to mirror.
    pub(crate) fn forget(&self, principal: &str) {
        if let Ok(mut m) = self.mirrors.lock() {
            m.remove(principal);
        }
        self.histories.forget_under(&self.base(principal));
    }

    /// Whether `key` no longer exists in S3.
    async fn gone(&self, key: &str) -> bool {
        matches!(self.store.get(key).await, Err(s3::Error::NotFound(_)))
    }

    /// The records of a kernel's history (empty if it has none), as S3 holds it now (a
    /// conditional GET when this process has seen it before: 304 costs no body).
    pub(crate) async fn history(
        &self,
        principal: &str,
        kernel: &str,
    ) -> Result<Vec<history::Record>, Error> {
        let key = self.history_key(principal, kernel);
        match self.histories.read(&self.store, &key).await? {
            cache::Cached::Object { body, .. } => {
                Ok(history::parse(&String::from_utf8_lossy(&body)))
            }
            cache::Cached::Absent => Ok(Vec::new()),
        }
    }

    /// Appends records to a kernel's history.
    pub(crate) async fn record(
        &self,
        principal: &str,
        kernel: &str,
        records: &[history::Record],
    ) -> Result<(), Error> {
        let key = self.history_key(principal, kernel);
        history::append(&self.store, &self.histories, &key, records).await
    }
}

/// Deleted in another environment (mirrored here, no longer `seen` in S3): removed here too,
/// unless changed here since.
fn remove_deleted_elsewhere(
    home: &Path,
    seen: &std::collections::BTreeSet<String>,
    m: &mut Mirror,
    report: &mut Report,
) {
    let gone: Vec<(String, Stamp)> = m
        .synced
        .iter()
        .filter(|(rel, _)| !seen.contains(*rel))
        .map(|(rel, s)| (rel.clone(), s.stamp))
        .collect();
    for (rel, stamp) in gone {
        m.synced.remove(&rel);
        let path = home.join(&rel);
        let unchanged = std::fs::symlink_metadata(&path)
            .is_ok_and(|meta| meta.is_file() && sync::stamp(&meta) == stamp);
        if unchanged && std::fs::remove_file(&path).is_ok() {
            report.deleted += 1;
        }
    }
}

/// The outcome of placing a restored file.
struct Placed {
    stamp: Stamp,
    /// When the local file differed: where our version went.
    kept_ours: Option<String>,
}

/// Writes a file from S3 at `home/rel`. `known` is the stamp it had when last mirrored:
/// a file unchanged since is replaced; one changed here since is left alone (`None`: the
/// write-through keeps both). A file never mirrored is created, left alone when equal, and when
/// different the local version moves aside to a conflict name first.
fn place(
    home: &Path,
    rel: &str,
    bytes: &[u8],
    tag: &str,
    known: Option<Stamp>,
) -> std::io::Result<Option<Placed>> {
    let path = checked_path(home, rel)?;
    let mut kept_ours = None;
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => {
            if known.is_some() && known != Some(sync::stamp(&meta)) {
                return Ok(None);
            }
            if known.is_none() {
                if std::fs::read(&path)? == bytes {
                    return Ok(Some(Placed {
                        stamp: sync::stamp(&meta),
                        kept_ours: None,
                    }));
                }
                let ours = sync::conflict_name(rel, tag);
                std::fs::rename(&path, checked_path(home, &ours)?)?;
                kept_ours = Some(ours);
            }
        }
        Ok(_) => {
            return Err(std::io::Error::other(
                "a directory or link of that name is in the way",
            ));
        }
        Err(_) => {}
    }
    let stamp = write_atomic(&path, bytes)?;
    Ok(Some(Placed { stamp, kept_ours }))
}

/// Our version moves to `ours`, theirs takes `rel`.
fn keep_both(
    home: &Path,
    rel: &str,
    ours: &str,
    our_bytes: &[u8],
    theirs: &[u8],
) -> std::io::Result<(Stamp, Stamp)> {
    let ours_stamp = write_atomic(&checked_path(home, ours)?, our_bytes)?;
    let theirs_stamp = write_atomic(&checked_path(home, rel)?, theirs)?;
    Ok((ours_stamp, theirs_stamp))
}

/// `home/rel`, with its parent directories created (0700) and none of them a symlink: a link
/// planted by kernel code never sends a server write outside the principal's directory.
fn checked_path(home: &Path, rel: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    if !sync::safe_relative(rel) {
        return Err(std::io::Error::other("not a plain relative path"));
    }
    let mut dir = home.to_path_buf();
    let segments: Vec<&str> = rel.split('/').collect();
    for seg in &segments[..segments.len() - 1] {
        dir.push(seg);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(std::io::Error::other("a parent is not a directory")),
            Err(_) => std::fs::DirBuilder::new().mode(0o700).create(&dir)?,
        }
    }
    Ok(home.join(rel))
}

/// Writes through a temp file and a rename (a link at `path` is replaced, never followed).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<Stamp> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes)?;
    let renamed = std::fs::rename(&tmp, path);
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    Ok(sync::stamp(&std::fs::metadata(path)?))
}

/// A regular file's bytes and its stamp (not following a link).
fn read_regular(path: &Path) -> std::io::Result<(Vec<u8>, Stamp)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    let stamp = sync::stamp(&file.metadata()?);
    Ok((bytes, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_list_is_fresh_only_within_its_bound_on_both_clocks() {
        let then = ListedAt::now();
        let max = Duration::from_millis(500);
        let later = |d: Duration| ListedAt {
            at: then.at + d,
            wall: then.wall + d,
        };
        assert!(then.fresh(later(Duration::from_millis(499)), max));
        assert!(!then.fresh(later(max), max));
        // Zero: never fresh, not even at once.
        assert!(!then.fresh(then, Duration::ZERO));
        // The monotonic clock stood still (a frozen environment) but the wall clock ran.
        let frozen = ListedAt {
            at: then.at,
            wall: then.wall + Duration::from_secs(5),
        };
        assert!(!then.fresh(frozen, max));
        // The wall clock was set back: expired.
        let set_back = ListedAt {
            at: then.at + Duration::from_millis(1),
            wall: then.wall - Duration::from_secs(1),
        };
        assert!(!then.fresh(set_back, max));
    }

    #[test]
    fn a_restored_file_that_differs_locally_keeps_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "local").unwrap();
        let placed = place(dir.path(), "a.txt", b"remote", "t1", None)
            .unwrap()
            .unwrap();
        assert_eq!(placed.kept_ours.as_deref(), Some("a.conflict-t1.txt"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
            "remote"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.conflict-t1.txt")).unwrap(),
            "local"
        );
        let same = place(dir.path(), "a.txt", b"remote", "t2", None)
            .unwrap()
            .unwrap();
        assert!(same.kept_ours.is_none());
        // Changed here since the last mirror: left for the write-through to keep both.
        let stale = Stamp {
            size: 1,
            mtime_ns: 1,
        };
        assert!(
            place(dir.path(), "a.txt", b"newer", "t3", Some(stale))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_planted_symlink_directory_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("d")).unwrap();
        assert!(place(dir.path(), "d/x.txt", b"x", "t", None).is_err());
        assert!(!outside.path().join("x.txt").exists());
        std::os::unix::fs::symlink(outside.path().join("f"), dir.path().join("f")).unwrap();
        assert!(place(dir.path(), "f", b"x", "t", None).is_err());
        assert!(!outside.path().join("f").exists());
    }
}
