//! Durable key-value storage behind one small trait, one file per backend.
//!
//! [`Storage`] is what `wasi:keyvalue/store` and `wasi:keyvalue/atomics` need (byte values under
//! string keys, grouped in buckets, with an atomic decimal `increment`), plus what a host needs
//! around them: awaitable writes, writes applied once per idempotency key ([`idempotency`]),
//! paged listing with opaque cursors, a per-request [`WriteContext`], bulk reads and writes,
//! and errors that tell a refusal from an outage. The
//! wasmtime glue in [`crate::wasi`] only translates between the bindings and this trait, so a new
//! backend is one new file here (or in your own crate).
//!
//! Backends:
//! - [`SqliteStorage`] (feature `sqlite`, the default): one SQLite file in WAL mode,
//!   `synchronous=FULL`, writes group-committed by one writer thread.
//! - [`MemoryStorage`] (feature `memory`): a process-local map.
//! - [`RedisStorage`] (feature `redis`): a Redis database shared by many hosts and plain Redis
//!   clients.

pub mod idempotency;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "memory")]
pub use memory::MemoryStorage;
#[cfg(feature = "redis")]
pub use redis::RedisStorage;
#[cfg(feature = "sqlite")]
pub use sqlite::{BackupReport, Durability, SqliteOptions, SqliteStorage};

pub use idempotency::{IdempotencyKey, Written};

