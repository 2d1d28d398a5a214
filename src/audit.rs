//! The audit log: one JSON line per tool call and per refused request, for a security team.
//!
//! Records go to stdout (CloudWatch on Lambda; the tracing log is on stderr; over the stdio
//! transport, where stdout carries the protocol, to stderr) and, with
//! `--audit-log PATH`, are appended to a file opened with O_APPEND, one `write` per record and
//! flushed at once, so concurrent records never interleave and a crash loses none that was
//! reported. A record holds who, what and how it went: the code's SHA-256 (the code itself only
//! with `--audit-code`, capped), never a token, key, environment value or output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::principal::hex;

/// Where audit records go (from `--audit-log`, `--audit-code` and the transport). Nothing in it
/// needs checking: the file is opened, with its own error, by `Audit::open`.
#[derive(Debug, Clone, Default)]
pub struct AuditSettings {
    pub file: Option<PathBuf>,
    pub include_code: bool,
    /// Write records to stderr instead of stdout: over the stdio transport stdout is the
    /// protocol stream, and a record there would break the client.
    pub to_stderr: bool,
}

/// Most code bytes a record carries with `--audit-code`.
pub const MAX_AUDIT_CODE_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot open the audit log {path}: {source}\nhint: check the directory exists and is writable, or drop --audit-log"
    )]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One tool call (or resource request), as recorded.
#[derive(Debug, Default, serde::Serialize)]
pub struct ToolCall<'a> {
    /// The HTTP request's id (Lambda's on Lambda, a UUID otherwise; the `x-request-id`
    /// response header); none over stdio.
    pub request_id: Option<&'a str>,
    /// The JSON-RPC id of the call, as a string.
    pub rpc_id: Option<String>,
    /// The caller's IP address (the TCP peer locally, the event's source IP on Lambda).
    pub client_addr: Option<String>,
    pub principal: &'a str,
    /// How the principal was established (api_key, oidc, aws_iam, unauthenticated).
    pub auth: Option<crate::principal::Source>,
    /// The tool's name, or `resources/list` / `resources/read`.
    pub tool: &'a str,
    /// The kernel of a tool that takes one (its `kernel` argument, else "default").
    pub kernel: Option<&'a str>,
    /// SHA-256 of the code the call sent to a kernel: one piece (execute_code, execute_cell)
    /// or, in order and concatenated, every cell execute_notebook ran or restore_kernel
    /// replayed. None when no code reached a kernel.
    pub code_sha256: Option<String>,
    /// How many pieces of code `code_sha256` covers (0 when none).
    pub code_count: usize,
    /// The code itself (the same concatenation, capped), only with --audit-code.
    pub code: Option<String>,
    /// The requirement of install_package.
    pub package: Option<&'a str>,
    /// The notebook or file the call names (`path`, execute_code's `notebook`, the URI of
    /// `resources/read`).
    pub path: Option<&'a str>,
    /// ok, error or the tool's own status (timeout, refused, limit_reached...).
    pub status: &'a str,
    pub duration_ms: u64,
    /// Size of the serialized result.
    pub bytes_returned: usize,
}

#[derive(serde::Serialize)]
struct Line<T: serde::Serialize> {
    time: String,
    event: &'static str,
    #[serde(flatten)]
    body: T,
}

/// The end of an execution whose call answered `running` before it ended: the code it sent to
/// its kernel after that answer is in no call's record, so it gets one of its own.
#[derive(Debug, Default, serde::Serialize)]
pub struct ExecutionEnd<'a> {
    pub principal: &'a str,
    pub auth: Option<crate::principal::Source>,
    pub execution_id: &'a str,
    /// The tool that started it.
    pub tool: &'a str,
    pub kernel: Option<&'a str>,
    /// As in [`ToolCall::code_sha256`]: every piece of code the execution sent, in order.
    pub code_sha256: Option<String>,
    pub code_count: usize,
    pub code: Option<String>,
    /// How it ended (ok, error, timeout, kernel_died, cancelled, or a failure's status).
    pub status: &'a str,
    /// From its start to its end.
    pub duration_ms: u64,
}

