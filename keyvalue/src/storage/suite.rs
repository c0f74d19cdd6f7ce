//! The storage suite: what every [`Storage`] must do, as tests any crate can run against its own
//! store (`tally-keyvalue`'s feature `testing`; this crate runs it on memory and SQLite, and on
//! Redis with the `redis` feature).
//!
//! ```ignore
//! #[test]
//! fn my_store_passes_the_suite() {
//!     tally_keyvalue::storage::suite::run(|| MyStore::new());
//! }
//! ```
//!
//! [`run`] makes a fresh, empty store for each case with the function it is given, and runs the
//! cases that apply to what the store declares ([`Storage::capabilities`]): a store without
//! idempotency records is checked to refuse keys instead of being checked to apply them once.
//! A failing case panics with its name on standard error.

// A test that meets the unexpected should stop right there, loudly: unwrap is how it says so.
#![allow(clippy::unwrap_used)]

use super::{
    Answer, Capabilities, Capability, Cursor, IdempotencyKey, KeyPage, MAX_PAGE_SIZE, Note,
    Storage, StorageError, Transaction, Visitor, Write, WriteGroup, WriteRequest, Written,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Runs every case of the suite that applies to the stores `make` returns, each on a store of
/// its own. Panics (naming the case) at the first failure.
pub fn run<S: Storage>(mut make: impl FnMut() -> S) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the storage suite");
    for case in CASES {
        let store: Arc<dyn Storage> = Arc::new(make());
        let capabilities = store.capabilities();
        if !(case.applies)(capabilities) {
            eprintln!(
                "storage suite: {} (not for this store's capabilities)",
                case.name
            );
            continue;
        }
        eprintln!("storage suite: {}", case.name);
        (case.test)(&Blocking::new(store, runtime.handle().clone()));
    }
}

/// One case: its name, whether it applies to a store's capabilities, and the test.
struct Case {
    name: &'static str,
    applies: fn(Capabilities) -> bool,
    test: fn(&Blocking),
}

fn always(_: Capabilities) -> bool {
    true
}

fn records(capabilities: Capabilities) -> bool {
    capabilities.idempotency_records
}

fn groups(capabilities: Capabilities) -> bool {
    capabilities.write_groups
}

fn notes(capabilities: Capabilities) -> bool {
    capabilities.notes
}

fn key_order(capabilities: Capabilities) -> bool {
    capabilities.key_order
}

macro_rules! case {
    ($name:ident) => {
        case!($name, always)
    };
    ($name:ident, $applies:expr) => {
        Case {
            name: stringify!($name),
            applies: $applies,
            test: $name,
        }
    };
}

/// Every case, in the order [`run`] runs them.
const CASES: &[Case] = &[
    case!(set_get_overwrite),
    case!(get_many_reads_in_order),
    case!(get_many_reads_a_page),
    case!(delete_and_exists),
    case!(buckets_are_separate_or_refused),
    case!(increment_counts_in_decimal),
    case!(increment_overflow_changes_nothing),
    case!(increment_non_number_changes_nothing),
    case!(list_keys_pages_by_the_callers_limit),
    case!(listed_values_are_the_stored_values),
    case!(undeclared_abilities_are_refused),
    case!(increments_stop_at_the_requests_limit),
    case!(early_answers_then_durability),
    case!(a_live_store_is_ready),
    case!(list_keys_pages_through_everything),
    case!(listings_come_in_key_order, key_order),
    case!(scan_visits_everything_in_order),
    case!(list_keys_survives_concurrent_changes),
    case!(concurrent_increments_are_exact),
    case!(concurrent_increments_answer_in_one_order),
    case!(idempotent_writes_apply_once, records),
    case!(records_expire_at_their_instant, records),
    case!(purging_counts_what_it_deleted, records),
    case!(concurrent_retries_apply_once, records),
    case!(write_groups_are_all_or_nothing, groups),
    case!(write_groups_are_never_seen_in_part, groups),
    case!(write_groups_check_what_they_expect, groups),
    case!(transactions_commit_what_they_saw, groups),
    case!(the_first_note_kept_wins, notes),
    case!(notes_expire_and_are_purged, notes),
];

/// A store driven from plain (test) threads: each method runs the store's future to its end
/// on the suite's runtime. Clones share the store.
#[derive(Clone)]
pub(crate) struct Blocking {
    store: Arc<dyn Storage>,
    runtime: tokio::runtime::Handle,
}

impl Blocking {
    /// `store`, its futures run on `runtime`.
    pub(crate) fn new(store: Arc<dyn Storage>, runtime: tokio::runtime::Handle) -> Self {
        Self { store, runtime }
    }

    /// The store.
    pub(crate) fn store(&self) -> &dyn Storage {
        &*self.store
    }

