//! Progress notifications for a running cell, bounded whatever the client does.
//!
//! The kernel side (the output collector, on every tick) must never wait for the client: a
//! client that stops reading its SSE stream makes rmcp's bounded channel full, and sending a
//! notification then waits. So updates go into a one-place mailbox: a newer update merges into
//! the one not yet sent (the latest byte count; the newest text, kept to one notification's
//! worth), and a task sends what is there whenever the client takes it. Memory per call stays
//! at one notification however long the cell runs, and the kernel's reader never blocks.
//!
//! A call's notifications must all go out before its result: a client that has its result
//! forgets the progress token, and the TypeScript SDK reports a notification for an unknown
//! token as an error. So the tool waits on [`Flush`] before it answers: the task sends what is
//! left and ends, within [`FLUSH_WAIT`] (a client that does not read gets no result either).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use tokio::sync::Notify;

use crate::output::ProgressFn;

/// Longest message one notification carries (the collector sends at most this much per tick).
const MAX_MESSAGE_BYTES: usize = 2048;
/// Longest a result waits for its call's last notification to be sent.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// One update not yet sent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Update {
    bytes: u64,
    message: String,
}

/// The update waiting to be sent, merged with any that came after it.
#[derive(Default)]
struct Mailbox {
    /// Std mutex: held to merge or take, never across an await.
    pending: Mutex<Option<Update>>,
    /// Set when the sending side is gone: the task sends what is left and ends.
    closed: std::sync::atomic::AtomicBool,
    wake: Notify,
}

impl Mailbox {
    /// Merges an update into the pending one; never waits.
    fn put(&self, bytes: u64, message: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            let update = pending.get_or_insert_with(Update::default);
            update.bytes = bytes;
            update.message.push_str(message);
            let len = update.message.len();
            if len > MAX_MESSAGE_BYTES {
                let mut start = len - MAX_MESSAGE_BYTES;
                while !update.message.is_char_boundary(start) {
                    start += 1;
                }
                update.message.drain(..start);
            }
        }
        self.wake.notify_one();
    }

    fn take(&self) -> Option<Update> {
        self.pending.lock().ok().and_then(|mut p| p.take())
    }

    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Closes the mailbox when the progress function is dropped (the run is over).
