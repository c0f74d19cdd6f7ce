//! `MULTI` / `EXEC` / `DISCARD` over RESP with the real binary: answers compared byte for byte
//! with a real `redis-server` where Redis and tally promise the same, tally's own refusals
//! (which discard the transaction and change nothing), and transactions from many clients at
//! once answering exactly what was committed. `kill -9` during `EXEC` is in `resp_crash.rs`;
//! redis-py's `pipeline()` in `resp_clients.rs`.

use crate::common::TempDb;
use crate::resp::{SideBySide, resp_server};
use std::collections::BTreeSet;
use std::time::Duration;
use tally_test_support::resp_client::RespClient;

/// Transactions Redis 7 and tally answer alike: queued commands, reads of the transaction's own
/// writes, a run-time error inside `EXEC`'s array while the others apply, a refusal at queue
/// time discarding everything, nested `MULTI`, and `EXEC`/`DISCARD` without `MULTI`.
const SHARED_SCRIPT: &[&[&str]] = &[
    &["EXEC"],
    &["DISCARD"],
    &["MULTI"],
    &["INCR", "a"],
    &["INCRBY", "b", "5"],
    &["GET", "a"],
    &["MGET", "a", "b", "never"],
    &["SET", "top", "9223372036854775807"],
    &["INCR", "top"],
    &["INCR", "a"],
    &["DEL", "b"],
    &["EXISTS", "a", "b"],
    &["PING"],
    &["EXEC"],
    &["GET", "a"],
    &["GET", "b"],
    &["MULTI"],
    &["MULTI"],
    &["INCR", "a"],
    &["EXEC"],
    &["MULTI"],
    &["INCR", "a"],
    &["nosuch", "x"],
    &["INCR", "a"],
    &["EXEC"],
    &["MULTI"],
    &["INCR", "a"],
    &["INCR"],
    &["EXEC"],
    &["MULTI"],
    &["INCRBY", "a", "x"],
    &["INCR", "a"],
    &["SET", "a", "1", "bogus"],
    &["EXEC"],
    &["MULTI"],
    &["INCR", "a"],
    &["DISCARD"],
    &["GET", "a"],
    &["MULTI"],
    &["EXEC"],
];

#[test]
fn transactions_answer_as_redis_does() {
    let mut both = SideBySide::start();
    both.answer_alike(SHARED_SCRIPT);
    // The values the script leaves, read back after a restart: the EXEC that applied is on disk.
    let SideBySide { server, db, .. } = both;
    drop(server);
    let tally = resp_server(&db, &[]);
    let mut client = tally.resp_client();
    assert_eq!(client.command(&["GET", "a"]).unwrap(), "$1\r\n4\r\n");
    assert_eq!(client.command(&["GET", "b"]).unwrap(), "$-1\r\n");
}

/// What tally refuses inside a transaction where Redis would queue: counting down, a negative
/// `INCRBY`, an invalid name, `SET` options (expiry), `WATCH`, and commands that cannot be
/// part of one. Each refusal says why and makes `EXEC` discard the transaction: nothing of it
/// applies.
#[test]
fn tally_refusals_discard_the_transaction() {
    let db = TempDb::new();
    let tally = resp_server(&db, &[]);
    let mut client = tally.resp_client();
    assert_eq!(client.command(&["SET", "a", "10"]).unwrap(), "+OK\r\n");
    let refused: &[(&[&str], &str)] = &[
        (
            &["DECR", "a"],
            "-ERR tally counters only count up, so DECR is refused",
        ),
        (
            &["INCRBY", "a", "-1"],
            "-ERR tally counters only count up, so a negative INCRBY",
        ),
        (
            &["INCR", ""],
            "-ERR invalid counter name: a counter name must not be empty",
        ),
        (
            &["GET", "a\u{7}"],
            "-ERR invalid counter name: a counter name must not contain control",
        ),
        (
            &["SET", "a", "1", "EX", "10"],
            "-ERR tally's SET takes no options (EX given)",
        ),
        (&["SET", "a", "x"], "-ERR tally counters hold whole numbers"),
        (&["WATCH", "a"], "-ERR tally does not support WATCH"),
        (&["UNWATCH"], "-ERR tally does not support UNWATCH"),
        (
            &["KEYS", "*"],
            "-ERR KEYS cannot run inside a tally transaction (MULTI)",
        ),
        (
            &["SELECT", "0"],
            "-ERR SELECT cannot run inside a tally transaction (MULTI)",
        ),
    ];
    for (command, refusal) in refused {
        assert_eq!(client.command(&["MULTI"]).unwrap(), "+OK\r\n");
        assert_eq!(
            client.command(&["INCRBY", "a", "5"]).unwrap(),
            "+QUEUED\r\n"
        );
        let answer = client.command(command).unwrap();
        assert!(answer.starts_with(refusal), "{command:?}: {answer}");
        assert_eq!(client.command(&["INCR", "b"]).unwrap(), "+QUEUED\r\n");
        assert_eq!(
            client.command(&["EXEC"]).unwrap(),
            "-EXECABORT Transaction discarded because of previous errors.\r\n",
            "{command:?}"
        );
        assert_eq!(client.command(&["GET", "a"]).unwrap(), "$2\r\n10\r\n");
        assert_eq!(client.command(&["GET", "b"]).unwrap(), "$-1\r\n");
    }
    // Outside a transaction WATCH is refused too, and the connection goes on.
    let answer = client.command(&["WATCH", "a"]).unwrap();
    assert!(
        answer.starts_with("-ERR tally does not support WATCH"),
        "{answer}"
    );
    assert_eq!(client.command(&["INCR", "a"]).unwrap(), ":11\r\n");
}

