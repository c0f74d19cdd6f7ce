//! The in-memory backend: ordered maps behind a mutex, gone when the process exits.
//!
//! Keys are kept sorted, so listing pages by key like SQLite does: a cursor is the last key
//! returned, and keys added or removed during a listing never shift the pages. Every write,
//! with its idempotency record, and every write group happen under the one lock, which is never
//! held across an await: so it declares every capability. The store under its lock is the
//! working copy the write rules ([`super::apply`]) apply to.

use super::apply::{self, Record, RecordingCopy, WorkingCopy};
use super::{
    Applied, Capabilities, Cursor, KeyPage, MAX_PAGE_SIZE, Note, Storage, StorageError,
    StoreFuture, WriteGroup, WriteRequest, Written, idempotency,
};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

/// A process-local [`Storage`]; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    // A std mutex: every critical section is a few map operations and never awaits.
    state: Mutex<State>,
}

/// The row of [`crate::open::backends`] table: `memory`. It takes no options and keeps nothing.
pub static BACKEND: crate::open::backend::Backend = crate::open::backend::Backend {
    name: "memory",
    schemes: &["memory"],
    options: &[],
    durability: |_| "none: its counters are gone when the process exits",
    open: |_, _| Ok(std::sync::Arc::new(MemoryStorage::new())),
};

type Entries = BTreeMap<String, Vec<u8>>;

/// Everything the store holds, under one lock.
#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, Entries>,
    /// Idempotency records by key.
    records: HashMap<String, Record>,
    /// Notes by name: value, expiry (ms since the Unix epoch; `None`: never).
    notes: HashMap<String, (Vec<u8>, Option<i64>)>,
}

/// Whether a note expiring at `expires_at` is live at `now`.
fn note_is_live(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_none_or(|expires_at| idempotency::is_live(expires_at, now))
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StorageError> {
        self.state
            .lock()
            .map_err(|_| StorageError::Other("in-memory store poisoned by a panic".into()))
    }

    /// `request` under the lock: looked up, applied and recorded in one step.
    fn apply(&self, request: &WriteRequest) -> Result<Written, StorageError> {
        let Ok(outcome) = apply::apply_request(&mut *self.lock()?, request, u64::MAX);
        outcome
    }

    /// Every write of `group` under the lock, all or nothing.
    fn apply_group(&self, group: &WriteGroup) -> Result<Vec<u64>, StorageError> {
        let Ok(outcome) = apply::apply_group(&mut *self.lock()?, group, u64::MAX);
        outcome
    }
}

/// The store itself is the working copy: every write happens under its one lock.
impl WorkingCopy for State {
    type Error = Infallible;

    fn get(&mut self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self
            .buckets
            .get(bucket)
            .and_then(|entries| entries.get(key))
            .cloned())
    }

    fn put(&mut self, bucket: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), Infallible> {
        let entries = self.buckets.entry(bucket.to_string()).or_default();
        match value {
            Some(value) => entries.insert(key.to_string(), value),
            None => entries.remove(key),
        };
        Ok(())
    }
}

impl RecordingCopy for State {
    fn record(&mut self, key: &str) -> Result<Option<Record>, Infallible> {
        Ok(self.records.get(key).cloned())
    }

    fn put_record(&mut self, key: &str, record: Record) -> Result<(), Infallible> {
        self.records.insert(key.to_string(), record);
        Ok(())
    }
}

impl Storage for MemoryStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_idempotency_records()
            .with_write_groups()
            .with_increment_limits()
            .with_notes()
            .with_key_order()
    }

    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let value = self.lock().map(|state| {
            state
                .buckets
                .get(bucket)
                .and_then(|entries| entries.get(key))
                .cloned()
        });
        Box::pin(std::future::ready(value))
    }

    /// Under one lock: all of one moment.
    fn get_many<'a>(
        &'a self,
        bucket: &'a str,
        keys: &'a [String],
    ) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        let values = self.lock().map(|state| {
            let entries = state.buckets.get(bucket);
            keys.iter()
                .map(|key| entries.and_then(|entries| entries.get(key)).cloned())
                .collect()
        });
        Box::pin(std::future::ready(values))
    }

    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, KeyPage> {
        Box::pin(std::future::ready(self.page(bucket, cursor, limit)))
    }

    fn write(&self, request: WriteRequest) -> StoreFuture<'_, Applied> {
        Box::pin(std::future::ready(
            self.apply(&request).map(Applied::durable_now),
        ))
    }

    fn write_group(&self, group: WriteGroup) -> StoreFuture<'_, Vec<u64>> {
        Box::pin(std::future::ready(self.apply_group(&group)))
    }

    fn purge_expired(&self) -> StoreFuture<'_, usize> {
        let purged = self.lock().map(|mut state| {
            let before = state.records.len() + state.notes.len();
            let now = idempotency::now_millis();
            state
                .records
                .retain(|_, record| idempotency::is_live(record.expires_at, now));
            state
                .notes
                .retain(|_, (_, expires_at)| note_is_live(*expires_at, now));
            before - state.records.len() - state.notes.len()
        });
        Box::pin(std::future::ready(purged))
    }

    fn read_note<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let now = idempotency::now_millis();
        let value = self.lock().map(|state| {
            state
                .notes
                .get(name)
                .filter(|(_, expires_at)| note_is_live(*expires_at, now))
                .map(|(value, _)| value.clone())
        });
        Box::pin(std::future::ready(value))
    }

    fn keep_note(&self, note: Note) -> StoreFuture<'_, Vec<u8>> {
        let now = idempotency::now_millis();
        let kept = self.lock().map(|mut state| {
            let expires_at = note.expires_at();
            let entry = state
                .notes
                .entry(note.name)
                .or_insert_with(|| (note.value.clone(), expires_at));
            if !note_is_live(entry.1, now) {
                *entry = (note.value, expires_at);
            }
            entry.0.clone()
        });
        Box::pin(std::future::ready(kept))
    }
}

impl MemoryStorage {
    fn page(
        &self,
        bucket: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<KeyPage, StorageError> {
        let state = self.lock()?;
        let Some(entries) = state.buckets.get(bucket) else {
            return Ok(KeyPage::by_key(Vec::new(), false));
        };
        let after = cursor
            .map(|cursor| cursor.as_key("memory store"))
            .transpose()?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = entries.range::<str, _>((start, Bound::Unbounded));
        let entries: Vec<(String, Vec<u8>)> = page
            .by_ref()
            .take(limit.clamp(1, MAX_PAGE_SIZE))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let more = page.next().is_some();
        Ok(KeyPage::entries_by_key(entries, more))
    }
}
