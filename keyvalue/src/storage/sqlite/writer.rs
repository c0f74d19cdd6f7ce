//! Group commit: one thread owns the write connection and commits queued writes together.
//!
//! A durable commit costs one fsync of the WAL (about 2 ms on the disks we measured), so committing
//! every write alone caps a server near 500 writes/s. Instead, every `set`, `delete` and
//! `increment` is queued to this thread; it takes everything waiting (up to [`MAX_BATCH`]),
//! applies it in order inside one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! answers each caller. A caller is told "done" only after the commit that contains its write
//! returned, so nothing acknowledged can be lost; one fsync now covers a whole batch.
//!
//! Callers wait on a tokio oneshot, so no thread waits per write: for the commit, or (a write
//! that asked to be answered when applied, `Answer::WhenApplied`) first for its outcome from
//! inside the open transaction and then for the commit. A write group is one piece of work,
//! applied inside a savepoint: a refused write in it rolls the group back, not the batch.
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
use crate::storage::{
    Answer, DurableFuture, Expectation, StorageError, StoreFuture, Write, incremented,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The most writes committed in one transaction: bounds the latency a batch adds to its first
/// caller and the work redone if it fails.
pub const MAX_BATCH: usize = 512;

/// How many expired idempotency records one purge step deletes at most: a few milliseconds of
/// the writer's time, after which queued writes get their turn.
pub(super) const PURGE_STEP: usize = 1000;

/// What one piece of work came to, or why it was refused.
type Outcome = Result<Done, StorageError>;

/// One queued piece of work and where to send its outcome.
struct Request {
    bucket: String,
    work: Work,
    /// The largest value an increment may leave (`WriteRequest::increment_limit`).
    limit: u64,
    /// More writes of the same client follow right behind (`Answer::WhenApplied`).
    more_follow: bool,
    reply: Reply,
}

/// What the writer thread does for one request.
pub(super) enum Work {
    /// A write; with [`Once`], at most once for its idempotency key.
    Write {
        /// The write.
        write: Write,
        /// Its idempotency key and record, if it has one.
        once: Option<Once>,
    },
    /// Writes applied together or not at all, inside a savepoint, after checking what the
    /// keys they depend on hold.
    Group {
        /// The writes.
        writes: Vec<Write>,
        /// What keys must hold first.
        expected: Vec<Expectation>,
    },
    /// Deletes up to [`PURGE_STEP`] expired idempotency records.
    PurgeExpired,
}

/// What a piece of [`Work`] came to.
pub(super) enum Done {
    /// A write's outcome.
    Written(Written),
    /// Each write of a group's outcome, in order.
    Group(Vec<u64>),
    /// How many records a purge step deleted.
    Purged(usize),
}

impl Done {
    fn unexpected() -> StorageError {
        StorageError::Backend("the SQLite writer answered another kind of work".into())
    }

    /// A write's outcome.
    pub(super) fn written(self) -> Result<Written, StorageError> {
        match self {
            Self::Written(written) => Ok(written),
            _ => Err(Self::unexpected()),
        }
    }

    /// A group's outcomes.
    pub(super) fn group(self) -> Result<Vec<u64>, StorageError> {
        match self {
            Self::Group(outcomes) => Ok(outcomes),
            _ => Err(Self::unexpected()),
        }
    }

    /// A purge step's count.
    pub(super) fn purged(self) -> Result<usize, StorageError> {
        match self {
            Self::Purged(count) => Ok(count),
            _ => Err(Self::unexpected()),
        }
    }
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
    /// The outcome once committed.
    Durable(oneshot::Sender<Outcome>),
    /// The outcome as soon as applied (taken when sent), then whether the commit held.
    Staged {
        applied: Option<oneshot::Sender<Outcome>>,
        durable: oneshot::Sender<Result<(), StorageError>>,
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

/// The writer connection's journal mode and `synchronous` level, as SQLite reports them
/// ([`super::SqliteStorage::writer_settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriterSettings {
    /// `PRAGMA journal_mode` (`wal`).
    pub(crate) journal_mode: String,
    /// `PRAGMA synchronous`: 2 is `FULL`, 1 is `NORMAL`.
    pub(crate) synchronous: i64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The error of a write whose answer never came: the writer thread is gone.
fn stopped() -> StorageError {
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
    #[cfg(test)]
    pub(super) fn settings(&self) -> &WriterSettings {
        &self.settings
    }

    /// Queues `work` (increments stopping at `limit`) now, so that work queued together
    /// commits together. The future answers with its outcome once committed or, for
    /// [`Answer::WhenApplied`], as soon as applied inside the open transaction, with the commit
    /// still to await. No thread waits meanwhile.
    pub(super) fn submit(
        &self,
        bucket: String,
        work: Work,
        limit: u64,
        answer: Answer,
    ) -> Result<StoreFuture<'static, (Done, Option<DurableFuture>)>, StorageError> {
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        match answer {
            Answer::WhenDurable => {
                let (reply, outcome) = oneshot::channel();
                queue
                    .send(Request {
                        bucket,
                        work,
                        limit,
                        more_follow: false,
                        reply: Reply::Durable(reply),
                    })
                    .map_err(|_| stopped())?;
                Ok(Box::pin(async move {
                    Ok((outcome.await.map_err(|_| stopped())??, None))
                }))
            }
            Answer::WhenApplied { more_follow } => {
                let (applied, applied_outcome) = oneshot::channel();
                let (durable, durable_outcome) = oneshot::channel();
                queue
                    .send(Request {
                        bucket,
                        work,
                        limit,
                        more_follow,
                        reply: Reply::Staged {
                            applied: Some(applied),
                            durable,
                        },
                    })
                    .map_err(|_| stopped())?;
                let durable: DurableFuture =
                    Box::pin(async move { durable_outcome.await.map_err(|_| stopped())? });
                Ok(Box::pin(async move {
                    let done = applied_outcome.await.map_err(|_| stopped())??;
                    Ok((done, Some(durable)))
                }))
            }
        }
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
        let mut outcomes = match committed {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) => {
                let busy = matches!(
                    error.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                );
                let message = format!("SQLite: {error}; the write was not committed");
                batch.iter().map(|_| Err((busy, message.clone()))).collect()
            }
        }
        .into_iter();
        for request in batch {
            let outcome: Result<Outcome, (bool, String)> =
                outcomes.next().unwrap_or(Err((false, "no outcome".into())));
            let failure = |(busy, message): (bool, String)| {
                if busy {
                    StorageError::Busy(message)
                } else {
                    StorageError::Backend(message)
                }
            };
            // A caller that gave up waiting has nobody to tell; its write stands either way.
            match request.reply {
                Reply::Durable(reply) => {
                    let _ = reply.send(outcome.unwrap_or_else(|batch| Err(failure(batch))));
                }
                Reply::Staged { applied, durable } => {
                    let committed = outcome.map(|_| ()).map_err(failure);
                    if let (Some(applied), Err(undone)) = (applied, &committed) {
                        let _ = applied.send(Err(StorageError::Backend(undone.to_string())));
                    }
                    let _ = durable.send(committed);
                }
            }
        }
    }
}

/// How long the writer polls for an announced write before it sleeps: the pipeline's next
/// write usually comes within a few microseconds of the answer to the one before, and sleeping
/// costs a futex wait and a wake-up per write on both sides.
const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(50);

/// The next request within `left`: polled for up to [`POLL_BEFORE_SLEEP`], then waited for.
fn receive_soon(
    requests: &mpsc::Receiver<Request>,
    left: Duration,
) -> Result<Request, mpsc::RecvTimeoutError> {
    let started = Instant::now();
    let poll = POLL_BEFORE_SLEEP.min(left);
    loop {
        match requests.try_recv() {
            Ok(request) => return Ok(request),
            Err(mpsc::TryRecvError::Disconnected) => {
                return Err(mpsc::RecvTimeoutError::Disconnected);
            }
            Err(mpsc::TryRecvError::Empty) if started.elapsed() < poll => {
                std::hint::spin_loop();
            }
            Err(mpsc::TryRecvError::Empty) => break,
        }
    }
    requests.recv_timeout(left.saturating_sub(started.elapsed()))
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
/// While a staged write said more follow from its client (`Answer::WhenApplied`), the
/// transaction stays open up to [`LINGER`] for the writes that arrive meanwhile, which join it.
/// `Err` means nothing was committed.
fn commit(
    conn: &mut Connection,
    batch: &mut Vec<Request>,
    requests: &mpsc::Receiver<Request>,
) -> rusqlite::Result<Vec<Outcome>> {
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
                        let _ = applied.send(outcome);
                    }
                    expected += usize::from(request.more_follow);
                    // Answered already; what is left to say is whether the commit held.
                    outcomes.push(Ok(Done::Purged(0)));
                }
                Reply::Durable(_) => outcomes.push(outcome),
            }
        }
        if expected == 0 || batch.len() >= MAX_BATCH {
            break;
        }
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + LINGER);
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match receive_soon(requests, left) {
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

/// The savepoint a write group is applied inside.
const GROUP_SAVEPOINT: &str = "write_group";

/// One request inside the batch's transaction: its outcome (a refusal is an outcome, not an
/// error), or the SQLite failure that fails the whole batch.
fn apply(transaction: &rusqlite::Transaction<'_>, request: &Request) -> rusqlite::Result<Outcome> {
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
            Ok(Ok(Done::Purged(deleted)))
        }
        Work::Group { writes, expected } => {
            for expected in expected {
                let current = select_value(transaction, bucket, &expected.key)?;
                if let Err(conflict) = expected.check(current.as_deref()) {
                    return Ok(Err(conflict));
                }
            }
            transaction.execute_batch(&format!("SAVEPOINT {GROUP_SAVEPOINT}"))?;
            let mut outcomes = Vec::with_capacity(writes.len());
            for write in writes {
                match apply_write(transaction, bucket, write, *limit)? {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(refused) => {
                        transaction.execute_batch(&format!(
                            "ROLLBACK TO {GROUP_SAVEPOINT}; RELEASE {GROUP_SAVEPOINT}"
                        ))?;
                        return Ok(Err(refused));
                    }
                }
            }
            transaction.execute_batch(&format!("RELEASE {GROUP_SAVEPOINT}"))?;
            Ok(Ok(Done::Group(outcomes)))
        }
        Work::Write { write, once: None } => Ok(apply_write(transaction, bucket, write, *limit)?
            .map(|value| Done::Written(Written::applied(value)))),
        Work::Write {
            write,
            once: Some(once),
        } => {
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
                Ok(Some(outcome)) => return Ok(Ok(Done::Written(Written::replayed(outcome)))),
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
            Ok(outcome.map(|value| Done::Written(Written::applied(value))))
        }
    }
}

/// The unexpired record of `key` (see [`idempotency::is_live`]): its fingerprint and outcome
/// (`None` if the outcome is not a number, which only a hand-edited row can be).
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
) -> rusqlite::Result<Result<u64, StorageError>> {
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
