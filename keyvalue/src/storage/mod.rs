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
//! - **Every write is one atomic step.** An increment reads the ASCII decimal `u64` under the key
//!   (absent is 0; [`value`] is the encoding), adds the delta and stores the sum, with no other
//!   write in between, in this process or any other. [`incremented`] is the rule.
//! - **The limit.** An increment never leaves a counter past [`Storage::counter_limit`] (nor
//!   past [`WriteRequest::increment_limit`] when the store declares
//!   [`Capabilities::increment_limits`]): it fails with [`StorageError::Overflow`] and changes
//!   nothing.
//! - **A failed write changed nothing.** A refusal ([`StorageError::NotANumber`], overflow)
//!   leaves the store as it was.
//! - **Optional abilities are declared once** in [`Storage::capabilities`]: records of
//!   idempotency keys made in the same atomic step as the write, write groups, increment limits
//!   below the store's own, notes shared by every process on the store ([`Note`]). Hosts call
//!   [`dyn Storage::submit`] and [`dyn Storage::submit_group`], which refuse what a store did
//!   not declare before it sees it, so a store never checks for what it cannot do.
//! - **Prove it with the suite**: `tally-keyvalue`'s feature `testing` makes [`suite`] public;
//!   `suite::run(|| MyStore::new())` runs every test that applies to the store's capabilities.
//!   `examples/custom_store.rs` is a complete store (a JSON file) that does.
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
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod suite;
mod transaction;
pub mod value;

pub use memory::MemoryStorage;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStorage};
#[cfg(feature = "redis")]
pub use redis::RedisStorage;
#[cfg(feature = "sqlite")]
pub use sqlite::{APPLICATION_ID, BackupReport, Durability, SqliteOptions, SqliteStorage};

pub use idempotency::{IdempotencyKey, Written};
pub use transaction::Transaction;

use std::collections::BTreeSet;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::time::Duration;

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
                        return Err(StorageError::Backend(
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

/// A small value a host keeps in a store beside the data ([`Storage::keep_note`]), shared by
/// every process on that store: never a key, never listed, untouched by writes. tally keeps
/// the key that signs its list cursors in one (so every replica takes every other's cursors),
/// and the listing position each `SCAN` cursor stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its name: short visible ASCII, chosen by the host (`cursor-key`, `scan:17`).
    pub name: String,
    /// Its value: bytes, a few hundred at most in tally's use.
    pub value: Vec<u8>,
    /// How long it is kept; `None`: for good. An expired note reads as absent, may be kept
    /// anew, and is deleted by [`Storage::purge_expired`].
    pub ttl: Option<Duration>,
}

impl Note {
    /// A note kept for good.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            ttl: None,
        }
    }

    /// The same note, kept for `ttl`.
    pub fn expiring_after(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// When it expires, in milliseconds since the Unix epoch; `None` for good.
    pub fn expires_at(&self) -> Option<i64> {
        self.ttl.map(idempotency::expires_at)
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

/// What a store can do beyond the required methods, declared once in
/// [`Storage::capabilities`]. Built from [`Capabilities::NONE`] with the `with_` methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Writes with an idempotency key are looked up, applied and recorded in one atomic step
    /// ([`idempotency`]).
    pub idempotency_records: bool,
    /// [`Storage::write_group`]: writes that commit together or not at all.
    pub write_groups: bool,
    /// Increments stop at a request's limit below [`Storage::counter_limit`], checked
    /// atomically with the write ([`WriteRequest::increment_limit`]).
    pub increment_limits: bool,
    /// [`Storage::keep_note`] and [`Storage::read_note`]: notes every process on the store
    /// shares ([`Note`]).
    pub notes: bool,
}

impl Capabilities {
    /// Nothing beyond the required methods.
    pub const NONE: Self = Self {
        idempotency_records: false,
        write_groups: false,
        increment_limits: false,
        notes: false,
    };

    /// The same, with idempotency records.
    pub const fn with_idempotency_records(mut self) -> Self {
        self.idempotency_records = true;
        self
    }

    /// The same, with write groups.
    pub const fn with_write_groups(mut self) -> Self {
        self.write_groups = true;
        self
    }

    /// The same, with increment limits.
    pub const fn with_increment_limits(mut self) -> Self {
        self.increment_limits = true;
        self
    }

    /// The same, with notes.
    pub const fn with_notes(mut self) -> Self {
        self.notes = true;
        self
    }
}

/// One optional ability of a store ([`Capabilities`]), named in a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// [`Capabilities::idempotency_records`].
    IdempotencyRecords,
    /// [`Capabilities::write_groups`].
    WriteGroups,
    /// [`Capabilities::increment_limits`].
    IncrementLimits,
    /// [`Capabilities::notes`].
    Notes,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::IdempotencyRecords => "record idempotency keys",
            Self::WriteGroups => "commit several writes together (write groups)",
            Self::IncrementLimits => "stop an increment below its own counter limit",
            Self::Notes => "keep notes for the processes that share it",
        })
    }
}

