//! The SQLite backend: the durable default.
//!
//! One table `kv(bucket, key, value)` with the composite primary key `(bucket, key)`. The file is
//! in WAL mode with `synchronous=FULL` by default, so a write that returned is on disk (the WAL is
//! fsynced at every commit) and survives `kill -9` or a power cut; [`Durability::Relaxed`]
//! (`synchronous=NORMAL`) is the explicit opt-out, which may lose the last commits on power loss
//! (not on a process crash).
//!
//! Writes go through one writer thread that commits them in batches ([`writer`]: group commit,
//! one fsync per batch). Every `increment` is applied inside a `BEGIN IMMEDIATE` transaction: the
//! read, the overflow check in Rust and the write happen under SQLite's write lock, so concurrent
//! processes on the same file never lose or double an update; a busy timeout makes a writer wait
//! for another process's transaction instead of failing. Reads use a small pool of read-only
//! connections, which WAL lets run beside the writer.
//!
//! Values are stored as BLOBs of ASCII decimal text. The arithmetic is done in Rust, not SQL:
//! SQLite would silently turn `value + delta` past `i64::MAX` into a REAL and a non-numeric text
//! into 0.

mod backup;
mod refusal;
mod schema;
mod writer;

pub use backup::BackupReport;
pub use refusal::{FileProblem, FileRefusal, ReadOnlyFile};
pub use schema::APPLICATION_ID;
#[cfg(test)]
use writer::WriterSettings;

use super::{
    Answer, Applied, Capabilities, Cursor, KeyPage, MAX_PAGE_SIZE, Note, Storage, StorageError,
    StoreFuture, Visitor, WriteGroup, WriteRequest, blocking, idempotency,
};
use crate::observer::Observer;
use crate::open::backend::StoreOption;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use writer::{Done, Work, Writer};

/// How long a write waits by default for another connection's transaction before failing with
/// "busy".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`SqliteStorage`] commits and waits, and who hears about it.
#[derive(Clone)]
pub struct SqliteOptions {
    /// When a commit counts as done.
    pub durability: Durability,
    /// How long to wait for another connection's lock before failing with [`StorageError::Busy`].
    pub busy_timeout: Duration,
    /// Told the size of every group commit; `None` records nothing.
    pub observer: Option<Arc<dyn Observer>>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            busy_timeout: BUSY_TIMEOUT,
            observer: None,
        }
    }
}

impl std::fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("durability", &self.durability)
            .field("busy_timeout", &self.busy_timeout)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// The row of [`crate::open::backends`] table: `sqlite:PATH`.
pub static BACKEND: crate::open::backend::Backend = crate::open::backend::Backend {
    name: "SQLite",
    schemes: &["sqlite:"],
    options: &[StoreOption::Durability, StoreOption::BusyTimeout],
    durability: |options| {
        if options.relaxed_durability {
            "relaxed (synchronous=NORMAL)"
        } else {
            "full (fsync per commit)"
        }
    },
    open: |url, options| {
        let path = Path::new(url.strip_prefix("sqlite:").unwrap_or(url));
        if options.read_only {
            match SqliteStorage::open_for_reading(path, SqliteOptions::from(options))? {
                Some(storage) => Ok(Arc::new(storage)),
                None => Err(FileRefusal::error(path, FileProblem::NoDatabase)),
            }
        } else {
            Ok(Arc::new(SqliteStorage::open_with(path, options.into())?))
        }
    },
};

/// The SQLite options of a store opened by URL.
impl From<&crate::open::backend::OpenOptions> for SqliteOptions {
    fn from(options: &crate::open::backend::OpenOptions) -> Self {
        Self {
            durability: if options.relaxed_durability {
                Durability::Relaxed
            } else {
                Durability::Full
            },
            busy_timeout: options.busy_timeout.unwrap_or(BUSY_TIMEOUT),
            observer: options.observer.clone(),
        }
    }
}

/// Idle read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 16;

