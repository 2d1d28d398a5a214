//! MCP resources: the caller's directory, file by file (`workspace:///PATH`).
//!
//! `resources/list` pages through every non-hidden file (notebooks among them) with name, MIME
//! type and size; one template covers any path; `resources/read` returns text or a base64
//! blob up to a cap. These are protocol requests, not tool calls, so failures are JSON-RPC
//! errors (resource not found, invalid params) with messages that say what to do.

use base64::Engine;
use rmcp::ErrorData;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};

use crate::files::{self, FileRead, Files, URI_PREFIX, mime_from_name, path_from_uri, uri_for};
use crate::service::Service as App;

/// Resources per `resources/list` page.
const PAGE_SIZE: usize = 100;
/// Largest file `resources/read` returns, in bytes (a blob grows by a third in base64).
pub(crate) const MAX_RESOURCE_BYTES: u64 = 4 * 1024 * 1024;

fn files_of(app: &App, principal: &str) -> Result<Files, ErrorData> {
    app.files(principal)
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, ErrorData> + Send + 'static,
) -> Result<T, ErrorData> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
}

/// One page of the caller's files; the cursor is the index of the page's first file.
pub(crate) async fn list(
    app: &App,
    principal: &str,
    cursor: Option<String>,
) -> Result<ListResourcesResult, ErrorData> {
    let start = match cursor {
        None => 0,
        Some(c) => c.parse::<usize>().map_err(|_| {
            ErrorData::invalid_params(
                format!("cursor {c:?} is not one this server gave; start again without a cursor"),
                None,
            )
        })?,
    };
    let files = files_of(app, principal)?;
    let (entries, cut) = blocking(move || {
        files
            .list(None, true)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    })
    .await?;
    let all: Vec<_> = entries.into_iter().filter(|e| e.kind == "file").collect();
    let resources = all
        .iter()
        .skip(start)
        .take(PAGE_SIZE)
        .map(|e| {
            let mut r = Resource::new(uri_for(&e.path), e.path.clone())
                .with_mime_type(e.mime_type.clone().unwrap_or_default());
            if let Some(size) = e.size_bytes {
                r = r.with_size(size);
            }
            r
        })
        .collect();
    let mut result = ListResourcesResult::with_all_items(resources);
    let next = start + PAGE_SIZE;
    if next < all.len() {
        result.next_cursor = Some(next.to_string());
    }
    if cut {
        // Said on every page, in `_meta` (the result has no other place for it).
        let mut meta = serde_json::Map::new();
        meta.insert("truncated".into(), true.into());
        meta.insert(
            "note".into(),
            format!(
                "the walk of your directory stops at {} entries (files and folders), so this list misses files; list_files on a folder lists what is in it, and resources/read reads any path",
                files::MAX_LIST_ENTRIES
            )
            .into(),
        );
        result.meta = Some(rmcp::model::MetaObject(meta));
    }
    Ok(result)
}

/// The one template: any path in the caller's directory.
pub(crate) fn templates() -> ListResourceTemplatesResult {
    let mut template = ResourceTemplate::new(format!("{URI_PREFIX}{{+path}}"), "workspace-file")
        .with_title("A file in your working directory");
    template.description = Some(
        "Any file or notebook under the working directory, by relative path (e.g. workspace:///data/results.csv)".into(),
    );
    ListResourceTemplatesResult::with_all_items(vec![template])
}

/// The file at `uri`: text if it is UTF-8 (and not an image), a base64 blob otherwise.
pub(crate) async fn read(
    app: &App,
    principal: &str,
    uri: String,
) -> Result<ReadResourceResult, ErrorData> {
    // Every error names the URI in `data`, as SEP-2164 asks.
    let data = serde_json::json!({ "uri": uri });
    let Some(path) = path_from_uri(&uri) else {
        return Err(ErrorData::invalid_params(
            format!(
                "{uri:?} is not a resource of this server; its URIs start with {URI_PREFIX} (see resources/list)"
            ),
            Some(data),
        ));
    };
    let files = files_of(app, principal)?;
    let read = {
        let data = data.clone();
        blocking(move || files.read(&path).map_err(|e| read_error(&e, data))).await?
    };
    let (read, size, path) = read;
    if size > MAX_RESOURCE_BYTES {
        return Err(ErrorData::invalid_params(
            format!(
                "{path} is {size} bytes, over the {MAX_RESOURCE_BYTES}-byte limit for resources/read; read a part with the read_file tool, or make a smaller copy"
            ),
            Some(data),
        ));
    }
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let contents = match read {
        FileRead::Text { text } => {
            ResourceContents::text(text, uri).with_mime_type(mime_from_name(&path))
        }
        FileRead::Image { mime_type, bytes } => {
            ResourceContents::blob(b64(bytes), uri).with_mime_type(mime_type)
        }
        FileRead::Binary { bytes } => {
            ResourceContents::blob(b64(bytes), uri).with_mime_type(mime_from_name(&path))
        }
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

/// Every failure to read is the caller's to fix: -32602 with the URI in `data`, as SEP-2164
/// asks for an unknown URI.
fn read_error(e: &files::Error, data: serde_json::Value) -> ErrorData {
    ErrorData::invalid_params(e.to_string(), Some(data))
}
