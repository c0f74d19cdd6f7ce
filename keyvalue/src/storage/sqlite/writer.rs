//! Group commit: one thread owns the write connection and commits queued writes together.
//!
//! A durable commit costs one fsync of the WAL (about 2 ms on the disks we measured), so committing
//! every write alone caps a server near 500 writes/s. Instead, every `set`, `delete` and
//! `increment` is queued to this thread; it takes everything waiting (up to [`MAX_BATCH`]),
//! applies it in order inside one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! answers each caller. A caller is told "done" only after the commit that contains its write
//! returned, so nothing acknowledged can be lost; one fsync now covers a whole batch.
//!
//! Callers wait in one of two ways: a blocking caller on a std channel, an async caller on a
//! tokio oneshot, so an async host needs no blocking thread per write.
//!
//! A write with an idempotency key is looked up, applied and recorded inside the same transaction
//! (see `storage::idempotency`), so the record commits exactly when the write does: a crash can
//! lose both (the write was never acknowledged) but never one without the other. Purging expired
//! records is queued here too, a bounded step at a time, so it never holds writes up for long.
//!
//! A write that is refused (overflow, not a number) changes nothing and does not disturb the rest
//! of its batch. A failure of SQLite itself (disk full, I/O error, lock timeout) rolls back the
//! whole batch and every caller in it gets the error: none of them was acknowledged.

use super::{delete_value, select_value, upsert_value};
use crate::observer::Observer;
use crate::storage::idempotency::{self, IdempotencyKey, Written};
use crate::storage::{StorageError, Write, incremented};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most writes committed in one transaction: bounds the latency a batch adds to its first
/// caller and the work redone if it fails.
pub const MAX_BATCH: usize = 512;

/// How many expired idempotency records one purge step deletes at most: a few milliseconds of
/// the writer's time, after which queued writes get their turn.
pub(super) const PURGE_STEP: usize = 1000;

type Outcome = Result<u64, StorageError>;

/// What the writer thread answers internally: a write's outcome, and whether it was a replay.
type Recorded = Result<Written, StorageError>;

/// What [`Writer::submit_staged`] answers through: the outcome once applied, then the commit's.
pub(super) type StagedReceivers = (
    tokio::sync::oneshot::Receiver<Outcome>,
    tokio::sync::oneshot::Receiver<Result<(), String>>,
);

/// One queued piece of work and where to send its outcome (the new value for increments, 0
/// otherwise; for a purge, how many records it deleted).
struct Request {
    bucket: String,
    work: Work,
    /// The largest value an increment may leave (`WriteContext::increment_limit`).
    limit: u64,
    /// More writes of the same client follow right behind (`WriteContext::more_follow`).
    more_follow: bool,
    reply: Reply,
}

/// What the writer thread does for one request.
pub(super) enum Work {
    /// A write; with [`Once`], at most once for its idempotency key.
    Write(Write, Option<Once>),
    /// Deletes up to [`PURGE_STEP`] expired idempotency records.
    PurgeExpired,
}

/// The idempotency key a write carries, and what its record will say.
pub(super) struct Once {
    /// The key.
    pub key: IdempotencyKey,
    /// [`idempotency::fingerprint`] of the write.
    pub fingerprint: String,
    /// When the record expires (milliseconds since the Unix epoch).
    pub expires_at: i64,
}

enum Reply {
    Blocking(mpsc::SyncSender<Outcome>),
    Async(tokio::sync::oneshot::Sender<Outcome>),
    /// A write with an idempotency key: its outcome and whether it was replayed.
    Once(tokio::sync::oneshot::Sender<Recorded>),
    /// The outcome as soon as applied (taken when sent), then whether the commit held.
    Staged {
        applied: Option<tokio::sync::oneshot::Sender<Outcome>>,
        durable: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
}

/// How long a transaction stays open at most for the writes a pipelining client announced:
/// about what its next command takes to arrive, well under a commit's cost.
const LINGER: Duration = Duration::from_micros(500);

/// The handle to the writer thread; dropping it lets the thread finish its batch and joins it.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    settings: WriterSettings,
}

/// The writer connection's journal mode and `synchronous` level, as SQLite reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterSettings {
    /// `PRAGMA journal_mode` (`wal`).
    pub journal_mode: String,
    /// `PRAGMA synchronous`: 2 is `FULL`, 1 is `NORMAL`.
    pub synchronous: i64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The error of a write whose answer never came: the writer thread is gone.
pub(super) fn stopped() -> StorageError {
    StorageError::Backend("the SQLite writer thread has stopped".into())
}

