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
//! inside the open transaction and then for the commit. While the thread holds a transaction
//! open for the writes a pipelining client announced, it leaves the connection to those
//! callers: each such write (without an idempotency key) is applied into the transaction by
//! its own caller, under the connection's mutex, and answered at once, instead of a round trip
//! to this thread and back per write; the thread commits them with the rest.
//!
//! A write group is one piece of work, applied inside a savepoint: a refused write in it rolls
//! the group back, not the batch.
//!
//! A write with an idempotency key is looked up, applied and recorded inside the same transaction
//! (see `storage::idempotency`), so the record commits exactly when the write does: a crash can
//! lose both (the write was never acknowledged) but never one without the other. Purging expired
//! records and notes, and keeping a note, are queued here too; a purge runs a bounded step at a
//! time, so it never holds writes up for long.
//!
//! A write that is refused (overflow, not a number) changes nothing and does not disturb the rest
//! of its batch. A failure of SQLite itself (disk full, I/O error, lock timeout) rolls back the
//! whole batch and every caller in it gets the error: none of them was acknowledged.

use super::{delete_value, select_value, upsert_value};
use crate::observer::Observer;
use crate::storage::apply::{self, Record, RecordingCopy, WorkingCopy};
use crate::storage::idempotency::{self, Written};
use crate::storage::{
    Answer, DurableFuture, Note, StorageError, StoreFuture, WriteGroup, WriteRequest,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
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
    work: Work,
    /// More writes of the same client follow right behind (`Answer::WhenApplied`).
    more_follow: bool,
    reply: Reply,
}

/// What the writer thread does for one request.
pub(super) enum Work {
    /// A write, at most once for its idempotency key when it has one.
    Write(WriteRequest),
    /// Writes applied together or not at all, inside a savepoint, after checking what the
    /// keys they depend on hold.
    Group(WriteGroup),
    /// Deletes up to [`PURGE_STEP`] expired idempotency records and notes.
    PurgeExpired,
    /// Keeps a note unless a live one of its name exists (`Storage::keep_note`).
    KeepNote(Note),
    /// Writes a few KiB that expire at once (a note purging removes): whether a write can
    /// commit, for readiness after the disk was full.
    Probe,
}

/// What a piece of [`Work`] came to.
pub(super) enum Done {
    /// A write's outcome.
    Written(Written),
    /// Each write of a group's outcome, in order.
    Group(Vec<u64>),
    /// How many records a purge step deleted.
    Purged(usize),
    /// The value a note's name holds after [`Work::KeepNote`].
    Note(Vec<u8>),
}