struct Closer(Arc<Mailbox>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Waits until a call's last notification is sent: [`Flush::wait`] before the result. Dropped
/// without a wait (the call failed or was cancelled), it stops the sending task, so nothing of
/// the call is sent after its answer.
pub(crate) struct Flush {
    mailbox: Arc<Mailbox>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Flush {
    /// Closes the mailbox and waits (at most [`FLUSH_WAIT`]) for the task to send what is left.
    pub(crate) async fn wait(mut self) {
        self.mailbox.close();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(FLUSH_WAIT, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Waits for a call's last notification, when it has a forwarder (see [`Flush::wait`]).
pub(crate) async fn flush(flush: Option<Flush>) {
    if let Some(flush) = flush {
        flush.wait().await;
    }
}

/// Forwards output progress to the client as `notifications/progress`, in order, when it sent a
/// progress token. The collector throttles to its tick (a few per second); a client slower than
/// that gets fewer, merged notifications. The tool waits on the [`Flush`] before it answers.
pub(crate) fn forwarder(ctx: &RequestContext<RoleServer>) -> Option<(ProgressFn, Flush)> {
    forwarder_with_total(ctx, None)
}

/// Like [`forwarder`], with a known `total` (execute_notebook: the number of cells it runs)
/// sent on every notification.
pub(crate) fn forwarder_with_total(
    ctx: &RequestContext<RoleServer>,
    total: Option<u64>,
) -> Option<(ProgressFn, Flush)> {
    let token = ctx.meta.get_progress_token()?;
    let peer = ctx.peer.clone();
    Some(channel(move |update: Update| {
        let mut param = ProgressNotificationParam::new(token.clone(), update.bytes as f64)
            .with_message(update.message);
        if let Some(total) = total {
            param = param.with_total(total as f64);
        }
        let peer = peer.clone();
        async move { peer.notify_progress(param).await.is_ok() }
    }))
}

/// The progress function and its flush, around a task that hands each update to `send` (which
/// answers false once the client is gone).
fn channel<S, F>(mut send: S) -> (ProgressFn, Flush)
where
    S: FnMut(Update) -> F + Send + 'static,
    F: Future<Output = bool> + Send,
{
    let mailbox = Arc::new(Mailbox::default());
    let task = {
        let mailbox = Arc::clone(&mailbox);
        tokio::spawn(async move {
            loop {
                let Some(update) = mailbox.take() else {
                    if mailbox.is_closed() {
                        break;
                    }
                    mailbox.wake.notified().await;
                    continue;
                };
                if !send(update).await {
                    break;
                }
            }
        })
    };
    let flush = Flush {
        mailbox: Arc::clone(&mailbox),
        task: Some(task),
    };
    let closer = Closer(mailbox);
    let progress: ProgressFn = Box::new(move |bytes, message| closer.0.put(bytes, &message));
    (progress, flush)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_nobody_takes_merge_into_one_of_bounded_size() {
        let mailbox = Mailbox::default();
        let chunk = "x".repeat(MAX_MESSAGE_BYTES);
        for i in 0..10_000u64 {
            mailbox.put(i * chunk.len() as u64, &chunk);
        }
        mailbox.put(1, "the end");
        let update = mailbox.take().unwrap();
        assert_eq!(update.bytes, 1);
        assert_eq!(update.message.len(), MAX_MESSAGE_BYTES);
        assert!(update.message.ends_with("the end"));
        assert_eq!(mailbox.take(), None);
    }

    #[test]
    fn a_merged_message_is_cut_on_a_character_boundary() {
        let mailbox = Mailbox::default();
        mailbox.put(1, &"é".repeat(MAX_MESSAGE_BYTES));
        let update = mailbox.take().unwrap();
        assert!(update.message.len() <= MAX_MESSAGE_BYTES);
        assert!(update.message.chars().all(|c| c == 'é'));
    }

    /// The last update is sent before `wait` returns, however slow the send; a send that
    /// never ends holds the result back FLUSH_WAIT at most.
    #[tokio::test(start_paused = true)]
    async fn flush_waits_for_the_last_update_and_no_longer_than_its_bound() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        let (mut progress, flush) = channel(move |u: Update| {
            let log = Arc::clone(&log);
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                log.lock().unwrap().push(u.message);
                true
            }
        });
        progress(1, "first".into());
        progress(2, "last".into());
        drop(progress);
        flush.wait().await;
        let sent = sent.lock().unwrap().join("");
        assert!(sent.ends_with("last"), "{sent:?}");

        let (mut progress, flush) = channel(|_: Update| std::future::pending::<bool>());
        progress(1, "never taken".into());
        let started = tokio::time::Instant::now();
        flush.wait().await;
        assert_eq!(started.elapsed(), FLUSH_WAIT);
    }

    /// Dropped without a wait (a failed or cancelled call), the flush stops the task: an update
    /// put afterwards is never sent.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_flush_sends_nothing_more() {
        let sent = Arc::new(Mutex::new(0));
        let count = Arc::clone(&sent);
        let (mut progress, flush) = channel(move |_: Update| {
            let count = Arc::clone(&count);
            async move {
                *count.lock().unwrap() += 1;
                true
            }
        });
        drop(flush);
        tokio::task::yield_now().await;
        progress(1, "late".into());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*sent.lock().unwrap(), 0);
    }

    #[test]
    fn updates_taken_in_time_pass_unchanged() {
        let mailbox = Mailbox::default();
        mailbox.put(5, "a");
        assert_eq!(
            mailbox.take(),
            Some(Update {
                bytes: 5,
                message: "a".into()
            })
        );
        mailbox.put(9, "b");
        assert_eq!(mailbox.take().unwrap().message, "b");
    }
}
