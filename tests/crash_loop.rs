//! Crash loop: `kill -9` the server at random moments under load, ten times, and check that no
//! acknowledged increment was lost and none appeared from nowhere.

use crate::common::server::Server;
use crate::common::{Random, TempDb};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use tally_test_support::http_client::Client;

const CYCLES: usize = 10;
const CLIENTS: usize = 8;
const COUNTERS: usize = 4;

/// Per counter: increments answered 200, and increments sent whose answer never came.
#[derive(Default)]
struct Tally {
    acknowledged: [AtomicU64; COUNTERS],
    unanswered: [AtomicU64; COUNTERS],
}

/// Ten cycles of {start, 8 clients incrementing 4 counters, SIGKILL after a random 100-700 ms}.
/// After the last restart every counter is at least its acknowledged count and at most that plus
/// the increments that were in flight, unanswered, when the process died.
#[test]
fn sigkill_under_load_loses_no_acknowledged_increment() {
    let (mut random, seed) = Random::for_crash_loop();
    let db = TempDb::new();
    let tally = Arc::new(Tally::default());

    for _ in 0..CYCLES {
        let server = Server::start(&db.path, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(Barrier::new(CLIENTS + 1));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (address, tally, stop, started) =
                    (server.address, tally.clone(), stop.clone(), started.clone());
                std::thread::spawn(move || {
                    let counter = client % COUNTERS;
                    let path = format!("/counters/crash{counter}/increment");
                    let mut connection = Client::connect(address, Duration::from_secs(30)).unwrap();
                    started.wait();
                    while !stop.load(Ordering::SeqCst) {
                        match connection.request("POST", &path, None) {
                            Ok(response) => {
                                assert_eq!(response.status, 200, "{response:?}");
                                tally.acknowledged[counter].fetch_add(1, Ordering::SeqCst);
                            }
                            // The server died with this request sent and unanswered.
                            Err(_) => {
                                tally.unanswered[counter].fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        crate::common::server::kill_under_load(server, &mut random, &started, &stop, clients);
    }

    let server = Server::start(&db.path, &[]);
    let mut report = Vec::new();
    for counter in 0..COUNTERS {
        let value = server.value(&format!("crash{counter}"));
        let acknowledged = tally.acknowledged[counter].load(Ordering::SeqCst);
        let unanswered = tally.unanswered[counter].load(Ordering::SeqCst);
        report.push(format!(
            "crash{counter}: stored {value}, acknowledged {acknowledged}, unanswered {unanswered}"
        ));
        assert!(
            acknowledged <= value && value <= acknowledged + unanswered,
            "seed {seed}: crash{counter} stored {value}, acknowledged {acknowledged}, \
             unanswered {unanswered}"
        );
    }
    let total: u64 = (0..COUNTERS)
        .map(|c| tally.acknowledged[c].load(Ordering::SeqCst))
        .sum();
    assert!(
        total > 0,
        "no increment was acknowledged in {CYCLES} cycles"
    );
    println!(
        "crash loop (seed {seed}, {CYCLES} kills):\n  {}",
        report.join("\n  ")
    );
}