    /// [`Storage::get`].
    pub(crate) fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.runtime.block_on(self.store.get(bucket, key))
    }

    /// [`Storage::get_many`].
    pub(crate) fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.runtime.block_on(self.store.get_many(bucket, keys))
    }

    /// [`Storage::exists`].
    pub(crate) fn exists(&self, bucket: &str, key: &str) -> Result<bool, StorageError> {
        self.runtime.block_on(self.store.exists(bucket, key))
    }

    /// [`Storage::list_keys`].
    pub(crate) fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<KeyPage, StorageError> {
        self.runtime
            .block_on(self.store.list_keys(bucket, cursor, limit))
    }

    /// [`Storage::scan`].
    pub(crate) fn scan(&self, bucket: &str, visit: &mut Visitor<'_>) -> Result<(), StorageError> {
        self.runtime.block_on(self.store.scan(bucket, visit))
    }

    /// [`Storage::check_bucket`].
    pub(crate) fn check_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        self.store.check_bucket(bucket)
    }

    /// [`Storage::check_ready`].
    pub(crate) fn check_ready(&self) -> Result<(), StorageError> {
        self.runtime.block_on(self.store.check_ready())
    }

    /// [`Storage::counter_limit`].
    pub(crate) fn counter_limit(&self) -> u64 {
        self.store.counter_limit()
    }

    /// [`Storage::purge_expired`].
    pub(crate) fn purge_expired(&self) -> Result<usize, StorageError> {
        self.runtime.block_on(self.store.purge_expired())
    }

    /// [`Storage::keep_note`].
    pub(crate) fn keep_note(&self, note: Note) -> Result<Vec<u8>, StorageError> {
        self.runtime.block_on(self.store.keep_note(note))
    }

    /// [`Storage::read_note`].
    pub(crate) fn read_note(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.runtime.block_on(self.store.read_note(name))
    }

    /// `request` through [`dyn Storage::submit`], once durable.
    pub(crate) fn write(&self, request: WriteRequest) -> Result<Written, StorageError> {
        self.runtime.block_on(self.store.submit_durable(request))
    }

    /// A [`Transaction`] over the store.
    pub(crate) fn transaction(&self) -> Transaction {
        Transaction::new(self.store.clone())
    }

    /// Runs `future` (a transaction's step) to its end.
    pub(crate) fn wait<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    /// `group` through [`dyn Storage::submit_group`].
    pub(crate) fn group(&self, group: WriteGroup) -> Result<Vec<u64>, StorageError> {
        self.runtime.block_on(self.store.submit_group(group))
    }

    /// Stores `value` under `key`.
    pub(crate) fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let write = Write::Set {
            key: key.into(),
            value: value.to_vec(),
        };
        self.write(WriteRequest::new(bucket, write)).map(|_| ())
    }

    /// Removes `key`.
    pub(crate) fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        let write = Write::Delete { key: key.into() };
        self.write(WriteRequest::new(bucket, write)).map(|_| ())
    }

    /// Adds `delta` to the counter under `key`: its new value.
    pub(crate) fn increment(
        &self,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, StorageError> {
        let write = Write::Increment {
            key: key.into(),
            delta,
        };
        self.write(WriteRequest::new(bucket, write))
            .map(|written| written.value)
    }
}

/// The tests' shorthand for what a request carries besides its write.
pub(crate) trait Carrying {
    /// With `key` as its idempotency key.
    fn with_idempotency_key(self, key: IdempotencyKey) -> Self;
    /// With records kept for `retention`.
    fn with_idempotency_retention(self, retention: Duration) -> Self;
    /// With increments limited to `limit`.
    fn with_increment_limit(self, limit: u64) -> Self;
}

impl Carrying for WriteRequest {
    fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    fn with_idempotency_retention(mut self, retention: Duration) -> Self {
        self.idempotency_retention = retention;
        self
    }

    fn with_increment_limit(mut self, limit: u64) -> Self {
        self.increment_limit = Some(limit);
        self
    }
}

/// A key the tests know to be valid.
fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
}

fn increment(key: &str, delta: u64) -> Write {
    Write::Increment {
        key: key.into(),
        delta,
    }
}

fn set(key: &str, value: &str) -> Write {
    Write::Set {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    }
}

/// Reads return what writes stored, and absent keys read as `None`.
fn set_get_overwrite(store: &Blocking) {
    assert_eq!(store.get("", "visits").unwrap(), None);
    store.set("", "visits", b"10").unwrap();
    assert_eq!(store.get("", "visits").unwrap(), Some(b"10".to_vec()));
    store.set("", "visits", b"11").unwrap();
    assert_eq!(store.get("", "visits").unwrap(), Some(b"11".to_vec()));
    store.set("", "binary", &[0, 255, 10]).unwrap();
    assert_eq!(store.get("", "binary").unwrap(), Some(vec![0, 255, 10]));
}

/// `get_many` answers every key in the order asked, `None` for absent ones, duplicates and
/// an empty list included.
fn get_many_reads_in_order(store: &Blocking) {
    store.set("", "a", b"1").unwrap();
    store.set("", "c", b"3").unwrap();
    let keys: Vec<String> = ["c", "b", "a", "c"].map(String::from).to_vec();
    assert_eq!(
        store.get_many("", &keys).unwrap(),
        vec![
            Some(b"3".to_vec()),
            None,
            Some(b"1".to_vec()),
            Some(b"3".to_vec())
        ]
    );
    assert_eq!(
        store.get_many("", &[]).unwrap(),
        Vec::<Option<Vec<u8>>>::new()
    );
}

