//! Why a storage operation failed ([`StorageError`]).

use super::Capability;
#[cfg(doc)]
use super::{Storage, WriteGroup, WriteRequest, idempotency};

/// Why a storage operation failed. Nothing was changed by a failed operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An increment found bytes that are not the ASCII decimal text of a `u64`.
    #[error("cannot increment {key:?}: its stored value is not a decimal u64")]
    NotANumber {
        /// The key that was to be incremented.
        key: String,
    },
    /// An increment would have passed the counter limit ([`Storage::counter_limit`], or the
    /// request's [`WriteRequest::increment_limit`]).
    #[error("cannot increment {key:?} by {delta}: {current} + {delta} would overflow the counter")]
    Overflow {
        /// The key that was to be incremented.
        key: String,
        /// Its value, unchanged.
        current: u64,
        /// The refused increment.
        delta: u64,
    },
    /// The store can be read but not written: the file is read-only for this process, or the
    /// store was opened for reading.
    #[error(
        "the database {} {}",
        path.display(),
        if *opened_for_reading {
            "was opened for reading only"
        } else {
            "is read-only for this user: reads work, writes are refused"
        }
    )]
    ReadOnly {
        /// The database file.
        path: std::path::PathBuf,
        /// The store was opened for reading (rather than the file being read-only).
        opened_for_reading: bool,
    },
    /// A file the store will not use as it was asked to, left as it was: what it is.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// The Redis server may evict keys on its own (its `maxmemory-policy`), and the store was
    /// not opened allowing that.
    #[error(
        "the Redis server at {server} runs with maxmemory-policy {policy}, so it may evict {} on \
         its own; set it to noeviction (CONFIG SET maxmemory-policy noeviction) or open the \
         store allowing eviction",
        if *evicts_counters {
            "counters"
        } else {
            "idempotency records before they expire (a retried write could then count twice)"
        }
    )]
    Evicting {
        /// The server, as its URL was given.
        server: String,
        /// Its `maxmemory-policy`.
        policy: String,
        /// `allkeys-*`: counters themselves may go (`volatile-*`: only records, which expire).
        evicts_counters: bool,
    },
    /// This store does not serve the bucket.
    #[error("this store has no bucket {0:?}")]
    NoSuchBucket(String),
    /// Another connection held the database's write lock past the busy timeout. Nothing was
    /// written; trying again later may succeed.
    #[error("the database is busy (locked by another connection); try again: {0}")]
    Busy(String),
    /// The store could not be reached (a Redis server down, refusing connections or not
    /// answering in time). Nothing was written; trying again later may succeed.
    #[error("the store cannot be reached: {0}")]
    Unavailable(String),
    /// The store has no room for the write: a full disk, a quota, a database at its size limit,
    /// a Redis at its `maxmemory` or unable to persist. Nothing was written; writes succeed
    /// again once space is freed, with no restart.
    #[error("the store has no room for the write: {0}")]
    NoSpace(String),
    /// The store refuses this process for a reason its operator must fix: a password missing or
    /// wrong, a role without a right it needs, a setting it cannot work with. Nothing was
    /// written; trying again fails the same way until the configuration changes. The words say
    /// what is missing and how to give it.
    #[error("{0}")]
    Misconfigured(String),
    /// A PostgreSQL schema the store will not use, left as it was: what it is.
    #[error("the PostgreSQL schema {schema:?}: {problem}")]
    Schema {
        /// The schema's name.
        schema: String,
        /// What is wrong with it.
        problem: SchemaProblem,
    },
    /// A list cursor the store did not make, or no longer knows: the listing must start again.
    #[error("{0}")]
    InvalidCursor(String),
    /// The write was sent and the store's answer was lost (a connection dropped after it): it
    /// may or may not have been applied. A retry with an idempotency key is safe; without one
    /// it may count twice.
    #[error("the write's outcome is unknown: {0}")]
    OutcomeUnknown(String),
    /// The request needs an ability this store does not declare ([`Storage::capabilities`]):
    /// refused before the store saw it, so nothing was written.
    #[error("this store cannot {0}")]
    Unsupported(Capability),
    /// The idempotency key was first used for another write ([`idempotency::fingerprint`]):
    /// nothing was applied. The client reused a key for a new request.
    #[error(
        "the idempotency key {key:?} was first used to {recorded}, not to {requested}; \
         a new request needs a new key"
    )]
    IdempotencyKeyReused {
        /// The key.
        key: String,
        /// The write it was first used for.
        recorded: String,
        /// The write it came with now.
        requested: String,
    },
    /// A key a write group expected ([`WriteGroup::expected`]) held something else: another
    /// write came between what the group was built on and its commit. Nothing was applied;
    /// building the group again on fresh reads may succeed.
    #[error("{key:?} changed while the write group was being built; nothing was applied")]
    Conflict {
        /// The key that changed.
        key: String,
    },
    /// The SQLite backend failed (I/O, a corrupt file, a read-only database...).
    #[cfg(feature = "sqlite")]
    #[error("SQLite: {0}")]
    Sqlite(rusqlite::Error),
    /// A backend's internal failure, described.
    #[error("{0}")]
    Backend(String),
}

/// What is wrong with a file ([`StorageError::File`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileProblem {
    /// Another application's SQLite database: tables of its own, or another `application_id`
    /// (0 when it has none).
    Foreign {
        /// Its `PRAGMA application_id`.
        application_id: i32,
    },
    /// A database of this store with a schema newer than this build understands.
    NewerSchema {
        /// Its schema version.
        version: i32,
        /// The newest this build understands.
        supported: i32,
    },
    /// No database of this store where one must be (no tables yet).
    NoDatabase,
    /// A destination that exists already.
    Exists,
    /// A copy's destination that is the database being copied.
    IsSource,
    /// A database that cannot use write-ahead logging.
    NoWal {
        /// The journal mode it stays in.
        mode: String,
    },
}

/// What is wrong with a schema ([`StorageError::Schema`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaProblem {
    /// Another application's: tables of its own and no tally version row.
    Foreign,
    /// tally's, of a newer version than this build understands.
    NewerVersion {
        /// Its version.
        version: i32,
        /// The newest this build understands.
        supported: i32,
    },
}

impl std::fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Foreign => f.write_str(
                "another application's schema (tables of its own, no tally version row), left \
                 untouched",
            ),
            Self::NewerVersion { version, supported } => write!(
                f,
                "tally schema version {version}, newer than this build understands ({supported})"
            ),
        }
    }
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Foreign { application_id: 0 } => f.write_str(
                "another application's SQLite database (tables of its own), left untouched",
            ),
            Self::Foreign { application_id } => write!(
                f,
                "another application's SQLite database (application_id {application_id:#x}), \
                 left untouched"
            ),
            Self::NewerSchema { version, supported } => write!(
                f,
                "schema version {version}, newer than this build understands ({supported})"
            ),
            Self::NoDatabase => f.write_str("no database of this store (it has no tables yet)"),
            Self::Exists => f.write_str("already exists"),
            Self::IsSource => f.write_str("is the database being copied"),
            Self::NoWal { mode } => write!(
                f,
                "cannot use write-ahead logging (journal mode stays {mode:?}), which the store \
                 needs for durable, concurrent writes"
            ),
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::Busy(error.to_string())
            }
            Some(rusqlite::ErrorCode::DiskFull) => Self::NoSpace(format!("SQLite: {error}")),
            _ => Self::Sqlite(error),
        }
    }
}