/// When a commit is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: every commit is fsynced before it is acknowledged.
    #[default]
    Full,
    /// `synchronous=NORMAL`: commits survive a crash of the process but the last ones may be lost
    /// on power failure or an OS crash. Faster; an explicit opt-out.
    Relaxed,
}

impl Durability {
    fn synchronous_pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Relaxed => "NORMAL",
        }
    }
}

/// [`Storage`] on one SQLite file.
///
/// It only ever touches a file that is its own: one with tally's `application_id`
/// (`0x74616c79`), or a new one (missing, empty, or a database with no tables and no
/// `application_id`). Any other SQLite file is refused byte for byte as it was, journal mode
/// included. Opened for reading ([`SqliteStorage::open_for_reading`]), nothing is created,
/// converted or upgraded.
#[derive(Debug)]
pub struct SqliteStorage {
    path: PathBuf,
    // Declared before `writer` so the readers close first and the writer, closing last, removes
    // the WAL files as SQLite's last connection does. Shared with the blocking tasks that read.
    readers: Arc<Readers>,
    /// `None` when the store only reads (opened for reading, or the file is read-only for this
    /// process).
    writer: Option<Writer>,
}

/// The read connections: how they open the file, and the idle ones kept for reuse.
#[derive(Debug)]
struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    mode: ReaderMode,
    // A std mutex: it is held only to push or pop a connection, never across a query or an await.
    idle: Mutex<Vec<Connection>>,
}