use std::collections::BTreeSet;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How many keys one [`Storage::list_keys`] page holds at most, whatever the caller asks for.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Byte values under string keys in named buckets, with an atomic counter increment.
///
/// The plain methods block (SQLite and Redis do I/O): async callers use
/// [`Storage::write_async`] for writes and run reads on a blocking thread. Every method is one
/// atomic operation: concurrent callers, in this process or another, never see or cause a
/// partial update. A failed operation changed nothing.
pub trait Storage: Send + Sync + 'static {
    /// Whether this store serves `bucket` (checked when a guest opens it; must not block).
    /// Every bucket by default.
    fn check_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        let _ = bucket;
        Ok(())
    }

    /// Whether the store can be reached now: `Ok` when it answers, [`StorageError::Unavailable`]
    /// when it does not (a host's readiness check). Blocks. The default is `Ok`: an embedded
    /// store (SQLite, memory) is there whenever the process is; Redis sends a `PING`.
    fn check_ready(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// The largest value `increment` can produce and a counter may hold: `u64::MAX` unless the
    /// backend's own counters are narrower (Redis: `i64::MAX`). Hosts ask it before storing a
    /// counter value, so no store keeps a value past its own range.
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

    /// The values of `keys`, in their order (`None` where absent). The default reads them one by
    /// one; a backend that can read them in one step overrides it (SQLite: one read transaction,
    /// so the values are of one point in time; Redis: one `MGET`; memory: one lock).
    fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        keys.iter().map(|key| self.get(bucket, key)).collect()
    }

    /// Atomically adds `delta` to the ASCII-decimal `u64` under `key` (absent counts as 0) and
    /// returns the new value. Fails without changing anything when the stored bytes are not a
    /// decimal `u64` ([`StorageError::NotANumber`]) or the sum would pass
    /// [`Storage::counter_limit`] ([`StorageError::Overflow`]); [`incremented`] is that rule.
    fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, StorageError>;

    /// [`Storage::increment`] that also refuses ([`StorageError::Overflow`]) a sum past `limit`:
    /// for a request whose client reads counters in a narrower range than the store's
    /// ([`WriteContext::increment_limit`]; RESP clients read signed 64-bit integers). The check
    /// must be atomic with the write, so only the backend can do it: the default serves a
    /// `limit` at or above [`Storage::counter_limit`] (that is plain `increment`) and refuses a
    /// lower one without writing. SQLite and memory take any limit.
    fn increment_within(
        &self,
        bucket: &str,
        key: &str,
        delta: u64,
        limit: u64,
    ) -> Result<u64, StorageError> {
        if limit >= self.counter_limit() {
            self.increment(bucket, key, delta)
        } else {
            Err(StorageError::Backend(format!(
                "this store cannot hold an increment below its own counter limit ({limit} < {})",
                self.counter_limit()
            )))
        }
    }

    /// One page of at most `limit` keys (and never more than [`MAX_PAGE_SIZE`]), starting after
    /// `cursor` (`None`: the first page). The page's cursor is `None` when no keys follow.
    /// Pages come in the backend's stable order (SQLite and memory: by key, bytewise; Redis:
    /// `SCAN` order). A key present during the whole listing is returned at least once, even
    /// when other keys are added or removed meanwhile (exactly once from SQLite and memory;
    /// `SCAN` may repeat one).
    fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<KeyPage, StorageError>;

    /// Applies `write` for the request `context` and completes when it is durable as this
    /// store promises (SQLite: committed, and with full durability fsynced), with the new value
    /// for an increment and 0 otherwise. What async hosts call.
    ///
    /// The default runs the blocking method on tokio's blocking pool (so it needs a tokio
    /// runtime). Every implementation refuses a write whose context carries an idempotency key
    /// ([`StorageError::IdempotencyUnsupported`]): this method cannot tell its caller that a
    /// write was a replay; [`Storage::write_idempotent`] is the one for keyed writes. A backend that can complete a write without a
    /// blocking thread per call overrides it (SQLite: its writer thread answers through a
    /// channel).
    fn write_async(
        self: Arc<Self>,
        context: WriteContext,
        bucket: String,
        write: Write,
    ) -> WriteFuture {
        Box::pin(async move {
            refuse_idempotency_key(&context)?;
            tokio::task::spawn_blocking(move || match (write, context.increment_limit) {
                (Write::Increment { key, delta }, Some(limit)) => {
                    self.increment_within(&bucket, &key, delta, limit)
                }
                (write, _) => self.apply(&bucket, write),
            })
            .await
            .map_err(|failure| StorageError::Backend(format!("a storage task failed: {failure}")))?
        })
    }

    /// Applies `write` at most once per idempotency key ([`WriteContext::idempotency_key`]; see
    /// [`idempotency`]): the first write with a key is applied and recorded (key, fingerprint,
    /// outcome, expiry after [`WriteContext::idempotency_retention`]) in the same atomic step;
    /// a later one with the same key and the same write answers the recorded outcome without
    /// applying anything ([`Written::replayed`]); the key with another write is refused with
    /// [`StorageError::IdempotencyKeyReused`]. A refused write records nothing. Completes when
    /// durable, like [`Storage::write_async`]. Without a key it is [`Storage::write_async`].
    ///
    /// The default refuses keys ([`StorageError::IdempotencyUnsupported`]): a backend that
    /// cannot make the record atomic with the write must not pretend to. SQLite records in the
    /// group-commit transaction, Redis in one Lua script, memory under its lock.
    fn write_idempotent(
        self: Arc<Self>,
        context: WriteContext,
        bucket: String,
        write: Write,
    ) -> IdempotentFuture {
        if context.idempotency_key.is_some() {
            return Box::pin(std::future::ready(Err(
                StorageError::IdempotencyUnsupported,
            )));
        }
        write_without_key(self, context, bucket, write)
    }

    /// Deletes the records of idempotency keys that have expired (some of them at least: it may
    /// stop after a bounded amount of work so writes are not held up, and the caller calls again
    /// later); how many it deleted. An expired record counts as absent whether or not it is
    /// purged, so this only reclaims space. Blocks. The default has nothing to purge (Redis
    /// expires its records itself).
    fn purge_idempotency_records(&self) -> Result<usize, StorageError> {
        Ok(0)
    }

    /// Applies `write` like [`Storage::write_async`], but in two steps: `applied` completes with
    /// the write's outcome as soon as the store has applied it, and `durable` when it is durable
    /// (or with the error that undid it). Until `durable` completes the write is not
    /// acknowledged: a host answers its client only then. What this buys is a pipeline: a client
    /// with more writes right behind this one ([`WriteContext::more_follow`]) can have them
    /// applied in the same group commit as this one, instead of one commit each.
    ///
    /// The default is [`Storage::write_async`] with `durable` already complete (it is durable
    /// once applied). SQLite answers `applied` from inside its group-commit transaction.
    fn write_staged(
        self: Arc<Self>,
        context: WriteContext,
        bucket: String,
        write: Write,
    ) -> StagedWrite {
        StagedWrite {
            applied: self.write_async(context, bucket, write),
            durable: Box::pin(std::future::ready(Ok(()))),
        }
    }

    /// Applies `write` with the blocking methods; the new value for an increment, 0 otherwise.
    fn apply(&self, bucket: &str, write: Write) -> Result<u64, StorageError> {
        match write {
            Write::Set { key, value } => self.set(bucket, &key, &value).map(|()| 0),
            Write::Delete { key } => self.delete(bucket, &key).map(|()| 0),
            Write::Increment { key, delta } => self.increment(bucket, &key, delta),
        }
    }

    /// Calls `visit` with every key of `bucket` and its value, in key order (bytewise), until it
    /// returns [`ControlFlow::Break`]. A key removed during the scan may be left out. Blocks.
    ///
    /// Not part of `wasi:keyvalue/store`; exports need it. The default lists the keys
    /// (following cursors, dropping repeats) and then reads each value; a backend that can read
    /// everything in one consistent pass overrides it (SQLite: one read transaction, so the scan
    /// is one point in time).
    fn scan(
        &self,
        bucket: &str,
        visit: &mut dyn FnMut(&str, &[u8]) -> ControlFlow<()>,
    ) -> Result<(), StorageError> {
        let mut keys = BTreeSet::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = self.list_keys(bucket, cursor.as_ref(), MAX_PAGE_SIZE)?;
            keys.extend(page.keys);
            match page.cursor {
                None => break,
                Some(next) if Some(&next) == cursor.as_ref() => {
                    return Err(StorageError::Backend(
                        "the store returned the same list cursor twice; refusing to loop".into(),
                    ));
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
    /// part. `progress` is told how many entries are written so far; it may be called any
    /// number of times, or only at the end. Blocks.
    ///
    /// Not part of `wasi:keyvalue/store`; imports need it. The default refuses, so a backend
    /// that cannot write atomically never half-imports.
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

/// The future of [`Storage::write_async`].
pub type WriteFuture = Pin<Box<dyn Future<Output = Result<u64, StorageError>> + Send + 'static>>;

/// The future of [`Storage::write_idempotent`].
pub type IdempotentFuture =
    Pin<Box<dyn Future<Output = Result<Written, StorageError>> + Send + 'static>>;

/// Completes when a staged write is durable, or with the error that undid it.
pub type DurableFuture = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send + 'static>>;

/// A write in two steps ([`Storage::write_staged`]).
pub struct StagedWrite {
    /// The outcome once applied: the new value for an increment, 0 otherwise, or the refusal.
    pub applied: WriteFuture,
    /// Completes when the write is durable.
    pub durable: DurableFuture,
}

/// One write, without its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// [`Storage::set`].
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: Vec<u8>,
    },
    /// [`Storage::delete`].
    Delete {
        /// The key.
        key: String,
    },
    /// [`Storage::increment`].
    Increment {
        /// The key.
        key: String,
        /// What to add.
        delta: u64,
    },
}

/// What a write carries besides its operands, from the request that caused it to the store.
///
/// Built with [`WriteContext::default`] and its `with_` methods, so fields added later break no
/// caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteContext {
    /// The client's idempotency key for this write, if it sent one ([`idempotency`]): a store
    /// that records keys applies a write with a key it has seen once only
    /// ([`Storage::write_idempotent`]). Every other way of writing refuses a write with a key
    /// ([`StorageError::IdempotencyUnsupported`]) rather than apply it again.
    pub idempotency_key: Option<IdempotencyKey>,
    /// How long the store keeps the record of a write with a key (and so answers its retries):
    /// [`idempotency::DEFAULT_RETENTION`] unless the host says otherwise.
    pub idempotency_retention: Duration,
    /// The largest value an increment of this request may leave a counter at, when the client
    /// reads counters in a narrower range than the store holds (a RESP client's signed 64-bit
    /// integers): past it the increment is refused as an overflow and nothing is written.
    /// `None`: the store's own [`Storage::counter_limit`].
    pub increment_limit: Option<u64>,
    /// The client has more writes right behind this one (a pipeline). A store that commits in
    /// groups may keep its transaction open a moment for them ([`Storage::write_staged`]).
    pub more_follow: bool,
}

