//! Saving what a run made: the full-size originals of downscaled images, and a run's outputs
//! into a notebook (a new cell, or the cell it ran from).

use super::{Call, Execution, SavedCell, Service};
use crate::notebook::Shrinks;
use crate::notebook::edit::{self, CodeCell};
use crate::output::OutputItem;

/// How the saved originals of downscaled images are named.
#[derive(Clone, Copy)]
pub enum OriginalNames<'a> {
    /// After the run that made them (`images/{kernel}-{count}-{n}-{random}.png`): each run's
    /// plots are its own files.
    Run { kernel: &'a str, count: Option<u64> },
    /// After their content (`images/original-{sha256}.png`): reading one notebook twice links
    /// the file the first read saved instead of piling up copies.
    Content,
}

impl OriginalNames<'_> {
    /// The path the `n`th image is saved at, and whether a file already there is this image.
    fn path(self, n: usize, raw: &[u8], ext: &str) -> (String, bool) {
        match self {
            OriginalNames::Run { kernel, count } => {
                let tag = uuid::Uuid::new_v4().simple().to_string();
                let count = count.unwrap_or(0);
                let path = format!("images/{kernel}-{count}-{n}-{}.{ext}", &tag[..8]);
                (path, false)
            }
            OriginalNames::Content => {
                let hash = crate::notebook::disk::revision(raw);
                (format!("images/original-{hash}.{ext}"), true)
            }
        }
    }
}

impl Service {
    /// Saves the full-size originals of downscaled images (and large SVGs) under `images/` in
    /// the caller's directory and records where, so the result can link them. A failed save is
    /// logged and the image is still sent (downscaled, unlinked).
    pub async fn save_originals(
        &self,
        call: &Call,
        names: OriginalNames<'_>,
        outputs: Vec<&mut OutputItem>,
    ) {
        for (n, item) in outputs.into_iter().enumerate() {
            let Some((raw, ext)) = item.take_unsaved() else {
                continue;
            };
            let (path, reuse) = names.path(n, &raw, ext);
            let saved = self
                .with_files(call, move |f| match f.write(&path, &raw, false) {
                    // Named by content: the file there is this image, saved by an earlier read.
                    Err(crate::files::Error::AlreadyExists { path }) if reuse => Ok(path),
                    other => other,
                })
                .await;
            match saved {
                Ok(path) => item.set_saved(path),
                Err(e) => tracing::warn!(error = %e.message, "could not save an original image"),
            }
        }
    }

    /// Appends a run as a new code cell of `path` (created if missing). A failure to save is
    /// told in the run's note rather than hiding the run's outputs.
    pub async fn append_run(
        &self,
        call: &Call,
        path: String,
        code: String,
        expected: Option<String>,
        execution: &mut Execution,
    ) -> Option<SavedCell> {
        if !execution.ran {
            execution.add_note("the code did not run, so no cell was appended".into());
            return None;
        }
        let outputs = std::mem::take(&mut execution.nb_outputs);
        let count = execution.execution_count;
        let saved = self
            .with_store(call, move |s| {
                let (pos, revision) =
                    s.change(&path, expected.as_deref(), true, Shrinks::No, |doc, p| {
                        edit::append_run(doc, &code, outputs, count, p)
                    })?;
                Ok(SavedCell {
                    path,
                    index: pos.index,
                    id: pos.id,
                    revision,
                })
            })
            .await;
        noted(
            saved,
            execution,
            "the outputs were not saved to the notebook",
        )
    }

    /// Saves a run's outputs into the cell it ran from; a failure is told in the run's note.
    pub async fn save_run(
        &self,
        call: &Call,
        path: &str,
        cell: CodeCell,
        execution: &mut Execution,
    ) -> Option<SavedCell> {
        // A cell that never reached the kernel keeps the outputs it had.
        if !execution.ran {
            execution.add_note("the cell did not run; its saved outputs are kept".into());
            return None;
        }
        let outputs = std::mem::take(&mut execution.nb_outputs);
        let count = execution.execution_count;
        let path = path.to_owned();
        let saved = self
            .with_store(call, move |s| {
                let (pos, revision) = s.change(&path, None, false, Shrinks::Maybe, |doc, p| {
                    edit::save_outputs(doc, &cell, outputs, count, p)
                })?;
                Ok(SavedCell {
                    path: crate::notebook::display_path(&path),
                    index: pos.index,
                    id: pos.id,
                    revision,
                })
            })
            .await;
        noted(saved, execution, "the outputs were not saved")
    }
}

/// Where a run's outputs were saved, or nothing with the failure told in the run's note (a
/// failed save never hides the run's outputs).
fn noted(
    saved: Result<SavedCell, super::Error>,
    execution: &mut Execution,
    what: &str,
) -> Option<SavedCell> {
    match saved {
        Ok(saved) => Some(saved),
        Err(e) => {
            execution.add_note(format!("{what}: {}", e.message));
            None
        }
    }
}
