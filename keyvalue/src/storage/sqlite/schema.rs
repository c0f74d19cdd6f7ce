//! The database schema, and which SQLite files are tally's to touch.
//!
//! A file is tally's when it carries tally's `application_id`, or when it is new: missing, empty,
//! or a SQLite database with no tables and no `application_id` (what `sqlite3 new.db` leaves).
//! Anything else belongs to another application and is refused before a single byte of it
//! changes: [`inspect`] only reads, and the writer connection switches a file to WAL only after
//! [`prepare`] has accepted it.

use super::refusal::{FileProblem, FileRefusal};
use crate::storage::StorageError;
use rusqlite::Connection;
use std::path::Path;

/// `PRAGMA application_id` of this store's databases ("taly"): marks a file as its own.
pub const APPLICATION_ID: i32 = 0x7461_6c79;

/// `PRAGMA user_version` of the current schema; a newer file is refused, not guessed at, and an
/// older one is upgraded when it is opened for writing ([`prepare`]).
///
/// - 1: the `kv` table.
/// - 2: the `idempotency` table, the records of writes made with idempotency keys. Builds before
///   it refuse a version 2 file ("newer than this tally understands; upgrade tally").
/// - 3: the `notes` table (`Storage::keep_note`: the key that signs list cursors, `SCAN`
///   positions). Builds before it refuse a version 3 file the same way.
const SCHEMA_VERSION: i32 = 3;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS kv (
        bucket TEXT NOT NULL,
        key    TEXT NOT NULL,
        value  BLOB NOT NULL,
        PRIMARY KEY (bucket, key)
    );";

/// What version 2 adds: one row per idempotency key (`storage::idempotency`), written in the
/// transaction of the write it records. `outcome` is the write's result as decimal text (a
/// `u64` may pass SQLite's signed integers); `expires_at` is in milliseconds since the Unix
/// epoch, indexed so purging expired rows never scans the table.
const IDEMPOTENCY_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS idempotency (
        key         TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        expires_at  INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);";

/// What version 3 adds: notes hosts keep in the store (`storage::Note`). `expires_at` in
/// milliseconds since the Unix epoch, NULL for a note kept for good; indexed for purging.
const NOTES_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS notes (
        name       TEXT PRIMARY KEY,
        value      BLOB NOT NULL,
        expires_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS notes_expiry ON notes (expires_at) WHERE expires_at IS NOT NULL;";

/// What a SQLite file is to tally, as far as reading it can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileKind {
    /// No tables and no `application_id`: a new file, tally's to initialise.
    New,
    /// A tally database of the schema this build writes.
    Tally,
    /// A tally database of an older schema, which [`prepare`] upgrades; readable as it is.
    OlderTally {
        /// Its `user_version`.
        version: i32,
    },
    /// A tally database of a newer schema than this build understands.
    NewerTally {
        /// Its `user_version`.
        version: i32,
    },
    /// Another application's database.
    Foreign {
        /// Its `application_id` (0 when it has none but has tables of its own).
        application_id: i32,
    },
}

/// Classifies the file `conn` is open on, reading only.
pub(super) fn inspect(conn: &Connection) -> rusqlite::Result<FileKind> {
    // One statement, so one read transaction: another process creating the schema meanwhile is
    // seen wholly or not at all (never its table without its application_id).
    let (application_id, version, objects): (i64, i64, i64) = conn.query_row(
        "SELECT (SELECT application_id FROM pragma_application_id),
                (SELECT user_version FROM pragma_user_version),
                (SELECT count(*) FROM sqlite_schema)",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let application_id = i32::try_from(application_id).unwrap_or(-1);
    let version = i32::try_from(version).unwrap_or(i32::MAX);
    Ok(match application_id {
        APPLICATION_ID if version > SCHEMA_VERSION => FileKind::NewerTally { version },
        APPLICATION_ID if version < SCHEMA_VERSION => FileKind::OlderTally { version },
        APPLICATION_ID => FileKind::Tally,
        0 if objects == 0 => FileKind::New,
        _ => FileKind::Foreign { application_id },
    })
}

/// The refusal for a file this store must not use, or `Ok` for one it may (`New` or ours).
pub(super) fn refuse_unless_ours(kind: FileKind, path: &Path) -> Result<(), StorageError> {
    let problem = match kind {
        FileKind::New | FileKind::Tally | FileKind::OlderTally { .. } => return Ok(()),
        FileKind::NewerTally { version } => FileProblem::NewerSchema {
            version,
            supported: SCHEMA_VERSION,
        },
        FileKind::Foreign { application_id } => FileProblem::Foreign { application_id },
    };
    Err(FileRefusal::error(path, problem))
}

/// Like [`refuse_unless_ours`], but a new file is refused too: where nothing may be created (a
/// backup's copy, a file this process may only read), it must already be one of ours.
pub(super) fn require_tally(kind: FileKind, path: &Path) -> Result<(), StorageError> {
    match kind {
        FileKind::New => Err(FileRefusal::error(path, FileProblem::NoDatabase)),
        kind => refuse_unless_ours(kind, path),
    }
}

/// Creates the schema in a new file, upgrades a tally database of an older schema, or checks
/// that an existing file is a tally database of a schema this build understands. Writes nothing
/// to a file that is not tally's.
pub(super) fn prepare(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let kind = inspect(conn)?;
    refuse_unless_ours(kind, path)?;
    if kind == FileKind::Tally {
        return Ok(());
    }
    // A new or older file. IMMEDIATE takes the write lock first, so of two processes creating
    // or upgrading the same file at once one waits here, and then finds the other's work done
    // (or, should someone else have put their own tables there meanwhile, refuses the file).
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let prepared = match inspect(conn) {
        Ok(FileKind::Tally) => Ok(()),
        Ok(FileKind::New) => conn
            .execute_batch(&format!(
                "{SCHEMA}
                 {IDEMPOTENCY_SCHEMA}
                 {NOTES_SCHEMA}
                 PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {SCHEMA_VERSION};"
            ))
            .map_err(StorageError::from),
        // Version 1 lacks the idempotency table, both lack the notes table; `IF NOT EXISTS`
        // makes each step a no-op where it is done.
        Ok(FileKind::OlderTally { .. }) => conn
            .execute_batch(&format!(
                "{IDEMPOTENCY_SCHEMA}
                 {NOTES_SCHEMA}
                 PRAGMA user_version = {SCHEMA_VERSION};"
            ))
            .map_err(StorageError::from),
        Ok(kind) => refuse_unless_ours(kind, path),
        Err(error) => Err(error.into()),
    };
    match prepared {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    prepared
}
