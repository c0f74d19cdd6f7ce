//! The in-memory backend: a map behind a mutex, gone when the process exits.
//!
//! It keeps the same listing contract as SQLite (a stable order, cursors that survive concurrent
//! inserts and deletes) by giving every inserted key a sequence number, like SQLite's rowid.

use super::{KeyPage, LIST_PAGE_SIZE, Storage, StorageError, incremented};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

/// A process-local [`Storage`]; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    // A std mutex: every critical section is a few map operations and never awaits.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, Bucket>,
    last_sequence: u64,
}

#[derive(Debug, Default)]
struct Bucket {
    entries: HashMap<String, Entry>,
    /// Keys by insertion sequence: the listing order, and what a cursor points into.
    by_sequence: BTreeMap<u64, String>,
}

#[derive(Debug)]
struct Entry {
    sequence: u64,
    value: Vec<u8>,
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

impl State {
    fn put(&mut self, bucket: &str, key: &str, value: Vec<u8>) {
        let bucket = self.buckets.entry(bucket.to_string()).or_default();
        if let Some(entry) = bucket.entries.get_mut(key) {
            entry.value = value;
            return;
        }
        self.last_sequence += 1;
        let sequence = self.last_sequence;
        bucket.by_sequence.insert(sequence, key.to_string());
        bucket
            .entries
            .insert(key.to_string(), Entry { sequence, value });
    }
}

impl Storage for MemoryStorage {
    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let state = self.lock()?;
        Ok(state
            .buckets
            .get(bucket)
            .and_then(|b| b.entries.get(key))
            .map(|entry| entry.value.clone()))
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.lock()?.put(bucket, key, value.to_vec());
        Ok(())
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        let mut state = self.lock()?;
        if let Some(bucket) = state.buckets.get_mut(bucket)
            && let Some(entry) = bucket.entries.remove(key)
        {
            bucket.by_sequence.remove(&entry.sequence);
        }
        Ok(())
    }

    fn exists(&self, bucket: &str, key: &str) -> Result<bool, StorageError> {
        let state = self.lock()?;
        Ok(state
            .buckets
            .get(bucket)
            .is_some_and(|b| b.entries.contains_key(key)))
    }

    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, StorageError> {
        let state = self.lock()?;
        let Some(bucket) = state.buckets.get(bucket) else {
            return Ok(KeyPage {
                keys: Vec::new(),
                cursor: None,
            });
        };
        let start = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = bucket.by_sequence.range((start, Bound::Unbounded));
        let mut keys = Vec::new();
        let mut last = None;
        for (sequence, key) in page.by_ref().take(LIST_PAGE_SIZE) {
            keys.push(key.clone());
            last = Some(*sequence);
        }
        let more = page.next().is_some();
        Ok(KeyPage {
            keys,
            cursor: if more { last } else { None },
        })
    }

    fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, StorageError> {
        let mut state = self.lock()?;
        let current = state
            .buckets
            .get(bucket)
            .and_then(|b| b.entries.get(key))
            .map(|entry| entry.value.as_slice());
        let (new, stored) = incremented(key, current, delta)?;
        state.put(bucket, key, stored);
        Ok(new)
    }

    /// Atomic because the whole update happens under the one lock, which cannot fail halfway.
    fn set_many(
        &self,
        bucket: &str,
        entries: &[(String, Vec<u8>)],
        progress: &mut dyn FnMut(usize),
    ) -> Result<(), StorageError> {
        let mut state = self.lock()?;
        for (key, value) in entries {
            state.put(bucket, key, value.clone());
        }
        progress(entries.len());
        Ok(())
    }
}
