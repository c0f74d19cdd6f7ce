//! Concurrent increments through separate component instances and SQLite connections, and as
//! many instances at once as the pool is sized for.

use crate::common::Answer as _;
use crate::common::{TempDb, block_on, restart};

const THREADS: u64 = 8;
const INCREMENTS: u64 = 1_000;

/// 8 threads x 1,000 increments on one counter, each thread with its own engine, SQLite
/// connection and a fresh instance per increment, end at exactly 8,000.
#[test]
fn eight_threads_of_increments_end_exact() {
    let db = TempDb::new();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let path = db.path.clone();
            std::thread::spawn(move || {
                let (runtime, _) = restart(&path);
                block_on(async {
                    for _ in 0..INCREMENTS {
                        let mut counter = runtime.instantiate().await.unwrap();
                        counter
                            .increment("hits", 1)
                            .await
                            .answer()
                            .unwrap()
                            .unwrap();
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let (_runtime, mut counter) = restart(&db.path);
    assert_eq!(
        block_on(counter.get("hits")).answer().unwrap(),
        Ok(THREADS * INCREMENTS)
    );
    assert_eq!(db.raw_value("hits"), Some(b"8000".to_vec()));
}

/// A runtime sized for 400 instances (as `--max-instances 400` sizes the server's) runs 400 at
/// once, each answering: the pool's core instances, memories and tables are sized with it
/// (wasmtime's defaults of 1000 each stopped the counter component, 3 core instances each, at
/// 333).
#[test]
fn the_pool_runs_as_many_instances_as_it_is_sized_for() {
    use std::sync::Arc;
    use tally::{ComponentSource, Runtime, RuntimeOptions};
    use tally_keyvalue::storage::{MemoryStorage, Storage, WriteContext};
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let options = RuntimeOptions {
        cache_dir: Some(crate::common::cache_dir()),
        pooled_instances: Some(400),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::new(&ComponentSource::Embedded, &options, storage).unwrap();
    let mut held = Vec::new();
    for _ in 0..400 {
        held.push(block_on(runtime.lease(WriteContext::default())).unwrap());
    }
    for (count, counter) in held.iter_mut().enumerate() {
        let value = block_on(counter.increment("together", 1)).answer().unwrap();
        assert_eq!(value, Ok(count as u64 + 1));
    }
}
