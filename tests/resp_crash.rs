//! `kill -9` under RESP load: clients pipelining `INCRBY`s, the server SIGKILLed at random
//! moments ten times; no acknowledged increment may be lost and none may appear from nowhere.

use crate::common::{Random, TempDb};
use crate::resp::resp_server;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use tally_test_support::resp_client::RespClient;

const CYCLES: usize = 10;
const CLIENTS: usize = 8;
const COUNTERS: usize = 4;
/// Commands each client sends per write: 1 (no pipelining) for half of them, 8 for the rest.
const PIPELINES: [usize; 2] = [1, 8];

/// Per counter: what acknowledged increments added, and what sent but unanswered ones would have.
#[derive(Default)]
struct Tally {
    acknowledged: [AtomicU64; COUNTERS],
    unanswered: [AtomicU64; COUNTERS],
}

/// Ten cycles of {start, 8 RESP clients adding 1 or 3 to 4 counters (half of them pipelining 8
/// commands per write), SIGKILL after a random 100-700 ms}. After the last restart each counter
/// holds at least what was acknowledged and at most that plus what was in flight.
#[test]
fn sigkill_under_resp_load_loses_no_acknowledged_increment() {
    let (mut random, seed) = Random::for_crash_loop();
    let db = TempDb::new();
    let tally = Arc::new(Tally::default());
    for _ in 0..CYCLES {
        let server = resp_server(&db, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(Barrier::new(CLIENTS + 1));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (address, tally, stop, started) = (
                    server.resp.unwrap(),
                    tally.clone(),
                    stop.clone(),
                    started.clone(),
                );
                std::thread::spawn(move || {
                    let counter = client % COUNTERS;
                    let by: u64 = if client % 2 == 0 { 1 } else { 3 };
                    let pipeline = PIPELINES[client / COUNTERS % 2];
                    let name = format!("crash{counter}");
                    let command = RespClient::encode(&[
                        b"INCRBY",
                        name.as_bytes(),
                        by.to_string().as_bytes(),
                    ]);
                    let mut connection =
                        RespClient::connect(address, Duration::from_secs(30)).unwrap();
                    started.wait();
                    while !stop.load(Ordering::SeqCst) {
                        if connection.send_raw(&command.repeat(pipeline)).is_err() {
                            tally.unanswered[counter]
                                .fetch_add(by * pipeline as u64, Ordering::SeqCst);
                            return;
                        }
                        for answered in 0..pipeline {
                            match connection.read_reply() {
                                Ok(answer) => {
                                    assert!(answer.starts_with(':'), "{answer}");
                                    tally.acknowledged[counter].fetch_add(by, Ordering::SeqCst);
                                }
                                // The server died with these commands sent and unanswered.
                                Err(_) => {
                                    let lost = (pipeline - answered) as u64 * by;
                                    tally.unanswered[counter].fetch_add(lost, Ordering::SeqCst);
                                    return;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        crate::common::server::kill_under_load(server, &mut random, &started, &stop, clients);
    }

    let server = resp_server(&db, &[]);
    let mut client = server.resp_client();
    let mut report = Vec::new();
    let mut total = 0;
    for counter in 0..COUNTERS {
        let answer = client
            .command(&["GET", &format!("crash{counter}")])
            .unwrap();
        let value: u64 = answer.lines().nth(1).unwrap_or("0").parse().unwrap();
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
        total += acknowledged;
    }
    assert!(
        total > 0,
        "no increment was acknowledged in {CYCLES} cycles"
    );
    println!(
        "RESP crash loop (seed {seed}, {CYCLES} kills):\n  {}",
        report.join("\n  ")
    );
}

/// Ten cycles of {start, 8 clients looping `MULTI; INCR a; INCR b; EXEC`, SIGKILL after a
/// random 100-700 ms}. A transaction commits whole or not at all, so after every restart
/// `a == b`, and both hold at least the acknowledged `EXEC`s and at most those plus the ones
/// in flight.
#[test]
fn sigkill_during_exec_leaves_all_or_nothing() {
    let (mut random, seed) = Random::for_crash_loop();
    let db = TempDb::new();
    let acknowledged = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(AtomicU64::new(0));
    let transaction = [
        RespClient::encode(&[b"MULTI"]),
        RespClient::encode(&[b"INCR", b"a"]),
        RespClient::encode(&[b"INCR", b"b"]),
        RespClient::encode(&[b"EXEC"]),
    ]
    .concat();
    let read_both = |server: &crate::common::server::Server| {
        let mut client = server.resp_client();
        ["a", "b"].map(|key| {
            let answer = client.command(&["GET", key]).unwrap();
            answer.lines().nth(1).unwrap_or("0").parse::<u64>().unwrap()
        })
    };
    for cycle in 0..CYCLES {
        let server = resp_server(&db, &[]);
        let [a, b] = read_both(&server);
        assert_eq!(
            a, b,
            "seed {seed}, cycle {cycle}: a transaction applied in part"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(Barrier::new(CLIENTS + 1));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (address, stop, started) =
                    (server.resp.unwrap(), stop.clone(), started.clone());
                let (acknowledged, unanswered) = (acknowledged.clone(), unanswered.clone());
                let transaction = transaction.clone();
                std::thread::spawn(move || {
                    let mut connection =
                        RespClient::connect(address, Duration::from_secs(30)).unwrap();
                    started.wait();
                    while !stop.load(Ordering::SeqCst) {
                        let answered = connection.send_raw(&transaction).is_ok()
                            && (0..4).all(|_| {
                                connection.read_reply().is_ok_and(|answer| {
                                    assert!(!answer.starts_with('-'), "{answer}");
                                    true
                                })
                            });
                        if answered {
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                        } else {
                            unanswered.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                })
            })
            .collect();
        crate::common::server::kill_under_load(server, &mut random, &started, &stop, clients);
    }
    let server = resp_server(&db, &[]);
    let [a, b] = read_both(&server);
    let (acknowledged, unanswered) = (
        acknowledged.load(Ordering::SeqCst),
        unanswered.load(Ordering::SeqCst),
    );
    assert_eq!(a, b, "seed {seed}: a transaction applied in part");
    assert!(
        acknowledged <= a && a <= acknowledged + unanswered,
        "seed {seed}: a = b = {a}, acknowledged {acknowledged}, unanswered {unanswered}"
    );
    assert!(acknowledged > 0, "no transaction was acknowledged");
    println!(
        "EXEC crash loop (seed {seed}, {CYCLES} kills): a = b = {a}, acknowledged \
         {acknowledged}, unanswered {unanswered}"
    );
}