/// One write, without its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Stores a value, replacing any previous one.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: Vec<u8>,
    },
    /// Removes a key; removing an absent key is not an error.
    Delete {
        /// The key.
        key: String,
    },
    /// Adds to the ASCII decimal `u64` under a key (absent counts as 0).
    Increment {
        /// The key.
        key: String,
        /// What to add.
        delta: u64,
    },
}

impl Write {
    /// The key this write changes.
    pub(crate) fn key(&self) -> &str {
        match self {
            Self::Set { key, .. } | Self::Delete { key } | Self::Increment { key, .. } => key,
        }
    }
}

/// When [`Storage::write`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Answer {
    /// Once the write is durable (the default).
    #[default]
    WhenDurable,
    /// As soon as the store has applied it, with its durability to await
    /// ([`Applied::durable`]): what buys a pipeline its group commit. The write is not
    /// acknowledged until that completes. A store that cannot answer early answers when
    /// durable.
    WhenApplied {
        /// The caller has more writes right behind this one: a store that commits in groups may
        /// keep its transaction open a moment for them.
        more_follow: bool,
    },
}

/// One write and everything that travels with it from the request that caused it to the store.
///
/// Built with [`WriteRequest::new`] and the `with_` methods, so fields added later break no
/// caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteRequest {
    /// The bucket.
    pub bucket: String,
    /// The write.
    pub write: Write,
    /// The client's idempotency key for this write, if it sent one ([`idempotency`]): the store
    /// applies a write with a key it has seen once only.
    pub idempotency_key: Option<IdempotencyKey>,
    /// How long the store keeps the record of a write with a key (and so answers its retries):
    /// [`idempotency::DEFAULT_RETENTION`] unless the host says otherwise.
    pub idempotency_retention: Duration,
    /// The largest value this increment may leave a counter at, when the client reads counters
    /// in a narrower range than the store holds (a RESP client's signed 64-bit integers): past
    /// it the increment is refused as an overflow and nothing is written. `None`: the store's
    /// own [`Storage::counter_limit`].
    pub increment_limit: Option<u64>,
    /// When the store answers.
    pub answer: Answer,
}

impl WriteRequest {
    /// `write` in `bucket`, answered when durable, without a key or a limit.
    pub fn new(bucket: impl Into<String>, write: Write) -> Self {
        Self {
            bucket: bucket.into(),
            write,
            idempotency_key: None,
            idempotency_retention: idempotency::DEFAULT_RETENTION,
            increment_limit: None,
            answer: Answer::WhenDurable,
        }
    }

    /// The same request with what `context` carries.
    pub fn with_context(mut self, context: &WriteContext) -> Self {
        self.idempotency_key.clone_from(&context.idempotency_key);
        self.idempotency_retention = context.idempotency_retention;
        self.increment_limit = context.increment_limit;
        self
    }

    /// The same request answered as `answer` says.
    pub fn with_answer(mut self, answer: Answer) -> Self {
        self.answer = answer;
        self
    }

    /// The limit an increment of this request stops at on a store whose own is `store_limit`.
    pub fn limit_within(&self, store_limit: u64) -> u64 {
        self.increment_limit
            .map_or(store_limit, |limit| limit.min(store_limit))
    }
}

/// What every write of one request carries (the part of a [`WriteRequest`] that a host decides
/// per request rather than per write): its idempotency key, the records' retention, the
/// increment limit.
///
/// Built with [`WriteContext::default`] and its `with_` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteContext {
    /// [`WriteRequest::idempotency_key`].
    pub idempotency_key: Option<IdempotencyKey>,
    /// [`WriteRequest::idempotency_retention`].
    pub idempotency_retention: Duration,
    /// [`WriteRequest::increment_limit`].
    pub increment_limit: Option<u64>,
}

impl Default for WriteContext {
    fn default() -> Self {
        Self {
            idempotency_key: None,
            idempotency_retention: idempotency::DEFAULT_RETENTION,
            increment_limit: None,
        }
    }
}

impl WriteContext {
    /// The same context with increments limited to `limit`.
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

/// A write the store has applied ([`Storage::write`]).
pub struct Applied {
    /// What it came to.
    pub written: Written,
    /// Completes when the write is durable (or with the error that undid it); `None` when it
    /// already is.
    pub durable: Option<StoreFuture<'static, ()>>,
}

impl std::fmt::Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applied")
            .field("written", &self.written)
            .field("durable", &self.durable.is_none())
            .finish()
    }
}

