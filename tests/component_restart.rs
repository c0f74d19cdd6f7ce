//! The acceptance scenarios through the real component: every "restart" drops the engine, store,
//! instance and SQLite connection and builds new ones over the same file.

use crate::common;

use common::Answer as _;
use common::{TempDb, block_on, restart};

/// Counter at 10, restart: it is 10.
#[test]
fn value_survives_restart() {
    let db = TempDb::new();
    {
        let (_runtime, mut counter) = restart(&db.path);
        block_on(counter.set("visits", 10))
            .answer()
            .unwrap()
            .unwrap();
        assert_eq!(block_on(counter.get("visits")).answer().unwrap(), Ok(10));
    }
    let (_runtime, mut counter) = restart(&db.path);
    assert_eq!(block_on(counter.get("visits")).answer().unwrap(), Ok(10));
    assert_eq!(db.raw_value("visits"), Some(b"10".to_vec()));
}

/// Counter at 10, restart, increment to 11, restart: it is 11.
#[test]
fn increment_to_11_survives_restart() {
    let db = TempDb::new();
    {
        let (_runtime, mut counter) = restart(&db.path);
        block_on(counter.set("visits", 10))
            .answer()
            .unwrap()
            .unwrap();
    }
    {
        let (_runtime, mut counter) = restart(&db.path);
        assert_eq!(
            block_on(counter.increment("visits", 1)).answer().unwrap(),
            Ok(11)
        );
    }
    let (_runtime, mut counter) = restart(&db.path);
    assert_eq!(block_on(counter.get("visits")).answer().unwrap(), Ok(11));
}

/// Counter at 10, increments to 15 (each on a fresh instance), restart: it is 15.
#[test]
fn increments_to_15_survive_restart() {
    let db = TempDb::new();
    {
        let (runtime, mut counter) = restart(&db.path);
        block_on(counter.set("visits", 10))
            .answer()
            .unwrap()
            .unwrap();
        for expected in 11..=15 {
            let mut fresh = block_on(runtime.instantiate()).unwrap();
            assert_eq!(
                block_on(fresh.increment("visits", 1)).answer().unwrap(),
                Ok(expected)
            );
        }
    }
    let (_runtime, mut counter) = restart(&db.path);
    assert_eq!(block_on(counter.get("visits")).answer().unwrap(), Ok(15));
    assert_eq!(db.raw_value("visits"), Some(b"15".to_vec()));
}

/// `reset` and `list` persist too: after a restart the list shows exactly what was left.
#[test]
fn reset_and_list_survive_restart() {
    let db = TempDb::new();
    {
        let (_runtime, mut counter) = restart(&db.path);
        for (name, value) in [("b", 2), ("a", 1), ("gone", 9), ("ünï", 3)] {
            block_on(counter.set(name, value))
                .answer()
                .unwrap()
                .unwrap();
        }
        assert_eq!(
            block_on(counter.increment("a", 41)).answer().unwrap(),
            Ok(42)
        );
        block_on(counter.reset("gone")).answer().unwrap().unwrap();
    }
    let (_runtime, mut counter) = restart(&db.path);
    assert_eq!(block_on(counter.get("gone")).answer().unwrap(), Ok(0));
    assert_eq!(
        block_on(counter.list()).answer().unwrap(),
        Ok(vec![("a".into(), 42), ("b".into(), 2), ("ünï".into(), 3)])
    );
    assert_eq!(db.raw_value("gone"), None);
}

/// `list` follows the store's cursors across several pages and misses nothing. (In memory: the
/// SQLite cursors have their own storage tests, and 2,000 fsynced writes would only add time.)
#[test]
fn list_pages_through_many_counters() {
    let storage = std::sync::Arc::new(tally_keyvalue::storage::MemoryStorage::new());
    let (runtime, mut counter) = common::start_with(storage);
    let count = 2 * tally_keyvalue::storage::MAX_PAGE_SIZE + 3;
    for i in 0..count {
        block_on(counter.set(&format!("c{i:05}"), i as u64))
            .answer()
            .unwrap()
            .unwrap();
    }
    let mut fresh = block_on(runtime.instantiate()).unwrap();
    let listed = block_on(fresh.list()).answer().unwrap().unwrap();
    assert_eq!(listed.len(), count);
    for (i, (name, value)) in listed.iter().enumerate() {
        assert_eq!(
            (name.as_str(), *value),
            (format!("c{i:05}").as_str(), i as u64)
        );
    }
}