impl Default for WriteContext {
    fn default() -> Self {
        Self {
            idempotency_key: None,
            idempotency_retention: idempotency::DEFAULT_RETENTION,
            increment_limit: None,
            more_follow: false,
        }
    }
}

impl WriteContext {
    /// The same context with increments limited to `limit` ([`WriteContext::increment_limit`]).
    pub fn with_increment_limit(mut self, limit: u64) -> Self {
        self.increment_limit = Some(limit);
        self
    }

    /// The same context with `key` as its idempotency key.
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// The same context with records of idempotency keys kept for `retention`.
    pub fn with_idempotency_retention(mut self, retention: Duration) -> Self {
        self.idempotency_retention = retention;
        self
    }
}

/// [`Storage::write_idempotent`] of a write without a key, for every backend: it is
/// [`Storage::write_async`], applied now.
pub fn write_without_key<S: Storage + ?Sized>(
    storage: Arc<S>,
    context: WriteContext,
    bucket: String,
    write: Write,
) -> IdempotentFuture {
    let applied = storage.write_async(context, bucket, write);
    Box::pin(async move { applied.await.map(Written::applied) })
}

/// Refuses a write that carries an idempotency key, for stores that cannot record one.
pub fn refuse_idempotency_key(context: &WriteContext) -> Result<(), StorageError> {
    match &context.idempotency_key {
        Some(_) => Err(StorageError::IdempotencyUnsupported),
        None => Ok(()),
    }
}

