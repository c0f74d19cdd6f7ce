//! A page of keys ([`KeyPage`]) and where a listing goes on ([`Cursor`]).

#[cfg(doc)]
use super::Storage;
use super::StorageError;

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
