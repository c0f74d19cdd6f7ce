//! The in-memory backend: ordered maps behind a mutex, gone when the process exits.
//!
//! Keys are kept sorted, so listing pages by key like SQLite does: a cursor is the last key
//! returned, and keys added or removed during a listing never shift the pages. Writes with an
//! idempotency key are looked up, applied and recorded under the same lock.

use super::{
    Cursor, IdempotencyKey, IdempotentFuture, KeyPage, MAX_PAGE_SIZE, Storage, StorageError, Write,
    WriteContext, Written, idempotency, incremented, write_without_key,
};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

/// A process-local [`Storage`]; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    // A std mutex: every critical section is a few map operations and never awaits.
    state: Mutex<State>,
}

type Buckets = HashMap<String, BTreeMap<String, Vec<u8>>>;

/// Everything the store holds, under one lock.
#[derive(Debug, Default)]
struct State {
    buckets: Buckets,
    /// Idempotency records by key: fingerprint, outcome, expiry (ms since the Unix epoch).
    records: HashMap<IdempotencyKey, (String, u64, i64)>,
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
}

impl Storage for MemoryStorage {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .lock()?
            .buckets
            .get(bucket)
            .and_then(|entries| entries.get(key))
            .cloned())
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let write = Write::Set {
            key: key.to_string(),
            value: value.to_vec(),
        };
        apply_in(&mut self.lock()?.buckets, bucket, write, u64::MAX).map(|_| ())
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        let write = Write::Delete {
            key: key.to_string(),
        };
        apply_in(&mut self.lock()?.buckets, bucket, write, u64::MAX).map(|_| ())
    }

    /// Under one lock: all of one moment.
    fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let state = self.lock()?;
        let entries = state.buckets.get(bucket);
        Ok(keys
            .iter()
            .map(|key| entries.and_then(|entries| entries.get(key)).cloned())
            .collect())
    }

    fn exists(&self, bucket: &str, key: &str) -> Result<bool, StorageError> {
        Ok(self
            .lock()?
            .buckets
            .get(bucket)
            .is_some_and(|entries| entries.contains_key(key)))
    }

    fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, StorageError> {
        self.increment_within(bucket, key, delta, self.counter_limit())
    }

    fn increment_within(
        &self,
        bucket: &str,
        key: &str,
        delta: u64,
        limit: u64,
    ) -> Result<u64, StorageError> {
        let write = Write::Increment {
            key: key.to_string(),
            delta,
        };
        apply_in(&mut self.lock()?.buckets, bucket, write, limit)
    }

    /// Looked up, applied and recorded under the one lock.
    fn write_idempotent(
        self: Arc<Self>,
        context: WriteContext,
        bucket: String,
        write: Write,
    ) -> IdempotentFuture {
        let Some(key) = context.idempotency_key.clone() else {
            return write_without_key(self, context, bucket, write);
        };
        let outcome = self.lock().and_then(|mut state| {
            let fingerprint = idempotency::fingerprint(&bucket, &write);
            let now = idempotency::now_millis();
            let recorded = state
                .records
                .get(&key)
                .filter(|(_, _, expires_at)| *expires_at > now)
                .map(|(fingerprint, outcome, _)| (fingerprint.as_str(), *outcome));
            if let Some(outcome) = idempotency::replay_or_apply(&key, recorded, &fingerprint)? {
                return Ok(Written::replayed(outcome));
            }
            let limit = context.increment_limit.unwrap_or(u64::MAX);
            let value = apply_in(&mut state.buckets, &bucket, write, limit)?;
            let expires_at = idempotency::expires_at(context.idempotency_retention);
            state.records.insert(key, (fingerprint, value, expires_at));
            Ok(Written::applied(value))
        });
        Box::pin(std::future::ready(outcome))
    }

    fn purge_idempotency_records(&self) -> Result<usize, StorageError> {
        let mut state = self.lock()?;
        let before = state.records.len();
        let now = idempotency::now_millis();
        state
            .records
            .retain(|_, (_, _, expires_at)| *expires_at > now);
        Ok(before - state.records.len())
    }

    fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<KeyPage, StorageError> {
        let state = self.lock()?;
        let Some(entries) = state.buckets.get(bucket) else {
            return Ok(KeyPage {
                keys: Vec::new(),
                cursor: None,
            });
        };
        let after = cursor
            .map(|cursor| cursor.as_key("memory store"))
            .transpose()?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = entries.range::<str, _>((start, Bound::Unbounded));
        let keys: Vec<String> = page
            .by_ref()
            .take(limit.clamp(1, MAX_PAGE_SIZE))
            .map(|(key, _)| key.clone())
            .collect();
        let more = page.next().is_some();
        Ok(KeyPage::by_key(keys, more))
    }

    /// Atomic because the whole update happens under the one lock, which cannot fail halfway.
    fn set_many(
        &self,
        bucket: &str,
        entries: &[(String, Vec<u8>)],
        progress: &mut dyn FnMut(usize),
    ) -> Result<(), StorageError> {
        let mut state = self.lock()?;
        let target = state.buckets.entry(bucket.to_string()).or_default();
        for (key, value) in entries {
            target.insert(key.clone(), value.clone());
        }
        progress(entries.len());
        Ok(())
    }
}

/// `write` under the store's lock (held by the caller), an increment stopping at `limit`: the
/// new value for an increment, 0 otherwise.
fn apply_in(
    buckets: &mut Buckets,
    bucket: &str,
    write: Write,
    limit: u64,
) -> Result<u64, StorageError> {
    match write {
        Write::Increment { key, delta } => {
            let entries = buckets.entry(bucket.to_string()).or_default();
            let current = entries.get(&key).map(Vec::as_slice);
            let (new, stored) = incremented(&key, current, delta, limit)?;
            entries.insert(key, stored);
            Ok(new)
        }
        Write::Set { key, value } => {
            buckets
                .entry(bucket.to_string())
                .or_default()
                .insert(key, value);
            Ok(0)
        }
        Write::Delete { key } => {
            if let Some(entries) = buckets.get_mut(bucket) {
                entries.remove(&key);
            }
            Ok(0)
        }
    }
}
