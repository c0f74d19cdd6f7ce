//! Windows through the real binary: exact under concurrency on SQLite, Redis and PostgreSQL with
//! two `tally serve` processes on one store, across a window's end on a controlled clock
//! (`--clock-file`); a keyed hit counts once through SIGKILLs and answers as its first attempt
//! even after its window ended; sweeps leave no ended window and touch no counter; the command
//! line's exit codes and outcomes.

use crate::common::server::Server;
use crate::common::{TempDb, tally, tally_ok};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tally_keyvalue::storage::Storage;
use tally_test_support::http_client::{Client, Response};
use tally_test_support::postgres_server::PostgresServer;
use tally_test_support::redis_server::RedisServer;

/// Half a minute into a window of one minute (windows are aligned to the Unix epoch).
pub(crate) const T0: u64 = 60_000 * 30_000_000 + 30_000;
const CLIENTS: usize = 32;
const HITS_PER_CLIENT: usize = 20;
const LIMIT: u64 = 100;

/// A clock the test moves: the file every process of a test reads its time from.
struct ControlledClock {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ControlledClock {
    fn at(ms: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        std::fs::write(&path, ms.to_string()).unwrap();
        Self { _dir: dir, path }
    }

    fn set(&self, ms: u64) {
        // Written whole, then renamed: a reader never sees half a number.
        let next = self.path.with_extension("next");
        std::fs::write(&next, ms.to_string()).unwrap();
        std::fs::rename(next, &self.path).unwrap();
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

/// One hit over HTTP on `client`: the answer and its body.
fn hit(client: &mut Client, name: &str, body: &str, key: Option<&str>) -> (Response, Value) {
    let header = key.map(|key| format!("Idempotency-Key: {key}"));
    let response = client
        .request_with_headers(
            "POST",
            &format!("/windows/{name}/hit"),
            header.as_deref(),
            Some(body),
        )
        .unwrap();
    let value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response, value)
}

/// `CLIENTS` clients hit one window of one minute with a limit of `LIMIT`, through `servers` in
/// turn: exactly `LIMIT` are allowed, every hit's count is its own (1 to the number of hits, each
/// once), and the window holds the number of hits. Then the same in the next window, after the
/// clock moved: the new window starts from nothing and the old one keeps its count.
fn exact_in_two_windows(servers: &[&Server], clock: &ControlledClock) {
    let addresses: Vec<_> = servers.iter().map(|server| server.address).collect();
    let total = (CLIENTS * HITS_PER_CLIENT) as u64;
    for (window, now) in [(0, T0), (1, T0 + 60_000)] {
        clock.set(now);
        let answers: Vec<(u16, u64)> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..CLIENTS)
                .map(|client| {
                    let address = addresses[client % addresses.len()];
                    scope.spawn(move || {
                        let mut connection =
                            Client::connect(address, Duration::from_secs(30)).unwrap();
                        (0..HITS_PER_CLIENT)
                            .map(|_| {
                                let (response, outcome) = hit(
                                    &mut connection,
                                    "api",
                                    &format!(r#"{{"window": "1m", "limit": {LIMIT}}}"#),
                                    None,
                                );
                                assert!(matches!(response.status, 200 | 429), "{response:?}");
                                (response.status, outcome["count"].as_u64().unwrap())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|thread| thread.join().unwrap())
                .collect()
        });
        let allowed = answers.iter().filter(|(status, _)| *status == 200).count() as u64;
        assert_eq!(allowed, LIMIT, "window {window}: allowed hits");
        let counts: BTreeSet<u64> = answers.iter().map(|(_, count)| *count).collect();
        assert_eq!(
            counts,
            (1..=total).collect::<BTreeSet<_>>(),
            "window {window}: every hit its own count"
        );
        assert!(
            answers
                .iter()
                .all(|(status, count)| (*status == 200) == (*count <= LIMIT)),
            "window {window}: a hit is allowed exactly when its count is within the limit"
        );
    }
    let history = servers[0].request("GET", "/windows/api?window=1m&last=3", None);
    assert_eq!(history.status, 200, "{history:?}");
    let history: Value = serde_json::from_str(&history.body).unwrap();
    assert_eq!(
        history,
        serde_json::json!({ "name": "api", "window": "1m", "counts": [0, total, total] })
    );
}

#[test]
fn sqlite_windows_are_exact_with_two_servers_on_one_file() {
    let db = TempDb::new();
    let clock = ControlledClock::at(T0);
    let global = ["--clock-file", clock.arg()];
    let first = Server::start_with(&db.path, &global, &[]);
    let second = Server::start_with(&db.path, &global, &[]);
    exact_in_two_windows(&[&first, &second], &clock);
}

#[test]
fn redis_windows_are_exact_with_two_servers_on_one_store() {
    let redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]).unwrap();
    let db = TempDb::new();
    let clock = ControlledClock::at(T0);
    let store = redis.url(0);
    let global = ["--store", &store, "--clock-file", clock.arg()];
    let first = Server::start_with(&db.path, &global, &[]);
    let second = Server::start_with(&db.path, &global, &[]);
    exact_in_two_windows(&[&first, &second], &clock);
}

#[test]
fn postgres_windows_are_exact_with_two_servers_on_one_store() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let db = TempDb::new();
    let clock = ControlledClock::at(T0);
    let store = postgres.url();
    let global = ["--store", &store, "--clock-file", clock.arg()];
    let first = Server::start_with(&db.path, &global, &[]);
    let second = Server::start_with(&db.path, &global, &[]);
    exact_in_two_windows(&[&first, &second], &clock);
}

/// The answer's headers: the IETF draft's policy and state, and over the limit `Retry-After`
/// (seconds to the window's end on the controlled clock) with the outcome and `rate_limited`.
#[test]
fn hits_answer_with_rate_limit_headers() {
    let db = TempDb::new();
    let clock = ControlledClock::at(T0 + 12_500);
    let server = Server::start_with(&db.path, &["--clock-file", clock.arg()], &[]);
    let mut client = server.client();
    let body = r#"{"window": "60s", "limit": 2, "cost": 1}"#;
    let (first, outcome) = hit(&mut client, "login:ann", body, None);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        outcome,
        serde_json::json!({
            "name": "login:ann", "window": "1m", "count": 1, "used": 1, "limit": 2,
            "allowed": true, "remaining": 1, "window_start": T0 - 30_000,
            "resets_at": T0 + 30_000,
        })
    );
    assert_eq!(first.header("ratelimit-policy"), Some("\"1m\";q=2;w=60"));
    // 17.5 s left: 18 whole seconds.
    assert_eq!(first.header("ratelimit"), Some("\"1m\";r=1;t=18"));
    hit(&mut client, "login:ann", body, None);
    let (over, outcome) = hit(&mut client, "login:ann", body, None);
    assert_eq!(over.status, 429, "{over:?}");
    assert_eq!(over.header("retry-after"), Some("18"));
    assert_eq!(over.header("ratelimit"), Some("\"1m\";r=0;t=18"));
    assert_eq!(outcome["code"], "rate_limited");
    assert_eq!(outcome["count"], 3);
    assert_eq!(outcome["allowed"], false);
    assert!(
        outcome["error"]
            .as_str()
            .unwrap()
            .contains("over its limit of 2 per 1m: 3 used"),
        "{outcome}"
    );
    // Bad windows and names are refused with what is wrong, and nothing is counted.
    for (body, code) in [
        (r#"{"window": "0s", "limit": 1}"#, "invalid_window"),
        (r#"{"window": "1 minute", "limit": 1}"#, "invalid_window"),
        (
            r#"{"window": "1m", "limit": 1, "keep": 1}"#,
            "invalid_window",
        ),
        (r#"{"window": "1m", "limit": -1}"#, "invalid_body"),
        (r#"{"window": "1m"}"#, "invalid_body"),
        (
            r#"{"window": "1m", "limit": 1, "policy": "leaky"}"#,
            "invalid_body",
        ),
    ] {
        let (refused, answer) = hit(&mut client, "login:ann", body, None);
        assert_eq!(
            (refused.status, answer["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    let (refused, answer) = hit(&mut client, "%01", r#"{"window": "1m", "limit": 1}"#, None);
    assert_eq!(
        (refused.status, answer["code"].as_str()),
        (400, Some("invalid_name"))
    );
    let history = server.request("GET", "/windows/login:ann?window=1m&last=1", None);
    assert_eq!(
        serde_json::from_str::<Value>(&history.body).unwrap()["counts"],
        serde_json::json!([3])
    );
    // The sliding policy weighs the previous window by the part of it still within a minute
    // back: 2 s into the next window, 58 s of the previous one's 3 hits, 3 * 58 / 60 = 2.9,
    // rounded down to 2; 42.5 s in, 3 * 17.5 / 60 = 0.875, so 0.
    let sliding = r#"{"window": "1m", "limit": 2, "policy": "sliding"}"#;
    clock.set(T0 + 30_000 + 2_000);
    let (over, outcome) = hit(&mut client, "login:ann", sliding, None);
    assert_eq!(
        (
            over.status,
            outcome["count"].as_u64(),
            outcome["used"].as_u64()
        ),
        (429, Some(1), Some(3))
    );
    clock.set(T0 + 30_000 + 42_500);
    let (within, outcome) = hit(&mut client, "login:ann", sliding, None);
    assert_eq!(
        (
            within.status,
            outcome["count"].as_u64(),
            outcome["used"].as_u64()
        ),
        (200, Some(2), Some(2))
    );
}

/// A keyed hit counts once whatever happens to its answer: retried after SIGKILLs of the
/// server it counts once, and retried after its window ended it is answered as its first
/// attempt was (the same window, the same count) with nothing counted in the new window.
#[test]
fn keyed_hits_count_once_through_kills_and_window_ends() {
    let db = TempDb::new();
    let clock = ControlledClock::at(T0);
    let global = ["--clock-file", clock.arg()];
    let mut server = Some(Server::start_with(&db.path, &global, &[]));
    let address = server.as_ref().unwrap().address;
    let listen = address.to_string();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = r#"{"window": "1m", "limit": 1000000}"#;
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut done = 0_u64;
                let mut connection: Option<Client> = None;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let key = format!("client{client}-hit{done}");
                    // Until answered: a lost answer is retried with the same key.
                    loop {
                        if connection.is_none() {
                            connection = Client::connect(address, Duration::from_secs(5)).ok();
                        }
                        let answer = connection.as_mut().map(|connection| {
                            connection.request_with_headers(
                                "POST",
                                "/windows/exact/hit",
                                Some(&format!("Idempotency-Key: {key}")),
                                Some(body),
                            )
                        });
                        match answer {
                            Some(Ok(response)) if response.status == 200 => break,
                            Some(Ok(response)) if matches!(response.status, 409 | 503) => {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            Some(Ok(response)) => panic!("unexpected answer {response:?}"),
                            Some(Err(_)) | None => {
                                connection = None;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    done += 1;
                }
                done
            })
        })
        .collect();
    for kill in 0..6_u64 {
        std::thread::sleep(Duration::from_millis(200 + 70 * kill));
        if let Some(server) = server.take() {
            server.kill();
        }
        server = Some(Server::start_with(
            &db.path,
            &global,
            &["--listen", &listen],
        ));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let hits: u64 = clients
        .into_iter()
        .map(|client| client.join().unwrap())
        .sum();
    assert!(hits > 0);
    let server = server.unwrap();
    let history = server.request("GET", "/windows/exact?window=1m&last=1", None);
    assert_eq!(
        serde_json::from_str::<Value>(&history.body).unwrap()["counts"],
        serde_json::json!([hits]),
        "{hits} keyed hits through 6 SIGKILLs"
    );

    // A retry after the window ended: the first attempt's window and count, counted nowhere.
    let mut client = server.client();
    let (first, first_outcome) = hit(&mut client, "late", body, Some("late-1"));
    assert_eq!(first.status, 200);
    clock.set(T0 + 60_000);
    let (retry, retry_outcome) = hit(&mut client, "late", body, Some("late-1"));
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry_outcome, first_outcome);
    let history = server.request("GET", "/windows/late?window=1m&last=2", None);
    assert_eq!(
        serde_json::from_str::<Value>(&history.body).unwrap()["counts"],
        serde_json::json!([1, 0])
    );
}

/// Every key of the bucket, as the store lists it.
fn keys(storage: &dyn Storage) -> Vec<String> {
    crate::common::block_on(async {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = storage.list_keys("", cursor.as_ref(), 1000).await.unwrap();
            keys.extend(page.keys);
            match page.cursor {
                None => return keys,
                next => cursor = next,
            }
        }
    })
}

/// Windows of names no longer hit are swept: after their windows ended, `tally sweep` (and a
/// server's own sweep) leaves no window key older than `--keep`, and counters as they were.
#[test]
fn sweeps_remove_ended_windows_and_nothing_else() {
    let db = TempDb::new();
    let clock = ControlledClock::at(T0);
    let with_clock = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--clock-file".to_string(), clock.arg().to_string()];
        all.extend(args.iter().map(ToString::to_string));
        all
    };
    let run = |args: &[&str]| {
        let args = with_clock(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tally(&db.path, &args)
    };
    tally_ok(&db.path, &["set", "visits", "7"]);
    tally_ok(&db.path, &["set", "z-last", "1"]);
    for minute in 0..5 {
        clock.set(T0 + minute * 60_000);
        for name in ["a", "b", "c"] {
            let out = run(&["hit", name, "--window", "1m", "--limit", "9", "--keep", "3"]);
            assert!(out.status.success(), "{out:?}");
        }
        run(&["hit", "hourly", "--window", "1h", "--limit", "9"]);
    }
    // Each name keeps its last 3 windows (the first hit of a window retires the one 3 before).
    let open = || {
        tally_keyvalue::open(
            &format!("sqlite:{}", db.path.display()),
            &tally_keyvalue::OpenOptions::default(),
        )
        .unwrap()
    };
    let window_keys = |storage: &dyn Storage| -> Vec<(String, u64, u64)> {
        keys(storage)
            .iter()
            .filter_map(|key| {
                tally_guest::window::parse(key)
                    .map(|(name, length, number)| (name.to_string(), length, number))
            })
            .collect()
    };
    let current = (T0 + 4 * 60_000) / 60_000;
    let storage = open();
    let before = window_keys(&*storage);
    for name in ["a", "b", "c"] {
        let numbers: Vec<u64> = before
            .iter()
            .filter(|(n, length, _)| n == name && *length == 60_000)
            .map(|(_, _, number)| *number)
            .collect();
        assert_eq!(numbers, [current - 2, current - 1, current], "{name}");
    }
    drop(storage);
    // An hour later, a sweep keeping 2 leaves only the hourly name's current and previous.
    clock.set(T0 + 4 * 60_000 + 3_600_000);
    let out = run(&["--json", "sweep", "--keep", "2"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"removed":9}"#
    );
    let storage = open();
    let after = window_keys(&*storage);
    assert_eq!(after, [("hourly".to_string(), 3_600_000, T0 / 3_600_000)]);
    let counters: Vec<String> = keys(&*storage)
        .into_iter()
        .filter(|key| !tally_guest::window::is_window_key(key))
        .collect();
    assert_eq!(counters, ["visits", "z-last"]);
    drop(storage);
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "7\n");

    // A server sweeps by itself, and says so.
    clock.set(T0 + 4 * 60_000 + 3 * 3_600_000);
    let server = Server::start_with(
        &db.path,
        &with_clock(&[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &["--sweep-interval-secs", "1", "--sweep-keep", "2"],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !window_keys(&*open()).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not sweep within 20 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.value("visits"), 7);
    let metrics = server.request("GET", "/metrics", None).body;
    assert!(
        metrics.contains("tally_windows_swept_total 1\n"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(db.path.with_extension("server.log")).unwrap();
    assert!(
        log.contains("sweeping windows every 1 s, keeping the last 2 of every name"),
        "{log}"
    );
}

/// The command line: exit 0 within the limit and 5 over it (counted), `--json`, the history
/// by window start, and a bad window refused with exit 2 before anything is counted.
#[test]
fn the_command_line_hits_and_reads_windows() {
    let db = TempDb::new();
    let clock = ControlledClock::at(T0);
    let hit = |extra: &[&str]| {
        let mut args = vec!["--clock-file", clock.arg(), "hit", "job", "--window", "1m"];
        args.extend(extra);
        tally(&db.path, &args)
    };
    let first = hit(&["--limit", "2"]);
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "allowed: 1 of 2 per 1m, 1 left, resets in 30 s\n"
    );
    assert_eq!(hit(&["--limit", "2"]).status.code(), Some(0));
    let over = hit(&["--limit", "2"]);
    assert_eq!(over.status.code(), Some(5));
    assert_eq!(
        String::from_utf8_lossy(&over.stdout),
        "limited: 3 of 2 per 1m (counted), resets in 30 s\n"
    );
    assert!(over.stderr.is_empty(), "{over:?}");
    let json = tally(
        &db.path,
        &[
            "--clock-file",
            clock.arg(),
            "--json",
            "hit",
            "job",
            "--window",
            "1m",
            "--limit",
            "9",
            "--cost",
            "0",
        ],
    );
    assert_eq!(json.status.code(), Some(0));
    let outcome: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(outcome["count"], 3);
    assert_eq!(outcome["remaining"], 6);
    let bad = hit(&["--limit", "2", "--keep", "1"]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid window: keep must be 2 to 1000"),
        "{bad:?}"
    );
    let bad = tally(&db.path, &["hit", "job", "--window", "5w", "--limit", "1"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    clock.set(T0 + 60_000);
    let history = tally(
        &db.path,
        &[
            "--clock-file",
            clock.arg(),
            "history",
            "job",
            "--window",
            "1m",
            "--last",
            "2",
        ],
    );
    let start = T0 - 30_000;
    assert_eq!(
        String::from_utf8_lossy(&history.stdout),
        format!(
            "{}\t3\n{}\t0\n",
            tally::cli::window::utc(start),
            tally::cli::window::utc(start + 60_000)
        )
    );
    // Windows are not counters: not listed, not exported.
    assert_eq!(tally_ok(&db.path, &["list"]), "");
    assert_eq!(tally_ok(&db.path, &["export"]), "");
}

/// One window's hits at given times, for hosts to answer alike: (ms after [`T0`], policy, cost).
pub(crate) const PARITY_HITS: [(u64, &str, u64); 7] = [
    (0, "fixed", 1),
    (1_000, "fixed", 1),
    (2_000, "fixed", 2),
    (3_000, "fixed", 0),
    (65_000, "sliding", 1),
    (100_000, "sliding", 1),
    (180_000, "fixed", 1),
];

/// What a hit came to, whoever answered: count, used, allowed, remaining, window start, reset.
pub(crate) type HitFields = (u64, u64, bool, u64, u64, u64);

/// The fields of an outcome printed as JSON, with `-` or `_` in the names.
pub(crate) fn hit_fields(outcome: &Value) -> HitFields {
    let field = |name: &str| {
        outcome
            .get(name)
            .or_else(|| outcome.get(name.replace('-', "_")))
            .unwrap_or_else(|| panic!("no {name} in {outcome}"))
            .clone()
    };
    (
        field("count").as_u64().unwrap(),
        field("used").as_u64().unwrap(),
        field("allowed").as_bool().unwrap(),
        field("remaining").as_u64().unwrap(),
        field("window-start").as_u64().unwrap(),
        field("resets-at").as_u64().unwrap(),
    )
}

/// [`PARITY_HITS`] of `api` (1m windows, limit 3) through `tally hit --json` on a fresh
/// database: the outcomes every other host must give.
pub(crate) fn tally_parity_outcomes() -> Vec<HitFields> {
    let db = TempDb::new();
    let clock = ControlledClock::at(T0);
    PARITY_HITS
        .iter()
        .map(|(offset, policy, cost)| {
            clock.set(T0 + offset);
            let cost = cost.to_string();
            let mut args = vec![
                "--clock-file",
                clock.arg(),
                "--json",
                "hit",
                "api",
                "--window",
                "1m",
                "--limit",
                "3",
                "--cost",
                &cost,
            ];
            if *policy == "sliding" {
                args.push("--sliding");
            }
            let output = tally(&db.path, &args);
            assert!(matches!(output.status.code(), Some(0 | 5)), "{output:?}");
            hit_fields(&serde_json::from_slice(&output.stdout).unwrap())
        })
        .collect()
}

/// The expected outcomes are what the rules say, worked out by hand: the third hit (cost 2)
/// takes the window to 4 of 3; the sliding hits weigh that window's 4 by what is left of it.
#[test]
fn the_parity_sequence_answers_by_the_rules() {
    let start = T0 - 30_000;
    let next = start + 60_000;
    let later = start + 180_000;
    assert_eq!(
        tally_parity_outcomes(),
        [
            (1, 1, true, 2, start, next),
            (2, 2, true, 1, start, next),
            (4, 4, false, 0, start, next),
            (4, 4, false, 0, start, next),
            // 35 s into the next window: 25 s of 60 of the previous one's 4 still count, 1.66.
            (1, 2, true, 1, next, next + 60_000),
            // 10 s into the window after: 50 s of 60 of the previous one's 1 hit, 0.83: 0.
            (1, 1, true, 2, next + 60_000, next + 120_000),
            (1, 1, true, 2, later, later + 60_000),
        ]
    );
}

/// Windows' keys sort before every counter, so a store full of windows could start a listing
/// of counters with pages of none: `GET /counters` passes over such pages, and its first page
/// holds the counters.
#[test]
fn many_windows_do_not_empty_the_first_page_of_counters() {
    let db = TempDb::new();
    let clock = ControlledClock::at(T0);
    let server = Server::start_with(&db.path, &["--clock-file", clock.arg()], &[]);
    let mut client = server.client();
    for n in 0..120 {
        let (response, _) = hit(
            &mut client,
            &format!("client-{n:03}"),
            r#"{"window": "1m", "limit": 5}"#,
            None,
        );
        assert_eq!(response.status, 200, "{response:?}");
    }
    for name in ["a", "b", "c"] {
        let response = server.request("PUT", &format!("/counters/{name}"), Some(r#"{"value": 1}"#));
        assert_eq!(response.status, 200, "{response:?}");
    }
    let page = server.request("GET", "/counters?limit=50", None);
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.header("link"), None, "{page:?}");
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&page.body)
        .unwrap()
        .iter()
        .map(|counter| counter["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    // And the windows list holds every name once.
    let mut windows = BTreeSet::new();
    let mut url = "/windows?limit=50".to_string();
    loop {
        let page = server.request("GET", &url, None);
        for entry in serde_json::from_str::<Vec<Value>>(&page.body).unwrap() {
            windows.insert(entry["name"].as_str().unwrap().to_string());
        }
        match page.header("link") {
            Some(link) => url = link[1..link.find('>').unwrap()].to_string(),
            None => break,
        }
    }
    assert_eq!(windows.len(), 120);
}