/// Where a listing continues: opaque bytes that only the backend that made them understands
/// (SQLite and memory: the last key returned; Redis: the `SCAN` cursor).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(Vec<u8>);

impl Cursor {
    /// A cursor from its bytes, as [`Cursor::as_bytes`] gave them (a host may round-trip it
    /// through a client, encoded).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The cursor's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key a store that pages by key (SQLite, memory) made this cursor of; `store` names
    /// that store in the error for bytes that are not one.
    pub(crate) fn as_key(&self, store: &str) -> Result<&str, StorageError> {
        std::str::from_utf8(&self.0)
            .map_err(|_| StorageError::Backend(format!("not a list cursor of the {store}")))
    }
}

/// One page of keys from [`Storage::list_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of this page, in the backend's stable listing order.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when this is the last page.
    pub cursor: Option<Cursor>,
}

impl KeyPage {
    /// A page of `keys` in key order, whose cursor (when `more` keys follow) is its last key:
    /// how the stores that page by key (SQLite, memory) answer.
    pub(crate) fn by_key(keys: Vec<String>, more: bool) -> Self {
        Self {
            cursor: keys
                .last()
                .filter(|_| more)
                .map(|last| Cursor::from_bytes(last.as_bytes())),
            keys,
        }
    }
}

/// Why a storage operation failed. Nothing was changed by a failed operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// `increment` found bytes that are not the ASCII decimal text of a `u64`.
    #[error("cannot increment {key:?}: its stored value is not a decimal u64")]
    NotANumber {
        /// The key that was to be incremented.
        key: String,
    },
    /// `increment` would have passed the counter limit ([`Storage::counter_limit`]).
    #[error("cannot increment {key:?} by {delta}: {current} + {delta} would overflow the counter")]
    Overflow {
        /// The key that was to be incremented.
        key: String,
        /// Its value, unchanged.
        current: u64,
        /// The refused increment.
        delta: u64,
    },
    /// The store can be read but not written (a read-only file, or a store opened for reading).
    #[error("{0}")]
    ReadOnly(String),
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
    /// The write carries an idempotency key and this store (or this way of writing) cannot
    /// record one, so it refuses rather than risk applying a retried write twice.
    #[error("this store cannot record idempotency keys; send the write without one")]
    IdempotencyUnsupported,
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
    /// The SQLite backend failed (I/O, a corrupt file, a read-only database...).
    #[cfg(feature = "sqlite")]
    #[error("SQLite: {0}")]
    Sqlite(rusqlite::Error),
    /// A backend's internal failure, described.
    #[error("{0}")]
    Backend(String),
}

#[cfg(feature = "sqlite")]
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

/// The increment rule every backend shares (and a backend written elsewhere can reuse): parse
/// `current` as ASCII decimal (absent is 0), add `delta` without passing `limit`, return the new
/// value and its stored form. Errors are the ones [`Storage::increment`] must report.
pub fn incremented(
    key: &str,
    current: Option<&[u8]>,
    delta: u64,
    limit: u64,
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
        .filter(|sum| *sum <= limit)
        .ok_or_else(|| StorageError::Overflow {
            key: key.to_string(),
            current,
            delta,
        })?;
    Ok((new, tally_guest::value::encode(new)))
}

#[cfg(test)]
mod tests;
