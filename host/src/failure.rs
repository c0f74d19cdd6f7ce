//! A counter call's failure as one value, made where the call ends ([`crate::runtime::Instance`])
//! from what the component answered and what the store reported for that call
//! ([`tally_keyvalue::CallRecord`]), in one precedence. HTTP, RESP and the command line only map
//! it: to a status and code ([`crate::server::error`]), a Redis error line ([`crate::resp`]), an
//! exit code ([`crate::cli`]).

use crate::{CounterError, Refusal};
use tally_keyvalue::CallRecord;
use tally_keyvalue::storage::StorageError;

/// Why a call on the counters failed.
#[derive(Debug)]
pub enum Failure {
    /// The component refused the operation (invalid name, overflow, corrupt value, invalid
    /// page), or reported a store failure that is none of the kinds below. Nothing changed.
    Refused(Refusal),
    /// The component refused a window's length, `keep` or `last` (`window.error.invalid-window`):
    /// why. Nothing changed.
    InvalidWindow(String),
    /// A request with this idempotency key is still running in this process: the refusal.
    KeyInUse(String),
    /// The idempotency key was first used for another write: the store's words for both.
    /// Nothing was applied.
    KeyReused(String),
    /// The store was locked by another process past its busy timeout. Nothing changed.
    Busy(String),
    /// The store cannot be reached: the store named, why, and to retry
    /// ([`crate::refusal::store_unreachable`]). Nothing changed.
    Unavailable(String),
    /// The store can be read but not written (a database read-only for this user): what
    /// `/readyz` says. Nothing changed.
    ReadOnly(String),
    /// The store has no room for the write (a full disk): the store's words. Nothing changed;
    /// writes succeed again once space is freed.
    NoSpace(String),
    /// The store refuses this process for a reason its operator must fix (a password, a
    /// right): the words say which and how. Nothing changed.
    Misconfigured(String),
    /// A write was sent and its answer lost: it may or may not have been applied.
    OutcomeUnknown(String),
    /// A write of the call was applied, then the call failed: the write stands.
    AppliedThenFailed(String),
    /// The component trapped (deadline, memory limit, panic) or could not be instantiated;
    /// nothing was applied.
    Trap(anyhow::Error),
}

impl Failure {
    /// The failure in words for people, the same over HTTP and on the command line (RESP
    /// answers in Redis's words where Redis has them).
    pub fn message(&self) -> String {
        match self {
            Self::Refused(refusal) => refusal.to_string(),
            Self::Busy(message) => format!("{message}; nothing was changed, retry shortly"),
            Self::InvalidWindow(reason) => format!("invalid window: {reason}"),
            Self::KeyInUse(message)
            | Self::KeyReused(message)
            | Self::Unavailable(message)
            | Self::ReadOnly(message)
            | Self::Misconfigured(message)
            | Self::AppliedThenFailed(message) => message.clone(),
            Self::NoSpace(detail) => format!(
                "the counter store has no room for the write ({detail}); nothing was changed: \
                 free space where the store keeps its data, and writes go on"
            ),
            Self::OutcomeUnknown(detail) => format!(
                "the counter store lost its answer to a write, which may or may not have been \
                 applied ({detail}); a retry with the same idempotency key is safe, one without \
                 may count twice"
            ),
            // Says "the counter component ..." itself (see `runtime::sandbox::Limits::explain`).
            Self::Trap(error) => format!("{error:#}"),
        }
    }

    /// A store operation's failure outside any component call (a note the host keeps, say), in
    /// the terms a call's would take: `store` names the store in an outage's words.
    pub fn of_store(failure: StorageError, store: &str, counter_limit: u64) -> Self {
        match failure {
            reused @ StorageError::IdempotencyKeyReused { .. } => {
                Self::KeyReused(reused.to_string())
            }
            StorageError::OutcomeUnknown(detail) => Self::OutcomeUnknown(detail.to_string()),
            StorageError::Unavailable(detail) => {
                Self::Unavailable(crate::refusal::store_unreachable(store, detail.message()))
            }
            busy @ StorageError::Busy(_) => Self::Busy(busy.to_string()),
            StorageError::NoSpace(detail) => Self::NoSpace(detail.to_string()),
            misconfigured @ StorageError::Misconfigured(_) => {
                Self::Misconfigured(crate::refusal::store_error(&misconfigured))
            }
            read_only @ StorageError::ReadOnly(_) => {
                Self::ReadOnly(crate::refusal::store_error(&read_only))
            }
            failure => Self::Refused(Refusal::new(
                CounterError::StoreFailure(crate::refusal::store_error(&failure)),
                counter_limit,
            )),
        }
    }