/// Many keys in order (a listing's page, which SQLite reads with one range scan): absent
/// keys, repeats, keys between them that were not asked for, and a range so sparse that the
/// keys are looked up one by one instead; the answers are the same.
fn get_many_reads_a_page(store: &Blocking) {
    for n in (0..60_u32).filter(|n| !n.is_multiple_of(3)) {
        store
            .set("", &format!("k{n:02}"), n.to_string().as_bytes())
            .unwrap();
    }
    let expect = |keys: &[String]| -> Vec<Option<Vec<u8>>> {
        keys.iter()
            .map(|key| {
                let n: u32 = key[1..].parse().unwrap();
                (!n.is_multiple_of(3) && n < 60).then(|| n.to_string().into_bytes())
            })
            .collect()
    };
    // Every second key of the range, one of them twice.
    let mut keys: Vec<String> = (0..40).step_by(2).map(|n| format!("k{n:02}")).collect();
    keys.insert(5, keys[4].clone());
    assert_eq!(store.get_many("", &keys).unwrap(), expect(&keys));
    // 16 keys spread over a range of 59: too sparse for one scan.
    let sparse: Vec<String> = (0..16).map(|n| format!("k{:02}", n * 4 % 60)).collect();
    let mut sorted = sparse.clone();
    sorted.sort();
    assert_eq!(store.get_many("", &sorted).unwrap(), expect(&sorted));
    assert_eq!(store.get_many("", &sparse).unwrap(), expect(&sparse));
}

/// `delete` removes a key, `exists` follows it, and deleting an absent key succeeds.
fn delete_and_exists(store: &Blocking) {
    assert!(!store.exists("", "a").unwrap());
    store.set("", "a", b"1").unwrap();
    assert!(store.exists("", "a").unwrap());
    store.delete("", "a").unwrap();
    assert!(!store.exists("", "a").unwrap());
    assert_eq!(store.get("", "a").unwrap(), None);
    store.delete("", "a").unwrap();
}