/// Eight clients each run 150 transactions `MULTI; INCR a; INCR b; GET a; EXEC`. `a` and `b`
/// are only ever changed together, so every `EXEC` answers `[n, n, n]`, and the `n`s of all
/// clients are exactly 1..=1200, each once: no transaction saw another's half, and none
/// answered a value that was not committed. Transactions of one server take turns on their
/// counters, so none runs again.
#[test]
fn concurrent_transactions_answer_exactly_what_was_committed() {
    const CLIENTS: usize = 8;
    const EACH: usize = 150;
    let db = TempDb::new();
    let tally = resp_server(&db, &[]);
    let address = tally.resp.unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut client = RespClient::connect(address, Duration::from_secs(30)).unwrap();
                let transaction = [
                    RespClient::encode(&[b"MULTI"]),
                    RespClient::encode(&[b"INCR", b"a"]),
                    RespClient::encode(&[b"INCR", b"b"]),
                    RespClient::encode(&[b"GET", b"a"]),
                    RespClient::encode(&[b"EXEC"]),
                ]
                .concat();
                let mut seen = Vec::new();
                for _ in 0..EACH {
                    client.send_raw(&transaction).unwrap();
                    assert_eq!(client.read_reply().unwrap(), "+OK\r\n");
                    for _ in 0..3 {
                        assert_eq!(client.read_reply().unwrap(), "+QUEUED\r\n");
                    }
                    let answer = client.read_reply().unwrap();
                    let lines: Vec<&str> = answer.split("\r\n").collect();
                    let n: u64 = lines[1].trim_start_matches(':').parse().unwrap();
                    assert_eq!(
                        answer,
                        format!("*3\r\n:{n}\r\n:{n}\r\n${}\r\n{n}\r\n", n.to_string().len())
                    );
                    seen.push(n);
                }
                seen
            })
        })
        .collect();
    let all = answered_once(clients);
    let total = (CLIENTS * EACH) as u64;
    assert_eq!(all, (1..=total).collect::<BTreeSet<u64>>());
    let mut client = tally.resp_client();
    let expected = format!("${}\r\n{total}\r\n", total.to_string().len());
    assert_eq!(client.command(&["GET", "a"]).unwrap(), expected);
    assert_eq!(client.command(&["GET", "b"]).unwrap(), expected);
    // They took turns on their counters: none had to run again.
    let metrics = tally.request("GET", "/metrics", None).body;
    assert_eq!(
        crate::resp::metric(&metrics, "tally_resp_transaction_reruns_total"),
        0
    );
}

/// Every value the clients were answered, asserting none was answered twice.
fn answered_once(clients: Vec<std::thread::JoinHandle<Vec<u64>>>) -> BTreeSet<u64> {
    let mut all = BTreeSet::new();
    for client in clients {
        for n in client.join().unwrap() {
            assert!(all.insert(n), "{n} was answered twice");
        }
    }
    all
}

/// Plain writes to a transaction's counter from outside it make the transaction run again on
/// fresh values, never answer a stale one: with one client sending plain `INCR a` and others
/// transactions of `INCR a`, every answer of either kind is distinct and the counter ends at
/// their number.
#[test]
fn plain_writes_between_make_transactions_run_again() {
    const EACH: usize = 200;
    let db = TempDb::new();
    let tally = resp_server(&db, &[]);
    let address = tally.resp.unwrap();
    let clients: Vec<_> = (0..4)
        .map(|client| {
            std::thread::spawn(move || {
                let mut connection = RespClient::connect(address, Duration::from_secs(30)).unwrap();
                let mut seen = Vec::new();
                for _ in 0..EACH {
                    let answer = if client == 0 {
                        connection.command(&["INCR", "a"]).unwrap()
                    } else {
                        connection.command(&["MULTI"]).unwrap();
                        connection.command(&["INCR", "a"]).unwrap();
                        let answer = connection.command(&["EXEC"]).unwrap();
                        answer.trim_start_matches("*1\r\n").to_string()
                    };
                    seen.push(
                        answer
                            .trim_start_matches(':')
                            .trim()
                            .parse::<u64>()
                            .unwrap(),
                    );
                }
                seen
            })
        })
        .collect();
    let all = answered_once(clients);
    assert_eq!(all, (1..=4 * EACH as u64).collect::<BTreeSet<u64>>());
    let metrics = tally.request("GET", "/metrics", None).body;
    println!(
        "{} transactions beside {EACH} plain INCRs of their counter ran again {} times",
        3 * EACH,
        crate::resp::metric(&metrics, "tally_resp_transaction_reruns_total")
    );
}