    /// Whether the same request may well succeed in a moment, unchanged (the store busy or
    /// unreachable, or its idempotency key held by a request still running): HTTP says so with
    /// `Retry-After`.
    pub fn retry_soon(&self) -> bool {
        matches!(
            self,
            Self::Busy(_) | Self::Unavailable(_) | Self::KeyInUse(_)
        )
    }
}

/// What a successful call came to.
pub struct Done<T> {
    /// The component's answer.
    pub value: T,
    /// A write of the call was answered from its idempotency key's record: nothing applied now.
    pub replayed: bool,
    /// The durability of the call's writes that were answered when applied (see
    /// [`crate::runtime::Instance::answer_when_applied`]); empty otherwise.
    pub durable: Vec<tally_keyvalue::storage::StoreFuture<'static, ()>>,
}

/// The message of a listing whose cursor the runtime no longer knows.
fn cursor_expired() -> String {
    format!(
        "this listing's cursor has expired (the server keeps the newest {} and forgets them on \
         restart); list again from the start",
        tally_keyvalue::MAX_CURSORS
    )
}

/// Which of a call's store failures decides its outcome: the lowest rank, the first of those.
fn rank(failure: &StorageError) -> u8 {
    match failure {
        StorageError::IdempotencyKeyReused { .. } => 0,
        StorageError::OutcomeUnknown(_) => 1,
        StorageError::Unavailable(_) => 2,
        StorageError::Misconfigured(_) => 3,
        StorageError::NoSpace(_) => 4,
        StorageError::Busy(_) => 5,
        StorageError::InvalidCursor(_) => 6,
        StorageError::Overflow { .. } => 7,
        _ => 8,
    }
}

/// One call's outcome: `answer` (a trap, already explained, or the component's answer) read
/// with `record` (what the store reported for the call). The precedence, first match wins:
///
/// 1. a trap: [`Failure::AppliedThenFailed`] when a write was applied, else [`Failure::Trap`];
/// 2. the component's success;
/// 3. the store's own account of a failure the component only saw in words, most telling
///    first: key reused, outcome unknown, unreachable, misconfigured, out of space, busy, an
///    expired cursor (an invalid page), an overflow (the counter's overflow, whatever words the
///    component found);
/// 4. a store failure after an applied write: [`Failure::AppliedThenFailed`];
/// 5. the component's refusal.
///
/// `store` names the store in an outage's words.
pub fn classify<T>(
    answer: anyhow::Result<Result<T, CounterError>>,
    record: CallRecord,
    counter_limit: u64,
    store: &str,
) -> Result<Done<T>, Failure> {
    let applied = record.writes_applied > 0;
    let refusal = match answer {
        Err(trap) if applied => return Err(applied_then_failed(format!("{trap:#}"))),
        Err(trap) => return Err(Failure::Trap(trap)),
        Ok(Ok(value)) => {
            return Ok(Done {
                value,
                replayed: record.replayed,
                durable: record.durable,
            });
        }
        Ok(Err(refusal)) => refusal,
    };
    let store_failed = matches!(refusal, CounterError::StoreFailure(_));
    let mut failures = record.failures;
    failures.sort_by_key(rank);
    let failure = match failures.into_iter().next() {
        Some(
            failure @ (StorageError::IdempotencyKeyReused { .. }
            | StorageError::OutcomeUnknown(_)
            | StorageError::Unavailable(_)
            | StorageError::Misconfigured(_)
            | StorageError::NoSpace(_)
            | StorageError::Busy(_)),
        ) => Failure::of_store(failure, store, counter_limit),
        Some(StorageError::InvalidCursor(_)) if store_failed => Failure::Refused(Refusal::new(
            CounterError::InvalidPage(cursor_expired()),
            counter_limit,
        )),
        Some(StorageError::Overflow { key, .. }) if store_failed => {
            Failure::Refused(Refusal::new(CounterError::Overflow(key), counter_limit))
        }
        // Any other store failure, in tally's words for it rather than the component's copy of
        // the store's.
        Some(failure) if store_failed => {
            let worded = CounterError::StoreFailure(crate::refusal::store_error(&failure));
            if applied {
                applied_then_failed(Refusal::new(worded, counter_limit))
            } else {
                Failure::Refused(Refusal::new(worded, counter_limit))
            }
        }
        _ if store_failed && applied => applied_then_failed(Refusal::new(refusal, counter_limit)),
        _ => Failure::Refused(Refusal::new(refusal, counter_limit)),
    };
    Err(failure)
}