/// The same key in two buckets holds two values; a backend that serves only the default
/// bucket refuses every operation on another one.
fn buckets_are_separate_or_refused(store: &Blocking) {
    store.set("", "k", b"1").unwrap();
    if store.check_bucket("other").is_err() {
        assert!(matches!(
            store.get("other", "k"),
            Err(StorageError::NoSuchBucket(_))
        ));
        assert!(matches!(
            store.set("other", "k", b"2"),
            Err(StorageError::NoSuchBucket(_))
        ));
        assert!(matches!(
            store.increment("other", "k", 1),
            Err(StorageError::NoSuchBucket(_))
        ));
        assert!(matches!(
            store.list_keys("other", None, MAX_PAGE_SIZE),
            Err(StorageError::NoSuchBucket(_))
        ));
        assert_eq!(store.get("", "k").unwrap(), Some(b"1".to_vec()));
        return;
    }
    store.set("other", "k", b"2").unwrap();
    assert_eq!(store.get("", "k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.get("other", "k").unwrap(), Some(b"2".to_vec()));
    assert_eq!(store.increment("other", "k", 5).unwrap(), 7);
    assert_eq!(store.get("", "k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        store.list_keys("", None, MAX_PAGE_SIZE).unwrap().keys,
        vec!["k".to_string()]
    );
    assert_eq!(
        store.list_keys("none", None, MAX_PAGE_SIZE).unwrap().keys,
        Vec::<String>::new()
    );
}

/// Increments start from 0, return the new value and store ASCII decimal.
fn increment_counts_in_decimal(store: &Blocking) {
    assert_eq!(store.increment("", "c", 1).unwrap(), 1);
    assert_eq!(store.increment("", "c", 9).unwrap(), 10);
    assert_eq!(store.increment("", "c", 0).unwrap(), 10);
    assert_eq!(store.get("", "c").unwrap(), Some(b"10".to_vec()));
    let limit = store.counter_limit();
    store
        .set("", "c", (limit - 1).to_string().as_bytes())
        .unwrap();
    assert_eq!(store.increment("", "c", 1).unwrap(), limit);
    assert_eq!(
        store.get("", "c").unwrap(),
        Some(limit.to_string().into_bytes())
    );
}

/// Overflow past `u64::MAX` is an error and leaves the value as it was.
fn increment_overflow_changes_nothing(store: &Blocking) {
    store.set("", "c", u64::MAX.to_string().as_bytes()).unwrap();
    match store.increment("", "c", 1) {
        Err(StorageError::Overflow {
            key,
            current,
            delta,
        }) => {
            assert_eq!((key.as_str(), current, delta), ("c", u64::MAX, 1));
        }
        other => panic!("expected an overflow error, got {other:?}"),
    }
    assert_eq!(
        store.get("", "c").unwrap(),
        Some(b"18446744073709551615".to_vec())
    );
    store.set("", "d", b"10").unwrap();
    assert!(matches!(
        store.increment("", "d", u64::MAX),
        Err(StorageError::Overflow { current: 10, .. })
    ));
    assert_eq!(store.get("", "d").unwrap(), Some(b"10".to_vec()));
}

/// A value that is not a decimal u64 is refused and left as it was.
fn increment_non_number_changes_nothing(store: &Blocking) {
    for bad in [&b"abc"[..], b"-1", b"1.5", b"", b" 7"] {
        store.set("", "c", bad).unwrap();
        assert!(
            matches!(store.increment("", "c", 1), Err(StorageError::NotANumber { ref key }) if key == "c"),
            "{bad:?}"
        );
        assert_eq!(store.get("", "c").unwrap(), Some(bad.to_vec()));
    }
}

/// A caller's page size is honoured (up to the maximum); SQLite and memory list in key
/// order, so their pages concatenate to the sorted keys.
fn list_keys_pages_by_the_callers_limit(store: &Blocking) {
    for key in ["b", "a", "d", "c", "e"] {
        store.set("", key, b"1").unwrap();
    }
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_keys("", cursor.as_ref(), 2).unwrap();
        pages.push(page.keys.clone());
        match page.cursor {
            None => break,
            next => cursor = next,
        }
    }
    let all: Vec<String> = pages.concat();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 5, "{pages:?}");
    // Never more than asked for: a host ends its client's page where the store's ends.
    assert!(pages.iter().all(|page| page.len() <= 2), "{pages:?}");
    if store.check_bucket("other").is_ok() {
        // SQLite and memory: exact pages in key order.
        assert_eq!(
            pages,
            [vec!["a", "b"], vec!["c", "d"], vec!["e"]],
            "{pages:?}"
        );
    }
    // A cursor some other store made is refused, not misread.
    let foreign = Cursor::from_bytes(vec![0xff, 0xfe]);
    assert!(store.list_keys("", Some(&foreign), 2).is_err());
}

/// A page that brings values ([`KeyPage::values`]) brings one per key, each the key's stored
/// value (a host answers `get-many` from them).
fn listed_values_are_the_stored_values(store: &Blocking) {
    for (key, value) in [("b", "20"), ("a", "10"), ("c", "30"), ("d", "not a number")] {
        store.set("", key, value.as_bytes()).unwrap();
    }
    let mut cursor = None;
    let mut listed = 0;
    loop {
        let page = store.list_keys("", cursor.as_ref(), 3).unwrap();
        if let Some(values) = &page.values {
            assert_eq!(values.len(), page.keys.len(), "{page:?}");
            for (key, value) in page.keys.iter().zip(values) {
                assert_eq!(Some(value), store.get("", key).unwrap().as_ref(), "{key}");
                listed += 1;
            }
        }
        match page.cursor {
            None => break,
            next => cursor = next,
        }
    }
    assert!(listed == 0 || listed == 4, "values for {listed} of 4 keys");
}

/// A store that is up says it is ready.
fn a_live_store_is_ready(store: &Blocking) {
    assert!(store.check_ready().is_ok());
}

/// Following cursors returns every key across several pages.
fn list_keys_pages_through_everything(store: &Blocking) {
    let count = 2 * MAX_PAGE_SIZE + 7;
    for i in 0..count {
        store.set("", &format!("key-{i:05}"), b"1").unwrap();
    }
    let (keys, pages) = list_all(store);
    assert!(pages >= 2, "{count} keys came in {pages} page(s)");
    let unique: BTreeSet<_> = keys.iter().cloned().collect();
    let expected: BTreeSet<_> = (0..count).map(|i| format!("key-{i:05}")).collect();
    assert_eq!(unique, expected);
}

/// A store that declares key order lists a bucket in byte order, across pages too, whatever
/// order the keys were written in (control characters and multi-byte UTF-8 included), so a host
/// may stop a listing once it has passed the keys it wants.
fn listings_come_in_key_order(store: &Blocking) {
    let mut written: Vec<String> = (0..MAX_PAGE_SIZE + 30)
        .map(|i| format!("k{:04}", (i * 7919) % (MAX_PAGE_SIZE + 30)))
        .collect();
    written.extend(["\u{1f}w\u{1f}a", "\u{1f}", "~", "é", "Z", "a b", "a"].map(String::from));
    for key in &written {
        store.set("", key, b"1").unwrap();
    }
    for limit in [1, 7, MAX_PAGE_SIZE] {
        let (mut keys, mut cursor) = (Vec::new(), None);
        loop {
            let page = store.list_keys("", cursor.as_ref(), limit).unwrap();
            keys.extend(page.keys);
            match page.cursor {
                None => break,
                next => cursor = next,
            }
        }
        let mut expected = written.clone();
        expected.sort();
        expected.dedup();
        assert_eq!(keys, expected, "pages of {limit}");
    }
}

/// `scan` visits every key once, in bytewise order, with its value, and stops on `Break`.
fn scan_visits_everything_in_order(store: &Blocking) {
    let count = 2 * MAX_PAGE_SIZE + 5;
    for i in (0..count).rev() {
        store
            .set("", &format!("k{i:05}"), i.to_string().as_bytes())
            .unwrap();
    }
    store.set("", "Z-upper", b"1").unwrap();
    store.set("", "ü-unicode", b"2").unwrap();
    let mut seen = Vec::new();
    store
        .scan("", &mut |key, value| {
            seen.push((key.to_string(), value.to_vec()));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let mut expected: Vec<_> = (0..count)
        .map(|i| (format!("k{i:05}"), i.to_string().into_bytes()))
        .collect();
    expected.insert(0, ("Z-upper".to_string(), b"1".to_vec()));
    expected.push(("ü-unicode".to_string(), b"2".to_vec()));
    assert_eq!(seen, expected);

    let mut visited = 0;
    store
        .scan("", &mut |_, _| {
            visited += 1;
            if visited == 3 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(visited, 3);
}

/// Keys present for the whole listing are listed even when others come and go meanwhile.
fn list_keys_survives_concurrent_changes(store: &Blocking) {
    let count = MAX_PAGE_SIZE + 10;
    for i in 0..count {
        store.set("", &format!("stable-{i}"), b"1").unwrap();
    }
    let first = store.list_keys("", None, MAX_PAGE_SIZE).unwrap();
    // Between pages: delete an already-listed key, add new ones, update a listed one.
    let listed_first = first.keys.first().cloned().unwrap();
    store.delete("", &listed_first).unwrap();
    for i in 0..50 {
        store.set("", &format!("newcomer-{i}"), b"1").unwrap();
    }
    store.set("", &first.keys[1], b"2").unwrap();
    let mut listed: BTreeSet<String> = first.keys.iter().cloned().collect();
    let mut cursor = first.cursor;
    while let Some(next) = cursor {
        let page = store.list_keys("", Some(&next), MAX_PAGE_SIZE).unwrap();
        listed.extend(page.keys);
        cursor = page.cursor;
    }
    let stable: BTreeSet<String> = (0..count)
        .map(|i| format!("stable-{i}"))
        .filter(|key| *key != listed_first)
        .collect();
    assert!(stable.is_subset(&listed), "a stable key was missed");
}

/// Threads incrementing one key concurrently lose no update.
fn concurrent_increments_are_exact(store: &Blocking) {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    store.increment("", "hits", 1).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.get("", "hits").unwrap(), Some(b"2000".to_vec()));
}

/// Concurrent increments of one counter by different amounts, among increments the rules refuse
/// (a value that is not a number, a request's limit) and increments of counters of their own,
/// come to one order: sorted, every answer is the one before it plus its caller's delta, the
/// last is the stored total, and nothing refused changed anything. (Stores that commit many
/// writes at once derive each caller's value from a batch's total: this checks the arithmetic.)
fn concurrent_increments_answer_in_one_order(store: &Blocking) {
    store.set("", "text", b"abc").unwrap();
    store.set("", "capped", b"5").unwrap();
    let limits = store.store().capabilities().increment_limits;
    let threads: Vec<_> = (1..=8u64)
        .map(|delta| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for round in 0..50 {
                    answers.push((store.increment("", "shared", delta).unwrap(), delta));
                    match delta {
                        1 => assert!(matches!(
                            store.increment("", "text", 1),
                            Err(StorageError::NotANumber { .. })
                        )),
                        2 if limits => assert!(matches!(
                            store.write(
                                WriteRequest::new("", increment("capped", 1))
                                    .with_increment_limit(5)
                            ),
                            Err(StorageError::Overflow { current: 5, .. })
                        )),
                        3 => assert_eq!(store.increment("", &format!("own{round}"), 7).unwrap(), 7),
                        _ => {}
                    }
                }
                answers
            })
        })
        .collect();
    let mut answers: Vec<(u64, u64)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    answers.sort_unstable();
    let mut previous = 0;
    for (value, delta) in &answers {
        assert_eq!(*value, previous + delta, "answers {answers:?}");
        previous = *value;
    }
    assert_eq!(previous, 50 * 36);
    assert_eq!(store.get("", "shared").unwrap(), Some(b"1800".to_vec()));
    assert_eq!(store.get("", "text").unwrap(), Some(b"abc".to_vec()));
    assert_eq!(store.get("", "capped").unwrap(), Some(b"5".to_vec()));
    assert_eq!(store.get("", "own49").unwrap(), Some(b"7".to_vec()));
}

fn list_all(store: &Blocking) -> (Vec<String>, usize) {
    let (mut keys, mut pages, mut cursor) = (Vec::new(), 0, None);
    loop {
        let page = store.list_keys("", cursor.as_ref(), MAX_PAGE_SIZE).unwrap();
        pages += 1;
        keys.extend(page.keys);
        match page.cursor {
            None => return (keys, pages),
            next => cursor = next,
        }
    }
}

/// What a store does not declare is refused before it sees it, with nothing written: a key on
/// a store without records, a limit below its own on a store without limits, a write group on a
/// store without groups.
fn undeclared_abilities_are_refused(store: &Blocking) {
    let capabilities = store.store().capabilities();
    store.set("", "u", b"5").unwrap();
    if !capabilities.idempotency_records {
        let keyed = WriteRequest::new("", increment("u", 1)).with_idempotency_key(key("k"));
        assert!(matches!(
            store.write(keyed),
            Err(StorageError::Unsupported(Capability::IdempotencyRecords))
        ));
    }
    if !capabilities.increment_limits {
        let limited = WriteRequest::new("", increment("u", 1)).with_increment_limit(10);
        assert!(matches!(
            store.write(limited),
            Err(StorageError::Unsupported(Capability::IncrementLimits))
        ));
    }
    if !capabilities.write_groups {
        let group = WriteGroup::new("", vec![increment("u", 1)]);
        assert!(matches!(
            store.group(group),
            Err(StorageError::Unsupported(Capability::WriteGroups))
        ));
    }
    if !capabilities.notes {
        assert!(matches!(
            store.keep_note(Note::new("n", "v")),
            Err(StorageError::Unsupported(Capability::Notes))
        ));
        assert!(matches!(
            store.read_note("n"),
            Err(StorageError::Unsupported(Capability::Notes))
        ));
    }
    assert_eq!(store.get("", "u").unwrap(), Some(b"5".to_vec()));
    // A limit at or above the store's own is the store's own: every store takes it.
    let own = WriteRequest::new("", increment("u", 1)).with_increment_limit(u64::MAX);
    assert_eq!(store.write(own).unwrap(), Written::applied(6));
}

/// An increment limited by its request (`WriteRequest::increment_limit`) stops at that limit
/// and a refused one writes nothing, on every store that declares limits; a limit at the
/// store's own is a plain increment on every store.
fn increments_stop_at_the_requests_limit(store: &Blocking) {
    let own = store.counter_limit();
    store
        .set("", "near", (own - 2).to_string().as_bytes())
        .unwrap();
    let limited = |name: &str, limit, delta| {
        store.write(WriteRequest::new("", increment(name, delta)).with_increment_limit(limit))
    };
    assert_eq!(limited("near", own, 1).unwrap().value, own - 1);
    assert_eq!(limited("near", own, 1).unwrap().value, own);
    assert!(matches!(
        limited("near", own, 1),
        Err(StorageError::Overflow { current, delta: 1, .. }) if current == own
    ));
    if !store.store().capabilities().increment_limits {
        return;
    }
    store.set("", "small", b"8").unwrap();
    assert_eq!(limited("small", 10, 2).unwrap().value, 10);
    assert!(matches!(
        limited("small", 10, 1),
        Err(StorageError::Overflow {
            current: 10,
            delta: 1,
            ..
        })
    ));
    assert!(matches!(
        limited("small", 12, 5),
        Err(StorageError::Overflow { current: 10, .. })
    ));
    assert_eq!(store.get("", "small").unwrap(), Some(b"10".to_vec()));
}

/// A write that asks to be answered when applied is answered with its outcome (a store that
/// cannot answer early answers when durable), and its durability completes afterwards; writes
/// answered one after another (a pipeline) add up in order and are all stored once durable. A
/// refused one is refused, and changes nothing.
fn early_answers_then_durability(store: &Blocking) {
    let runtime = &store.runtime;
    let early = |more_follow, write| {
        let request = WriteRequest::new("", write).with_answer(Answer::WhenApplied { more_follow });
        runtime.block_on(store.store().submit(request))
    };
    let first = early(true, increment("staged", 1)).unwrap();
    assert_eq!(first.written, Written::applied(1));
    let second = early(true, increment("staged", 2)).unwrap();
    assert_eq!(second.written, Written::applied(3));
    store.set("", "word", b"abc").unwrap();
    assert!(matches!(
        early(false, increment("word", 1)),
        Err(StorageError::NotANumber { .. })
    ));
    for applied in [first, second] {
        runtime.block_on(applied.durable()).unwrap();
    }
    assert_eq!(store.get("", "staged").unwrap(), Some(b"3".to_vec()));
    assert_eq!(store.get("", "word").unwrap(), Some(b"abc".to_vec()));
}

/// A write with an idempotency key is applied once: its retry (same key, same write) answers
/// the recorded outcome and applies nothing, the key with another write is refused and
/// changes nothing, a refused write records nothing (its retry runs again), an expired record
/// frees its key, and records never show up as keys.
fn idempotent_writes_apply_once(store: &Blocking) {
    let write = |name: &str, retention_ms: u64, write: Write| {
        store.write(
            WriteRequest::new("", write)
                .with_idempotency_key(key(name))
                .with_idempotency_retention(Duration::from_millis(retention_ms)),
        )
    };
    const DAY: u64 = 86_400_000;
    let paid = |delta| increment("paid", delta);
    assert_eq!(write("k1", DAY, paid(5)).unwrap(), Written::applied(5));
    assert_eq!(write("k1", DAY, paid(5)).unwrap(), Written::replayed(5));
    assert_eq!(write("k2", DAY, paid(1)).unwrap(), Written::applied(6));
    assert_eq!(write("k1", DAY, paid(5)).unwrap(), Written::replayed(5));
    assert_eq!(store.get("", "paid").unwrap(), Some(b"6".to_vec()));
    match write("k1", DAY, paid(7)) {
        Err(StorageError::IdempotencyKeyReused {
            key,
            recorded,
            requested,
        }) => {
            assert_eq!(key, "k1");
            assert_eq!(recorded, "increment \"paid\" by 5");
            assert_eq!(requested, "increment \"paid\" by 7");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get("", "paid").unwrap(), Some(b"6".to_vec()));
    assert_eq!(
        write("s1", DAY, set("paid", "40")).unwrap(),
        Written::applied(0)
    );
    assert_eq!(write("k2", DAY, paid(1)).unwrap(), Written::replayed(6));
    assert_eq!(
        write("s1", DAY, set("paid", "40")).unwrap(),
        Written::replayed(0)
    );
    assert_eq!(store.get("", "paid").unwrap(), Some(b"40".to_vec()));
    let delete = Write::Delete { key: "paid".into() };
    assert_eq!(
        write("d1", DAY, delete.clone()).unwrap(),
        Written::applied(0)
    );
    store.set("", "paid", b"3").unwrap();
    assert_eq!(write("d1", DAY, delete).unwrap(), Written::replayed(0));
    assert_eq!(store.get("", "paid").unwrap(), Some(b"3".to_vec()));

    // Refused: nothing recorded, so the retry after the repair is applied.
    store.set("", "word", b"abc").unwrap();
    assert!(matches!(
        write("w1", DAY, increment("word", 1)),
        Err(StorageError::NotANumber { .. })
    ));
    store.set("", "word", b"1").unwrap();
    assert_eq!(
        write("w1", DAY, increment("word", 1)).unwrap(),
        Written::applied(2)
    );

    // Expiry: the key is free again once its record expired, purged or not.
    assert_eq!(write("short", 1, paid(1)).unwrap(), Written::applied(4));
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(write("short", DAY, paid(2)).unwrap(), Written::applied(6));
    assert_eq!(write("k2", DAY, paid(1)).unwrap(), Written::replayed(6));

    assert_eq!(store.get("", "paid").unwrap(), Some(b"6".to_vec()));
    let (mut keys, _) = list_all(store);
    keys.sort();
    assert_eq!(keys, ["paid", "word"]);
}

/// A record kept for no time at all has expired the instant it is made: at its expiry instant
/// a record no longer counts, so the same keyed write right after it is applied again, not
/// replayed. Writes a few times, since each must land in the same millisecond as its record to
/// tell `>` from `>=`.
fn records_expire_at_their_instant(store: &Blocking) {
    for round in 1..=20_u64 {
        let written = store
            .write(
                WriteRequest::new("", increment("instant", 1))
                    .with_idempotency_key(key("at-once"))
                    .with_idempotency_retention(Duration::ZERO),
            )
            .unwrap();
        assert_eq!(written, Written::applied(round), "round {round}");
    }
}

/// Purging deletes only expired records and says how many: none while all are live, the
/// expired ones (and no live one) once they expired, none again after that.
fn purging_counts_what_it_deleted(store: &Blocking) {
    let keyed = |name: &str, retention| {
        store
            .write(
                WriteRequest::new("", increment("purged", 1))
                    .with_idempotency_key(key(name))
                    .with_idempotency_retention(retention),
            )
            .unwrap()
    };
    let day = Duration::from_secs(86_400);
    keyed("live", day);
    assert_eq!(store.purge_expired().unwrap(), 0);
    let expiring = Duration::from_millis(1);
    for name in ["e1", "e2", "e3"] {
        keyed(name, expiring);
    }
    std::thread::sleep(Duration::from_millis(30));
    let purged = store.purge_expired().unwrap();
    // A store that expires its records itself (Redis) has nothing left to purge, and says so;
    // the backends' own tests pin the count of those that purge.
    assert!(purged == 3 || purged == 0, "{purged}");
    assert_eq!(store.purge_expired().unwrap(), 0);
    assert_eq!(keyed("live", day), Written::replayed(1));
    assert_eq!(keyed("e1", day), Written::applied(5));
}

/// The first note kept under a name holds it: every later keep answers its value, from any
/// thread at once too. Notes are not keys: no listing or read of the bucket shows one.
fn the_first_note_kept_wins(store: &Blocking) {
    assert_eq!(store.read_note("cursor-key").unwrap(), None);
    assert_eq!(
        store.keep_note(Note::new("cursor-key", "first")).unwrap(),
        b"first"
    );
    assert_eq!(
        store.keep_note(Note::new("cursor-key", "second")).unwrap(),
        b"first"
    );
    assert_eq!(
        store.read_note("cursor-key").unwrap(),
        Some(b"first".to_vec())
    );
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || store.keep_note(Note::new("race", vec![n])).unwrap())
        })
        .collect();
    let kept: BTreeSet<Vec<u8>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        store.read_note("race").unwrap(),
        kept.into_iter().next(),
        "the value every keep answered is the one kept"
    );
    assert_eq!(store.get("", "cursor-key").unwrap(), None);
    assert_eq!(
        store.list_keys("", None, 10).unwrap().keys,
        Vec::<String>::new()
    );
}

