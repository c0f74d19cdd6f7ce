//! One behavioural suite for every [`Storage`] backend, run against each through `backend_suite!`,
//! plus checks that only make sense for SQLite (files, pragmas, other processes' connections).
//! It needs every backend: `cargo test -p tally-keyvalue --all-features`.
#![cfg(all(feature = "sqlite", feature = "memory", feature = "redis"))]

use super::*;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A key the tests know to be valid.
fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
}

/// The shared suite: each function takes a fresh, empty store.
mod suite {
    use super::*;

    /// Reads return what writes stored, and absent keys read as `None`.
    pub fn set_get_overwrite(store: &dyn Storage) {
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
    pub fn get_many_reads_in_order(store: &dyn Storage) {
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
    pub fn get_many_reads_a_page(store: &dyn Storage) {
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
    pub fn delete_and_exists(store: &dyn Storage) {
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
    pub fn buckets_are_separate_or_refused(store: &dyn Storage) {
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
    pub fn increment_counts_in_decimal(store: &dyn Storage) {
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
    pub fn increment_overflow_changes_nothing(store: &dyn Storage) {
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
    pub fn increment_non_number_changes_nothing(store: &dyn Storage) {
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
    pub fn list_keys_pages_by_the_callers_limit(store: &dyn Storage) {
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

    /// Writes through `write_async` (what the wasi glue calls) land like the blocking methods,
    /// and a write carrying an idempotency key is refused by every backend that cannot record
    /// one, with nothing written.
    pub fn write_async_applies_and_refuses_idempotency_keys(store: Arc<dyn Storage>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let write = |context: WriteContext, write: Write| {
            runtime.block_on(store.clone().write_async(context, String::new(), write))
        };
        let increment = |delta| Write::Increment {
            key: "w".into(),
            delta,
        };
        assert_eq!(write(WriteContext::default(), increment(5)).unwrap(), 5);
        assert_eq!(write(WriteContext::default(), increment(1)).unwrap(), 6);
        let value = Write::Set {
            key: "s".into(),
            value: b"9".to_vec(),
        };
        assert_eq!(write(WriteContext::default(), value).unwrap(), 0);
        assert_eq!(store.get("", "s").unwrap(), Some(b"9".to_vec()));
        assert_eq!(
            write(WriteContext::default(), Write::Delete { key: "s".into() }).unwrap(),
            0
        );
        assert_eq!(store.get("", "s").unwrap(), None);
        let keyed = WriteContext::default().with_idempotency_key(key("retry-1"));
        assert!(matches!(
            write(keyed, increment(1)),
            Err(StorageError::IdempotencyUnsupported)
        ));
        assert_eq!(store.get("", "w").unwrap(), Some(b"6".to_vec()));
    }

    /// A write with an idempotency key is applied once: its retry (same key, same write) answers
    /// the recorded outcome and applies nothing, the key with another write is refused and
    /// changes nothing, a refused write records nothing (its retry runs again), an expired record
    /// frees its key, and records never show up as keys.
    pub fn idempotent_writes_apply_once(store: Arc<dyn Storage>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let write = |name: &str, retention_ms: u64, write: Write| {
            let context = WriteContext::default()
                .with_idempotency_key(key(name))
                .with_idempotency_retention(std::time::Duration::from_millis(retention_ms));
            runtime.block_on(
                store
                    .clone()
                    .write_idempotent(context, String::new(), write),
            )
        };
        let increment = |delta| Write::Increment {
            key: "paid".into(),
            delta,
        };
        const DAY: u64 = 86_400_000;
        assert_eq!(write("k1", DAY, increment(5)).unwrap(), Written::applied(5));
        assert_eq!(
            write("k1", DAY, increment(5)).unwrap(),
            Written::replayed(5)
        );
        assert_eq!(write("k2", DAY, increment(1)).unwrap(), Written::applied(6));
        assert_eq!(
            write("k1", DAY, increment(5)).unwrap(),
            Written::replayed(5)
        );
        assert_eq!(store.get("", "paid").unwrap(), Some(b"6".to_vec()));
        match write("k1", DAY, increment(7)) {
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
        let set = |value: &str| Write::Set {
            key: "paid".into(),
            value: value.as_bytes().to_vec(),
        };
        assert_eq!(write("s1", DAY, set("40")).unwrap(), Written::applied(0));
        assert_eq!(
            write("k2", DAY, increment(1)).unwrap(),
            Written::replayed(6)
        );
        assert_eq!(write("s1", DAY, set("40")).unwrap(), Written::replayed(0));
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
        let word = Write::Increment {
            key: "word".into(),
            delta: 1,
        };
        assert!(matches!(
            write("w1", DAY, word.clone()),
            Err(StorageError::NotANumber { .. })
        ));
        store.set("", "word", b"1").unwrap();
        assert_eq!(write("w1", DAY, word).unwrap(), Written::applied(2));

        // Expiry: the key is free again once its record expired, purged or not.
        assert_eq!(
            write("short", 1, increment(1)).unwrap(),
            Written::applied(4)
        );
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(
            write("short", DAY, increment(2)).unwrap(),
            Written::applied(6)
        );
        assert_eq!(write("gone", 1, increment(1)).unwrap(), Written::applied(7));
        std::thread::sleep(std::time::Duration::from_millis(30));
        let purged = store.purge_idempotency_records().unwrap();
        assert!(purged <= 1, "{purged}");
        assert_eq!(
            write("k2", DAY, increment(1)).unwrap(),
            Written::replayed(6)
        );

        assert_eq!(store.get("", "paid").unwrap(), Some(b"7".to_vec()));
        let (mut keys, _) = list_all(&*store);
        keys.sort();
        assert_eq!(keys, ["paid", "word"]);
    }

    /// Threads sending the same keyed increment at once apply it once: one is applied, every
    /// other one is its replay.
    pub fn concurrent_retries_apply_once(store: Arc<dyn Storage>) {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    (0..20)
                        .map(|n| {
                            let context = WriteContext::default()
                                .with_idempotency_key(key(&format!("retry-{n}")));
                            let write = Write::Increment {
                                key: "once".into(),
                                delta: 1,
                            };
                            let written = runtime
                                .block_on(store.clone().write_idempotent(
                                    context,
                                    String::new(),
                                    write,
                                ))
                                .unwrap();
                            usize::from(!written.replayed)
                        })
                        .sum::<usize>()
                })
            })
            .collect();
        let applied: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(applied, 20);
        assert_eq!(store.get("", "once").unwrap(), Some(b"20".to_vec()));
    }

    /// An increment limited by its request's context (`WriteContext::increment_limit`) stops at
    /// that limit, through `write_async` and `increment_within` alike, and a refused one writes
    /// nothing. A limit at the store's own is plain `increment` on every backend.
    pub fn increments_stop_at_the_requests_limit(store: Arc<dyn Storage>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let own = store.counter_limit();
        store
            .set("", "near", (own - 2).to_string().as_bytes())
            .unwrap();
        assert_eq!(store.increment_within("", "near", 1, own).unwrap(), own - 1);
        let increment = |limit, delta| {
            runtime.block_on(store.clone().write_async(
                WriteContext::default().with_increment_limit(limit),
                String::new(),
                Write::Increment {
                    key: "near".into(),
                    delta,
                },
            ))
        };
        assert_eq!(increment(own, 1).unwrap(), own);
        assert!(matches!(
            increment(own, 1),
            Err(StorageError::Overflow { current, delta: 1, .. }) if current == own
        ));

        store.set("", "small", b"8").unwrap();
        let limited = |delta| {
            runtime.block_on(store.clone().write_async(
                WriteContext::default().with_increment_limit(10),
                String::new(),
                Write::Increment {
                    key: "small".into(),
                    delta,
                },
            ))
        };
        if own == u64::MAX {
            assert_eq!(limited(2).unwrap(), 10);
            assert!(matches!(
                limited(1),
                Err(StorageError::Overflow {
                    current: 10,
                    delta: 1,
                    ..
                })
            ));
            assert!(matches!(
                store.increment_within("", "small", 5, 12),
                Err(StorageError::Overflow { current: 10, .. })
            ));
            assert_eq!(store.get("", "small").unwrap(), Some(b"10".to_vec()));
        } else {
            // Redis keeps the default: a limit below its own is refused, never half-applied.
            assert!(limited(1).is_err());
            assert_eq!(store.get("", "small").unwrap(), Some(b"8".to_vec()));
        }
    }

    /// A staged write answers once applied and completes its durability afterwards; writes
    /// staged one after another (a pipeline, `more_follow`) add up in order, and are all stored
    /// once durable. A refused staged write is refused, and changes nothing.
    pub fn staged_writes_apply_then_become_durable(store: Arc<dyn Storage>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let stage = |more_follow: bool, write: Write| {
            let context = WriteContext {
                more_follow,
                ..WriteContext::default()
            };
            store.clone().write_staged(context, String::new(), write)
        };
        let increment = |delta| Write::Increment {
            key: "staged".into(),
            delta,
        };
        let first = stage(true, increment(1));
        assert_eq!(runtime.block_on(first.applied).unwrap(), 1);
        let second = stage(true, increment(2));
        assert_eq!(runtime.block_on(second.applied).unwrap(), 3);
        store.set("", "word", b"abc").unwrap();
        let refused = stage(
            false,
            Write::Increment {
                key: "word".into(),
                delta: 1,
            },
        );
        assert!(matches!(
            runtime.block_on(refused.applied),
            Err(StorageError::NotANumber { .. })
        ));
        for durable in [first.durable, second.durable, refused.durable] {
            runtime.block_on(durable).unwrap();
        }
        assert_eq!(store.get("", "staged").unwrap(), Some(b"3".to_vec()));
        assert_eq!(store.get("", "word").unwrap(), Some(b"abc".to_vec()));
    }

    /// A store that is up says it is ready.
    pub fn a_live_store_is_ready(store: &dyn Storage) {
        assert!(store.check_ready().is_ok());
    }

    /// Following cursors returns every key across several pages.
    pub fn list_keys_pages_through_everything(store: &dyn Storage) {
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

    /// `scan` visits every key once, in bytewise order, with its value, and stops on `Break`.
    pub fn scan_visits_everything_in_order(store: &dyn Storage) {
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

    /// `set_many` stores every entry, replaces existing values, reports progress up to the
    /// total, and a concurrent reader never sees a part of it.
    pub fn set_many_writes_all_at_once(store: Arc<dyn Storage>) {
        store.set("", "k00000", b"1").unwrap();
        let entries: Vec<(String, Vec<u8>)> = (0..10_000)
            .map(|i| (format!("k{i:05}"), (i * 3).to_string().into_bytes()))
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
        let mut reported = 0;
        store
            .set_many("", &entries, &mut |written| reported = written)
            .unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(reader.join().unwrap(), 0, "a reader saw part of set_many");
        assert_eq!(reported, entries.len());
        assert_eq!(store.get("", "k00000").unwrap(), Some(b"0".to_vec()));
        assert_eq!(store.get("", "k09999").unwrap(), Some(b"29997".to_vec()));
        assert_eq!(list_all(&*store).0.len(), 10_000);
        store.set_many("", &[], &mut |_| {}).unwrap();
    }

    /// Keys present for the whole listing are listed even when others come and go meanwhile.
    pub fn list_keys_survives_concurrent_changes(store: &dyn Storage) {
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
    pub fn concurrent_increments_are_exact(store: Arc<dyn Storage>) {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
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

    fn list_all(store: &dyn Storage) -> (Vec<String>, usize) {
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
}

/// Instantiates every suite test for one backend constructor.
macro_rules! backend_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            #[test]
            fn set_get_overwrite() {
                let (_guard, store) = $make;
                suite::set_get_overwrite(&store);
            }

            #[test]
            fn get_many_reads_in_order() {
                let (_guard, store) = $make;
                suite::get_many_reads_in_order(&store);
            }

            #[test]
            fn get_many_reads_a_page() {
                let (_guard, store) = $make;
                suite::get_many_reads_a_page(&store);
            }

            #[test]
            fn list_keys_pages_by_the_callers_limit() {
                let (_guard, store) = $make;
                suite::list_keys_pages_by_the_callers_limit(&store);
            }

            #[test]
            fn write_async_applies_and_refuses_idempotency_keys() {
                let (_guard, store) = $make;
                suite::write_async_applies_and_refuses_idempotency_keys(Arc::new(store));
            }
            #[test]
            fn increments_stop_at_the_requests_limit() {
                let (_guard, store) = $make;
                suite::increments_stop_at_the_requests_limit(Arc::new(store));
            }

            #[test]
            fn staged_writes_apply_then_become_durable() {
                let (_guard, store) = $make;
                suite::staged_writes_apply_then_become_durable(Arc::new(store));
            }

            #[test]
            fn a_live_store_is_ready() {
                let (_guard, store) = $make;
                suite::a_live_store_is_ready(&store);
            }

            #[test]
            fn delete_and_exists() {
                let (_guard, store) = $make;
                suite::delete_and_exists(&store);
            }
            #[test]
            fn buckets_are_separate_or_refused() {
                let (_guard, store) = $make;
                suite::buckets_are_separate_or_refused(&store);
            }
            #[test]
            fn increment_counts_in_decimal() {
                let (_guard, store) = $make;
                suite::increment_counts_in_decimal(&store);
            }
            #[test]
            fn increment_overflow_changes_nothing() {
                let (_guard, store) = $make;
                suite::increment_overflow_changes_nothing(&store);
            }
            #[test]
            fn increment_non_number_changes_nothing() {
                let (_guard, store) = $make;
                suite::increment_non_number_changes_nothing(&store);
            }
            #[test]
            fn list_keys_pages_through_everything() {
                let (_guard, store) = $make;
                suite::list_keys_pages_through_everything(&store);
            }
            #[test]
            fn list_keys_survives_concurrent_changes() {
                let (_guard, store) = $make;
                suite::list_keys_survives_concurrent_changes(&store);
            }
            #[test]
            fn scan_visits_everything_in_order() {
                let (_guard, store) = $make;
                suite::scan_visits_everything_in_order(&store);
            }
            #[test]
            fn set_many_writes_all_at_once() {
                let (_guard, store) = $make;
                suite::set_many_writes_all_at_once(Arc::new(store));
            }
            #[test]
            fn idempotent_writes_apply_once() {
                let (_guard, store) = $make;
                suite::idempotent_writes_apply_once(Arc::new(store));
            }
            #[test]
            fn concurrent_retries_apply_once() {
                let (_guard, store) = $make;
                suite::concurrent_retries_apply_once(Arc::new(store));
            }
            #[test]
            fn concurrent_increments_are_exact() {
                let (_guard, store) = $make;
                suite::concurrent_increments_are_exact(Arc::new(store));
            }
        }
    };
}

backend_suite!(memory, ((), MemoryStorage::new()));
backend_suite!(redis, {
    let server = tally_test_support::redis_server::RedisServer::start(&[]).unwrap();
    let store = RedisStorage::open(&server.url(0), false).unwrap();
    (server, store)
});
backend_suite!(sqlite, {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStorage::open(&dir.path().join("counters.db")).unwrap();
    (dir, store)
});

/// A Redis server that cannot be reached is an outage (`Unavailable`: retry later), told apart
/// from a failure of the operation, and nothing is written.
#[test]
fn unreachable_redis_is_unavailable() {
    let server = tally_test_support::redis_server::RedisServer::start(&[]).unwrap();
    let store = RedisStorage::open(&server.url(0), false).unwrap();
    store.set("", "k", b"1").unwrap();
    drop(server);
    for outcome in [
        store.get("", "k").map(|_| ()),
        store.increment("", "k", 1).map(|_| ()),
        store.list_keys("", None, 10).map(|_| ()),
    ] {
        assert!(
            matches!(outcome, Err(StorageError::Unavailable(ref why)) if why.starts_with("Redis: ")),
            "{outcome:?}"
        );
    }
    // A refusal is not an outage.
    let server = tally_test_support::redis_server::RedisServer::start(&[]).unwrap();
    let store = RedisStorage::open(&server.url(0), false).unwrap();
    store.set("", "word", b"abc").unwrap();
    assert!(matches!(
        store.increment("", "word", 1),
        Err(StorageError::NotANumber { .. })
    ));
}

/// The observer hears about every group commit, with the number of writes in it, and about
/// every guest operation through the keyvalue context; without one nothing is recorded.
#[test]
fn the_observer_hears_commits() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    #[derive(Default)]
    struct Counting {
        batches: AtomicUsize,
        writes: AtomicUsize,
    }
    impl crate::Observer for Counting {
        fn commit_batch(&self, writes: usize) {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.writes.fetch_add(writes, Ordering::SeqCst);
        }
    }
    let observer = Arc::new(Counting::default());
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        observer: Some(observer.clone()),
        ..SqliteOptions::default()
    };
    let store = SqliteStorage::open_with(&dir.path().join("counters.db"), options).unwrap();
    store.increment("", "a", 1).unwrap();
    store.set("", "b", b"2").unwrap();
    store.delete("", "b").unwrap();
    assert_eq!(observer.writes.load(Ordering::SeqCst), 3);
    assert!((1..=3).contains(&observer.batches.load(Ordering::SeqCst)));
    // Reads are not commits.
    store.get("", "a").unwrap();
    assert_eq!(observer.writes.load(Ordering::SeqCst), 3);
}

/// SQLite-only behaviour: durability settings, restarts, other connections and foreign files.
mod sqlite_file {
    use super::*;
    use rusqlite::Connection;

    fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters.db");
        (dir, path)
    }

    /// The store's own writer connection is in WAL mode and commits with `synchronous=FULL`, or
    /// `NORMAL` when durability is relaxed (read from that connection, not from a new one); a
    /// store that only reads has no writer.
    #[test]
    fn the_writer_uses_wal_and_the_chosen_sync() {
        for (durability, expected) in [(Durability::Full, 2), (Durability::Relaxed, 1)] {
            let (_dir, path) = temp_db();
            let options = SqliteOptions {
                durability,
                ..SqliteOptions::default()
            };
            let store = SqliteStorage::open_with(&path, options.clone()).unwrap();
            assert_eq!(store.path(), path);
            let settings = store.writer_settings().unwrap();
            assert_eq!(
                (settings.journal_mode.as_str(), settings.synchronous),
                ("wal", expected),
                "{durability:?}"
            );
            drop(store);
            let reader = SqliteStorage::open_for_reading(&path, options)
                .unwrap()
                .unwrap();
            assert!(reader.writer_settings().is_none());
        }
    }

    /// Many threads queueing increments on one writer (so they share commits) add up exactly.
    #[test]
    fn group_committed_increments_add_up() {
        let (_dir, path) = temp_db();
        let store = Arc::new(SqliteStorage::open(&path).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        store.increment("", "k", 1).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(store.get("", "k").unwrap(), Some(b"800".to_vec()));
    }

    /// Values written through one store are there when the file is opened again.
    #[test]
    fn values_survive_reopening() {
        let (_dir, path) = temp_db();
        {
            let store = SqliteStorage::open(&path).unwrap();
            store.set("", "visits", b"10").unwrap();
            assert_eq!(store.increment("", "visits", 5).unwrap(), 15);
        }
        let store = SqliteStorage::open(&path).unwrap();
        assert_eq!(store.get("", "visits").unwrap(), Some(b"15".to_vec()));
    }

    /// Separate connections on one file (as separate processes have) never lose an increment.
    #[test]
    fn separate_connections_increment_exactly() {
        let (_dir, path) = temp_db();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let store = SqliteStorage::open(&path).unwrap();
                    for _ in 0..100 {
                        store.increment("", "shared", 1).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let store = SqliteStorage::open(&path).unwrap();
        assert_eq!(store.get("", "shared").unwrap(), Some(b"400".to_vec()));
    }

    /// Values written by hand as TEXT or INTEGER read as their decimal text.
    #[test]
    fn reads_hand_written_text_and_integers() {
        let (_dir, path) = temp_db();
        let store = SqliteStorage::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO kv VALUES ('', 'text', '41'), ('', 'int', 7), ('', 'word', 'abc');",
        )
        .unwrap();
        assert_eq!(store.increment("", "text", 1).unwrap(), 42);
        assert_eq!(store.increment("", "int", 1).unwrap(), 8);
        assert!(matches!(
            store.increment("", "word", 1),
            Err(StorageError::NotANumber { .. })
        ));
        assert_eq!(store.get("", "word").unwrap(), Some(b"abc".to_vec()));
    }

    /// Another application's SQLite file is refused and left untouched.
    #[test]
    fn refuses_foreign_database() {
        let (_dir, path) = temp_db();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA application_id = 1234; CREATE TABLE mine (x);")
            .unwrap();
        let error = SqliteStorage::open(&path).unwrap_err().to_string();
        assert!(error.contains("belongs to another application"), "{error}");
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }

    /// A database written by a newer schema is refused rather than misread.
    /// A database of schema version 1 (before idempotency keys), as earlier tally builds wrote
    /// it: opened for writing it is upgraded in place (counters untouched, `user_version` 2, the
    /// idempotency table there and working); opened for reading it is served as it is and left
    /// at version 1. (A file read-only for this user: `tests/idempotency.rs`, which can run tally
    /// as another user.)
    #[test]
    fn upgrades_a_version_1_database() {
        let version_1 = |path: &std::path::Path| {
            let conn = Connection::open(path).unwrap();
            conn.execute_batch(
                "CREATE TABLE kv (bucket TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                                  PRIMARY KEY (bucket, key));
                 PRAGMA application_id = 1952541817;
                 PRAGMA user_version = 1;
                 INSERT INTO kv VALUES ('', 'visits', CAST('10' AS BLOB));",
            )
            .unwrap();
        };
        let version_of = |path: &std::path::Path| -> (i64, i64) {
            let conn = Connection::open(path).unwrap();
            let version = conn
                .query_row("PRAGMA user_version", [], |row| row.get(0))
                .unwrap();
            let tables = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name = 'idempotency'",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            (version, tables)
        };
        let (_dir, path) = temp_db();
        version_1(&path);
        let reader = SqliteStorage::open_for_reading(&path, SqliteOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(reader.get("", "visits").unwrap(), Some(b"10".to_vec()));
        drop(reader);
        assert_eq!(version_of(&path), (1, 0), "reading upgraded the file");

        let store = Arc::new(SqliteStorage::open(&path).unwrap());
        assert_eq!(store.get("", "visits").unwrap(), Some(b"10".to_vec()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let keyed = || {
            let write = Write::Increment {
                key: "visits".into(),
                delta: 1,
            };
            let context = WriteContext::default().with_idempotency_key(key("after-upgrade"));
            runtime.block_on(
                store
                    .clone()
                    .write_idempotent(context, String::new(), write),
            )
        };
        assert_eq!(keyed().unwrap(), Written::applied(11));
        assert_eq!(keyed().unwrap(), Written::replayed(11));
        drop(store);
        assert_eq!(version_of(&path), (2, 1));
    }

    #[test]
    fn refuses_newer_schema() {
        let (_dir, path) = temp_db();
        drop(SqliteStorage::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        let error = SqliteStorage::open(&path).unwrap_err().to_string();
        assert!(error.contains("schema version 99"), "{error}");
    }

    /// A file that is not a database at all gives SQLite's own diagnosis and stays as it was.
    #[test]
    fn refuses_non_database_file() {
        let (_dir, path) = temp_db();
        let junk =
            b"this is not a database, but it is long enough to look like a header".repeat(20);
        std::fs::write(&path, &junk).unwrap();
        let error = SqliteStorage::open(&path).unwrap_err().to_string();
        assert!(error.contains("not a database"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), junk);
    }
}