impl Applied {
    /// A write that is durable already.
    pub fn durable_now(written: Written) -> Self {
        Self {
            written,
            durable: None,
        }
    }

    /// What the write came to, once it is durable.
    pub async fn durable(self) -> Result<Written, StorageError> {
        if let Some(durable) = self.durable {
            durable.await?;
        }
        Ok(self.written)
    }
}

/// Writes that commit together or not at all ([`Storage::write_group`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteGroup {
    /// The bucket every write is in.
    pub bucket: String,
    /// The writes, applied in order.
    pub writes: Vec<Write>,
    /// [`WriteRequest::increment_limit`], for every increment of the group.
    pub increment_limit: Option<u64>,
    /// What keys must hold when the group is applied, checked in the same atomic step: if one
    /// holds anything else, nothing is applied and the group fails with
    /// [`StorageError::Conflict`]. What a [`Transaction`] read is checked this way, so its
    /// writes commit only on what it saw.
    pub expected: Vec<Expectation>,
}

/// A key's value a [`WriteGroup`] depends on: `None` for absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The key.
    pub key: String,
    /// What it must hold.
    pub value: Option<Vec<u8>>,
}

impl Expectation {
    /// Whether `current` (the key's value now) is what was expected; if not, the conflict.
    pub fn check(&self, current: Option<&[u8]>) -> Result<(), StorageError> {
        if current == self.value.as_deref() {
            Ok(())
        } else {
            Err(StorageError::Conflict {
                key: self.key.clone(),
            })
        }
    }
}

impl WriteGroup {
    /// `writes` in `bucket`, without a limit or expectations.
    pub fn new(bucket: impl Into<String>, writes: Vec<Write>) -> Self {
        Self {
            bucket: bucket.into(),
            writes,
            increment_limit: None,
            expected: Vec::new(),
        }
    }

    /// The same group, applied only while `key` holds `value` (`None`: is absent).
    pub fn expecting(mut self, key: impl Into<String>, value: Option<Vec<u8>>) -> Self {
        self.expected.push(Expectation {
            key: key.into(),
            value,
        });
        self
    }

    /// The same group with increments limited to `limit`.
    pub fn with_increment_limit(mut self, limit: u64) -> Self {
        self.increment_limit = Some(limit);
        self
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
            .map_err(|_| StorageError::InvalidCursor(format!("not a list cursor of the {store}")))
    }
}

/// One page of keys from [`Storage::list_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of this page, in the backend's stable listing order.
    pub keys: Vec<String>,
    /// Where the next page starts; `None` when this is the last page.
    pub cursor: Option<Cursor>,
    /// The value of each key, in the order of `keys`, when the store read them in the same
    /// step as the keys (SQLite, PostgreSQL and memory do: the page is one point in time);
    /// `None` when it lists keys only (Redis `SCAN`). A guest that lists keys and then reads
    /// their values (`get-many`) in one call is answered from these (see
    /// [`crate::KeyValueCtx::start_call`]) instead of a second read.
    pub values: Option<Vec<Vec<u8>>>,
}

impl KeyPage {
    /// A page of `keys` in key order, whose cursor (when `more` keys follow) is its last key:
    /// how the stores that page by key (SQLite, memory) answer.
    pub fn by_key(keys: Vec<String>, more: bool) -> Self {
        Self {
            cursor: keys
                .last()
                .filter(|_| more)
                .map(|last| Cursor::from_bytes(last.as_bytes())),
            keys,
            values: None,
        }
    }

    /// [`KeyPage::by_key`] of `entries`' keys, with their values read in the same step.
    pub fn entries_by_key(entries: Vec<(String, Vec<u8>)>, more: bool) -> Self {
        let (keys, values) = entries.into_iter().unzip();
        Self {
            values: Some(values),
            ..Self::by_key(keys, more)
        }
    }
}

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

/// The increment rule every backend shares (and a backend written elsewhere can reuse): parse
/// `current` as ASCII decimal ([`value::decode`]; absent is 0), add `delta` without passing
/// `limit`, return the new value and its stored form. Errors are the ones an increment must
/// report.
pub fn incremented(
    key: &str,
    current: Option<&[u8]>,
    delta: u64,
    limit: u64,
) -> Result<(u64, Vec<u8>), StorageError> {
    let current = match current {
        None => 0,
        Some(bytes) => value::decode(bytes).ok_or_else(|| StorageError::NotANumber {
            key: key.to_string(),
        })?,
    };
    let new = current
        .checked_add(delta)
        .filter(|sum| *sum <= limit)
        .ok_or_else(|| StorageError::Overflow {
            key: key.to_string(),
            current,
            delta,
        })?;
    Ok((new, value::encode(new)))
}

#[cfg(test)]
mod tests;
