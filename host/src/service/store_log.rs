//! What the log says about the store: an outage or a full store once when it starts and once
//! when it ends, any other store failure rate-limited. Read from every call's outcome (the
//! runtime tells it, as a [`CallObserver`]) and every readiness check, so HTTP, RESP and the
//! background purge all feed one account.

use crate::bindings::CounterError;
use crate::failure::Failure;
use crate::runtime::CallObserver;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the log says about the store, as the calls and readiness checks of one runtime find
/// it. An outage is said once when it starts and once when it ends, and so is a full store;
/// every other failure of the store (a write refused for lack of space, a missing right, a
/// failed commit, a lost answer, a busy database) is logged too, but at most one line per
/// [`STORE_FAILURE_LOG_INTERVAL`]: the first at once, then how many more came with the last
/// one's words. The metrics count every request.
#[derive(Debug, Default)]
pub(super) struct StoreLog {
    outage: AtomicBool,
    full: AtomicBool,
    // A std mutex, held to count or to decide to log, never across an await.
    failures: std::sync::Mutex<FailureWindow>,
}

/// The rate limit of [`StoreLog`]'s failure lines.
const STORE_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Store failures since the last line.
#[derive(Debug, Default)]
struct FailureWindow {
    /// When the last line was logged.
    logged_at: Option<std::time::Instant>,
    /// Failures since then, not logged.
    suppressed: u64,
}

impl CallObserver for StoreLog {
    fn call_ended(&self, failure: Option<&Failure>, wrote: bool) {
        self.note(failure, wrote);
    }
}

impl StoreLog {
    /// Notes what a call or check came to: `failure` when it failed; `wrote`: it committed a
    /// write (or the store says it can commit one again), which ends a full store.
    pub(super) fn note(&self, failure: Option<&Failure>, wrote: bool) {
        match failure {
            Some(Failure::Unavailable(message)) => {
                if !self.outage.swap(true, Ordering::Relaxed) {
                    tracing::warn!("store outage: {message}; requests fail until it is back");
                }
            }
            Some(failure @ Failure::NoSpace(_)) => {
                self.end_outage();
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "store full: {}; writes fail until space is freed, /readyz says so",
                        failure.message()
                    );
                } else {
                    self.failed(failure);
                }
            }
            Some(
                failure @ (Failure::Misconfigured(_)
                | Failure::Busy(_)
                | Failure::OutcomeUnknown(_)
                | Failure::AppliedThenFailed(_)),
            ) => {
                self.end_outage();
                self.failed(failure);
            }
            Some(failure @ Failure::Refused(refusal))
                if matches!(refusal.error, CounterError::StoreFailure(_)) =>
            {
                self.end_outage();
                self.failed(failure);
            }
            None => {
                self.end_outage();
                // A load first: the swap, a write to a line every core shares, only when set.
                if wrote
                    && self.full.load(Ordering::Relaxed)
                    && self.full.swap(false, Ordering::Relaxed)
                {
                    tracing::warn!("store full no more: writes commit again");
                }
            }
            Some(_) => {}
        }
    }

    /// The store answered: an outage, if one was going on, is over.
    fn end_outage(&self) {
        if self.outage.load(Ordering::Relaxed) && self.outage.swap(false, Ordering::Relaxed) {
            tracing::warn!("store outage over: the store answers again");
        }
    }

    /// Logs `failure` unless a line went out in the last [`STORE_FAILURE_LOG_INTERVAL`]; then
    /// counts it for the next line.
    fn failed(&self, failure: &Failure) {
        let mut window = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if window
            .logged_at
            .is_some_and(|at| now.duration_since(at) < STORE_FAILURE_LOG_INTERVAL)
        {
            window.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut window.suppressed);
        window.logged_at = Some(now);
        drop(window);
        if suppressed == 0 {
            tracing::warn!("store failure: {}", failure.message());
        } else {
            tracing::warn!(
                "store failure: {} ({suppressed} more since the last line)",
                failure.message()
            );
        }
    }
}
