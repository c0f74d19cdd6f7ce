//! Durable key-value storage behind one small trait, one file per backend.
//!
//! [`Storage`] is exactly what `wasi:keyvalue/store` and `wasi:keyvalue/atomics` need: byte values
//! under string keys, grouped in buckets, with an atomic decimal `increment`. The wasmtime glue in
//! [`crate::keyvalue`] only translates between the WIT bindings and this trait, so a new backend
//! is one new file here.
//!
//! Backends:
//! - [`SqliteStorage`]: the default; one SQLite file in WAL mode, `synchronous=FULL`, writes
//!   group-committed by one writer thread.
//! - [`MemoryStorage`]: a process-local map, for tests and throwaway runs.
//! - [`RedisStorage`]: a Redis database shared by many tally processes and plain Redis clients.

mod memory;
mod redis;
mod sqlite;

pub use memory::MemoryStorage;
pub use redis::RedisStorage;
pub use sqlite::{BackupReport, Durability, SqliteOptions, SqliteStorage};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// How many keys one `list_keys` call returns at most; callers follow the cursor for the rest.
pub const LIST_PAGE_SIZE: usize = 1000;

/// Byte values under string keys in named buckets, with an atomic counter increment.
///
/// Methods block (SQLite does I/O); async callers run them on a blocking thread. Every method is
/// one atomic operation: concurrent callers, in this process or another, never see or cause a
/// partial update.
pub trait Storage: Send + Sync + 'static {
    /// Whether this store serves `bucket` (checked when a guest opens it; must not block).
    /// Every bucket by default.
    fn check_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        let _ = bucket;
        Ok(())
    }

    /// The largest value `increment` can produce: `u64::MAX` unless the backend's own counters
    /// are narrower (Redis: `i64::MAX`).
    fn counter_limit(&self) -> u64 {
        u64::MAX
    }

    /// The value stored under `key`, `None` if absent.
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Stores `value` under `key`, replacing any previous value.
    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), StorageError>;

    /// Removes `key`; removing an absent key is not an error.
    fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError>;

    /// Whether `key` has a value.
    fn exists(&self, bucket: &str, key: &str) -> Result<bool, StorageError>;

    /// One page of keys (at most [`LIST_PAGE_SIZE`] from SQLite and memory), starting after
    /// `cursor` (`None`: the first page). The page's `cursor` is `None` when no keys follow. Keys
    /// present during the whole listing are returned at least once, even when other keys are
    /// added or removed meanwhile (exactly once from SQLite and memory; Redis `SCAN` may repeat
    /// one).
    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, StorageError>;

    /// Atomically adds `delta` to the ASCII-decimal `u64` under `key` (absent counts as 0) and
    /// returns the new value. Fails without changing anything when the stored bytes are not a
    /// decimal `u64` or the sum would overflow.
    fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, StorageError>;

    /// Calls `visit` with every key of `bucket` and its value, in key order (bytewise), until it
    /// returns [`ControlFlow::Break`]. A key removed during the scan may be left out.
    ///
    /// Not part of `wasi:keyvalue/store`; `tally export` needs it. The default lists the keys
    /// (following cursors, dropping repeats) and then reads each value; a backend that can read
    /// everything in one consistent pass overrides it (SQLite: one read transaction, so the scan
    /// is one point in time).
    fn scan(
        &self,
        bucket: &str,
        visit: &mut dyn FnMut(&str, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StorageError> {
        let mut keys = BTreeSet::new();
        let mut cursor = None;
        loop {
            let page = self.list_keys(bucket, cursor)?;
            keys.extend(page.keys);
            match page.cursor {
                None => break,
                Some(next) if Some(next) == cursor => {
                    return Err(StorageError::Backend(format!(
                        "the store returned the list cursor {next} twice; refusing to loop"
                    )));
                }
                next => cursor = next,
            }
        }
        for key in keys {
            if let Some(value) = self.get(bucket, &key)?
                && visit(&key, &value).is_break()
            {
                break;
            }
        }
        Ok(())
    }

    /// Stores every `(key, value)` pair of `entries` in one atomic step, replacing previous
    /// values: afterwards all of them are stored, or (when it fails) none is, and nobody sees a
    /// part. `progress` is told how many entries are written so far (for `tally import`'s
    /// progress bar); it may be called any number of times, or only at the end.
    ///
    /// Not part of `wasi:keyvalue/store`; `tally import` needs it. The default refuses, so a
    /// backend that cannot write atomically never half-imports.
    fn set_many(
        &self,
        bucket: &str,
        entries: &[(String, Vec<u8>)],
        progress: &mut dyn FnMut(usize),
    ) -> Result<(), StorageError> {
        let _ = (bucket, entries, progress);
        Err(StorageError::Backend(
            "this store cannot write many counters atomically (Storage::set_many)".into(),
        ))
    }
}

/// One page of keys from [`Storage::list_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of this page, in the backend's stable listing order.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when this is the last page.
    pub cursor: Option<u64>,
}

/// Why a storage operation failed. Nothing was changed by a failed operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `increment` found bytes that are not the ASCII decimal text of a `u64`.
    #[error("cannot increment {key:?}: its stored value is not a decimal u64")]
    NotANumber {
        /// The key that was to be incremented.
        key: String,
    },
    /// `increment` would have exceeded the counter limit (`u64::MAX`; `i64::MAX` on Redis).
    #[error("cannot increment {key:?} by {delta}: {current} + {delta} would overflow the counter")]
    Overflow {
        /// The key that was to be incremented.
        key: String,
        /// Its value, unchanged.
        current: u64,
        /// The refused increment.
        delta: u64,
    },
    /// The store can be read but not written (a read-only file, for this process).
    #[error("{0}")]
    ReadOnly(String),
    /// This store does not serve the bucket.
    #[error("this store has no bucket {0:?}")]
    NoSuchBucket(String),
    /// Another connection held the database's write lock past the busy timeout. Nothing was
    /// written; trying again later may succeed.
    #[error("the database is busy (locked by another connection); try again: {0}")]
    Busy(String),
    /// The SQLite backend failed (I/O, a corrupt file, a read-only database...).
    #[error("SQLite: {0}")]
    Sqlite(rusqlite::Error),
    /// A backend's internal failure, described.
    #[error("{0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::Busy(error.to_string())
            }
            _ => Self::Sqlite(error),
        }
    }
}

/// The increment rule every backend shares (and a backend written outside tally can reuse): parse
/// `current` as ASCII decimal (absent is 0), add `delta` with overflow checking, return the new
/// value and its stored form. Errors are the ones [`Storage::increment`] must report.
pub fn incremented(
    key: &str,
    current: Option<&[u8]>,
    delta: u64,
) -> Result<(u64, Vec<u8>), StorageError> {
    let current = match current {
        None => 0,
        Some(bytes) => {
            tally_guest::value::decode(bytes).ok_or_else(|| StorageError::NotANumber {
                key: key.to_string(),
            })?
        }
    };
    let new = current
        .checked_add(delta)
        .ok_or_else(|| StorageError::Overflow {
            key: key.to_string(),
            current,
            delta,
        })?;
    Ok((new, new.to_string().into_bytes()))
}

#[cfg(test)]
mod tests;
