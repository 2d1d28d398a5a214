//! [`Call`]: one request's view of the service, free of any protocol type.
//!
//! A door builds it from its request (the MCP layer from rmcp's request context) and hands it
//! to every service operation of that request. It carries who asks, the token that fires when
//! the caller gives up, how long the invocation may last (on Lambda), and where the call's
//! records go: the code it sends to kernels (for the audit record) and the kernel-history
//! events (for the workspace mirror). Cloning is cheap (a few `Arc`s), so work that outlives
//! the request can keep what it needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::journal::Journal;
use crate::principal::Principal;
use crate::workspace::history::Record;

/// The code one call sent to kernels, in order. Std mutex: pushes and one read, no await.
#[derive(Debug, Default)]
pub struct CodeLog {
    code: Mutex<Vec<String>>,
}

impl CodeLog {
    pub(super) fn push(&self, code: &str) {
        if let Ok(mut pieces) = self.code.lock() {
            pieces.push(code.to_string());
        }
    }

    /// Everything sent, in order.
    pub fn take(&self) -> Vec<String> {
        self.code
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

/// One request, as the service sees it.
#[derive(Clone)]
pub struct Call {
    pub principal: Principal,
    /// Fires when the caller gives up (a client's cancel); the operation then stops its work.
    pub cancel: CancellationToken,
    /// When the invocation carrying this call must have its answer (Lambda, less the margins
    /// the door keeps back); `None` locally.
    invocation_end: Option<tokio::time::Instant>,
    code_log: Option<Arc<CodeLog>>,
    journal: Option<Arc<Journal>>,
    /// The execution this call's work belongs to, whose live log sees every output.
    live: Option<Arc<super::executions::Execution>>,
}

impl Call {
    pub fn new(principal: Principal, cancel: CancellationToken) -> Call {
        Call {
            principal,
            cancel,
            invocation_end: None,
            code_log: None,
            journal: None,
            live: None,
        }
    }

    /// The same caller, for work that goes on after this call answers: its own cancel token,
    /// no invocation deadline, and no journal (the work records into its own).
    pub(super) fn detached(&self, cancel: CancellationToken) -> Call {
        Call {
            principal: self.principal.clone(),
            cancel,
            invocation_end: None,
            code_log: self.code_log.clone(),
            journal: None,
            live: None,
        }
    }

    pub(super) fn with_live(mut self, execution: Arc<super::executions::Execution>) -> Call {
        self.live = Some(execution);
        self
    }

    /// Notes that the work took its kernel's turn.
    pub(super) fn started(&self) {
        if let Some(e) = &self.live {
            e.mark_started();
        }
    }

    /// The live log of the execution this call's work belongs to.
    pub(super) fn live(&self) -> Option<&super::live::LiveLog> {
        self.live.as_ref().map(|e| &e.live)
    }

    /// The time the invocation has left for work, from now (Lambda); `None` means no limit.
    pub fn with_time_left(mut self, left: Option<Duration>) -> Call {
        self.invocation_end = left.map(|l| tokio::time::Instant::now() + l);
        self
    }

    /// Where the code this call sends to kernels is noted (the audit record).
    pub fn with_code_log(mut self, log: Option<Arc<CodeLog>>) -> Call {
        self.code_log = log;
        self
    }

    /// Where this call's kernel-history events go (the workspace mirror).
    pub fn with_journal(mut self, journal: Option<Arc<Journal>>) -> Call {
        self.journal = journal;
        self
    }

    /// `limit` cut to what the invocation has left; `None` when nothing is left at all.
    pub fn within_invocation(&self, limit: Duration) -> Option<Duration> {
        match self.invocation_end {
            None => Some(limit),
            Some(end) => {
                let left = end.saturating_duration_since(tokio::time::Instant::now());
                (!left.is_zero()).then(|| limit.min(left))
            }
        }
    }

    /// Notes that this call sends `code` to a kernel (in the call's record, and in its
    /// execution's, which outlives the call).
    pub fn ran(&self, code: &str) {
        if let Some(log) = &self.code_log {
            log.push(code);
        }
        if let Some(e) = &self.live {
            e.ran(code);
        }
    }

    /// Records a kernel-history event of this call (a no-op without a workspace).
    pub fn record(&self, kernel: &str, record: Record) {
        if let Some(j) = &self.journal {
            j.push(kernel, record);
        }
    }

    /// The state check's finding for this call, if the state of its kernel is lost.
    pub fn state_lost(&self) -> Option<super::StateLost> {
        self.journal.as_ref().and_then(|j| j.state_lost())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_invocation_cuts_limits_and_ends() {
        let call = Call::new(Principal::local(), CancellationToken::new())
            .with_time_left(Some(Duration::from_secs(10)));
        assert_eq!(
            call.within_invocation(Duration::from_secs(60)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            call.within_invocation(Duration::from_secs(3)),
            Some(Duration::from_secs(3))
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(call.within_invocation(Duration::from_secs(3)), None);
        let local = Call::new(Principal::local(), CancellationToken::new());
        assert_eq!(
            local.within_invocation(Duration::from_secs(60)),
            Some(Duration::from_secs(60))
        );
    }
}