impl Writer {
    /// Starts the writer thread with the connection it will own.
    pub(super) fn spawn(
        conn: Connection,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Self, StorageError> {
        let settings = WriterSettings {
            journal_mode: conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?,
            synchronous: conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?,
        };
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tally-sqlite-writer".into())
            .spawn(move || run(conn, &requests, observer.as_deref()))
            .map_err(|error| {
                StorageError::Backend(format!("cannot start the SQLite writer thread: {error}"))
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            settings,
        })
    }

    /// The writer connection's settings.
    pub(super) fn settings(&self) -> &WriterSettings {
        &self.settings
    }

    fn queue(&self, request: Request) -> Result<(), StorageError> {
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(request)
            .map_err(|_| stopped())
    }

    /// Queues `write` (an increment stopping at `limit`) and blocks until the transaction
    /// holding it has committed (or failed).
    pub(super) fn submit(&self, bucket: &str, write: Write, limit: u64) -> Outcome {
        self.submit_work(bucket, Work::Write(write, None), limit)
    }

    /// Queues one purge step and blocks until it has committed: how many records it deleted.
    pub(super) fn purge_step(&self) -> Result<usize, StorageError> {
        self.submit_work("", Work::PurgeExpired, u64::MAX)
            .map(|deleted| usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    fn submit_work(&self, bucket: &str, work: Work, limit: u64) -> Outcome {
        let (reply, outcome) = mpsc::sync_channel(1);
        self.queue(Request {
            bucket: bucket.to_string(),
            work,
            limit,
            more_follow: false,
            reply: Reply::Blocking(reply),
        })?;
        outcome.recv().map_err(|_| stopped())?
    }

    /// Queues `write`; the returned receiver completes when the transaction holding it has
    /// committed (or failed). No thread waits meanwhile.
    pub(super) fn submit_async(
        &self,
        bucket: String,
        write: Write,
        limit: u64,
    ) -> Result<tokio::sync::oneshot::Receiver<Outcome>, StorageError> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.queue(Request {
            bucket,
            work: Work::Write(write, None),
            limit,
            more_follow: false,
            reply: Reply::Async(reply),
        })?;
        Ok(outcome)
    }

    /// Queues `write` to be applied once for `once`'s key; the receiver completes when the
    /// transaction holding it (and its record) has committed, or failed.
    pub(super) fn submit_once(
        &self,
        bucket: String,
        write: Write,
        once: Once,
        limit: u64,
    ) -> Result<tokio::sync::oneshot::Receiver<Recorded>, StorageError> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.queue(Request {
            bucket,
            work: Work::Write(write, Some(once)),
            limit,
            more_follow: false,
            reply: Reply::Once(reply),
        })?;
        Ok(outcome)
    }

    /// Queues `write` as a staged write: the first receiver completes when it is applied (inside
    /// the open transaction), the second when that transaction has committed (`Ok`) or failed.
    pub(super) fn submit_staged(
        &self,
        bucket: String,
        write: Write,
        limit: u64,
        more_follow: bool,
    ) -> Result<StagedReceivers, StorageError> {
        let (applied, applied_outcome) = tokio::sync::oneshot::channel();
        let (durable, durable_outcome) = tokio::sync::oneshot::channel();
        self.queue(Request {
            bucket,
            work: Work::Write(write, None),
            limit,
            more_follow,
            reply: Reply::Staged {
                applied: Some(applied),
                durable,
            },
        })?;
        Ok((applied_outcome, durable_outcome))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once it has answered everything queued.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut conn: Connection, requests: &mpsc::Receiver<Request>, observer: Option<&dyn Observer>) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        take_waiting(requests, &mut batch);
        let committed = commit(&mut conn, &mut batch, requests);
        if let Some(observer) = observer {
            observer.commit_batch(batch.len());
        }
        let outcomes = match committed {
            Ok(outcomes) => outcomes,
            Err(error) => {
                let busy = matches!(
                    error.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                );
                let message = format!("SQLite: {error}; the write was not committed");
                batch
                    .iter()
                    .map(|_| {
                        Err(if busy {
                            StorageError::Busy(message.clone())
                        } else {
                            StorageError::Backend(message.clone())
                        })
                    })
                    .collect()
            }
        };
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            // A caller that gave up waiting has nobody to tell; its write stands either way.
            match request.reply {
                Reply::Blocking(reply) => {
                    let _ = reply.send(outcome.map(|written| written.value));
                }
                Reply::Async(reply) => {
                    let _ = reply.send(outcome.map(|written| written.value));
                }
                Reply::Once(reply) => {
                    let _ = reply.send(outcome);
                }
                Reply::Staged { applied, durable } => {
                    let undone = match &outcome {
                        Err(failure) => Err(failure.to_string()),
                        Ok(_) => Ok(()),
                    };
                    if let Some(applied) = applied {
                        let _ = applied.send(outcome.map(|written| written.value));
                    }
                    let _ = durable.send(undone);
                }
            }
        }
    }
}

/// Moves what is queued into `batch`, up to [`MAX_BATCH`]; how many were taken.
fn take_waiting(requests: &mpsc::Receiver<Request>, batch: &mut Vec<Request>) -> usize {
    let mut taken = 0;
    while batch.len() < MAX_BATCH {
        match requests.try_recv() {
            Ok(request) => {
                batch.push(request);
                taken += 1;
            }
            Err(_) => break,
        }
    }
    taken
}