impl Done {
    fn unexpected() -> StorageError {
        StorageError::Other("the SQLite writer answered another kind of work".into())
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

    /// A kept note's value.
    pub(super) fn note(self) -> Result<Vec<u8>, StorageError> {
        match self {
            Self::Note(value) => Ok(value),
            _ => Err(Self::unexpected()),
        }
    }
}

enum Reply {
    /// The outcome once committed.
    Durable(oneshot::Sender<Outcome>),
    /// The outcome as soon as applied (taken when sent), then whether the commit held.
    Staged {
        applied: Option<oneshot::Sender<Outcome>>,
        durable: DurableSender,
    },
}

/// Where a write answered before its commit learns whether the commit held.
type DurableSender = oneshot::Sender<Result<(), StorageError>>;

/// What the writer thread receives.
enum Message {
    /// Work to apply.
    Work(Request),
    /// A caller applied the last write announced (or one failed): commit now.
    Wake,
}

/// The write connection and the state of the transaction the writer thread may hold open for
/// announced writes. A std mutex, held while SQLite runs (microseconds for a write; a commit's
/// fsync on the writer thread, during which callers go through the queue instead), never across
/// an await.
struct Session {
    conn: Connection,
    /// The writer thread holds a transaction open for announced writes and waits: a staged
    /// write may be applied into it right away by its caller ([`Writer::apply_now`]), without
    /// a round trip through the thread.
    open_for_staged: bool,
    /// Writes announced (by a staged write with more to follow) and not yet arrived.
    expected: usize,
    /// The durability of the writes callers applied, answered with the commit.
    applied_here: Vec<DurableSender>,
    /// A SQLite failure of a write a caller applied: the transaction is rolled back.
    failed: Option<rusqlite::Error>,
}

/// The session, used even if a panic poisoned the lock: SQLite keeps the transaction
/// consistent, and the fields are each one assignment.
fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long a transaction stays open at most for the writes a pipelining client announced:
/// about what its next command takes to arrive, well under a commit's cost.
const LINGER: Duration = Duration::from_micros(500);

/// The handle to the writer thread; dropping it lets the thread finish its batch and joins it.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Message>>,
    /// The last commit failed for lack of space (and none has committed since).
    out_of_space: Arc<AtomicBool>,
    /// The connection, shared with the callers that apply staged writes into a transaction the
    /// thread holds open for them.
    session: Arc<Mutex<Session>>,
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
    StorageError::Other("the SQLite writer thread has stopped".into())
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
        let session = Arc::new(Mutex::new(Session {
            conn,
            open_for_staged: false,
            expected: 0,
            applied_here: Vec::new(),
            failed: None,
        }));
        let shared = session.clone();
        let out_of_space = Arc::new(AtomicBool::new(false));
        let full = out_of_space.clone();
        let thread = std::thread::Builder::new()
            .name("tally-sqlite-writer".into())
            .spawn(move || run(&shared, &requests, observer.as_deref(), &full))
            .map_err(|error| {
                StorageError::Other(
                    format!("cannot start the SQLite writer thread: {error}").into(),
                )
            })?;
        Ok(Self {
            queue: Some(queue),
            out_of_space,
            session,
            thread: Some(thread),
            settings,
        })
    }

    /// Whether the last commit failed for lack of space, with none committed since.
    pub(super) fn out_of_space(&self) -> bool {
        self.out_of_space.load(Ordering::Acquire)
    }

    /// The writer connection's settings.
    #[cfg(test)]
    pub(super) fn settings(&self) -> &WriterSettings {
        &self.settings
    }

    /// Queues `work` now, so that work queued together commits together. The future answers with its outcome once committed or, for
    /// [`Answer::WhenApplied`], as soon as applied inside the open transaction, with the commit
    /// still to await. No thread waits meanwhile.
    pub(super) fn submit(
        &self,
        work: Work,
        answer: Answer,
    ) -> Result<StoreFuture<'static, (Done, Option<DurableFuture>)>, StorageError> {
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        match answer {
            Answer::WhenDurable => {
                let (reply, outcome) = oneshot::channel();
                queue
                    .send(Message::Work(Request {
                        work,
                        more_follow: false,
                        reply: Reply::Durable(reply),
                    }))
                    .map_err(|_| stopped())?;
                Ok(Box::pin(async move {
                    Ok((outcome.await.map_err(|_| stopped())??, None))
                }))
            }
            Answer::WhenApplied { more_follow } => {
                if let Work::Write(request) = &work
                    && request.idempotency_key.is_none()
                    && let Some(applied) = self.apply_now(queue, request, more_follow)
                {
                    return Ok(Box::pin(std::future::ready(applied)));
                }
                let (applied, applied_outcome) = oneshot::channel();
                let (durable, durable_outcome) = oneshot::channel();
                queue
                    .send(Message::Work(Request {
                        work,
                        more_follow,
                        reply: Reply::Staged {
                            applied: Some(applied),
                            durable,
                        },
                    }))
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

    /// Applies a staged write (one without an idempotency key) right here, into the transaction
    /// the writer thread holds open for the writes its callers announced, when it holds one and
    /// is waiting: the answer, and its durability to come with the commit. `None` when the
    /// write must go through the queue (no transaction held open, or the thread is busy with
    /// it).
    fn apply_now(
        &self,
        queue: &mpsc::Sender<Message>,
        request: &WriteRequest,
        more_follow: bool,
    ) -> Option<Result<(Done, Option<DurableFuture>), StorageError>> {
        let mut session = self.session.try_lock().ok()?;
        if !session.open_for_staged {
            return None;
        }
        session.expected = session.expected.saturating_sub(1) + usize::from(more_follow);
        let outcome = match apply::apply_request(&mut Copy(&session.conn), request, u64::MAX) {
            Ok(outcome) => outcome,
            Err(error) => {
                let undone = not_committed(&error);
                session.failed = Some(error);
                session.open_for_staged = false;
                drop(session);
                let _ = queue.send(Message::Wake);
                return Some(Err(undone));
            }
        };
        let (durable, durable_outcome) = oneshot::channel();
        session.applied_here.push(durable);
        let last = session.expected == 0;
        if last {
            session.open_for_staged = false;
        }
        drop(session);
        if last {
            let _ = queue.send(Message::Wake);
        }
        let durable: DurableFuture =
            Box::pin(async move { durable_outcome.await.map_err(|_| stopped())? });
        Some(outcome.map(|written| (Done::Written(written), Some(durable))))
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

fn run(
    session: &Mutex<Session>,
    requests: &mpsc::Receiver<Message>,
    observer: Option<&dyn Observer>,
    out_of_space: &AtomicBool,
) {
    serve(session, requests, observer, out_of_space);
    // Closed cleanly: everything is committed. The WAL keeps the size of its longest run of
    // commits between checkpoints; copy it into the database and cut it to nothing, so a
    // stopped tally leaves no large `-wal` file behind (SQLite deletes it only when the last
    // connection of any process closes, and another may still be open). Best effort: when a
    // reader elsewhere holds an old snapshot the WAL stays as it is, and loses nothing (it is
    // part of the database).
    let _ = lock(session)
        .conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn serve(
    session: &Mutex<Session>,
    requests: &mpsc::Receiver<Message>,
    observer: Option<&dyn Observer>,
    out_of_space: &AtomicBool,
) {
    while let Ok(message) = requests.recv() {
        // A wake for a transaction already committed has nothing to say.
        let Message::Work(first) = message else {
            continue;
        };
        let mut batch = vec![first];
        take_waiting(requests, &mut batch);
        let (committed, applied_here) = commit(session, &mut batch, requests);
        if let Some(observer) = observer {
            observer.commit_batch(batch.len() + applied_here.len());
        }
        out_of_space.store(
            matches!(&committed, Err(error)
                if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)),
            Ordering::Release,
        );
        // A caller that gave up waiting has nobody to tell; its write stands either way.
        match committed {
            Ok(outcomes) => {
                for durable in applied_here {
                    let _ = durable.send(Ok(()));
                }
                // One outcome per request: `commit` applied every one before it committed.
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    answer(request.reply, Ok(outcome));
                }
            }
            Err(error) => {
                for durable in applied_here {
                    let _ = durable.send(Err(not_committed(&error)));
                }
                for request in batch {
                    answer(request.reply, Err(not_committed(&error)));
                }
            }
        }
    }
}

/// Answers one request of a batch: its outcome, or why the batch's commit did not hold.
fn answer(reply: Reply, committed: Result<Outcome, StorageError>) {
    match reply {
        Reply::Durable(reply) => {
            let _ = reply.send(committed.unwrap_or_else(Err));
        }
        Reply::Staged { applied, durable } => {
            let committed = committed.map(drop);
            // Not answered yet (the batch failed before it was applied): it fails too.
            if let (Some(applied), Err(undone)) = (applied, &committed) {
                let _ = applied.send(Err(StorageError::Other(undone.to_string().into())));
            }
            let _ = durable.send(committed);
        }
    }
}

/// What a write whose transaction failed is told: busy when another connection held the
/// database, a backend failure otherwise; nothing of it was committed.
fn not_committed(error: &rusqlite::Error) -> StorageError {
    let message = format!("SQLite: {error}; the write was not committed");
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StorageError::Busy(message.into())
        }
        Some(rusqlite::ErrorCode::DiskFull) => StorageError::NoSpace(message.into()),
        _ => StorageError::Other(message.into()),
    }
}

