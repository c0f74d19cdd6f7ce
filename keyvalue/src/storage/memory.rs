//! The in-memory backend: ordered maps behind a mutex, gone when the process exits.
//!
//! Keys are kept sorted, so listing pages by key like SQLite does: a cursor is the last key
//! returned, and keys added or removed during a listing never shift the pages.

use super::{Cursor, KeyPage, MAX_PAGE_SIZE, Storage, StorageError, incremented};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

/// A process-local [`Storage`]; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    // A std mutex: every critical section is a few map operations and never awaits.
    buckets: Mutex<HashMap<String, BTreeMap<String, Vec<u8>>>>,
}

type Buckets = HashMap<String, BTreeMap<String, Vec<u8>>>;

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Buckets>, StorageError> {
        self.buckets
            .lock()
            .map_err(|_| StorageError::Backend("in-memory store poisoned by a panic".into()))
    }
}

impl Storage for MemoryStorage {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .lock()?
            .get(bucket)
            .and_then(|entries| entries.get(key))
            .cloned())
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.lock()?
            .entry(bucket.to_string())
            .or_default()
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        if let Some(entries) = self.lock()?.get_mut(bucket) {
            entries.remove(key);
        }
        Ok(())
    }

    /// Under one lock: all of one moment.
    fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let buckets = self.lock()?;
        let entries = buckets.get(bucket);
        Ok(keys
            .iter()
            .map(|key| entries.and_then(|entries| entries.get(key)).cloned())
            .collect())
    }

    fn exists(&self, bucket: &str, key: &str) -> Result<bool, StorageError> {
        Ok(self
            .lock()?
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
        let mut buckets = self.lock()?;
        let entries = buckets.entry(bucket.to_string()).or_default();
        let current = entries.get(key).map(Vec::as_slice);
        let limit = limit.min(self.counter_limit());
        let (new, stored) = incremented(key, current, delta, limit)?;
        entries.insert(key.to_string(), stored);
        Ok(new)
    }

    fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<KeyPage, StorageError> {
        let buckets = self.lock()?;
        let Some(entries) = buckets.get(bucket) else {
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
        let mut buckets = self.lock()?;
        let target = buckets.entry(bucket.to_string()).or_default();
        for (key, value) in entries {
            target.insert(key.clone(), value.clone());
        }
        progress(entries.len());
        Ok(())
    }
}
