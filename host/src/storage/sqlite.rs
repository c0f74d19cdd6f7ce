//! The SQLite backend: the durable default.
//!
//! One table `kv(bucket, key, value)` with the composite primary key `(bucket, key)`. The file is
//! in WAL mode with `synchronous=FULL`, so a write that returned is on disk (the WAL is fsynced at
//! every commit) and survives `kill -9` or a power cut. Every `increment` is one `BEGIN IMMEDIATE`
//! transaction: the read, the overflow check in Rust and the write happen under SQLite's write
//! lock, so concurrent processes on the same file never lose or double an update. A busy timeout
//! makes a writer wait for another process's transaction instead of failing.
//!
//! Values are stored as BLOBs of ASCII decimal text. The arithmetic is done in Rust, not SQL:
//! SQLite would silently turn `value + delta` past `i64::MAX` into a REAL and a non-numeric text
//! into 0.

use super::{KeyPage, LIST_PAGE_SIZE, Storage, StorageError, incremented};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long a write waits for another connection's transaction before failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// `PRAGMA application_id` of a tally database ("taly"): marks the file as ours, so tally refuses
/// another application's SQLite database instead of adding a table to it.
const APPLICATION_ID: i32 = 0x7461_6c79;

/// `PRAGMA user_version` of the current schema; a newer file is refused, not guessed at.
const SCHEMA_VERSION: i32 = 1;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS kv (
        bucket TEXT NOT NULL,
        key    TEXT NOT NULL,
        value  BLOB NOT NULL,
        PRIMARY KEY (bucket, key)
    );";

/// [`Storage`] on one SQLite file.
#[derive(Debug)]
pub struct SqliteStorage {
    // A std mutex around one connection: every critical section is a synchronous SQLite call that
    // never awaits, and SQLite serialises writers on the file anyway. Other processes (and other
    // `SqliteStorage` values) use their own connections and meet at the file's locks.
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`, switches it to WAL with
    /// `synchronous=FULL`, and creates or checks the schema.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Backend(format!(
                "{} cannot use write-ahead logging (journal mode stays {mode:?}); \
                 tally needs WAL for durable, concurrent writes",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        prepare_schema(&conn, path)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The database file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Connection>, StorageError> {
        self.conn
            .lock()
            .map_err(|_| StorageError::Backend("SQLite connection poisoned by a panic".into()))
    }
}

/// Creates the schema in a new file, or checks that an existing file is a tally database of a
/// schema this build understands.
fn prepare_schema(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let read = |pragma: &str| -> rusqlite::Result<i32> {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))
    };
    let (application_id, version) = (read("application_id")?, read("user_version")?);
    if application_id == APPLICATION_ID && version == SCHEMA_VERSION {
        return Ok(());
    }
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(StorageError::Backend(format!(
            "{} belongs to another application (SQLite application_id {application_id:#x}); \
             point --db at a tally database or a new file",
            path.display()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StorageError::Backend(format!(
            "{} has schema version {version}, newer than this tally understands \
             ({SCHEMA_VERSION}); upgrade tally",
            path.display()
        )));
    }
    // A new (or pre-versioning) file: create the table. IMMEDIATE so two processes creating the
    // same file at once serialise here.
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         {SCHEMA}
         PRAGMA application_id = {APPLICATION_ID};
         PRAGMA user_version = {SCHEMA_VERSION};
         COMMIT;"
    ))?;
    Ok(())
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

/// Rowids are `i64` (negative ones are rare but legal); cursors are `u64`. Flipping the sign bit
/// maps one onto the other and keeps the order.
fn rowid_to_cursor(rowid: i64) -> u64 {
    (rowid as u64) ^ (1 << 63)
}

fn cursor_to_rowid(cursor: u64) -> i64 {
    (cursor ^ (1 << 63)) as i64
}

fn select_value(conn: &Connection, bucket: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM kv WHERE bucket = ?1 AND key = ?2")?
        .query_row(params![bucket, key], |row| {
            Ok(stored_bytes(row.get_ref(0)?))
        })
        .optional()
}

fn upsert_value(conn: &Connection, bucket: &str, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    // ON CONFLICT ... DO UPDATE keeps the row's rowid, so listing cursors stay valid.
    conn.prepare_cached(
        "INSERT INTO kv (bucket, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![bucket, key, value])?;
    Ok(())
}

impl Storage for SqliteStorage {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(select_value(&*self.lock()?, bucket, key)?)
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        Ok(upsert_value(&*self.lock()?, bucket, key, value)?)
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        self.lock()?
            .prepare_cached("DELETE FROM kv WHERE bucket = ?1 AND key = ?2")?
            .execute(params![bucket, key])?;
        Ok(())
    }

    fn exists(&self, bucket: &str, key: &str) -> Result<bool, StorageError> {
        Ok(self
            .lock()?
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM kv WHERE bucket = ?1 AND key = ?2)")?
            .query_row(params![bucket, key], |row| row.get(0))?)
    }

    /// Pages by rowid (keyset pagination): a cursor is the last rowid returned, so keys inserted
    /// or deleted during a listing never shift the pages.
    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, StorageError> {
        let after = cursor.map(cursor_to_rowid);
        let conn = self.lock()?;
        let mut statement = conn.prepare_cached(
            "SELECT rowid, key FROM kv WHERE bucket = ?1 AND (?2 IS NULL OR rowid > ?2)
             ORDER BY rowid LIMIT ?3",
        )?;
        // One row past the page tells whether another page follows.
        let limit = i64::try_from(LIST_PAGE_SIZE + 1).unwrap_or(i64::MAX);
        let mut rows: Vec<(i64, String)> = statement
            .query_map(params![bucket, after, limit], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let more = rows.len() > LIST_PAGE_SIZE;
        rows.truncate(LIST_PAGE_SIZE);
        let cursor = match rows.last() {
            Some(&(rowid, _)) if more => Some(rowid_to_cursor(rowid)),
            _ => None,
        };
        Ok(KeyPage {
            keys: rows.into_iter().map(|(_, key)| key).collect(),
            cursor,
        })
    }

    fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, StorageError> {
        let mut conn = self.lock()?;
        let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = select_value(&transaction, bucket, key)?;
        // On an error the transaction is dropped, which rolls it back: nothing changes.
        let (new, stored) = incremented(key, current.as_deref(), delta)?;
        upsert_value(&transaction, bucket, key, &stored)?;
        transaction.commit()?;
        Ok(new)
    }
}