/// A request refused before any tool ran, as recorded.
#[derive(Debug, Default, serde::Serialize)]
pub struct Refused<'a> {
    /// As in [`ToolCall::request_id`].
    pub request_id: Option<&'a str>,
    /// The JSON-RPC id of the refused request (as the 401 body answers it), as a string.
    pub rpc_id: Option<String>,
    /// As in [`ToolCall::client_addr`].
    pub client_addr: Option<String>,
    /// Who it was, when the refusal came after authentication (a rate limit).
    pub principal: Option<&'a str>,
    pub reason: &'a str,
}

/// Where records go.
pub struct Audit {
    file: Option<Mutex<std::fs::File>>,
    include_code: bool,
    to_stderr: bool,
}

impl Audit {
    pub fn open(settings: &AuditSettings) -> Result<Audit, Error> {
        let file = settings.file.as_deref().map(open_append).transpose()?;
        Ok(Audit {
            file: file.map(Mutex::new),
            include_code: settings.include_code,
            to_stderr: settings.to_stderr,
        })
    }

    /// SHA-256 of the code pieces a call ran, concatenated in order, and that code itself
    /// (capped) when records carry it. Nothing when no code ran.
    pub fn code_fields(&self, pieces: &[String]) -> (Option<String>, Option<String>) {
        if pieces.is_empty() {
            return (None, None);
        }
        let mut digest = Sha256::new();
        for piece in pieces {
            digest.update(piece.as_bytes());
        }
        let kept = self.include_code.then(|| {
            let mut text = String::new();
            for piece in pieces {
                text.push_str(cap(piece, MAX_AUDIT_CODE_BYTES - text.len()));
                if text.len() >= MAX_AUDIT_CODE_BYTES {
                    break;
                }
            }
            text
        });
        (Some(hex(&digest.finalize())), kept)
    }

    /// Records a call, with the fields its caller chose (JSON-RPC id, kernel, package, path)
    /// capped at `MAX_CALLER_FIELD_BYTES`: a request must not make its record as big as itself.
    pub fn tool_call(&self, record: &ToolCall<'_>) {
        let capped = ToolCall {
            rpc_id: record
                .rpc_id
                .as_deref()
                .map(|s| cap(s, MAX_CALLER_FIELD_BYTES).to_string()),
            client_addr: record.client_addr.clone(),
            kernel: capped_field(record.kernel),
            code_sha256: record.code_sha256.clone(),
            code: record.code.clone(),
            package: capped_field(record.package),
            path: capped_field(record.path),
            ..*record
        };
        self.write("tool_call", &capped);
    }

    /// The end of an execution that outlived its call (see [`ExecutionEnd`]).
    pub fn execution_end(&self, record: &ExecutionEnd<'_>) {
        let capped = ExecutionEnd {
            kernel: capped_field(record.kernel),
            code_sha256: record.code_sha256.clone(),
            code: record.code.clone(),
            ..*record
        };
        self.write("execution_end", &capped);
    }

    /// A request refused before any tool ran: missing or bad credentials, or a limit.
    pub fn refused(&self, record: &Refused<'_>) {
        let capped = Refused {
            rpc_id: record
                .rpc_id
                .as_deref()
                .map(|s| cap(s, MAX_CALLER_FIELD_BYTES).to_string()),
            client_addr: record.client_addr.clone(),
            ..*record
        };
        self.write("refused", &capped);
    }

