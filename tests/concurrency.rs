//! Concurrent increments through separate component instances and SQLite connections.

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
