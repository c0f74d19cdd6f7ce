//! Durable key-value storage behind one small trait, one file per backend.
//!
//! [`Storage`] is what `wasi:keyvalue/store`, `atomics` and `batch` need (byte values under
//! string keys, grouped in buckets, with an atomic decimal increment), plus what a host needs
//! around them: one write entry point that can also record an idempotency key
//! ([`idempotency`]) and answer before durability for a pipeline, write groups that commit
//! together, paged listing with opaque cursors, and errors that tell a refusal from an outage.
//! The wasmtime glue in [`crate::wasi`] only translates between the bindings and this trait, so
//! a new backend is one new file here (or in your own crate).
//!
//! # Writing a store
//! Implement three methods: [`Storage::get`], [`Storage::list_keys`] and [`Storage::write`].
//! The others have defaults that are correct for every store (reading key by key, refusing what
//! the store does not declare); override them where the store can do better. The rules:
//! - **Every write is one atomic step, by the shared rules.** A store does not write the rules
//!   again: it hands [`apply`]'s functions a working copy of its data (a map under its lock, the
//!   rows its transaction read, its connection inside a transaction: [`apply::WorkingCopy`], its
//!   reads and puts) and keeps what they leave there. [`apply::apply_write`]: an increment reads
//!   the ASCII decimal `u64` under the key (absent is 0; [`value`] is the encoding), adds the
//!   delta and stores the sum ([`incremented`]), with no other write in between, in this
//!   process or any other (that atomicity is the store's); [`apply::apply_request`]: once per
//!   idempotency key; [`apply::apply_group`]: a write group, all or nothing.
//! - **The limit.** An increment never leaves a counter past [`Storage::counter_limit`] (nor
//!   past [`WriteRequest::increment_limit`] when the store declares
//!   [`Capabilities::increment_limits`]): it fails with [`StorageError::Overflow`] and changes
//!   nothing.
//! - **A failed write changed nothing**, and says why in the kind that tells its caller what to
//!   do ([`StorageError`]: unavailable, busy, outcome unknown, no space, read-only,
//!   misconfigured, refused, corrupt, other), with the store's words and, where a host may want
//!   to word it itself, a typed cause ([`Detail`]).
//! - **Optional abilities are declared once** in [`Storage::capabilities`]: records of
//!   idempotency keys made in the same atomic step as the write, write groups, increment limits
//!   below the store's own, notes shared by every process on the store ([`Note`]). Hosts call
//!   [`dyn Storage::submit`] and [`dyn Storage::submit_group`], which refuse what a store did
//!   not declare before it sees it, so a store never checks for what it cannot do.
//! - **Prove it with the suite**: `tally-keyvalue`'s feature `testing` makes [`suite`] public;
//!   `suite::run(|| MyStore::new())` runs every test that applies to the store's capabilities.
//!   `examples/custom_store.rs` is a complete store (a JSON file) that does.
//! - **Opened by URL** (a backend of this crate): its row, a `BACKEND` static of
//!   [`crate::open::Backend`] beside the store (its schemes, the options it owns, its durability
//!   words, its open function), listed in [`crate::open::backends`].
//!
//! Backends:
//! - [`SqliteStorage`] (feature `sqlite`, the default): one SQLite file in WAL mode,
//!   `synchronous=FULL`, writes group-committed by one writer thread.
//! - [`MemoryStorage`] (always): a process-local map.
//! - [`RedisStorage`] (feature `redis`): a Redis database shared by many hosts and plain Redis
//!   clients.
//! - [`PostgresStorage`] (feature `postgres`): tables in a PostgreSQL schema, shared by many
//!   hosts, group-committed; with a synchronous standby, nothing acknowledged is lost through a
//!   failover.

#[cfg(any(feature = "sqlite", feature = "redis"))]
mod blocking;
pub mod idempotency;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod suite;
mod transaction;
pub mod value;

pub mod apply;
mod capability;
mod error;
mod note;
mod page;
mod request;

pub use apply::incremented;
pub use capability::{Capabilities, Capability};
pub use error::{Detail, StorageError};
pub use note::Note;
pub use page::{Cursor, KeyPage};
pub use request::{Answer, Applied, Expectation, Write, WriteContext, WriteGroup, WriteRequest};

pub use memory::MemoryStorage;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStorage, SchemaProblem, SchemaRefusal};
#[cfg(feature = "redis")]
pub use redis::{EvictionPolicy, RedisStorage};
#[cfg(feature = "sqlite")]
pub use sqlite::{
    APPLICATION_ID, BackupReport, Durability, FileProblem, FileRefusal, ReadOnlyFile,
    SqliteOptions, SqliteStorage,
};

pub use idempotency::{IdempotencyKey, Written};
pub use transaction::Transaction;

use std::collections::BTreeSet;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;

/// How many keys one [`Storage::list_keys`] page holds at most, whatever the caller asks for.
pub const MAX_PAGE_SIZE: usize = 1000;

