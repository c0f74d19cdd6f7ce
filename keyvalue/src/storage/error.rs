//! Why a storage operation failed ([`StorageError`]): a few kinds that say what the caller can
//! do about it, whatever the store, each carrying the store's own words and, where a host may
//! want to word it in its own terms, a typed cause ([`Detail::cause`]).

use super::Capability;
#[cfg(doc)]
use super::{Storage, WriteGroup, WriteRequest, idempotency};
use std::sync::Arc;

/// Why a storage operation failed. Nothing was changed by a failed operation, except that
/// after [`StorageError::OutcomeUnknown`] a write may have been applied.
///
/// # Which kind a store returns
/// The kinds are what the caller does next, not which backend failed; a store picks the one
/// that fits and puts its own words (and, if it likes, a typed cause) in the [`Detail`]:
///
/// | kind | when | the caller |
/// | --- | --- | --- |
/// | [`NotANumber`](Self::NotANumber), [`Overflow`](Self::Overflow) | an increment the rule ([`super::incremented`]) refuses | tells its client; a retry fails the same |
/// | [`IdempotencyKeyReused`](Self::IdempotencyKeyReused) | a key's record is of another write ([`idempotency::replay_or_apply`]) | tells its client |
/// | [`Conflict`](Self::Conflict) | a write group's expectation does not hold | builds the group again on fresh reads |
/// | [`NoSuchBucket`](Self::NoSuchBucket), [`InvalidCursor`](Self::InvalidCursor) | a bucket the store does not serve; a cursor it did not make | tells its client |
/// | [`Unsupported`](Self::Unsupported) | never returned by a store: [`dyn Storage::submit`] refuses what a store did not declare | - |
/// | [`Unavailable`](Self::Unavailable) | the store cannot be reached, or is not serving yet (starting, failing over, read-only standby) | retries later |
/// | [`Busy`](Self::Busy) | another client held a lock past the store's patience | retries soon |
/// | [`OutcomeUnknown`](Self::OutcomeUnknown) | a write was sent and its answer lost | retries only with the same idempotency key |
/// | [`NoSpace`](Self::NoSpace) | no room for the write: a full disk, a quota, a memory limit | waits for space; reads go on |
/// | [`ReadOnly`](Self::ReadOnly) | the store can be read but not written by this process | writes elsewhere, or fixes the permissions |
/// | [`Misconfigured`](Self::Misconfigured) | a setting its operator must fix: a password, a right, a policy the store cannot work with | stops asking until the setting changes |
/// | [`Refused`](Self::Refused) | what it was pointed at is not the store's to use (another application's data, a newer version's, a destination that exists), and it was left untouched | points the store elsewhere |
/// | [`Corrupt`](Self::Corrupt) | the store's own data cannot be read as it should be | repairs or restores it |
/// | [`Other`](Self::Other) | any other failure of the store | reports it |
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
    /// This store does not serve the bucket.
    #[error("this store has no bucket {0:?}")]
    NoSuchBucket(String),
    /// A list cursor the store did not make, or no longer knows: the listing must start again.
    #[error("{0}")]
    InvalidCursor(String),
    /// The request needs an ability this store does not declare ([`Storage::capabilities`]):
    /// refused before the store saw it, so nothing was written.
    #[error("this store cannot {0}")]
    Unsupported(Capability),
    /// The store could not be reached, or is not serving yet (a server down, refusing
    /// connections or not answering in time, starting, failing over, a standby that only
    /// reads). Nothing was written; trying again later may succeed.
    #[error("the store cannot be reached: {0}")]
    Unavailable(Detail),
    /// Another client held a lock the operation needed past the store's patience (SQLite's
    /// busy timeout, retries on conflicting transactions). Nothing was written; trying again
    /// soon may succeed.
    #[error("the database is busy (locked by another connection); try again: {0}")]
    Busy(Detail),
    /// The write was sent and the store's answer was lost (a connection dropped after it): it
    /// may or may not have been applied. A retry with an idempotency key is safe; without one
    /// it may count twice.
    #[error("the write's outcome is unknown: {0}")]
    OutcomeUnknown(Detail),
    /// The store has no room for the write: a full disk, a quota, a database at its size limit,
    /// a Redis at its `maxmemory` or unable to persist. Nothing was written; writes succeed
    /// again once space is freed, with no restart.
    #[error("the store has no room for the write: {0}")]
    NoSpace(Detail),
    /// The store can be read but not written by this process: its file is read-only for this
    /// user, or it was opened for reading.
    #[error("{0}")]
    ReadOnly(Detail),
    /// The store refuses this process for a reason its operator must fix: a password missing or
    /// wrong, a role without a right it needs, a policy it cannot work with (a Redis that may
    /// evict keys). Nothing was written; trying again fails the same way until the
    /// configuration changes. The words say what is missing and how to give it.
    #[error("{0}")]
    Misconfigured(Detail),
    /// What the store was pointed at is not its to use, and was left untouched: another
    /// application's file or schema, one of a newer version, a destination that exists.
    #[error("{0}")]
    Refused(Detail),
    /// The store's own data cannot be read as it should be (not a database, a damaged file or
    /// record).
    #[error("{0}")]
    Corrupt(Detail),
    /// Any other failure of the store, described.
    #[error("{0}")]
    Other(Detail),
}

impl StorageError {
    /// The store's words and typed cause, for the kinds that carry them.
    pub fn detail(&self) -> Option<&Detail> {
        match self {
            Self::Unavailable(detail)
            | Self::Busy(detail)
            | Self::OutcomeUnknown(detail)
            | Self::NoSpace(detail)
            | Self::ReadOnly(detail)
            | Self::Misconfigured(detail)
            | Self::Refused(detail)
            | Self::Corrupt(detail)
            | Self::Other(detail) => Some(detail),
            _ => None,
        }
    }

    /// The typed cause of the failure when it is a `T` (a backend's own error, or one of the
    /// crate's causes: `FileRefusal`, `ReadOnlyFile`, `SchemaRefusal`, `EvictionPolicy`).
    pub fn cause<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.detail()?.cause()
    }
}

/// A store's account of a failure: its words, and the error behind them when there is one (a
/// driver's error, or a typed cause a host may word in its own terms). Shown as its words.
#[derive(Debug, Clone)]
pub struct Detail {
    message: String,
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Detail {
    /// Words alone.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            cause: None,
        }
    }

    /// Words, and the error behind them.
    pub fn caused_by(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            cause: Some(Arc::new(cause)),
        }
    }

    /// An error as its own words.
    pub fn of(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::caused_by(cause.to_string(), cause)
    }

    /// The words.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error behind the words, when it is a `T`.
    pub fn cause<T: std::error::Error + 'static>(&self) -> Option<&T> {
        let cause: &(dyn std::error::Error + 'static) = self.cause.as_deref()?;
        cause.downcast_ref()
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Detail {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for Detail {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        let words = format!("SQLite: {error}");
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::Busy(Detail::of(error))
            }
            Some(rusqlite::ErrorCode::DiskFull) => Self::NoSpace(Detail::caused_by(words, error)),
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                Self::Corrupt(Detail::caused_by(words, error))
            }
            _ => Self::Other(Detail::caused_by(words, error)),
        }
    }
}
