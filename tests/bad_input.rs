//! Bad input through the real component: every refusal is typed, and the store is left unchanged.

use crate::common::Answer as _;
use crate::common::{TempDb, block_on, restart, start_with};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tally::CounterError;
use tally_keyvalue::storage::{
    Applied, Capabilities, Cursor, KeyPage, MemoryStorage, Storage, StoreFuture, WriteRequest,
};

/// Incrementing a counter at `u64::MAX` is an overflow error and the stored value stays.
#[test]
fn overflow_is_refused_and_changes_nothing() {
    let db = TempDb::new();
    let (_runtime, mut counter) = restart(&db.path);
    block_on(counter.set("big", u64::MAX))
        .answer()
        .unwrap()
        .unwrap();
    assert_eq!(
        block_on(counter.increment("big", 1)).answer().unwrap(),
        Err(CounterError::Overflow("big".into()))
    );
    block_on(counter.set("ten", 10)).answer().unwrap().unwrap();
    assert_eq!(
        block_on(counter.increment("ten", u64::MAX - 9))
            .answer()
            .unwrap(),
        Err(CounterError::Overflow("ten".into()))
    );
    let (_runtime, mut counter) = restart(&db.path);
    assert_eq!(block_on(counter.get("big")).answer().unwrap(), Ok(u64::MAX));
    assert_eq!(block_on(counter.get("ten")).answer().unwrap(), Ok(10));
    assert_eq!(db.raw_value("big"), Some(b"18446744073709551615".to_vec()));
    // The largest increment that fits still works.
    assert_eq!(
        block_on(counter.increment("ten", u64::MAX - 10))
            .answer()
            .unwrap(),
        Ok(u64::MAX)
    );
}

/// A value written as `abc` straight into the SQLite file reads as a corrupt value, for `get`,
/// `increment` and `list` alike, and is not overwritten.
#[test]
fn non_decimal_stored_value_is_corrupt() {
    let db = TempDb::new();
    let (_runtime, mut counter) = restart(&db.path);
    block_on(counter.set("fine", 3)).answer().unwrap().unwrap();
    db.write_raw("visits", "abc");
    let corrupt = Err(CounterError::CorruptValue("visits".into()));
    assert_eq!(block_on(counter.get("visits")).answer().unwrap(), corrupt);
    assert_eq!(
        block_on(counter.increment("visits", 1)).answer().unwrap(),
        corrupt
    );
    assert_eq!(
        block_on(counter.list()).answer().unwrap(),
        Err(CounterError::CorruptValue("visits".into()))
    );
    assert_eq!(db.raw_value("visits"), Some(b"abc".to_vec()));
    // `set` repairs it.
    block_on(counter.set("visits", 7))
        .answer()
        .unwrap()
        .unwrap();
    assert_eq!(
        block_on(counter.increment("visits", 1)).answer().unwrap(),
        Ok(8)
    );
}

/// Counts every storage call, to prove which calls reached the store.
#[derive(Default)]
struct CountingStorage {
    inner: MemoryStorage,
    calls: AtomicUsize,
}

impl CountingStorage {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl Storage for CountingStorage {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.count();
        self.inner.get(bucket, key)
    }
    fn get_many<'a>(
        &'a self,
        bucket: &'a str,
        keys: &'a [String],
    ) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        self.count();
        self.inner.get_many(bucket, keys)
    }
    fn exists<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, bool> {
        self.count();
        self.inner.exists(bucket, key)
    }
    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, KeyPage> {
        self.count();
        self.inner.list_keys(bucket, cursor, limit)
    }
    fn write(&self, request: WriteRequest) -> StoreFuture<'_, Applied> {
        self.count();
        self.inner.write(request)
    }
}

/// Invalid names are refused by the component before any storage call is made.
#[test]
fn invalid_names_never_reach_the_store() {
    let storage = Arc::new(CountingStorage::default());
    let (_runtime, mut counter) = start_with(storage.clone());
    let too_long = "x".repeat(257);
    for name in [
        "",
        too_long.as_str(),
        "new\nline",
        "nul\0",
        "esc\u{1b}[31m",
        "c1\u{9b}",
    ] {
        let refused = |result: Result<_, CounterError>| {
            assert!(
                matches!(result, Err(CounterError::InvalidName(_))),
                "{name:?}"
            );
        };
        refused(block_on(counter.get(name)).answer().unwrap());
        refused(block_on(counter.increment(name, 1)).answer().unwrap());
        refused(block_on(counter.set(name, 1)).answer().unwrap().map(|()| 0));
        refused(block_on(counter.reset(name)).answer().unwrap().map(|()| 0));
    }
    assert_eq!(storage.calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        block_on(counter.get("")).answer().unwrap(),
        Err(CounterError::InvalidName(
            "a counter name must not be empty".into()
        ))
    );
    // A valid name at the 256-byte limit does reach the store.
    let longest = "y".repeat(256);
    assert_eq!(
        block_on(counter.increment(&longest, 2)).answer().unwrap(),
        Ok(2)
    );
    assert!(storage.calls.load(Ordering::SeqCst) > 0);
}