/// A note kept for a while reads as absent once it expired, may be kept anew then, and is
/// purged (by a store that purges; Redis expires its own); one kept for good stays.
fn notes_expire_and_are_purged(store: &Blocking) {
    let brief = Duration::from_millis(20);
    store
        .keep_note(Note::new("scan:1", "a").expiring_after(brief))
        .unwrap();
    store.keep_note(Note::new("kept", "k")).unwrap();
    assert_eq!(store.read_note("scan:1").unwrap(), Some(b"a".to_vec()));
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(store.read_note("scan:1").unwrap(), None);
    assert_eq!(
        store
            .keep_note(Note::new("scan:1", "b").expiring_after(brief))
            .unwrap(),
        b"b"
    );
    std::thread::sleep(Duration::from_millis(60));
    let purged = store.purge_expired().unwrap();
    assert!(purged <= 1, "{purged}");
    assert_eq!(store.purge_expired().unwrap(), 0);
    assert_eq!(store.read_note("kept").unwrap(), Some(b"k".to_vec()));
}

/// Threads sending the same keyed increment at once apply it once: one is applied, every
/// other one is its replay.
fn concurrent_retries_apply_once(store: &Blocking) {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|n| {
                        let request = WriteRequest::new("", increment("once", 1))
                            .with_idempotency_key(key(&format!("retry-{n}")));
                        usize::from(!store.write(request).unwrap().replayed)
                    })
                    .sum::<usize>()
            })
        })
        .collect();
    let applied: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(applied, 20);
    assert_eq!(store.get("", "once").unwrap(), Some(b"20".to_vec()));
}

