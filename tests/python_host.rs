//! The component in a Python service (`examples/python`): Python's `wasmtime` from PyPI runs the
//! component that `tally component --out` writes, over `wasi:keyvalue` implemented in Python on
//! `sqlite3` and on redis-py. Every step is a new Python process, so only the store carries state.

use crate::common::{self, TempDb};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tally_test_support::redis_server::RedisServer;

/// The virtualenv `./setup --test` makes for this example.
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/wasmtime-py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./setup --test",
        python.display()
    );
    python
}

/// The example's command line (`examples/python/counter.py`).
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/python/counter.py")
}

/// The component as a user gets it: `tally component --out FILE`.
fn component(dir: &Path) -> PathBuf {
    let path = dir.join("counter.wasm");
    common::run_ok(&["component", "--out", path.to_str().unwrap()]);
    path
}

/// One Python process: `counter.py COMPONENT STORE args...`.
fn host(component: &Path, store: &str, args: &[&str]) -> Output {
    Command::new(python())
        .arg(script())
        .arg(component)
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

/// Its standard output, asserting it succeeded.
fn host_ok(component: &Path, store: &str, args: &[&str]) -> String {
    let output = host(component, store, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Its standard error, asserting it was refused (exit 1).
fn host_refused(component: &Path, store: &str, args: &[&str]) -> String {
    let output = host(component, store, args);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
    String::from_utf8(output.stderr).unwrap()
}

/// The restart scenarios, the reads and the refusals on one store.
fn counts_across_processes(component: &Path, store: &str, corrupt: impl Fn(&str)) {
    host_ok(component, store, &["set", "visits", "10"]);
    assert_eq!(host_ok(component, store, &["get", "visits"]), "10\n");
    assert_eq!(host_ok(component, store, &["incr", "visits"]), "11\n");
    assert_eq!(host_ok(component, store, &["get", "visits"]), "11\n");
    assert_eq!(host_ok(component, store, &["incr", "visits", "4"]), "15\n");
    assert_eq!(host_ok(component, store, &["get", "visits"]), "15\n");

    assert_eq!(host_ok(component, store, &["find", "never"]), "None\n");
    assert_eq!(host_ok(component, store, &["get", "never"]), "0\n");
    assert_eq!(
        host_ok(component, store, &["find-many", "visits", "never"]),
        "[15, None]\n"
    );
    host_ok(component, store, &["set", "apples", "3"]);
    host_ok(component, store, &["set", "zebras", "7"]);
    assert_eq!(
        host_ok(component, store, &["page", "2"]),
        "apples\t3\nvisits\t15\nnext: :visits\n"
    );
    assert_eq!(
        host_ok(component, store, &["page", "2", ":visits"]),
        "zebras\t7\n"
    );
    host_ok(component, store, &["reset", "zebras"]);
    assert_eq!(host_ok(component, store, &["find", "zebras"]), "None\n");

    assert_eq!(
        host_refused(component, store, &["get", ""]),
        "error: invalid-name: a counter name must not be empty\n"
    );
    assert_eq!(
        host_refused(component, store, &["page", "0"]),
        "error: invalid-page: limit must be 1 to 1000; got 0\n"
    );
    host_ok(component, store, &["set", "top", "9223372036854775807"]);
    if store.starts_with("sqlite:") {
        host_ok(component, store, &["set", "top", "18446744073709551615"]);
    }
    assert_eq!(
        host_refused(component, store, &["incr", "top"]),
        "error: overflow: top\n"
    );
    corrupt("broken");
    assert_eq!(
        host_refused(component, store, &["incr", "broken"]),
        "error: corrupt-value: broken\n"
    );
    assert_eq!(host_ok(component, store, &["get", "visits"]), "15\n");
}

/// Two processes of 500 increments each (every one its own call) end at exactly 1000.
fn two_processes_count_exactly(component: &Path, store: &str) {
    let hammers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(python())
                .arg(script())
                .arg(component)
                .arg(store)
                .args(["hammer", "together", "500"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut hammer in hammers {
        assert!(hammer.wait().unwrap().success());
    }
    assert_eq!(host_ok(component, store, &["get", "together"]), "1000\n");
}

/// On Python's `sqlite3`: 10, 11, 15 across processes, reads, paging, refusals, and two
/// processes counting exactly.
#[test]
fn python_host_on_sqlite() {
    let db = TempDb::new();
    let component = component(db.dir.path());
    let path = db.dir.path().join("python.db");
    let store = format!("sqlite:{}", path.display());
    counts_across_processes(&component, &store, |key| {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)",
            (key, b"abc".to_vec()),
        )
        .unwrap();
    });
    two_processes_count_exactly(&component, &store);
}

/// On redis-py: the same, and the Python host, `tally --store redis://` and `redis-cli` move
/// the same counters.
#[test]
fn python_host_on_redis_shares_counters_with_tally() {
    let redis = RedisServer::start(&[]).unwrap();
    let store = redis.url(0);
    let db = TempDb::new();
    let component = component(db.dir.path());
    let redis_cli = |args: &[&str]| {
        let output = Command::new("redis-cli")
            .args(["-p", &redis.port().to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    counts_across_processes(&component, &store, |key| {
        assert_eq!(redis_cli(&["SET", key, "abc"]), "OK\n");
    });
    assert_eq!(host_ok(&component, &store, &["incr", "shared"]), "1\n");
    assert_eq!(
        common::run_ok(&["--store", &store, "incr", "shared"]),
        "2\n"
    );
    assert_eq!(redis_cli(&["INCR", "shared"]), "3\n");
    assert_eq!(host_ok(&component, &store, &["get", "shared"]), "3\n");
    assert_eq!(common::run_ok(&["--store", &store, "get", "shared"]), "3\n");
    two_processes_count_exactly(&component, &store);
}

/// The Python service answers the same hits at the same times as `tally hit`, on Python's
/// `sqlite3` and on redis-py.
#[test]
fn python_hits_answer_as_tallys() {
    let dir = tempfile::tempdir().unwrap();
    let component = component(dir.path());
    let expected = crate::windows::tally_parity_outcomes();
    let redis = RedisServer::start(&[]).unwrap();
    for store in [
        format!("sqlite:{}", dir.path().join("windows.db").display()),
        redis.url(3),
    ] {
        let outcomes: Vec<_> = crate::windows::PARITY_HITS
            .iter()
            .map(|(offset, policy, cost)| {
                let now = (crate::windows::T0 + offset).to_string();
                let cost = cost.to_string();
                let printed = host_ok(
                    &component,
                    &store,
                    &["hit", "api", "60000", "3", &cost, policy, &now],
                );
                crate::windows::hit_fields(&serde_json::from_str(&printed).unwrap())
            })
            .collect();
        assert_eq!(outcomes, expected, "{store}");
    }
}
