//! The in-memory backend: ordered maps behind a mutex, gone when the process exits.
//!
//! Keys are kept sorted, so listing pages by key like SQLite does: a cursor is the last key
//! returned, and keys added or removed during a listing never shift the pages. Every write,
//! with its idempotency record, and every write group happen under the one lock, which is never
//! held across an await: so it declares every capability.

use super::{
    Applied, Capabilities, Cursor, IdempotencyKey, KeyPage, MAX_PAGE_SIZE, Note, Storage,
    StorageError, StoreFuture, Write, WriteGroup, WriteRequest, Written, idempotency, incremented,
};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

/// A process-local [`Storage`]; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    // A std mutex: every critical section is a few map operations and never awaits.
    state: Mutex<State>,
}

type Entries = BTreeMap<String, Vec<u8>>;

/// Everything the store holds, under one lock.
#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, Entries>,
    /// Idempotency records by key: fingerprint, outcome, expiry (ms since the Unix epoch).
    records: HashMap<IdempotencyKey, (String, u64, i64)>,
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
            .map_err(|_| StorageError::Backend("in-memory store poisoned by a panic".into()))
    }

    /// `request` under the lock: looked up, applied and recorded in one step.
    fn apply(&self, request: WriteRequest) -> Result<Written, StorageError> {
        let mut state = self.lock()?;
        let limit = request.limit_within(u64::MAX);
        let Some(key) = request.idempotency_key else {
            let entries = state.buckets.entry(request.bucket).or_default();
            return apply_in(entries, request.write, limit).map(Written::applied);
        };
        let fingerprint = idempotency::fingerprint(&request.bucket, &request.write);
        let now = idempotency::now_millis();
        let recorded = state
            .records
            .get(&key)
            .filter(|(_, _, expires_at)| idempotency::is_live(*expires_at, now))
            .map(|(fingerprint, outcome, _)| (fingerprint.as_str(), *outcome));
        if let Some(outcome) = idempotency::replay_or_apply(&key, recorded, &fingerprint)? {
            return Ok(Written::replayed(outcome));
        }
        let entries = state.buckets.entry(request.bucket).or_default();
        let value = apply_in(entries, request.write, limit)?;
        let expires_at = idempotency::expires_at(request.idempotency_retention);
        state.records.insert(key, (fingerprint, value, expires_at));
        Ok(Written::applied(value))
    }

    /// Every write of `group` in order, undone as a whole when one is refused.
    fn apply_group(&self, group: WriteGroup) -> Result<Vec<u64>, StorageError> {
        let mut state = self.lock()?;
        let entries = state.buckets.entry(group.bucket).or_default();
        let limit = group.increment_limit.unwrap_or(u64::MAX);
        for expected in &group.expected {
            expected.check(entries.get(&expected.key).map(Vec::as_slice))?;
        }
        // The first value each key had, to put back should a later write be refused.
        let mut before: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        let mut outcomes = Vec::with_capacity(group.writes.len());
        for write in group.writes {
            let key = write.key().to_string();
            let previous = entries.get(&key).cloned();
            before.entry(key).or_insert(previous);
            match apply_in(entries, write, limit) {
                Ok(outcome) => outcomes.push(outcome),
                Err(refused) => {
                    for (key, value) in before {
                        match value {
                            Some(value) => entries.insert(key, value),
                            None => entries.remove(&key),
                        };
                    }
                    return Err(refused);
                }
            }
        }
        Ok(outcomes)
    }
}

impl Storage for MemoryStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_idempotency_records()
            .with_write_groups()
            .with_increment_limits()
            .with_notes()
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
            self.apply(request).map(Applied::durable_now),
        ))
    }

    fn write_group(&self, group: WriteGroup) -> StoreFuture<'_, Vec<u64>> {
        Box::pin(std::future::ready(self.apply_group(group)))
    }

    fn purge_expired(&self) -> StoreFuture<'_, usize> {
        let purged = self.lock().map(|mut state| {
            let before = state.records.len() + state.notes.len();
            let now = idempotency::now_millis();
            state
                .records
                .retain(|_, (_, _, expires_at)| idempotency::is_live(*expires_at, now));
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

/// `write` on one bucket's entries (under the store's lock, held by the caller), an increment
/// stopping at `limit`: the new value for an increment, 0 otherwise.
fn apply_in(entries: &mut Entries, write: Write, limit: u64) -> Result<u64, StorageError> {
    match write {
        Write::Increment { key, delta } => {
            let current = entries.get(&key).map(Vec::as_slice);
            let (new, stored) = incremented(&key, current, delta, limit)?;
            entries.insert(key, stored);
            Ok(new)
        }
        Write::Set { key, value } => {
            entries.insert(key, value);
            Ok(0)
        }
        Write::Delete { key } => {
            entries.remove(&key);
            Ok(0)
        }
    }
}