    fn write<T: serde::Serialize>(&self, event: &'static str, body: &T) {
        let line = Line {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event,
            body,
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        if self.to_stderr {
            let mut out = std::io::stderr().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
        if let Some(file) = &self.file
            && let Ok(mut f) = file.lock()
            && let Err(e) = f.write_all(text.as_bytes()).and_then(|()| f.flush())
        {
            tracing::error!(error = %e, "could not append to the audit log");
        }
    }
}

fn open_append(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// The most a record keeps of a field the caller chose (JSON-RPC id, kernel, package, path).
const MAX_CALLER_FIELD_BYTES: usize = 1024;

fn capped_field(s: Option<&str>) -> Option<&str> {
    s.map(|s| cap(s, MAX_CALLER_FIELD_BYTES))
}

/// The longest prefix of `s` within `max` bytes, cut at a character boundary.
fn cap(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_the_caller_chose_are_capped_on_a_char_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::open(&AuditSettings {
            file: Some(path.clone()),
            include_code: false,
            to_stderr: true,
        })
        .unwrap();
        let long = "é".repeat(MAX_CALLER_FIELD_BYTES);
        audit.tool_call(&ToolCall {
            rpc_id: Some("i".repeat(5000)),
            principal: "alice",
            tool: "read_file",
            kernel: Some(&long),
            package: Some(&long),
            path: Some(&long),
            status: "ok",
            ..Default::default()
        });
        audit.refused(&Refused {
            rpc_id: Some("i".repeat(5000)),
            reason: "unknown key",
            ..Default::default()
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0]["rpc_id"].as_str().unwrap().len(),
            MAX_CALLER_FIELD_BYTES
        );
        assert_eq!(
            lines[1]["rpc_id"].as_str().unwrap().len(),
            MAX_CALLER_FIELD_BYTES
        );
        for field in ["kernel", "package", "path"] {
            let kept = lines[0][field].as_str().unwrap();
            assert_eq!(kept.len(), MAX_CALLER_FIELD_BYTES, "{field}: é is 2 bytes");
            assert!(long.starts_with(kept));
        }
    }

    #[test]
    fn records_are_appended_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "earlier\n").unwrap();
        let audit = Audit::open(&AuditSettings {
            file: Some(path.clone()),
            include_code: false,
            to_stderr: false,
        })
        .unwrap();
        let (sha, code) = audit.code_fields(&["print(1)".to_string()]);
        assert!(code.is_none());
        audit.tool_call(&ToolCall {
            principal: "alice",
            tool: "execute_code",
            code_sha256: sha.clone(),
            code_count: 1,
            status: "ok",
            ..Default::default()
        });
        audit.refused(&Refused {
            rpc_id: Some("7".into()),
            client_addr: Some("127.0.0.1".into()),
            reason: "no credentials",
            ..Default::default()
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "earlier");
        let call: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(call["event"], "tool_call");
        assert_eq!(call["principal"], "alice");
        assert_eq!(call["code_sha256"].as_str(), sha.as_deref());
        let refused: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(refused["event"], "refused");
        assert_eq!(refused["reason"], "no credentials");
        assert_eq!(refused["rpc_id"], "7");
        assert_eq!(refused["client_addr"], "127.0.0.1");
    }

    #[test]
    fn code_is_kept_only_when_asked_and_capped() {
        let audit = Audit::open(&AuditSettings {
            file: None,
            include_code: true,
            to_stderr: false,
        })
        .unwrap();
        let long = "é".repeat(MAX_AUDIT_CODE_BYTES);
        let (_, code) = audit.code_fields(std::slice::from_ref(&long));
        let code = code.unwrap();
        assert!(code.len() <= MAX_AUDIT_CODE_BYTES && code.len() > MAX_AUDIT_CODE_BYTES - 2);
        assert!(long.starts_with(&code));
    }

    #[test]
    fn several_pieces_are_digested_and_kept_in_order() {
        let audit = Audit::open(&AuditSettings {
            file: None,
            include_code: true,
            to_stderr: false,
        })
        .unwrap();
        let pieces = ["a = 1\n".to_string(), "print(a)".to_string()];
        let (sha, code) = audit.code_fields(&pieces);
        assert_eq!(sha.unwrap(), hex(&Sha256::digest(b"a = 1\nprint(a)")));
        assert_eq!(code.unwrap(), "a = 1\nprint(a)");
        let many = vec!["x".repeat(3000); 3];
        let (_, code) = audit.code_fields(&many);
        assert_eq!(code.unwrap(), "x".repeat(MAX_AUDIT_CODE_BYTES));
        assert_eq!(audit.code_fields(&[]), (None, None));
    }
}
