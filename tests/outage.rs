//! A store outage is retryable and says so: with `redis-server` killed (or shut down) under a
//! running `tally serve`, writes answer 503 `store_unavailable` with `Retry-After` and a message
//! naming the store, from the first one on (a write never goes out on a connection the server
//! already closed; "outcome unknown" is only for a connection cut after the write left), `/readyz` answers 503 while `/healthz` stays 200, RESP and the CLI say the same
//! words, and once Redis is back (same data directory, `appendfsync always`) the server serves
//! again by itself, with every acknowledged increment there. Under load, clients that retry
//! each keyed increment until answered get every one counted exactly once through the outage.

use crate::common::TempDb;
use crate::common::server::Server;
use std::time::{Duration, Instant};
use tally_test_support::redis_server::RedisServer;

/// The whole outage, step by step, with exact values.
#[test]
fn redis_outage_is_503_and_the_server_recovers_by_itself() {
    let mut redis =
        RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]).unwrap();
    let store = redis.url(0);
    let db = TempDb::new();
    let server = Server::start_with(&db.path, &["--store", &store], &["--resp", "127.0.0.1:0"]);
    for _ in 0..20 {
        let response = server.request("POST", "/counters/visits/increment", None);
        assert_eq!(response.status, 200, "{response:?}");
    }
    let ready = server.request("GET", "/readyz", None);
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );

    redis.kill();
    // The server is gone, and its connections with it: the idle connection the last requests
    // used is found closed before a write goes out on it, so even the first write is the
    // outage, with nothing sent (not "outcome unknown").
    let unreachable = format!("the counter store {store} cannot be reached (");
    for (method, path) in [
        ("POST", "/counters/visits/increment"),
        ("GET", "/counters/visits"),
        ("GET", "/readyz"),
    ] {
        let response = server.request(method, path, None);
        assert_eq!(response.status, 503, "{method} {path}: {response:?}");
        assert_eq!(response.header("retry-after"), Some("1"), "{response:?}");
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["code"], "store_unavailable", "{response:?}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&unreachable) && error.ends_with("; retry in a moment"),
            "{error}"
        );
    }
    assert_eq!(server.request("GET", "/healthz", None).status, 200);
    let answer = server.resp_client().command(&["INCR", "visits"]).unwrap();
    assert!(
        answer.starts_with(&format!("-ERR {unreachable}")),
        "{answer}"
    );
    let cli = crate::common::run(&["--store", &store, "incr", "visits"]);
    assert_eq!(cli.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(
        stderr.starts_with(&format!("tally: error: {unreachable}")),
        "{stderr}"
    );
    let json = crate::common::run(&["--json", "--store", &store, "incr", "visits"]);
    let error: serde_json::Value = serde_json::from_slice(&json.stderr).unwrap();
    assert_eq!(error["code"], "store_unavailable");

    redis.restart().unwrap();
    // No restart of tally: the next requests reconnect.
    let deadline = Instant::now() + Duration::from_secs(10);
    let value = loop {
        let response = server.request("POST", "/counters/visits/increment", None);
        if response.status == 200 {
            break response.body;
        }
        assert_eq!(response.status, 503, "{response:?}");
        assert!(Instant::now() < deadline, "the server never served again");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(value, r#"{"name":"visits","value":21}"#);
    assert_eq!(server.request("GET", "/readyz", None).status, 200);
    assert_eq!(
        server.resp_client().command(&["INCR", "visits"]).unwrap(),
        ":22\r\n"
    );
    // The log tells the outage once when it starts and once when it ends, however many
    // requests met it.
    let log = std::fs::read_to_string(db.path.with_extension("server.log")).unwrap();
    let started: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("store outage:"))
        .collect();
    assert_eq!(started.len(), 1, "{log}");
    assert!(started[0].contains(" WARN "), "{log}");
    assert!(started[0].contains(&unreachable), "{log}");
    assert_eq!(
        log.matches("store outage over: the store answers again")
            .count(),
        1,
        "{log}"
    );
}

/// Redis shut down cleanly between two increments: the next one is 503 with `Retry-After`
/// (nothing was sent), not "outcome unknown". A connection cut after the write left (a proxy
/// relays the write to Redis, which applies it, and drops the answer) is
/// `write_outcome_unknown`, honestly: the write was applied.
#[test]
fn a_store_already_down_is_503_and_a_write_cut_in_flight_is_unknown() {
    use tally_test_support::cutting_proxy::CuttingProxy;
    let redis = RedisServer::start(&[]).unwrap();
    let proxy = CuttingProxy::start(([127, 0, 0, 1], redis.port()).into()).unwrap();
    let through_proxy = format!("redis://{}/0", proxy.address());
    let db = TempDb::new();
    let server = Server::start_with(&db.path, &["--store", &through_proxy], &[]);
    for _ in 0..3 {
        let response = server.request("POST", "/counters/visits/increment", None);
        assert_eq!(response.status, 200, "{response:?}");
    }
    // The next write reaches Redis, which applies it; its answer never comes back.
    proxy.cut_after(b"EVAL");
    let cut = server.request("POST", "/counters/visits/increment", None);
    let body: serde_json::Value = serde_json::from_str(&cut.body).unwrap();
    assert_eq!(
        (cut.status, body["code"].as_str()),
        (500, Some("write_outcome_unknown")),
        "{cut:?}"
    );
    assert_eq!(cut.header("retry-after"), None);
    assert_eq!(proxy.cuts(), 1);
    assert_eq!(server.value("visits"), 4, "the cut write was applied");

    // Shut down cleanly while tally idles with pooled connections to it.
    let answered = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "SHUTDOWN", "NOSAVE"])
        .output()
        .unwrap();
    assert!(answered.stderr.is_empty(), "{answered:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", redis.port())).is_ok() {
        assert!(Instant::now() < deadline, "redis-server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let down = server.request("POST", "/counters/visits/increment", None);
    let body: serde_json::Value = serde_json::from_str(&down.body).unwrap();
    assert_eq!(
        (down.status, body["code"].as_str()),
        (503, Some("store_unavailable")),
        "{down:?}"
    );
    assert_eq!(down.header("retry-after"), Some("1"));
}

/// Under load: clients send keyed increments and retry each until it is answered (on 503, on a
/// lost answer) while `redis-server` is killed and restarted (same data directory,
/// `appendfsync always`). During the outage writes answer 503 with `Retry-After` and `/readyz`
/// is 503; afterwards the same server serves again, and the total is exact: no increment lost,
/// none counted twice (a request that died with the connection to Redis may have been applied,
/// and its retry is answered from its record).
#[test]
fn an_outage_under_load_with_keys_counts_every_increment_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut redis =
        RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]).unwrap();
    let store = redis.url(0);
    let db = TempDb::new();
    let server = Server::start_with(&db.path, &["--store", &store], &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let (done, unavailable) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let address = server.address;
            let (stop, done, unavailable) = (stop.clone(), done.clone(), unavailable.clone());
            std::thread::spawn(move || {
                let (mut current, mut connection) = (0, None);
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("outage-{client}-{n}");
                    let refused = crate::exactly_once::increment_until_answered(
                        &[address],
                        &mut current,
                        &mut connection,
                        "/counters/steady/increment",
                        Some(&key),
                    );
                    unavailable.fetch_add(refused, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let ready = server.request("GET", "/readyz", None);
        if ready.status == 503 || Instant::now() > deadline {
            break ready;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.header("retry-after"), Some("1"));
    std::thread::sleep(Duration::from_millis(700));
    redis.restart().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    let (done, unavailable) = (
        done.load(Ordering::SeqCst),
        unavailable.load(Ordering::SeqCst),
    );
    assert!(unavailable > 0, "no client met the outage");
    assert_eq!(server.request("GET", "/readyz", None).status, 200);
    assert_eq!(
        server.value("steady"),
        done,
        "{done} increments answered ({unavailable} answers 503 on the way)"
    );
}

/// On SQLite the store is part of the process: `/readyz` is 200.
#[test]
fn sqlite_is_ready() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let ready = server.request("GET", "/readyz", None);
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
}
