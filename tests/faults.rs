//! Storage faults: another process holding the write lock, a missing directory. Each gives a
//! clear, retryable-or-fixable error and loses or doubles nothing.
#![allow(clippy::unwrap_used)]

mod common;

use common::server::Server;
use common::{TempDb, tally_fails, tally_ok};

/// While another process holds SQLite's write lock past the busy timeout, increments get 503
/// with Retry-After (server) or exit 3 (CLI) and are not applied; after the lock is released the
/// next increment counts exactly once more.
#[test]
fn held_write_lock_is_a_retryable_busy_error() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "10"]);
    let server = Server::start_with(&db.path, &["--busy-timeout-ms", "200"], &[]);

    let intruder = rusqlite::Connection::open(&db.path).unwrap();
    intruder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let response = server.request("POST", "/counters/visits/increment", None);
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(response.header("retry-after"), Some("1"));
    assert!(
        response.body.contains("\"code\":\"busy\""),
        "{}",
        response.body
    );
    let stderr = tally_fails(&db.path, &["--busy-timeout-ms", "200", "incr", "visits"], 3);
    assert!(stderr.contains("busy"), "{stderr}");
    // Reads go on while the writer is locked out.
    assert_eq!(server.value("visits"), 10);
    intruder.execute_batch("COMMIT").unwrap();

    let response = server.request("POST", "/counters/visits/increment", None);
    assert_eq!(response.body, r#"{"name":"visits","value":11}"#);
    assert_eq!(db.raw_value("visits"), Some(b"11".to_vec()));
}

/// A database in a directory that does not exist is named as such, and nothing is created.
#[test]
fn missing_directory_is_named() {
    let db = TempDb::new();
    let path = db.dir.path().join("no/such/dir/counters.db");
    let stderr = tally_fails(&path, &["incr", "visits"], 3);
    assert!(
        stderr.contains("the directory") && stderr.contains("no/such/dir does not exist"),
        "{stderr}"
    );
    assert!(!db.dir.path().join("no").exists());
}