/// A write group applies in order, each write seeing the ones before it, and answers each
/// outcome; one refused write (not a number, overflow) leaves every counter of the group as it
/// was; an empty group is nothing.
fn write_groups_are_all_or_nothing(store: &Blocking) {
    store.set("", "a", b"5").unwrap();
    let group = WriteGroup::new(
        "",
        vec![
            increment("a", 1),
            set("b", "10"),
            increment("b", 5),
            Write::Delete { key: "a".into() },
            increment("a", 2),
        ],
    );
    assert_eq!(store.group(group).unwrap(), vec![6, 0, 15, 0, 2]);
    assert_eq!(store.get("", "a").unwrap(), Some(b"2".to_vec()));
    assert_eq!(store.get("", "b").unwrap(), Some(b"15".to_vec()));

    store.set("", "word", b"abc").unwrap();
    let refused = WriteGroup::new(
        "",
        vec![increment("a", 1), set("c", "1"), increment("word", 1)],
    );
    assert!(matches!(
        store.group(refused),
        Err(StorageError::NotANumber { ref key }) if key == "word"
    ));
    let limit = store.counter_limit();
    let overflowing = WriteGroup::new(
        "",
        vec![
            Write::Delete { key: "b".into() },
            increment("a", 1),
            increment("a", limit),
        ],
    );
    assert!(matches!(
        store.group(overflowing),
        Err(StorageError::Overflow { current: 3, .. })
    ));
    assert_eq!(store.get("", "a").unwrap(), Some(b"2".to_vec()));
    assert_eq!(store.get("", "b").unwrap(), Some(b"15".to_vec()));
    assert_eq!(store.get("", "c").unwrap(), None);
    assert_eq!(store.get("", "word").unwrap(), Some(b"abc".to_vec()));
    assert_eq!(
        store.group(WriteGroup::new("", Vec::new())).unwrap(),
        Vec::<u64>::new()
    );
}