/// What every [`Storage`] method returns: a future of its outcome. A store whose operations
/// block (SQLite, Redis) runs them off the async executor (see [`SqliteStorage`]); an async
/// client awaits inside it.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Completes when an applied write is durable, or with the error that undid it.
pub(crate) type DurableFuture = StoreFuture<'static, ()>;

/// What [`Storage::scan`] calls with every key and value; [`ControlFlow::Break`] stops it.
#[cfg(any(feature = "sqlite", test, feature = "testing"))]
pub(crate) type Visitor<'a> = dyn FnMut(&str, &[u8]) -> ControlFlow<()> + Send + 'a;

/// Byte values under string keys in named buckets, with an atomic counter increment. See the
/// [module documentation](self) for the rules and how to prove a store with the suite.
///
/// Every method is one atomic operation: concurrent callers, in this process or another, never
/// see or cause a partial update. A failed operation changed nothing.
pub trait Storage: Send + Sync + 'static {
    /// The value stored under `key`, `None` if absent.
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// One page of at most `limit` keys (and never more than [`MAX_PAGE_SIZE`]), starting after
    /// `cursor` (`None`: the first page). The page's cursor is `None` when no keys follow. Never
    /// more than `limit`: a host sizes pages so that its client's page ends where the store's
    /// does, and resumes at the page's cursor (which it may hand to its clients, and back to
    /// this store in another process).
    /// Pages come in the backend's stable order (SQLite and memory: by key, bytewise; Redis:
    /// `SCAN` order). A key present during the whole listing is returned at least once, even
    /// when other keys are added or removed meanwhile (exactly once from SQLite and memory;
    /// `SCAN` may repeat one).
    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, KeyPage>;

    /// Applies one write atomically: the new value for an increment, 0 otherwise, and whether
    /// it was a replay of its idempotency key's record. Hosts call it through
    /// [`dyn Storage::submit`], which has already refused what the store does not declare
    /// ([`Storage::capabilities`]): a request with an idempotency key reaches only a store that
    /// records keys, and its record is made in the same atomic step as the write; an increment
    /// limit reaches only a store that checks limits (and is below [`Storage::counter_limit`]).
    ///
    /// The future completes when the write is durable as the store promises, unless the
    /// request asks for an early answer ([`Answer::WhenApplied`]) and the store can give one:
    /// then [`Applied::durable`] completes on durability. A store may start the write when this
    /// is called, before the future is polled (SQLite queues it), so that writes a caller
    /// issues together commit together.
    fn write(&self, request: WriteRequest) -> StoreFuture<'_, Applied>;

    /// What this store can do beyond the required methods (none by default).
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// Whether this store serves `bucket` (checked when a guest opens it; must not block).
    /// Every bucket by default.
    fn check_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        let _ = bucket;
        Ok(())
    }

    /// Whether the store can take requests now: `Ok` when it answers and can be written,
    /// [`StorageError::Unavailable`] when it cannot be reached, [`StorageError::ReadOnly`] when
    /// it can only be read (a host's readiness check). The default is `Ok`: an embedded store
    /// (memory) is there whenever the process is; Redis sends a `PING`; SQLite checks that it
    /// may write its file.
    fn check_ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// The largest value an increment can produce and a counter may hold: `u64::MAX` unless the
    /// store's own counters are narrower (Redis: `i64::MAX`). Hosts ask it before storing a
    /// counter value, so no store keeps a value past its own range.
    fn counter_limit(&self) -> u64 {
        u64::MAX
    }

    /// The values of `keys`, in their order (`None` where absent). The default reads them one by
    /// one; a store that can read them in one step overrides it (SQLite: one read transaction,
    /// so the values are of one point in time; Redis: one `MGET`; memory: one lock).
    fn get_many<'a>(
        &'a self,
        bucket: &'a str,
        keys: &'a [String],
    ) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get(bucket, key).await?);
            }
            Ok(values)
        })
    }

    /// Whether `key` has a value. The default reads it.
    fn exists<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.get(bucket, key).await?.is_some()) })
    }

    /// Calls `visit` with every key of `bucket` and its value, in key order (bytewise), until it
    /// returns [`ControlFlow::Break`]. A key removed during the scan may be left out.
    ///
    /// Not part of `wasi:keyvalue/store`; exports need it. The default lists the keys
    /// (following cursors, dropping repeats) and then reads each value; a store that can read
    /// everything in one consistent pass overrides it (SQLite: one read transaction, so the scan
    /// is one point in time).
    fn scan<'a>(
        &'a self,
        bucket: &'a str,
        visit: &'a mut (dyn FnMut(&str, &[u8]) -> ControlFlow<()> + Send),
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut keys = BTreeSet::new();
            let mut cursor: Option<Cursor> = None;
            loop {
                let page = self
                    .list_keys(bucket, cursor.as_ref(), MAX_PAGE_SIZE)
                    .await?;
                keys.extend(page.keys);
                match page.cursor {
                    None => break,
                    Some(next) if Some(&next) == cursor.as_ref() => {
                        return Err(StorageError::Other(
                            "the store returned the same list cursor twice; refusing to loop"
                                .into(),
                        ));
                    }
                    next => cursor = next,
                }
            }
            for key in keys {
                if let Some(value) = self.get(bucket, &key).await?
                    && visit(&key, &value).is_break()
                {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Applies every write of `group` in order as one atomic step: afterwards all of them are
    /// applied or (when one is refused, an expectation fails or the store fails) none is,
    /// nobody sees a part, and each write sees the group's earlier ones (an increment after a
    /// set adds to the set value). Every [`WriteGroup::expected`] value is checked in that
    /// same step, before the writes ([`Expectation::check`]). The outcome of each write, in
    /// order, once durable.
    ///
    /// Called only for a store that declares [`Capabilities::write_groups`] (through
    /// [`dyn Storage::submit_group`]); the default refuses.
    fn write_group(&self, group: WriteGroup) -> StoreFuture<'_, Vec<u64>> {
        let _ = group;
        Box::pin(std::future::ready(Err(StorageError::Unsupported(
            Capability::WriteGroups,
        ))))
    }

    /// Deletes the idempotency records and notes that have expired (some of them at least: it
    /// may stop after a bounded amount of work so writes are not held up, and the caller calls
    /// again later); how many it deleted. An expired record or note counts as absent whether or
    /// not it is purged, so this only reclaims space. The default has nothing to purge (Redis
    /// expires its records and notes itself; a store without them has none).
    fn purge_expired(&self) -> StoreFuture<'_, usize> {
        Box::pin(std::future::ready(Ok(0)))
    }

    /// The value of the live note `name` ([`Capabilities::notes`]); `None` when there is none
    /// or it has expired. Called only for a store that declares notes; the default refuses.
    fn read_note<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let _ = name;
        Box::pin(std::future::ready(Err(StorageError::Unsupported(
            Capability::Notes,
        ))))
    }

    /// Keeps `note` unless a live note of its name exists, as one atomic step for every process
    /// sharing the store, and answers the value kept under the name now: `note`'s own, or the
    /// one that was there first. So the first process to keep a note wins and every other,
    /// then and later, learns its value. Called only for a store that declares notes; the
    /// default refuses.
    fn keep_note(&self, note: Note) -> StoreFuture<'_, Vec<u8>> {
        let _ = note;
        Box::pin(std::future::ready(Err(StorageError::Unsupported(
            Capability::Notes,
        ))))
    }
}