/// A memory store that declares only the given capabilities. No such store can be given to
/// the `tally` binary, so these tests run the RESP listener in the test's process, with the
/// real component.
struct Declaring(
    tally_keyvalue::storage::MemoryStorage,
    tally_keyvalue::storage::Capabilities,
);

impl tally_keyvalue::storage::Storage for Declaring {
    fn capabilities(&self) -> tally_keyvalue::storage::Capabilities {
        self.1
    }

    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> tally_keyvalue::storage::StoreFuture<'a, Option<Vec<u8>>> {
        self.0.get(bucket, key)
    }

    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<&'a tally_keyvalue::storage::Cursor>,
        limit: usize,
    ) -> tally_keyvalue::storage::StoreFuture<'a, tally_keyvalue::storage::KeyPage> {
        self.0.list_keys(bucket, cursor, limit)
    }

    fn write(
        &self,
        request: tally_keyvalue::storage::WriteRequest,
    ) -> tally_keyvalue::storage::StoreFuture<'_, tally_keyvalue::storage::Applied> {
        self.0.write(request)
    }
}

/// The RESP listener in this process, over a memory store named `name` that declares only
/// `capabilities`: its address once bound, the switch that stops it, and its outcome.
struct InProcess {
    address: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    served: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    fn start(name: &str, capabilities: tally_keyvalue::storage::Capabilities) -> Self {
        use std::sync::Arc;
        let options = tally::RuntimeOptions {
            cache_dir: Some(crate::common::cache_dir()),
            store_name: Arc::from(name),
            ..tally::RuntimeOptions::default()
        };
        let storage = Arc::new(Declaring(
            tally_keyvalue::storage::MemoryStorage::new(),
            capabilities,
        ));
        let retention = tally_keyvalue::storage::idempotency::DEFAULT_RETENTION;
        let counters = Arc::new(
            tally::Service::new(
                &tally::ComponentSource::Embedded,
                &options,
                storage,
                retention,
            )
            .unwrap(),
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (bound, address) = std::sync::mpsc::channel();
        let served = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                bound.send(listener.local_addr().unwrap()).unwrap();
                let options = tally::resp::RespOptions {
                    max_clients: 10,
                    idle_timeout: Duration::from_secs(60),
                    auth_token: None,
                };
                let metrics = Arc::new(tally::metrics::Metrics::default());
                tally::resp::serve(listener, counters, metrics, options, stopped).await
            })
        });
        Self {
            address: address.recv().unwrap(),
            stop,
            served,
        }
    }

    /// Stops the listener: how serving ended.
    fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.served.join().unwrap()
    }
}

/// On a store that cannot commit writes together (it declares increment limits only, which
/// RESP's signed range needs), `EXEC` answers an error that says so and applies nothing;
/// outside a transaction the same commands work.
#[test]
fn exec_on_a_store_without_write_groups_applies_nothing() {
    let capabilities = tally_keyvalue::storage::Capabilities::NONE.with_increment_limits();
    let server = InProcess::start("memory-without-groups", capabilities);
    let mut client = RespClient::connect(server.address, Duration::from_secs(10)).unwrap();
    assert_eq!(client.command(&["INCR", "a"]).unwrap(), ":1\r\n");
    assert_eq!(client.command(&["MULTI"]).unwrap(), "+OK\r\n");
    assert_eq!(client.command(&["INCR", "a"]).unwrap(), "+QUEUED\r\n");
    assert_eq!(client.command(&["INCR", "b"]).unwrap(), "+QUEUED\r\n");
    assert_eq!(
        client.command(&["EXEC"]).unwrap(),
        "-ERR the counter store memory-without-groups cannot apply writes together, so tally \
         runs no transactions on it; nothing was applied\r\n"
    );
    assert_eq!(client.command(&["GET", "a"]).unwrap(), "$1\r\n1\r\n");
    assert_eq!(client.command(&["GET", "b"]).unwrap(), "$-1\r\n");
    drop(client);
    server.stop().unwrap();
}

/// A store of u64 counters that cannot stop an increment at RESP's signed 64-bit limit is
/// refused when the RESP listener starts, naming the store and the way out, instead of failing
/// every `INCR`.
#[test]
fn resp_refuses_a_store_that_cannot_limit_increments() {
    let server = InProcess::start(
        "memory-without-limits",
        tally_keyvalue::storage::Capabilities::NONE,
    );
    assert_eq!(
        server.stop().unwrap_err().to_string(),
        "the counter store memory-without-limits holds counters past 9223372036854775807 and \
         cannot stop an increment there, which every RESP increment needs (Redis integers are \
         signed 64-bit); serve it over HTTP only, or give it the increment_limits capability"
    );
}
