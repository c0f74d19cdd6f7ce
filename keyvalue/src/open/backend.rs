//! What a backend declares to be opened by URL: its row in the table ([`Backend`]) and the
//! options a host passes ([`OpenOptions`], [`StoreOption`]). Apart from the table itself
//! ([`super::backends`]) so a backend's module depends on these types and the table on the
//! backends, never both ways.

use crate::observer::Observer;
use crate::storage::{Storage, StorageError};
use std::sync::Arc;
use std::time::Duration;

/// What opening a store takes besides its URL; each backend reads the options it owns
/// ([`Backend::options`]) and ignores the rest (a host refuses those the user set, see
/// [`Backend::owns`]). Built from [`OpenOptions::default`] and its fields.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Open for reading only, where the backend has such a mode (SQLite: nothing is created,
    /// converted or upgraded, every write is refused with [`StorageError::ReadOnly`], and a
    /// file with no database yet is [`StorageError::Refused`], a `FileRefusal` of
    /// `NoDatabase`: it holds no counters). Other backends open as usual.
    pub read_only: bool,
    /// SQLite: commits acknowledged after an fsync (`false`, the default) or after they reach
    /// the OS (`true`: `synchronous=NORMAL`).
    pub relaxed_durability: bool,
    /// SQLite: how long a write waits for another process's lock (default 5 s).
    pub busy_timeout: Option<Duration>,
    /// Redis: accept a server whose `maxmemory-policy` may evict keys.
    pub allow_eviction: bool,
    /// PostgreSQL: the schema of tally's tables (default `tally`).
    pub schema: Option<String>,
    /// PostgreSQL: the most connections (default 16).
    pub pool_size: Option<usize>,
    /// PostgreSQL: how long `COMMIT` may take before a write's outcome is unknown (default
    /// 10 s).
    pub commit_timeout: Option<Duration>,
    /// Told about group commits (SQLite, PostgreSQL).
    pub observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("read_only", &self.read_only)
            .field("relaxed_durability", &self.relaxed_durability)
            .field("busy_timeout", &self.busy_timeout)
            .field("allow_eviction", &self.allow_eviction)
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("commit_timeout", &self.commit_timeout)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// One option of [`OpenOptions`] that only some backends take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOption {
    /// [`OpenOptions::relaxed_durability`].
    Durability,
    /// [`OpenOptions::busy_timeout`].
    BusyTimeout,
    /// [`OpenOptions::allow_eviction`].
    AllowEviction,
    /// [`OpenOptions::schema`].
    Schema,
    /// [`OpenOptions::pool_size`].
    PoolSize,
    /// [`OpenOptions::commit_timeout`].
    CommitTimeout,
}

/// A backend's open function: the whole URL (scheme included) and the options.
pub type OpenStore = fn(&str, &OpenOptions) -> Result<Arc<dyn Storage>, StorageError>;

/// One row of the table of backends.
pub struct Backend {
    /// The backend's name, for messages (`SQLite`, `Redis`).
    pub name: &'static str,
    /// What its URLs start with (`sqlite:`, `redis://`), or are (`memory`).
    pub schemes: &'static [&'static str],
    /// The options it takes.
    pub options: &'static [StoreOption],
    /// When it acknowledges a write, in words, for a server's log.
    pub durability: fn(&OpenOptions) -> &'static str,
    /// Opens the store `url` names (the whole URL, scheme included).
    pub open: OpenStore,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("schemes", &self.schemes)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Whether this backend takes `option`.
    pub fn owns(&self, option: StoreOption) -> bool {
        self.options.contains(&option)
    }

    /// Whether `url` names a store of this backend.
    pub(crate) fn names(&self, url: &str) -> bool {
        self.schemes.iter().any(|scheme| {
            if scheme.ends_with(':') || scheme.ends_with("://") {
                url.starts_with(scheme)
            } else {
                url == *scheme
            }
        })
    }
}
