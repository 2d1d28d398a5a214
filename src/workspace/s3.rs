//! The S3 side of the workspace: a thin wrapper over `aws-sdk-s3` that speaks in keys, bytes and
//! ETags, and turns the SDK's errors into the three cases the sync cares about: the object
//! changed meanwhile (a precondition failed), it is not there, or S3 cannot be used (bucket
//! missing, access denied, endpoint down), with a message that says which.
//!
//! The client lives in the server process only, with the server's credentials; kernels never
//! talk to S3.

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;

/// A connection that does not open in this long is an endpoint that is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One S3 operation (all attempts) at most this long.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per operation (the first and one retry): a dead endpoint fails fast.
const MAX_ATTEMPTS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// `If-Match` / `If-None-Match` did not hold: another environment wrote the object.
    #[error("the object {0} was changed by another environment")]
    Conflict(String),
    #[error("the object {0} does not exist")]
    NotFound(String),
    #[error(
        "S3 bucket {bucket}: {reason}\nhint: check that the bucket exists, that the server's role may read and write its workspace prefix, and that the endpoint is reachable"
    )]
    Unavailable { bucket: String, reason: String },
}

/// One object as listed.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

/// The bucket, reached with the server's AWS configuration.
pub(crate) struct Store {
    bucket: String,
    client: tokio::sync::OnceCell<aws_sdk_s3::Client>,
    /// Path-style addressing (`endpoint/bucket/key`), for S3-compatible endpoints on loopback.
    path_style: bool,
}

impl Store {
    pub fn new(bucket: String, path_style: bool) -> Store {
        Store {
            bucket,
            client: tokio::sync::OnceCell::new(),
            path_style,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn client(&self) -> &aws_sdk_s3::Client {
        self.client
            .get_or_init(|| async {
                let sdk = crate::aws::sdk_config().await;
                let config = aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(self.path_style)
                    .timeout_config(
                        aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                            .connect_timeout(CONNECT_TIMEOUT)
                            .operation_timeout(OPERATION_TIMEOUT)
                            .build(),
                    )
                    .retry_config(
                        aws_sdk_s3::config::retry::RetryConfig::standard()
                            .with_max_attempts(MAX_ATTEMPTS),
                    )
                    .build();
                aws_sdk_s3::Client::from_conf(config)
            })
            .await
    }

    /// Every object under `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, Error> {
        let mut out = Vec::new();
        let mut pages = self
            .client()
            .await
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(prefix, e))?;
            for o in page.contents() {
                if let (Some(key), Some(etag)) = (o.key(), o.e_tag()) {
                    out.push(Listed {
                        key: key.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        etag: etag.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The object's bytes and ETag.
    pub async fn get(&self, key: &str) -> Result<(Vec<u8>, String), Error> {
        let out = self
            .client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        self.read_object(key, out).await
    }

    /// The object's bytes and ETag if its ETag is no longer `etag` (`If-None-Match`); `None`
    /// when it is unchanged (S3 answers 304 Not Modified, without a body).
    pub async fn get_if_changed(
        &self,
        key: &str,
        etag: &str,
    ) -> Result<Option<(Vec<u8>, String)>, Error> {
        let sent = self
            .client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match(etag)
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.raw_response().map(HttpStatus::status_code) == Some(304) => {
                return Ok(None);
            }
            Err(e) => return Err(self.error(key, e)),
        };
        self.read_object(key, out).await.map(Some)
    }

    /// A GET's body, read to the end, and the object's ETag.
    async fn read_object(
        &self,
        key: &str,
        out: GetObjectOutput,
    ) -> Result<(Vec<u8>, String), Error> {
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out.body.collect().await.map_err(|e| Error::Unavailable {
            bucket: self.bucket.clone(),
            reason: format!("reading {key}: {e}"),
        })?;
        Ok((body.into_bytes().to_vec(), etag))
    }

    /// Writes `key` only if its ETag is still `if_match`, or (`None`) only if it does not exist.
    /// Returns the new ETag.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        if_match: Option<&str>,
    ) -> Result<String, Error> {
        let request = self
            .client()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body));
        let request = match if_match {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
        };
        let out = request.send().await.map_err(|e| self.error(key, e))?;
        Ok(out.e_tag().unwrap_or_default().to_string())
    }

    /// Deletes `key` if its ETag is still `etag` (S3 checks `If-Match`; a store that ignores it
    /// is asked first with a HEAD, so a file another environment rewrote is never removed).
    pub async fn delete(&self, key: &str, etag: &str) -> Result<(), Error> {
        let client = self.client().await;
        let head = client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error(key, e));
        match head {
            Ok(h) if h.e_tag() != Some(etag) => return Err(Error::Conflict(key.to_string())),
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .if_match(etag)
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        Ok(())
    }

    /// Sorts an SDK error into the cases above; the message names the S3 error code, never a
    /// credential.
    fn error<E, R>(&self, key: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HttpStatus,
    {
        let status = e.raw_response().map(HttpStatus::status_code);
        let code = e.code().map(str::to_string);
        match (status, code.as_deref()) {
            (Some(412 | 409), _) | (_, Some("PreconditionFailed")) => {
                return Error::Conflict(key.to_string());
            }
            (_, Some("NoSuchKey" | "NotFound")) => return Error::NotFound(key.to_string()),
            (Some(404), None) => return Error::NotFound(key.to_string()),
            _ => {}
        }
        let reason = match (code, status) {
            (Some(code), _) => format!("{code}: {}", e.message().unwrap_or("(no message)")),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => {
                let text = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                format!(
                    "cannot reach S3: {}",
                    text.chars().take(300).collect::<String>()
                )
            }
        };
        Error::Unavailable {
            bucket: self.bucket.clone(),
            reason,
        }
    }
}

/// The HTTP status of a raw SDK response.
pub(crate) trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}
