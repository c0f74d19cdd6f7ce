//! What a host hands a store to write: one [`Write`] in a [`WriteRequest`] with what travels
//! with it ([`WriteContext`]: an idempotency key, an increment limit), or a [`WriteGroup`] that
//! commits together; and what the store answers ([`Applied`]).

use super::idempotency::{self, IdempotencyKey, Written};
#[cfg(doc)]
use super::{Capabilities, Storage, Transaction};
use super::{StorageError, StoreFuture};
use std::time::Duration;

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
