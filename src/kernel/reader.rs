//! The one reader task of a kernel.
//!
//! It drains iopub and the shell replies and routes each message by `parent_header.msg_id` to
//! whoever registered that id (an execution, a kernel_info request). Messages nobody waits for
//! (output of a background thread after its cell finished, status of unregistered requests) are
//! dropped, so a chatty kernel cannot grow the server's memory. Each waiter's queue is bounded:
//! when a consumer falls behind, the reader stops reading and the backlog stays in the kernel's
//! socket, not in the server. Status messages also update the kernel's busy flag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jupyter_protocol::{ExecutionState, JupyterMessage, JupyterMessageContent};
use jupyter_zmq_client::{ClientIoPubConnection, DealerRecvConnection};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Which socket a routed message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    IoPub,
    Shell,
}

pub(crate) type Routed = (Channel, JupyterMessage);

/// Messages a waiter may have queued before the reader waits for it to catch up.
const ROUTE_QUEUE_MESSAGES: usize = 4;

/// Waiters by request msg_id. A std mutex: held only to insert, remove or look up, never across
/// an await.
#[derive(Default)]
pub(crate) struct Routes {
    map: Mutex<HashMap<String, mpsc::Sender<Routed>>>,
    /// Messages read from the kernel so far, routed or not: lets a waiter tell a quiet kernel
    /// from one still draining a backlog meant for others.
    seen: AtomicU64,
}

impl Routes {
    /// Registers a waiter for replies to `msg_id`; the guard unregisters it when dropped.
    pub fn register(self: &Arc<Self>, msg_id: &str) -> (RouteGuard, mpsc::Receiver<Routed>) {
        let (tx, rx) = mpsc::channel(ROUTE_QUEUE_MESSAGES);
        if let Ok(mut map) = self.map.lock() {
            map.insert(msg_id.to_string(), tx);
        }
        let guard = RouteGuard {
            routes: Arc::clone(self),
            msg_id: msg_id.to_string(),
        };
        (guard, rx)
    }

    /// How many messages the reader has read from the kernel.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    async fn deliver(&self, channel: Channel, msg: JupyterMessage) {
        self.seen.fetch_add(1, Ordering::Relaxed);
        let Some(parent) = msg.parent_header.as_ref().map(|h| h.msg_id.clone()) else {
            return;
        };
        // Clone the sender out so the lock is not held across the await.
        let tx = self
            .map
            .lock()
            .ok()
            .and_then(|map| map.get(&parent).cloned());
        if let Some(tx) = tx {
            let _ = tx.send((channel, msg)).await;
        }
    }

    /// Drops every waiter, so each pending call sees its channel close.
    fn clear(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
    }
}

pub(crate) struct RouteGuard {
    routes: Arc<Routes>,
    msg_id: String,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.routes.map.lock() {
            map.remove(&self.msg_id);
        }
    }
}

/// Runs until `stop` fires or a socket fails; then clears the routes so no caller hangs, and
/// fires `ended`: a kernel nobody reads is as good as dead (its next call would wait its whole
/// timeout for replies that never come), so the pool replaces it.
pub(crate) async fn run(
    mut iopub: ClientIoPubConnection,
    mut shell: DealerRecvConnection,
    routes: Arc<Routes>,
    busy: Arc<AtomicBool>,
    stop: CancellationToken,
    ended: CancellationToken,
) {
    let _ended = ended.drop_guard();
    loop {
        let (channel, result) = tokio::select! {
            _ = stop.cancelled() => break,
            r = iopub.read() => (Channel::IoPub, r),
            r = shell.read() => (Channel::Shell, r),
        };
        match result {
            Ok(msg) => {
                if let JupyterMessageContent::Status(status) = &msg.content {
                    match status.execution_state {
                        ExecutionState::Busy => busy.store(true, Ordering::Relaxed),
                        ExecutionState::Idle => busy.store(false, Ordering::Relaxed),
                        _ => {}
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = routes.deliver(channel, msg) => {}
                }
            }
            // A message that fails to verify or decode is skipped; a dead socket ends the task.
            Err(jupyter_zmq_client::RuntimeError::ZmqError(e)) => {
                tracing::warn!(error = %e, "a kernel socket failed; the kernel counts as dead and is replaced on its next call");
                break;
            }
            Err(e) => tracing::warn!(error = %e, "skipping an undecodable kernel message"),
        }
    }
    routes.clear();
}