/// Moves the requests queued into `batch`, up to [`MAX_BATCH`] (wakes are dropped: the caller
/// looks at the session anyway); how many were taken.
fn take_waiting(requests: &mpsc::Receiver<Message>, batch: &mut Vec<Request>) -> usize {
    let mut taken = 0;
    while batch.len() < MAX_BATCH {
        match requests.try_recv() {
            Ok(Message::Work(request)) => {
                batch.push(request);
                taken += 1;
            }
            Ok(Message::Wake) => {}
            Err(_) => break,
        }
    }
    taken
}

/// Applies the batch in order in one transaction, answering staged writes as each is applied.
/// While a staged write said more follow from its client (`Answer::WhenApplied`), the
/// transaction stays open up to [`LINGER`] for them: the thread waits with the session
/// unlocked, and each such write is applied by its caller ([`Writer::apply_now`]) or, when it
/// came through the queue, here. `Err` means nothing was committed: neither the batch nor the
/// writes callers applied, whose durability senders come back with the outcome.
fn commit(
    session: &Mutex<Session>,
    batch: &mut Vec<Request>,
    requests: &mpsc::Receiver<Message>,
) -> (rusqlite::Result<Vec<Outcome>>, Vec<DurableSender>) {
    let mut guard = lock(session);
    if let Err(error) = guard.conn.execute_batch("BEGIN IMMEDIATE") {
        return (Err(error), Vec::new());
    }
    guard.expected = 0;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut deadline = None;
    let applied = loop {
        if let Some(failed) = guard.failed.take() {
            break Err(failed);
        }
        let mut failed = None;
        while outcomes.len() < batch.len() {
            let request = &mut batch[outcomes.len()];
            let outcome = match apply(&guard.conn, request) {
                Ok(outcome) => outcome,
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            };
            match &mut request.reply {
                Reply::Staged { applied, .. } => {
                    if let Some(applied) = applied.take() {
                        let _ = applied.send(outcome);
                    }
                    guard.expected += usize::from(request.more_follow);
                    // Answered already; what is left to say is whether the commit held.
                    outcomes.push(Ok(Done::Purged(0)));
                }
                Reply::Durable(_) => outcomes.push(outcome),
            }
        }
        if let Some(error) = failed {
            break Err(error);
        }
        if guard.expected == 0 || batch.len() >= MAX_BATCH {
            break Ok(());
        }
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + LINGER);
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break Ok(());
        };
        guard.open_for_staged = true;
        drop(guard);
        let message = requests.recv_timeout(left);
        guard = lock(session);
        guard.open_for_staged = false;
        match message {
            Ok(Message::Work(request)) => {
                batch.push(request);
                let arrived = 1 + take_waiting(requests, batch);
                guard.expected = guard.expected.saturating_sub(arrived);
            }
            // A caller applied the last announced write, or failed: the loop looks.
            Ok(Message::Wake) => {}
            Err(_) => {
                if let Some(failed) = guard.failed.take() {
                    break Err(failed);
                }
                break Ok(());
            }
        }
    };
    let applied_here = std::mem::take(&mut guard.applied_here);
    guard.expected = 0;
    let committed = applied.and_then(|()| guard.conn.execute_batch("COMMIT"));
    match committed {
        Ok(()) => (Ok(outcomes), applied_here),
        Err(error) => {
            // Ends the transaction whatever failed (a failed COMMIT leaves it open).
            let _ = guard.conn.execute_batch("ROLLBACK");
            (Err(error), applied_here)
        }
    }
}