/// How a [`SqliteStorage`] opens its read connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderMode {
    /// Read-only connections beside the store's own writer.
    BesideWriter,
    /// A store that only reads a file this process could write: connections that may write
    /// (`mode=rw`, never `create`) but refuse to (`PRAGMA query_only`). A read-only connection
    /// would leave the `-wal` and `-shm` files of a WAL database behind when it closes; one that
    /// may write removes them, as the last connection to a WAL database does.
    QueryOnly,
    /// A file this process may not write: read-only connections (immutable when no `-shm`
    /// exists, see [`open_reader_connection`]).
    ReadOnlyFile,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` with the default options (full
    /// durability).
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the database at `path` for reading and writing: creates the
    /// schema in a new file, switches it to WAL with the given durability, and starts the writer
    /// thread. A file that is not tally's (see [`SqliteStorage`]) is refused before anything in it
    /// changes.
    ///
    /// A database this process may not write (the file or its directory is read-only for it) is
    /// opened for reading only: reads work, every write fails with [`StorageError::ReadOnly`].
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StorageError> {
        if path.exists() && !writable(path) {
            let storage = Self::reader(path, options, ReaderMode::ReadOnlyFile);
            schema::require_tally(storage.readers.read(schema::inspect)?, path)?;
            return Ok(storage);
        }
        let conn = retry_while_busy(options.busy_timeout, || {
            let conn = Connection::open(path)?;
            conn.busy_timeout(options.busy_timeout)?;
            // Decided before anything is written: another application's file stays as it was,
            // journal mode included.
            schema::prepare(&conn, path)?;
            use_wal(&conn, path, &options)?;
            Ok(conn)
        })?;
        let writer = Writer::spawn(conn, options.observer.clone())?;
        Ok(Self {
            writer: Some(writer),
            ..Self::reader(path, options, ReaderMode::BesideWriter)
        })
    }

    /// The directory of a database at `path` that does not exist yet, when this process may
    /// not create it there (it may not write that directory); `None` when it may.
    pub fn uncreatable_in(path: &Path) -> Option<&Path> {
        let dir = directory_of(path);
        (!may_write(dir)).then_some(dir)
    }

    /// Opens the database at `path` for reading only: nothing is created, converted (a backup
    /// keeps its rollback journal) or upgraded, and every write fails with
    /// [`StorageError::ReadOnly`]. `Ok(None)` when there is no tally database at `path` yet
    /// (no file, or a new one without tables): it holds no counters.
    pub fn open_for_reading(
        path: &Path,
        options: SqliteOptions,
    ) -> Result<Option<Self>, StorageError> {
        if !path.exists() {
            return Ok(None);
        }
        let mode = if writable(path) {
            ReaderMode::QueryOnly
        } else {
            ReaderMode::ReadOnlyFile
        };
        let storage = Self::reader(path, options, mode);
        match storage.readers.read(schema::inspect)? {
            schema::FileKind::New => Ok(None),
            kind => {
                schema::refuse_unless_ours(kind, path)?;
                Ok(Some(storage))
            }
        }
    }

    /// A store without a writer (yet).
    fn reader(path: &Path, options: SqliteOptions, mode: ReaderMode) -> Self {
        Self {
            path: path.to_path_buf(),
            readers: Arc::new(Readers {
                path: path.to_path_buf(),
                busy_timeout: options.busy_timeout,
                mode,
                idle: Mutex::new(Vec::new()),
            }),
            writer: None,
        }
    }

    /// The writer, or why there is none.
    fn writer(&self) -> Result<&Writer, StorageError> {
        self.writer.as_ref().ok_or_else(|| {
            ReadOnlyFile::error(&self.path, self.readers.mode != ReaderMode::ReadOnlyFile)
        })
    }

    /// The database file this store writes.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The journal mode and `synchronous` level of the writer connection, as SQLite reports
    /// them; `None` for a store that only reads. What durability the store really runs with.
    #[cfg(test)]
    pub(crate) fn writer_settings(&self) -> Option<&WriterSettings> {
        self.writer.as_ref().map(Writer::settings)
    }

    /// Runs `read` on a read connection, off the async executor where that matters (see
    /// `storage::blocking`).
    async fn read_off_executor<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let readers = Arc::clone(&self.readers);
        blocking::run(move || readers.read(read)).await
    }

    /// Queues `work` to the writer thread, answered as `answer` says.
    fn queue(
        &self,
        work: Work,
        answer: Answer,
    ) -> Result<StoreFuture<'static, (Done, Option<super::DurableFuture>)>, StorageError> {
        self.writer()?.submit(work, answer)
    }
}

impl Readers {
    /// Runs `read` on an idle read connection (opening one if none is idle), on this thread.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StorageError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader_connection(&self.path, self.busy_timeout, self.mode)?,
        };
        let result = read(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(conn);
        }
        Ok(result?)
    }
}

/// Whether this process may write `path` and create files beside it (the WAL and its index).
fn writable(path: &Path) -> bool {
    may_write(path) && may_write(directory_of(path))
}

/// The directory `path` is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// access(2) with `W_OK`, which knows this process's user, its groups and read-only mounts.
fn may_write(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        // SAFETY: access(2) only reads the NUL-terminated path it is given.
        .is_ok_and(|path| unsafe { libc::access(path.as_ptr(), libc::W_OK) } == 0)
}

/// `path` percent-encoded for a `file:` URI (everything but unreserved characters and `/`).
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|&byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Retries `attempt` while SQLite reports the file busy, for up to `timeout`.
///
/// The busy timeout covers ordinary lock waits, but not all of them: when several processes open
/// a new file at once, switching it to WAL can fail with `SQLITE_BUSY` straight away (SQLite does
/// not wait where waiting could deadlock). Opening is idempotent, so it is simply tried again.
fn retry_while_busy<T>(
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match attempt() {
            Err(StorageError::Busy(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            outcome => return outcome,
        }
    }
}

/// Switches `conn`'s file to WAL (a no-op when it is already) with the chosen `synchronous`.
fn use_wal(conn: &Connection, path: &Path, options: &SqliteOptions) -> Result<(), StorageError> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(FileRefusal::error(path, FileProblem::NoWal { mode }));
    }
    conn.pragma_update(None, "synchronous", options.durability.synchronous_pragma())?;
    Ok(())
}

/// A connection for reading, opened as `mode` says. For a database this process cannot write,
/// SQLite cannot create the WAL index (`-shm`) that WAL readers need; when none exists (tally
/// closed the file cleanly, so everything is in the main file) the file is opened as immutable
/// instead. Immutable readers would not see a WAL that a writer elsewhere keeps open without
/// leaving a `-shm` file; a writer always has one while it runs, so this only concerns files
/// nobody is writing.
fn open_reader_connection(
    path: &Path,
    busy_timeout: Duration,
    mode: ReaderMode,
) -> Result<Connection, StorageError> {
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    let (access, flags) = match mode {
        ReaderMode::QueryOnly => ("rw", OpenFlags::SQLITE_OPEN_READ_WRITE),
        ReaderMode::BesideWriter => ("ro", OpenFlags::SQLITE_OPEN_READ_ONLY),
        ReaderMode::ReadOnlyFile if Path::new(&shm).exists() => {
            ("ro", OpenFlags::SQLITE_OPEN_READ_ONLY)
        }
        ReaderMode::ReadOnlyFile => ("ro&immutable=1", OpenFlags::SQLITE_OPEN_READ_ONLY),
    };
    let uri = format!("file:{}?mode={access}", uri_path(path));
    let conn = Connection::open_with_flags(
        uri,
        flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(busy_timeout)?;
    if mode == ReaderMode::QueryOnly {
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(conn)
}

/// A stored value as bytes. tally writes BLOBs, but a value written by hand (`sqlite3`) may be
/// TEXT or INTEGER; those read as their text, so a decimal one still works and anything else is
/// reported as not a number by the caller.
fn stored_bytes(value: ValueRef<'_>) -> Vec<u8> {
    match value {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => bytes.to_vec(),
        ValueRef::Integer(n) => n.to_string().into_bytes(),
        ValueRef::Real(x) => x.to_string().into_bytes(),
        ValueRef::Null => Vec::new(),
    }
}

fn select_value(conn: &Connection, bucket: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM kv WHERE bucket = ?1 AND key = ?2")?
        .query_row(params![bucket, key], |row| {
            Ok(stored_bytes(row.get_ref(0)?))
        })
        .optional()
}

/// The values of `keys` read with one range scan of the primary key, when that is cheaper than
/// a lookup per key: `keys` are many, in order, and the range from the first to the last holds
/// few other keys (a page of a listing: the range holds exactly the page). `None` otherwise, and
/// the caller looks each key up.
fn select_range(
    conn: &Connection,
    bucket: &str,
    keys: &[String],
) -> rusqlite::Result<Option<Vec<Option<Vec<u8>>>>> {
    const FEWEST_KEYS: usize = 16;
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
        return Ok(None);
    };
    if keys.len() < FEWEST_KEYS || !keys.is_sorted() {
        return Ok(None);
    }
    // Give up on a range that holds more than twice the keys asked for.
    let most = keys.len() * 2;
    let mut statement = conn.prepare_cached(
        "SELECT key, value FROM kv WHERE bucket = ?1 AND key >= ?2 AND key <= ?3
         ORDER BY key LIMIT ?4",
    )?;
    let mut rows = statement.query(params![
        bucket,
        first,
        last,
        i64::try_from(most + 1).unwrap_or(i64::MAX)
    ])?;
    let mut values = vec![None; keys.len()];
    let mut wanted = 0;
    let mut seen = 0;
    while let Some(row) = rows.next()? {
        seen += 1;
        if seen > most {
            return Ok(None);
        }
        let Ok(key) = row.get_ref(0)?.as_str() else {
            return Ok(None); // a key another program stored as a blob: look keys up one by one
        };
        // Both sides are in key order: advance through the keys asked for (repeats included).
        while wanted < keys.len() && keys[wanted].as_str() < key {
            wanted += 1;
        }
        let value = stored_bytes(row.get_ref(1)?);
        let mut matched = wanted;
        while matched < keys.len() && keys[matched] == key {
            values[matched] = Some(value.clone());
            matched += 1;
        }
    }
    Ok(Some(values))
}

fn upsert_value(conn: &Connection, bucket: &str, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO kv (bucket, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![bucket, key, value])?;
    Ok(())
}

fn delete_value(conn: &Connection, bucket: &str, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM kv WHERE bucket = ?1 AND key = ?2")?
        .execute(params![bucket, key])?;
    Ok(())
}

/// Reads run on a pooled read connection: on tokio's blocking pool in a multi-threaded runtime,
/// on the calling thread in a current-thread one (see `storage::blocking`). Writes are queued to
/// the writer thread, which answers through a channel: no thread waits for them.
impl Storage for SqliteStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_idempotency_records()
            .with_write_groups()
            .with_increment_limits()
            .with_notes()
            .with_key_order()
    }

    /// Ready when this store writes its file and may still write it (its permissions can change
    /// under a running server); [`StorageError::ReadOnly`] otherwise. After a commit failed for
    /// lack of space, ready only once a write commits again: a probe write (a few KiB, expiring
    /// at once) through the writer, so readiness comes back when space is freed even with no
    /// traffic, [`StorageError::NoSpace`] until then.
    fn check_ready(&self) -> StoreFuture<'_, ()> {
        let writer = match self.writer() {
            Ok(_) if !writable(&self.path) => Err(ReadOnlyFile::error(&self.path, false)),
            other => other,
        };
        match writer {
            Ok(writer) if writer.out_of_space() => {
                let probe = self.queue(Work::Probe, Answer::WhenDurable);
                Box::pin(async move { probe?.await.map(drop) })
            }
            other => Box::pin(std::future::ready(other.map(drop))),
        }
    }

    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        Box::pin(self.read_off_executor(move |conn| select_value(conn, &bucket, &key)))
    }

    /// One read transaction on one connection: every value is of the same point in time.
    fn get_many<'a>(
        &'a self,
        bucket: &'a str,
        keys: &'a [String],
    ) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        let (bucket, keys) = (bucket.to_string(), keys.to_vec());
        Box::pin(self.read_off_executor(move |conn| {
            // Rolled back when dropped: the connection never goes back to the pool inside it.
            let transaction = conn.unchecked_transaction()?;
            let values = match select_range(&transaction, &bucket, &keys)? {
                Some(values) => values,
                None => keys
                    .iter()
                    .map(|key| select_value(&transaction, &bucket, key))
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            transaction.commit()?;
            Ok(values)
        }))
    }

    fn exists<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, bool> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        Box::pin(self.read_off_executor(move |conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM kv WHERE bucket = ?1 AND key = ?2)")?
                .query_row(params![bucket, key], |row| row.get(0))
        }))
    }

    /// Pages by key (keyset pagination on the primary key): a cursor is the last key returned,
    /// so keys inserted or deleted during a listing never shift the pages. The values come with
    /// the keys, from the same statement: a guest that reads them next (`get-many`) needs no
    /// second read.
    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, KeyPage> {
        let after = match cursor
            .map(|cursor| cursor.as_key("SQLite store"))
            .transpose()
        {
            Ok(after) => after.map(str::to_string),
            Err(refused) => return Box::pin(std::future::ready(Err(refused))),
        };
        let bucket = bucket.to_string();
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        // One row past the page tells whether another page follows.
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let entry = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, stored_bytes(row.get_ref(1)?)));
        Box::pin(async move {
            // Two statements, not one with `?2 IS NULL OR key > ?2`: SQLite cannot seek the
            // primary key past an OR, and every page would scan the bucket from its first key (a
            // million counters listed in 50 s instead of 1).
            let mut entries: Vec<(String, Vec<u8>)> = self
                .read_off_executor(move |conn| match after {
                    None => conn
                        .prepare_cached(
                            "SELECT key, value FROM kv WHERE bucket = ?1 ORDER BY key LIMIT ?2",
                        )?
                        .query_map(params![bucket, fetch], entry)?
                        .collect(),
                    Some(after) => conn
                        .prepare_cached(
                            "SELECT key, value FROM kv WHERE bucket = ?1 AND key > ?2 \
                             ORDER BY key LIMIT ?3",
                        )?
                        .query_map(params![bucket, after, fetch], entry)?
                        .collect(),
                })
                .await?;
            let more = entries.len() > limit;
            entries.truncate(limit);
            Ok(KeyPage::entries_by_key(entries, more))
        })
    }

    /// Queued to the writer thread, which (with a key) looks the key up, applies the write and
    /// records it in one group-commit transaction, and answers after the commit, or, when the
    /// request asks, as soon as applied inside the open transaction.
    fn write(&self, request: WriteRequest) -> StoreFuture<'_, Applied> {
        let answer = request.answer;
        let queued = self.queue(Work::Write(request), answer);
        Box::pin(async move {
            let (done, durable) = queued?.await?;
            Ok(Applied {
                written: done.written()?,
                durable,
            })
        })
    }

    /// Queued to the writer thread as one piece of work, applied inside a savepoint of the
    /// group-commit transaction: a refused write rolls back to it, leaving the rest of the batch.
    fn write_group(&self, group: WriteGroup) -> StoreFuture<'_, Vec<u64>> {
        let queued = self.queue(Work::Group(group), Answer::WhenDurable);
        Box::pin(async move { queued?.await?.0.group() })
    }

    /// Purge steps of at most 1,000 records and 1,000 notes (`writer::PURGE_STEP`) through the
    /// writer thread,
    /// each its own transaction queued behind the writes waiting then, until a step finds fewer
    /// to delete.
    fn purge_expired(&self) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let mut purged = 0;
            loop {
                let step = self.queue(Work::PurgeExpired, Answer::WhenDurable)?;
                let deleted = step.await?.0.purged()?;
                purged += deleted;
                if deleted < writer::PURGE_STEP {
                    return Ok(purged);
                }
            }
        })
    }

    /// On a read connection. A file of a schema before notes (read without upgrading it) has
    /// none.
    fn read_note<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let name = name.to_string();
        Box::pin(self.read_off_executor(move |conn| {
            let read = conn
                .prepare_cached(
                    "SELECT value FROM notes WHERE name = ?1
                     AND (expires_at IS NULL OR expires_at > ?2)",
                )
                .and_then(|mut statement| {
                    statement
                        .query_row(params![name, idempotency::now_millis()], |row| row.get(0))
                        .optional()
                });
            match read {
                Err(rusqlite::Error::SqliteFailure(_, Some(message)))
                    if message.starts_with("no such table") =>
                {
                    Ok(None)
                }
                other => other,
            }
        }))
    }

    /// Queued to the writer thread: committed with the batch it lands in.
    fn keep_note(&self, note: Note) -> StoreFuture<'_, Vec<u8>> {
        let queued = self.queue(Work::KeepNote(note), Answer::WhenDurable);
        Box::pin(async move { queued?.await?.0.note() })
    }

    /// One query on one read connection, on the calling thread (an export, not a request's
    /// path): a single read transaction, so the whole scan is one point in time, and in key
    /// order straight from the primary key's index.
    fn scan<'a>(&'a self, bucket: &'a str, visit: &'a mut Visitor<'_>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.readers.read(|conn| {
                let mut statement = conn
                    .prepare_cached("SELECT key, value FROM kv WHERE bucket = ?1 ORDER BY key")?;
                let mut rows = statement.query(params![bucket])?;
                while let Some(row) = rows.next()? {
                    let key: String = row.get(0)?;
                    if visit(&key, &stored_bytes(row.get_ref(1)?)).is_break() {
                        break;
                    }
                }
                Ok(())
            })
        })
    }
}