/// A call that failed (`what`) after one of its writes was applied: the write stands, and the
/// answer says so.
fn applied_then_failed(what: impl std::fmt::Display) -> Failure {
    Failure::AppliedThenFailed(format!(
        "{what}; a write of this request was applied before that and stands: only a retry with \
         the same idempotency key is safe, one without it counts again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(failures: Vec<StorageError>, writes_applied: usize) -> CallRecord {
        CallRecord {
            failures,
            writes_applied,
            ..CallRecord::default()
        }
    }

    fn failed(failures: Vec<StorageError>, writes_applied: usize) -> Failure {
        let answer: anyhow::Result<Result<u64, CounterError>> =
            Ok(Err(CounterError::StoreFailure("the store's words".into())));
        match classify(
            answer,
            record(failures, writes_applied),
            u64::MAX,
            "sqlite:t.db",
        ) {
            Err(failure) => failure,
            Ok(_) => panic!("a refusal classified as a success"),
        }
    }

    /// The failure's stable code: what every front end shows for it.
    fn kind(failure: &Failure) -> &'static str {
        crate::error_code::ErrorCode::of(failure).as_str()
    }

    fn reused() -> StorageError {
        StorageError::IdempotencyKeyReused {
            key: "k".into(),
            recorded: "increment \"a\" by 1".into(),
            requested: "increment \"a\" by 2".into(),
        }
    }

    fn overflow() -> StorageError {
        StorageError::Overflow {
            key: "top".into(),
            current: 9,
            delta: 1,
        }
    }

    /// Every combination of store failures in one call comes to one failure, the same whatever
    /// their order: the table of the precedence every front end shares.
    #[test]
    fn one_precedence() {
        let busy = || StorageError::Busy("locked".into());
        let down = || StorageError::Unavailable("Redis: refused".into());
        let unknown = || StorageError::OutcomeUnknown("connection dropped".into());
        let cursor = || StorageError::InvalidCursor("list again".into());
        let other = || StorageError::Other("I/O error".into());
        let full = || StorageError::NoSpace("SQLite: database or disk is full".into());
        let denied = || StorageError::Misconfigured("the role may not create the schema".into());
        let table: Vec<(Vec<StorageError>, usize, &str)> = vec![
            (vec![], 0, "store_failure"),
            (vec![other()], 0, "store_failure"),
            (vec![busy()], 0, "busy"),
            (vec![down()], 0, "store_unavailable"),
            (vec![busy(), down()], 0, "store_unavailable"),
            (vec![down(), busy()], 0, "store_unavailable"),
            (vec![reused(), down()], 0, "idempotency_key_reused"),
            (vec![down(), reused()], 0, "idempotency_key_reused"),
            (vec![unknown(), busy(), down()], 0, "write_outcome_unknown"),
            (vec![cursor()], 0, "invalid_query"),
            (vec![cursor(), busy()], 0, "busy"),
            (vec![overflow()], 0, "overflow"),
            (vec![other(), overflow()], 0, "overflow"),
            (vec![other()], 1, "applied_then_failed"),
            (vec![busy()], 1, "busy"),
            (vec![full()], 0, "store_full"),
            (vec![busy(), full()], 0, "store_full"),
            (vec![full(), down()], 0, "store_unavailable"),
            (vec![denied(), full()], 0, "store_misconfigured"),
            (vec![down(), denied()], 0, "store_unavailable"),
        ];
        for (failures, applied, expected) in table {
            let shown = format!("{failures:?} after {applied} write(s)");
            assert_eq!(kind(&failed(failures, applied)), expected, "{shown}");
        }
    }

    /// A trap after an applied write says the write stands; before any, it is a trap. A
    /// success carries the replay and nothing else.
    #[test]
    fn traps_and_successes() {
        let trap = || -> anyhow::Result<Result<u64, CounterError>> {
            Err(anyhow::anyhow!(
                "the counter component ran past its time limit"
            ))
        };
        let after_write = classify(trap(), record(vec![], 1), u64::MAX, "s")
            .err()
            .unwrap();
        assert!(
            matches!(&after_write, Failure::AppliedThenFailed(message)
                if message == "the counter component ran past its time limit; a write of this \
                               request was applied before that and stands: only a retry with \
                               the same idempotency key is safe, one without it counts again"),
            "{after_write:?}"
        );
        assert!(matches!(
            classify(trap(), record(vec![], 0), u64::MAX, "s"),
            Err(Failure::Trap(_))
        ));
        let replayed = CallRecord {
            replayed: true,
            ..CallRecord::default()
        };
        let done = classify(Ok(Ok(7_u64)), replayed, u64::MAX, "s")
            .ok()
            .unwrap();
        assert_eq!((done.value, done.replayed), (7, true));
        // A refusal the component made itself stays its own, whatever the store said.
        let refused = classify::<u64>(
            Ok(Err(CounterError::InvalidName("empty".into()))),
            record(vec![overflow()], 0),
            u64::MAX,
            "s",
        );
        assert!(
            matches!(refused, Err(Failure::Refused(ref r)) if matches!(r.error, CounterError::InvalidName(_)))
        );
    }

    /// The store busy and unreachable at once, or a key reused while the store is down, come to
    /// one failure, and HTTP, RESP and the command line each say that same failure in their own
    /// terms (status and code; Redis error line; exit code and `--json` code).
    #[test]
    fn every_front_end_says_the_same_failure() {
        use crate::error_code::ErrorCode;
        use crate::resp::cmd::{Reading, failed as resp_line};
        use crate::server::error::ApiError;
        type Failures = fn() -> Vec<StorageError>;
        let cases: [(Failures, ErrorCode, u16, u8, &str); 4] = [
            (
                || vec![StorageError::OutcomeUnknown("Redis: reset".into())],
                ErrorCode::WriteOutcomeUnknown,
                500,
                4,
                "ERR the counter store lost its answer to a write, which may or may not have \
                 been applied (Redis: reset); a retry with the same idempotency key is safe, one \
                 without may count twice",
            ),
            (
                || {
                    vec![
                        StorageError::Busy("locked".into()),
                        StorageError::Unavailable("Redis: refused".into()),
                    ]
                },
                ErrorCode::StoreUnavailable,
                503,
                3,
                "ERR the counter store sqlite:t.db cannot be reached (Redis: refused); retry in a \
                 moment",
            ),
            (
                || vec![StorageError::Unavailable("Redis: refused".into()), reused()],
                ErrorCode::IdempotencyKeyReused,
                422,
                1,
                "ERR the idempotency key \"k\" was first used to increment \"a\" by 1, not to \
                 increment \"a\" by 2; a new request needs a new key",
            ),
            (
                || vec![StorageError::Busy("locked".into())],
                ErrorCode::Busy,
                503,
                3,
                "ERR the counter store failed: the database is busy (locked by another \
                 connection); try again: locked; nothing changed, try again",
            ),
        ];
        for (failures, code, status, exit, line) in cases {
            let (http_status, http_code) = ApiError::from(failed(failures(), 0)).status_and_code();
            assert_eq!((http_status.as_u16(), http_code), (status, code));
            let cli = failed(failures(), 0);
            assert_eq!(ErrorCode::of(&cli), code);
            assert_eq!(crate::cli::exit_code(ErrorCode::of(&cli)), exit);
            match resp_line(failed(failures(), 0), Reading::Other).reply {
                crate::resp::reply::Reply::Error(text) => assert_eq!(text, line),
                other => panic!("{other:?}"),
            }
        }
    }
}