/// A reader running beside a large write group never sees a part of it, and afterwards every
/// write of the group is there.
fn write_groups_are_never_seen_in_part(store: &Blocking) {
    store.set("", "k00000", b"1").unwrap();
    let writes: Vec<Write> = (0..10_000)
        .map(|i| set(&format!("k{i:05}"), &(i * 3).to_string()))
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut partial_seen = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                // The last entry is checked second: if the first is already new, so is it.
                let first_new = store.get("", "k00001").unwrap().is_some();
                let last_new = store.get("", "k09999").unwrap().is_some();
                if first_new && !last_new {
                    partial_seen += 1;
                }
            }
            partial_seen
        })
    };
    store.group(WriteGroup::new("", writes)).unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        reader.join().unwrap(),
        0,
        "a reader saw part of a write group"
    );
    assert_eq!(store.get("", "k00000").unwrap(), Some(b"0".to_vec()));
    assert_eq!(store.get("", "k09999").unwrap(), Some(b"29997".to_vec()));
    assert_eq!(list_all(store).0.len(), 10_000);
}

/// A group applies only while the keys it expects hold what it expects (absent included);
/// otherwise it fails with a conflict naming the key and applies nothing.
fn write_groups_check_what_they_expect(store: &Blocking) {
    store.set("", "a", b"5").unwrap();
    let expecting = |a: &[u8]| {
        WriteGroup::new("", vec![increment("a", 1), set("x", "1")])
            .expecting("a", Some(a.to_vec()))
            .expecting("never", None)
    };
    assert_eq!(store.group(expecting(b"5")).unwrap(), vec![6, 0]);
    assert!(matches!(
        store.group(expecting(b"5")),
        Err(StorageError::Conflict { ref key }) if key == "a"
    ));
    assert_eq!(store.get("", "a").unwrap(), Some(b"6".to_vec()));
    store.delete("", "x").unwrap();
    let present = WriteGroup::new("", vec![set("x", "2")]).expecting("a", None);
    assert!(matches!(
        store.group(present),
        Err(StorageError::Conflict { ref key }) if key == "a"
    ));
    assert_eq!(store.get("", "x").unwrap(), None);
    // Expectations alone: a check of one consistent view.
    let only = |a: &[u8]| WriteGroup::new("", Vec::new()).expecting("a", Some(a.to_vec()));
    assert_eq!(store.group(only(b"6")).unwrap(), Vec::<u64>::new());
    assert!(matches!(
        store.group(only(b"7")),
        Err(StorageError::Conflict { .. })
    ));
}