impl dyn Storage {
    /// Applies one write ([`Storage::write`]) after refusing what this store did not declare:
    /// an idempotency key on a store that keeps no records
    /// ([`StorageError::Unsupported`]`(`[`Capability::IdempotencyRecords`]`)`), an increment
    /// limit below the store's own on a store that cannot check one. A limit at or above
    /// [`Storage::counter_limit`] is the store's own and is dropped from the request.
    pub fn submit(&self, request: WriteRequest) -> StoreFuture<'_, Applied> {
        match self.admit(request.idempotency_key.is_some(), request.increment_limit) {
            Ok(increment_limit) => self.write(WriteRequest {
                increment_limit,
                ..request
            }),
            Err(refused) => Box::pin(std::future::ready(Err(refused))),
        }
    }

    /// Applies `group` atomically ([`Storage::write_group`]) on a store that declares write
    /// groups; refuses it ([`StorageError::Unsupported`]) on any other, and refuses an
    /// increment limit as [`dyn Storage::submit`] does.
    pub fn submit_group(&self, group: WriteGroup) -> StoreFuture<'_, Vec<u64>> {
        let admitted = if self.capabilities().write_groups {
            self.admit(false, group.increment_limit)
        } else {
            Err(StorageError::Unsupported(Capability::WriteGroups))
        };
        match admitted {
            Ok(increment_limit) => self.write_group(WriteGroup {
                increment_limit,
                ..group
            }),
            Err(refused) => Box::pin(std::future::ready(Err(refused))),
        }
    }

    /// Applies `request` and waits until it is durable, whatever answer it asked for.
    pub async fn submit_durable(&self, request: WriteRequest) -> Result<Written, StorageError> {
        self.submit(request).await?.durable().await
    }

    /// The increment limit to hand the store (`None`: its own), or the refusal.
    fn admit(&self, keyed: bool, limit: Option<u64>) -> Result<Option<u64>, StorageError> {
        let capabilities = self.capabilities();
        if keyed && !capabilities.idempotency_records {
            return Err(StorageError::Unsupported(Capability::IdempotencyRecords));
        }
        match limit {
            Some(limit) if limit < self.counter_limit() => {
                if capabilities.increment_limits {
                    Ok(Some(limit))
                } else {
                    Err(StorageError::Unsupported(Capability::IncrementLimits))
                }
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
