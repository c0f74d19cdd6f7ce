//! Exactly once under crashes: clients perform logical increments, each retried on a lost
//! answer (a connection error, a timeout, 503) until it is answered, while the server is
//! SIGKILLed and restarted every few hundred milliseconds. With an `Idempotency-Key` per logical
//! increment the final value is exactly the number of increments, on SQLite and on Redis (two
//! tally replicas on one Redis, the client moving to the other replica on failure). Without
//! keys, a retry of an increment that was applied but not answered counts twice: the test
//! reports how many (and checks that none was lost).

use crate::common::server::Server;
use crate::common::{Random, TempDb};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use tally_test_support::http_client::Client;
use tally_test_support::redis_server::RedisServer;

const CLIENTS: usize = 8;
/// SIGKILLs per run.
const KILLS: usize = 8;
const PATH: &str = "/counters/exact/increment";

/// How one run went: logical increments completed, and the value the store ended with.
struct Outcome {
    increments: u64,
    stored: u64,
}

/// The servers of one run: started on port 0 the first time, then always on the same address,
/// so a client can come back to it.
struct Replicas {
    db: TempDb,
    global_args: Vec<String>,
    servers: Vec<Option<Server>>,
    addresses: Vec<SocketAddr>,
}

impl Replicas {
    fn start(count: usize, global_args: &[&str]) -> Self {
        let db = TempDb::new();
        let global_args: Vec<String> = global_args.iter().map(ToString::to_string).collect();
        let mut replicas = Self {
            db,
            global_args,
            servers: Vec::new(),
            addresses: Vec::new(),
        };
        for _ in 0..count {
            let server = replicas.spawn(&[]);
            replicas.addresses.push(server.address);
            replicas.servers.push(Some(server));
        }
        replicas
    }

    fn spawn(&self, serve_args: &[&str]) -> Server {
        let global: Vec<&str> = self.global_args.iter().map(String::as_str).collect();
        Server::start_with(&self.db.path, &global, serve_args)
    }

    /// SIGKILL replica `index`, then start it again on its address.
    fn kill_and_restart(&mut self, index: usize) {
        if let Some(server) = self.servers[index].take() {
            server.kill();
        }
        let listen = self.addresses[index].to_string();
        self.servers[index] = Some(self.spawn(&["--listen", &listen]));
    }

    fn value(&self) -> u64 {
        self.servers[0].as_ref().unwrap().value("exact")
    }
}

/// Sends one logical increment of `path` until it is answered 200: a failure moves to the next
/// replica (a new connection) and tries again, with the same key when `key` is given. How many
/// 503 answers (each with `Retry-After`) it met on the way.
pub(crate) fn increment_until_answered(
    addresses: &[SocketAddr],
    current: &mut usize,
    connection: &mut Option<Client>,
    path: &str,
    key: Option<&str>,
) -> u64 {
    let header = key.map(|key| format!("Idempotency-Key: {key}"));
    let mut unavailable = 0;
    loop {
        if connection.is_none() {
            *connection = Client::connect(addresses[*current], Duration::from_secs(5)).ok();
        }
        let answer = connection
            .as_mut()
            .map(|client| client.request_with_headers("POST", path, header.as_deref(), None));
        match answer {
            Some(Ok(response)) if response.status == 200 => return unavailable,
            // Busy, the store unreachable, or in flight (the same key still running in a
            // replica that has not died): the same replica, a moment later.
            Some(Ok(response)) if matches!(response.status, 503 | 409) => {
                if response.status == 503 {
                    assert_eq!(response.header("retry-after"), Some("1"), "{response:?}");
                    unavailable += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // The store lost its answer to the write: it may have been applied, and a retry
            // with the same key is safe (and answered from its record if it was).
            Some(Ok(response))
                if key.is_some()
                    && response.status == 500
                    && response.body.contains("\"write_outcome_unknown\"") =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Some(Ok(response)) => panic!("unexpected answer {response:?}"),
            // Refused, reset, or timed out: the answer may be lost; try the next replica.
            Some(Err(_)) | None => {
                *connection = None;
                *current = (*current + 1) % addresses.len();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// One run: `CLIENTS` clients increment while replicas are killed at random moments, `KILLS`
/// times; then every client finishes the increment it is in and stops.
fn run(replicas: &mut Replicas, keyed: bool, random: &mut Random) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (addresses, stop, done, started) = (
                replicas.addresses.clone(),
                stop.clone(),
                done.clone(),
                started.clone(),
            );
            std::thread::spawn(move || {
                let mut current = client % addresses.len();
                let mut connection = None;
                started.wait();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("client{client}-increment{n}");
                    let key = keyed.then_some(key.as_str());
                    increment_until_answered(&addresses, &mut current, &mut connection, PATH, key);
                    done.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
            })
        })
        .collect();
    started.wait();
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(150 + random.below(350)));
        let victim = random.below(replicas.servers.len() as u64) as usize;
        replicas.kill_and_restart(victim);
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    Outcome {
        increments: done.load(Ordering::SeqCst),
        stored: replicas.value(),
    }
}

/// Both runs on fresh stores made by `replicas`: with keys the value is exact; without, none
/// is lost and the doubles are reported.
fn with_and_without_keys(store: &str, mut replicas: impl FnMut() -> Replicas) {
    let (mut random, seed) = Random::for_crash_loop();
    let keyed = run(&mut replicas(), true, &mut random);
    assert!(keyed.increments > 0);
    assert_eq!(
        keyed.stored, keyed.increments,
        "seed {seed}: {store} with keys stored {} for {} increments",
        keyed.stored, keyed.increments
    );
    let plain = run(&mut replicas(), false, &mut random);
    assert!(
        plain.stored >= plain.increments,
        "seed {seed}: {store} lost acknowledged increments"
    );
    println!(
        "{store} (seed {seed}, {KILLS} SIGKILLs each): with keys {} increments, stored {}; \
         without keys {} increments, stored {} ({} counted twice)",
        keyed.increments,
        keyed.stored,
        plain.increments,
        plain.stored,
        plain.stored - plain.increments
    );
}

#[test]
fn sqlite_counts_each_retried_increment_once() {
    with_and_without_keys("SQLite", || Replicas::start(1, &[]));
}

#[test]
fn redis_replicas_count_each_retried_increment_once() {
    let redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]).unwrap();
    let mut database = 0;
    with_and_without_keys("Redis, two replicas", || {
        database += 1;
        let store = redis.url(database);
        Replicas::start(2, &["--store", &store])
    });
    drop(redis);
}