/// The savepoint a write group is applied inside.
const GROUP_SAVEPOINT: &str = "write_group";

/// One request inside the batch's transaction: its outcome (a refusal is an outcome, not an
/// error), or the SQLite failure that fails the whole batch.
fn apply(transaction: &Connection, request: &Request) -> rusqlite::Result<Outcome> {
    let copy = &mut Copy(transaction);
    match &request.work {
        Work::PurgeExpired => {
            let now = idempotency::now_millis();
            let step = i64::try_from(PURGE_STEP).unwrap_or(i64::MAX);
            let records = transaction
                .prepare_cached(
                    "DELETE FROM idempotency WHERE rowid IN
                     (SELECT rowid FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)",
                )?
                .execute(params![now, step])?;
            let notes = transaction
                .prepare_cached(
                    "DELETE FROM notes WHERE rowid IN (SELECT rowid FROM notes
                     WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2)",
                )?
                .execute(params![now, step])?;
            Ok(Ok(Done::Purged(records.max(notes))))
        }
        Work::Probe => {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO notes (name, value, expires_at)
                     VALUES ('write-probe', randomblob(4096), ?1)",
                )?
                .execute(params![idempotency::now_millis()])?;
            Ok(Ok(Done::Purged(0)))
        }
        Work::KeepNote(note) => {
            // Replaces only an expired note: a live one stays, and its value is the answer.
            transaction
                .prepare_cached(
                    "INSERT INTO notes (name, value, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value,
                         expires_at = excluded.expires_at
                     WHERE notes.expires_at IS NOT NULL AND notes.expires_at <= ?4",
                )?
                .execute(params![
                    note.name,
                    note.value,
                    note.expires_at(),
                    idempotency::now_millis()
                ])?;
            let kept: Vec<u8> = transaction
                .prepare_cached("SELECT value FROM notes WHERE name = ?1")?
                .query_row(params![note.name], |row| row.get(0))?;
            Ok(Ok(Done::Note(kept)))
        }
        // The savepoint is the group's undo: a refused write rolls back to it, leaving the
        // rest of the batch.
        Work::Group(group) => {
            if let Err(conflict) = apply::check_expectations(copy, group)? {
                return Ok(Err(conflict));
            }
            transaction.execute_batch(&format!("SAVEPOINT {GROUP_SAVEPOINT}"))?;
            let limit = group.increment_limit.unwrap_or(u64::MAX);
            let applied = apply::apply_writes(copy, &group.bucket, &group.writes, limit)?;
            if applied.is_err() {
                transaction.execute_batch(&format!("ROLLBACK TO {GROUP_SAVEPOINT}"))?;
            }
            transaction.execute_batch(&format!("RELEASE {GROUP_SAVEPOINT}"))?;
            Ok(applied.map(Done::Group))
        }
        Work::Write(request) => {
            Ok(apply::apply_request(copy, request, u64::MAX)?.map(Done::Written))
        }
    }
}