/// A transaction's writes are its own until it commits (its reads see them, the store does
/// not), commit applies exactly what it answered, and a write by someone else to a key it read
/// makes the commit a conflict that applies nothing.
fn transactions_commit_what_they_saw(store: &Blocking) {
    store.set("", "t", b"10").unwrap();
    let transaction = store.transaction();
    let write = |write: Write| {
        let request = WriteRequest::new("", write).with_increment_limit(12);
        store
            .wait(transaction.write(request))
            .map(|applied| applied.written.value)
    };
    assert_eq!(write(increment("t", 1)).unwrap(), 11);
    assert_eq!(write(increment("u", 4)).unwrap(), 4);
    assert!(matches!(
        write(increment("t", 5)),
        Err(StorageError::Overflow { current: 11, .. })
    ));
    assert_eq!(write(set("s", "7")).unwrap(), 0);
    assert_eq!(
        store.wait(transaction.get("", "t")).unwrap(),
        Some(b"11".to_vec())
    );
    assert_eq!(store.get("", "t").unwrap(), Some(b"10".to_vec()));
    assert_eq!(store.get("", "u").unwrap(), None);
    assert_eq!(store.wait(transaction.commit()).unwrap(), vec![11, 4, 0]);
    assert_eq!(store.get("", "t").unwrap(), Some(b"11".to_vec()));
    assert_eq!(store.get("", "u").unwrap(), Some(b"4".to_vec()));
    assert_eq!(store.get("", "s").unwrap(), Some(b"7".to_vec()));

    let transaction = store.transaction();
    let request = WriteRequest::new("", increment("t", 1));
    assert_eq!(
        store
            .wait(transaction.write(request))
            .unwrap()
            .written
            .value,
        12
    );
    store.increment("", "t", 100).unwrap();
    assert!(matches!(
        store.wait(transaction.commit()),
        Err(StorageError::Conflict { ref key }) if key == "t"
    ));
    assert_eq!(store.get("", "t").unwrap(), Some(b"111".to_vec()));
}
