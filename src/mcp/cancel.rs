//! Cancelling a running tool call from another HTTP request.
//!
//! rmcp cancels a call's `RequestContext.ct` in three cases: on stdio (and any other transport
//! that keeps one connection) when `notifications/cancelled` names the call; over HTTP when the
//! client closes the connection or the SSE stream of the call (the 2026-07-28 way to cancel);
//! and when the server shuts down. What it cannot do over stateless HTTP is the legacy-era
//! cancel: a client such as the TypeScript SDK sends `notifications/cancelled` in a *new* POST
//! and keeps the call's connection open, and rmcp serves each POST with its own one-shot
//! service, so it answers the notification with 202 and the call runs on.
//!
//! This registry closes that gap. The HTTP layer registers every `tools/call` it passes on, under
//! the caller's credentials (the `Authorization`, `X-Api-Key`, `Cookie` and `Mcp-Session-Id`
//! headers, so one caller can never cancel another's calls) and the JSON-RPC request id, and
//! puts a [`CallCancel`] into the request's extensions. A `notifications/cancelled` from the same
//! caller that names that id cancels it. Request ids are chosen by clients and two clients with
//! the same credentials may both use `3`: when more than one running call matches, none is
//! cancelled (a cancel must never stop someone else's cell) and a warning is logged.
//!
//! The tool handler links the token into `ctx.ct` ([`link`]), so every tool sees one token:
//! `execute_code` interrupts its cell or, still queued, never runs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// Headers whose values tell one caller from another.
const CALLER_HEADERS: &[&str] = &["authorization", "x-api-key", "cookie", "mcp-session-id"];

/// One registered call; the registry forgets it when the last clone of the request (and so of
/// this `Arc`) is dropped, that is when the handler is done.
#[derive(Debug)]
struct Registered {
    token: CancellationToken,
}

/// The cancel token of one HTTP `tools/call`, carried in the request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct CallCancel(Arc<Registered>);

type Key = (String, String);

/// Running `tools/call` requests by (caller, JSON-RPC id).
#[derive(Debug, Default)]
pub(crate) struct CallRegistry {
    /// std mutex: held for a map operation only, never across an await.
    calls: Mutex<HashMap<Key, Vec<Weak<Registered>>>>,
}

/// How a `notifications/cancelled` was applied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cancelled {
    One,
    NoSuchCall,
    Ambiguous(usize),
}

impl CallRegistry {
    /// Registers a call; keep the returned value in the request's extensions.
    pub(crate) fn register(
        &self,
        headers: &axum::http::HeaderMap,
        id: &serde_json::Value,
    ) -> CallCancel {
        let entry = Arc::new(Registered {
            token: CancellationToken::new(),
        });
        if let Ok(mut calls) = self.calls.lock() {
            calls.retain(|_, v| {
                v.retain(|w| w.strong_count() > 0);
                !v.is_empty()
            });
            calls
                .entry(key(headers, id))
                .or_default()
                .push(Arc::downgrade(&entry));
        }
        CallCancel(entry)
    }

    /// Cancels the caller's running call with this id, if exactly one matches.
    pub(crate) fn cancel(
        &self,
        headers: &axum::http::HeaderMap,
        id: &serde_json::Value,
    ) -> Cancelled {
        let live: Vec<Arc<Registered>> = match self.calls.lock() {
            Ok(calls) => calls
                .get(&key(headers, id))
                .map(|v| v.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        match live.as_slice() {
            [] => Cancelled::NoSuchCall,
            [one] => {
                one.token.cancel();
                Cancelled::One
            }
            many => Cancelled::Ambiguous(many.len()),
        }
    }
}

/// The caller's credentials and the request id, as one key. Never logged.
fn key(headers: &axum::http::HeaderMap, id: &serde_json::Value) -> Key {
    let caller = CALLER_HEADERS
        .iter()
        .map(|h| {
            headers
                .get(*h)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n");
    (caller, id.to_string())
}

/// Makes `ctx.ct` also fire when the call's [`CallCancel`] does. Keep the returned handle for
/// the duration of the call (dropping it ends the link).
pub(crate) fn link(ctx: &mut RequestContext<RoleServer>) -> Option<AbortOnDropHandle<()>> {
    let extra = ctx
        .extensions
        .get::<axum::http::request::Parts>()?
        .extensions
        .get::<CallCancel>()?
        .0
        .token
        .clone();
    let linked = ctx.ct.child_token();
    ctx.ct = linked.clone();
    Some(AbortOnDropHandle::new(tokio::spawn(async move {
        tokio::select! {
            _ = extra.cancelled() => linked.cancel(),
            _ = linked.cancelled() => {}
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(key: &str) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-api-key", key.parse().unwrap());
        h
    }

    #[test]
    fn a_cancel_reaches_the_callers_call_only() {
        let registry = CallRegistry::default();
        let mine = registry.register(&headers("a"), &json!(7));
        let theirs = registry.register(&headers("b"), &json!(7));
        assert_eq!(registry.cancel(&headers("a"), &json!(7)), Cancelled::One);
        assert!(mine.0.token.is_cancelled());
        assert!(!theirs.0.token.is_cancelled());
    }

    #[test]
    fn an_ambiguous_id_cancels_nothing() {
        let registry = CallRegistry::default();
        let one = registry.register(&headers("a"), &json!("x"));
        let two = registry.register(&headers("a"), &json!("x"));
        assert_eq!(
            registry.cancel(&headers("a"), &json!("x")),
            Cancelled::Ambiguous(2)
        );
        assert!(!one.0.token.is_cancelled() && !two.0.token.is_cancelled());
    }

    #[test]
    fn a_finished_call_is_forgotten() {
        let registry = CallRegistry::default();
        drop(registry.register(&headers("a"), &json!(1)));
        assert_eq!(
            registry.cancel(&headers("a"), &json!(1)),
            Cancelled::NoSuchCall
        );
        // A number id and a string id are different ids.
        let _call = registry.register(&headers("a"), &json!(1));
        assert_eq!(
            registry.cancel(&headers("a"), &json!("1")),
            Cancelled::NoSuchCall
        );
    }
}