/// Applies the batch in order in one transaction, answering staged writes as each is applied.
/// While a staged write said more follow from its client ([`crate::storage::WriteContext`]'s
/// `more_follow`), the transaction stays open up to [`LINGER`] for the writes that arrive
/// meanwhile, which join it. `Err` means nothing was committed.
fn commit(
    conn: &mut Connection,
    batch: &mut Vec<Request>,
    requests: &mpsc::Receiver<Request>,
) -> rusqlite::Result<Vec<Recorded>> {
    let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    // Writes announced (by a staged write with more to follow) and not yet arrived.
    let mut expected = 0_usize;
    let mut deadline = None;
    loop {
        while outcomes.len() < batch.len() {
            let request = &mut batch[outcomes.len()];
            let outcome = apply(&transaction, request)?;
            match &mut request.reply {
                Reply::Staged { applied, .. } => {
                    if let Some(applied) = applied.take() {
                        let _ = applied.send(outcome.map(|written| written.value));
                    }
                    expected += usize::from(request.more_follow);
                    // Answered already; what is left to say is whether the commit held.
                    outcomes.push(Ok(Written::applied(0)));
                }
                _ => outcomes.push(outcome),
            }
        }
        if expected == 0 || batch.len() >= MAX_BATCH {
            break;
        }
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + LINGER);
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match requests.recv_timeout(left) {
            Ok(request) => {
                batch.push(request);
                let arrived = 1 + take_waiting(requests, batch);
                expected = expected.saturating_sub(arrived);
            }
            Err(_) => break,
        }
    }
    transaction.commit()?;
    Ok(outcomes)
}

/// One request inside the batch's transaction: its outcome (a refusal is an outcome, not an
/// error), or the SQLite failure that fails the whole batch.
fn apply(transaction: &rusqlite::Transaction<'_>, request: &Request) -> rusqlite::Result<Recorded> {
    let Request {
        bucket,
        work,
        limit,
        ..
    } = request;
    match work {
        Work::PurgeExpired => {
            let deleted = transaction
                .prepare_cached(
                    "DELETE FROM idempotency WHERE rowid IN
                     (SELECT rowid FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)",
                )?
                .execute(params![
                    idempotency::now_millis(),
                    i64::try_from(PURGE_STEP).unwrap_or(i64::MAX)
                ])?;
            Ok(Ok(Written::applied(deleted as u64)))
        }
        Work::Write(write, None) => {
            Ok(apply_write(transaction, bucket, write, *limit)?.map(Written::applied))
        }
        Work::Write(write, Some(once)) => {
            let recorded = select_record(transaction, once.key.as_str())?;
            let recorded = match &recorded {
                Some((fingerprint, Some(outcome))) => Some((fingerprint.as_str(), *outcome)),
                Some((_, None)) => {
                    return Ok(Err(StorageError::Backend(format!(
                        "the record of idempotency key {:?} is damaged (its outcome is not a \
                         number); use another key",
                        once.key.as_str()
                    ))));
                }
                None => None,
            };
            match idempotency::replay_or_apply(&once.key, recorded, &once.fingerprint) {
                Err(reused) => return Ok(Err(reused)),
                Ok(Some(outcome)) => return Ok(Ok(Written::replayed(outcome))),
                Ok(None) => {}
            }
            let outcome = apply_write(transaction, bucket, write, *limit)?;
            if let Ok(value) = &outcome {
                transaction
                    .prepare_cached(
                        "INSERT OR REPLACE INTO idempotency (key, fingerprint, outcome, expires_at)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        once.key.as_str(),
                        once.fingerprint,
                        value.to_string(),
                        once.expires_at
                    ])?;
            }
            Ok(outcome.map(Written::applied))
        }
    }
}

/// The unexpired record of `key`: its fingerprint and outcome (`None` if the outcome is not a
/// number, which only a hand-edited row can be).
fn select_record(
    transaction: &rusqlite::Transaction<'_>,
    key: &str,
) -> rusqlite::Result<Option<(String, Option<u64>)>> {
    transaction
        .prepare_cached(
            "SELECT fingerprint, outcome FROM idempotency WHERE key = ?1 AND expires_at > ?2",
        )?
        .query_row(params![key, idempotency::now_millis()], |row| {
            let outcome: String = row.get(1)?;
            Ok((row.get(0)?, outcome.parse().ok()))
        })
        .optional()
}

/// One write: its outcome, or the SQLite failure that fails the whole batch.
fn apply_write(
    transaction: &rusqlite::Transaction<'_>,
    bucket: &str,
    write: &Write,
    limit: u64,
) -> rusqlite::Result<Outcome> {
    Ok(match write {
        Write::Set { key, value } => {
            upsert_value(transaction, bucket, key, value)?;
            Ok(0)
        }
        Write::Delete { key } => {
            delete_value(transaction, bucket, key)?;
            Ok(0)
        }
        Write::Increment { key, delta } => {
            // Reads this transaction's own earlier writes, so two increments of one key in a
            // batch add up.
            let current = select_value(transaction, bucket, key)?;
            match incremented(key, current.as_deref(), *delta, limit) {
                Ok((new, stored)) => {
                    upsert_value(transaction, bucket, key, &stored)?;
                    Ok(new)
                }
                Err(refusal) => Err(refusal),
            }
        }
    })
}
