//! Per-principal limits besides the kernel count (which the pool enforces): how many tool calls
//! one principal may have running at once, and how many requests per minute it may send.
//!
//! The rate is `governor`'s GCRA keyed by principal (a burst of N, refilled evenly over the
//! minute), checked in the auth middleware right after authentication, so a flood is refused
//! (429) before its body is parsed. The concurrency count is held by a guard for the duration
//! of a tool call. Both refusals name the option that sets the limit.
//!
//! Requests without valid credentials are counted per client address (`Refusals`): past the
//! budget the address is refused with 429 before its credentials are even checked, until the
//! budget refills, so a key cannot be guessed faster than that (and a right guess cannot be told
//! from a wrong one meanwhile).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A limit a principal reached.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LimitError {
    #[error(
        "per-principal rate limit reached: {per_minute} requests per minute (--requests-per-minute-per-principal); retry in {retry_secs} s"
    )]
    Rate { per_minute: u32, retry_secs: u64 },
    #[error(
        "per-principal concurrency limit reached: {max} tool calls already running (--max-calls-per-principal)\nhint: wait for one to finish, or interrupt_kernel a long one"
    )]
    Calls { max: usize },
    #[error(
        "too many requests without valid credentials from your address: {per_minute} per minute (--unauthenticated-per-minute-per-address); retry in {retry_secs} s"
    )]
    Unauthenticated { per_minute: u32, retry_secs: u64 },
}

/// Addresses blocked at most; past it the expired ones are dropped, and if none has expired the
/// new one is not remembered (its next refusal counts again), so memory stays bounded.
const MAX_BLOCKED_ADDRESSES: usize = 65536;

/// Refused requests per client address. Std mutex: map access only.
pub struct Refusals {
    per_minute: u32,
    limiter: governor::DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses over budget and until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Refusals {
    pub fn new(per_minute: u32) -> Option<Refusals> {
        let n = NonZeroU32::new(per_minute)?;
        Some(Refusals {
            per_minute,
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            blocked: Mutex::default(),
        })
    }

    fn error(&self, wait: Duration) -> LimitError {
        LimitError::Unauthenticated {
            per_minute: self.per_minute,
            retry_secs: wait.as_secs().max(1),
        }
    }

    /// Whether `addr` is over its budget now (checked before its credentials are).
    pub fn check(&self, addr: IpAddr) -> Result<(), LimitError> {
        let now = Instant::now();
        match self.blocked.lock().ok().and_then(|b| b.get(&addr).copied()) {
            Some(until) if until > now => Err(self.error(until - now)),
            _ => Ok(()),
        }
    }

    /// Counts one refused request of `addr`; past the budget, blocks it until the budget has
    /// room again and says so.
    pub fn refused(&self, addr: IpAddr) -> Result<(), LimitError> {
        let Err(not_until) = self.limiter.check_key(&addr) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        let now = Instant::now();
        if let Ok(mut blocked) = self.blocked.lock() {
            if blocked.len() >= MAX_BLOCKED_ADDRESSES {
                blocked.retain(|_, until| *until > now);
            }
            if blocked.len() < MAX_BLOCKED_ADDRESSES {
                blocked.insert(addr, now + wait);
            }
        }
        Err(self.error(wait))
    }
}

/// The limits of every principal. Std mutex for the call counts: map updates only.
pub struct Limits {
    /// Refused requests per client address (`--unauthenticated-per-minute-per-address`).
    pub refusals: Option<Refusals>,
    rate: Option<(u32, DefaultKeyedRateLimiter<String>)>,
    max_calls: Option<usize>,
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

impl Limits {
    pub fn new(requests_per_minute: Option<u32>, max_calls: Option<usize>) -> Limits {
        let rate = requests_per_minute
            .and_then(NonZeroU32::new)
            .map(|n| (n.get(), RateLimiter::keyed(Quota::per_minute(n))));
        Limits {
            refusals: None,
            rate,
            max_calls,
            calls: Arc::default(),
        }
    }

    /// Also counts refused requests per client address, `per_minute` each (0: no limit).
    pub fn with_refusals(mut self, per_minute: u32) -> Limits {
        self.refusals = Refusals::new(per_minute);
        self
    }

    /// Counts one request of `principal` against its rate.
    pub fn check_rate(&self, principal: &str) -> Result<(), LimitError> {
        let Some((per_minute, limiter)) = &self.rate else {
            return Ok(());
        };
        limiter
            .check_key(&principal.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                LimitError::Rate {
                    per_minute: *per_minute,
                    retry_secs: wait.as_secs().max(1),
                }
            })
    }

    /// Takes one of the principal's concurrent-call places until the guard drops.
    pub fn enter(&self, principal: &str) -> Result<CallGuard, LimitError> {
        let mut calls = self
            .calls
            .lock()
            .map_err(|_| LimitError::Calls { max: 0 })?;
        let running = calls.entry(principal.to_string()).or_default();
        if let Some(max) = self.max_calls
            && *running >= max
        {
            return Err(LimitError::Calls { max });
        }
        *running += 1;
        Ok(CallGuard {
            calls: Arc::clone(&self.calls),
            principal: principal.to_string(),
        })
    }
}

/// One running call of a principal; gives its place back when dropped.
pub struct CallGuard {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    principal: String,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.calls.lock()
            && let Some(n) = calls.get_mut(&self.principal)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                calls.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_calls_are_counted_per_principal() {
        let limits = Limits::new(None, Some(1));
        let a = limits.enter("alice").unwrap();
        assert_eq!(
            limits.enter("alice").err(),
            Some(LimitError::Calls { max: 1 })
        );
        let b = limits.enter("bob").unwrap();
        drop(a);
        let _a = limits.enter("alice").unwrap();
        drop(b);
        let unlimited = Limits::new(None, None);
        let _guards: Vec<_> = (0..100).map(|_| unlimited.enter("x").unwrap()).collect();
    }

    #[test]
    fn refusals_are_counted_per_address_and_block_it() {
        let r = Refusals::new(2).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(r.check(a).is_ok());
        assert!(r.refused(a).is_ok());
        assert!(r.refused(a).is_ok());
        let err = r.refused(a).unwrap_err();
        assert!(
            err.to_string()
                .contains("--unauthenticated-per-minute-per-address"),
            "{err}"
        );
        assert!(
            matches!(r.check(a), Err(LimitError::Unauthenticated { retry_secs, .. }) if retry_secs >= 1)
        );
        assert!(r.check(b).is_ok() && r.refused(b).is_ok());
        assert!(Refusals::new(0).is_none());
    }

    #[test]
    fn the_rate_is_per_principal_and_names_its_option() {
        let limits = Limits::new(Some(2), None);
        assert!(limits.check_rate("alice").is_ok());
        assert!(limits.check_rate("alice").is_ok());
        let err = limits.check_rate("alice").unwrap_err();
        assert!(
            err.to_string()
                .contains("--requests-per-minute-per-principal"),
            "{err}"
        );
        assert!(limits.check_rate("bob").is_ok());
        assert!(Limits::new(None, None).check_rate("alice").is_ok());
    }
}