/// The batch's transaction on the write connection, as the working copy the write rules apply
/// to: every read sees the transaction's own earlier writes, so two increments of one key in a
/// batch add up.
struct Copy<'a>(&'a Connection);

impl WorkingCopy for Copy<'_> {
    type Error = rusqlite::Error;

    fn get(&mut self, bucket: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        select_value(self.0, bucket, key)
    }

    fn put(&mut self, bucket: &str, key: &str, value: Option<Vec<u8>>) -> rusqlite::Result<()> {
        match value {
            Some(value) => upsert_value(self.0, bucket, key, &value),
            None => delete_value(self.0, bucket, key),
        }
    }
}

impl RecordingCopy for Copy<'_> {
    fn record(&mut self, key: &str) -> rusqlite::Result<Option<Record>> {
        self.0
            .prepare_cached(
                "SELECT fingerprint, outcome, expires_at FROM idempotency WHERE key = ?1",
            )?
            .query_row(params![key], |row| {
                Ok(Record {
                    fingerprint: row.get(0)?,
                    outcome: row.get(1)?,
                    expires_at: row.get(2)?,
                })
            })
            .optional()
    }

    fn put_record(&mut self, key: &str, record: Record) -> rusqlite::Result<()> {
        self.0
            .prepare_cached(
                "INSERT OR REPLACE INTO idempotency (key, fingerprint, outcome, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                key,
                record.fingerprint,
                record.outcome,
                record.expires_at
            ])?;
        Ok(())
    }
}
