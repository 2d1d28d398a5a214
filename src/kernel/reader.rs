//! The one reader task of a kernel.
//!
//! It drains iopub and the shell replies and routes each message by `parent_header.msg_id` to
//! whoever registered that id (an execution, a kernel_info request). Messages nobody waits for
//! (output of a background thread after its cell finished, status of unregistered requests) are
//! dropped, so a chatty kernel cannot grow the server's memory. Status messages also update the
//! kernel's busy flag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Waiters by request msg_id. A std mutex: held only to insert, remove or look up, never across
/// an await.
#[derive(Default)]
pub(crate) struct Routes {
    map: Mutex<HashMap<String, mpsc::UnboundedSender<Routed>>>,
}

impl Routes {
    /// Registers a waiter for replies to `msg_id`; the guard unregisters it when dropped.
    pub fn register(
        self: &Arc<Self>,
        msg_id: &str,
    ) -> (RouteGuard, mpsc::UnboundedReceiver<Routed>) {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut map) = self.map.lock() {
            map.insert(msg_id.to_string(), tx);
        }
        let guard = RouteGuard {
            routes: Arc::clone(self),
            msg_id: msg_id.to_string(),
        };
        (guard, rx)
    }

    fn deliver(&self, channel: Channel, msg: JupyterMessage) {
        let Some(parent) = msg.parent_header.as_ref().map(|h| h.msg_id.clone()) else {
            return;
        };
        let Ok(map) = self.map.lock() else { return };
        if let Some(tx) = map.get(&parent) {
            let _ = tx.send((channel, msg));
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

/// Runs until `stop` fires or a socket fails; then clears the routes so no caller hangs.
pub(crate) async fn run(
    mut iopub: ClientIoPubConnection,
    mut shell: DealerRecvConnection,
    routes: Arc<Routes>,
    busy: Arc<AtomicBool>,
    stop: CancellationToken,
) {
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
                routes.deliver(channel, msg);
            }
            // A message that fails to verify or decode is skipped; a dead socket ends the task.
            Err(jupyter_zmq_client::RuntimeError::ZmqError(e)) => {
                tracing::debug!(error = %e, "kernel socket closed");
                break;
            }
            Err(e) => tracing::warn!(error = %e, "skipping an undecodable kernel message"),
        }
    }
    routes.clear();
}
