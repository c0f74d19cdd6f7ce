//! Exactly once: a write sent with an `Idempotency-Key` (HTTP) or `--idempotency-key` (CLI) is
//! applied once; its retries get the first answer back and apply nothing, across restarts and
//! between the CLI and the server; the key with another request is refused; a request still in
//! flight holds its key; keys expire; bad keys are refused; and a database of the schema before
//! keys is upgraded (or, where tally may only read it, served as it is).

use crate::common::server::Server;
use crate::common::{TempDb, tally, tally_fails, tally_ok};
use std::time::{Duration, Instant};
use tally_test_support::http_client::Response;

/// One request with an `Idempotency-Key` header, on a fresh connection.
fn keyed(server: &Server, method: &str, path: &str, key: &str, body: Option<&str>) -> Response {
    server
        .client()
        .request_with_headers(method, path, Some(&format!("Idempotency-Key: {key}")), body)
        .unwrap()
}

/// The error body's `code`.
fn code(response: &Response) -> String {
    let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    body["code"].as_str().unwrap().to_string()
}

/// A replay answers the first answer, byte for byte, marked `Idempotent-Replayed: true`, and
/// applies nothing: over HTTP, after a `kill -9` and restart, and from the CLI on the same
/// database, for increments, sets and resets.
#[test]
fn a_retry_gets_the_first_answer_and_applies_nothing() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let path = "/counters/paid/increment";
    let first = keyed(&server, "POST", path, "order-1", Some(r#"{"by": 5}"#));
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, r#"{"name":"paid","value":5}"#)
    );
    assert_eq!(first.header("idempotent-replayed"), None);
    let other = keyed(&server, "POST", path, "order-2", Some(r#"{"by": 5}"#));
    assert_eq!(other.body, r#"{"name":"paid","value":10}"#);
    let replay = keyed(&server, "POST", path, "order-1", Some(r#"{"by": 5}"#));
    assert_eq!(
        (replay.status, replay.body.as_str()),
        (200, first.body.as_str())
    );
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(server.value("paid"), 10);

    server.kill();
    let server = Server::start(&db.path, &[]);
    let replay = keyed(&server, "POST", path, "order-1", Some(r#"{"by": 5}"#));
    assert_eq!(replay.body, r#"{"name":"paid","value":5}"#);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    // The CLI shares the store's records: the same key and write is the same replay.
    let cli = tally(
        &db.path,
        &["incr", "paid", "--by", "5", "--idempotency-key", "order-1"],
    );
    assert_eq!(cli.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&cli.stdout), "5\n");
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains("used for this write before"),
        "{cli:?}"
    );
    assert_eq!(
        tally_ok(
            &db.path,
            &[
                "--json",
                "incr",
                "paid",
                "--by",
                "5",
                "--idempotency-key",
                "order-1"
            ]
        ),
        "{\"name\":\"paid\",\"value\":5}\n"
    );
    // A key the CLI used first replays over HTTP.
    assert_eq!(
        tally_ok(&db.path, &["incr", "paid", "--idempotency-key", "cli-1"]),
        "11\n"
    );
    let replay = keyed(&server, "POST", path, "cli-1", None);
    assert_eq!(replay.body, r#"{"name":"paid","value":11}"#);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));

    let put = keyed(
        &server,
        "PUT",
        "/counters/paid",
        "set-1",
        Some(r#"{"value": 40}"#),
    );
    assert_eq!(put.body, r#"{"name":"paid","value":40}"#);
    assert_eq!(server.value("paid"), 40);
    let reset = keyed(&server, "DELETE", "/counters/paid", "reset-1", None);
    assert_eq!(reset.body, r#"{"name":"paid","value":0}"#);
    assert_eq!(tally_ok(&db.path, &["incr", "paid", "--by", "3"]), "3\n");
    // Neither replay undoes the increment made since.
    let put = keyed(
        &server,
        "PUT",
        "/counters/paid",
        "set-1",
        Some(r#"{"value": 40}"#),
    );
    assert_eq!(
        (put.body.as_str(), put.header("idempotent-replayed")),
        (r#"{"name":"paid","value":40}"#, Some("true"))
    );
    let reset = keyed(&server, "DELETE", "/counters/paid", "reset-1", None);
    assert_eq!(
        (reset.body.as_str(), reset.header("idempotent-replayed")),
        (r#"{"name":"paid","value":0}"#, Some("true"))
    );
    assert_eq!(
        tally_ok(&db.path, &["reset", "paid", "--idempotency-key", "reset-1"]),
        "0\n"
    );
    assert_eq!(server.value("paid"), 3);
    // This server (since the restart) answered four replays.
    let metrics = server.request("GET", "/metrics", None).body;
    assert!(
        metrics.contains("\ntally_idempotent_replays_total 4\n"),
        "{metrics}"
    );
}

/// A key sent with another request (another `by`, value, counter or operation) is 422
/// `idempotency_key_reused`, names both requests, and changes nothing; the CLI exits 1.
#[test]
fn a_key_reused_for_another_request_is_refused() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let first = keyed(
        &server,
        "POST",
        "/counters/paid/increment",
        "k",
        Some(r#"{"by": 5}"#),
    );
    assert_eq!(first.status, 200);
    for (method, path, body) in [
        ("POST", "/counters/paid/increment", Some(r#"{"by": 6}"#)),
        ("POST", "/counters/paid/increment", None),
        ("POST", "/counters/other/increment", Some(r#"{"by": 5}"#)),
        ("PUT", "/counters/paid", Some(r#"{"value": 5}"#)),
        ("DELETE", "/counters/paid", None),
    ] {
        let response = keyed(&server, method, path, "k", body);
        assert_eq!(response.status, 422, "{method} {path}: {response:?}");
        assert_eq!(code(&response), "idempotency_key_reused");
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(
                "the idempotency key \"k\" was first used to increment \"paid\" by 5, not to "
            ) && error.ends_with("; a new request needs a new key"),
            "{error}"
        );
    }
    assert_eq!(server.value("paid"), 5);
    assert_eq!(server.value("other"), 0);
    let stderr = tally_fails(&db.path, &["set", "paid", "9", "--idempotency-key", "k"], 1);
    assert_eq!(
        stderr,
        "tally: error: the idempotency key \"k\" was first used to increment \"paid\" by 5, \
         not to set \"paid\" to \"9\"; a new request needs a new key\n"
    );
    let json = tally(
        &db.path,
        &["--json", "set", "paid", "9", "--idempotency-key", "k"],
    );
    assert_eq!(json.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&json.stderr).unwrap();
    assert_eq!(error["code"], "idempotency_key_reused");
    assert_eq!(server.value("paid"), 5);
}

/// A refused request records nothing: after the cause is gone, its retry with the same key is
/// applied (not a replay of the refusal).
#[test]
fn a_refused_request_records_nothing() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let max = u64::MAX.to_string();
    server.request(
        "PUT",
        "/counters/full",
        Some(&format!(r#"{{"value": {max}}}"#)),
    );
    let refused = keyed(&server, "POST", "/counters/full/increment", "once", None);
    assert_eq!((refused.status, code(&refused).as_str()), (409, "overflow"));
    server.request("DELETE", "/counters/full", None);
    let applied = keyed(&server, "POST", "/counters/full/increment", "once", None);
    assert_eq!(
        (applied.status, applied.body.as_str()),
        (200, r#"{"name":"full","value":1}"#)
    );
    assert_eq!(applied.header("idempotent-replayed"), None);
    let bad_name = keyed(
        &server,
        "POST",
        "/counters/a%0Ab/increment",
        "bad-name",
        None,
    );
    assert_eq!(code(&bad_name), "invalid_name");
    let applied = keyed(&server, "POST", "/counters/ab/increment", "bad-name", None);
    assert_eq!(applied.status, 200);
}

/// While a request with a key is in flight, another with the same key is 409
/// `idempotency_key_in_use` (and applies nothing); once the first has answered, the retry is its
/// replay. The first request is held in flight by a transaction of another connection holding
/// the database's write lock.
#[test]
fn a_key_in_flight_is_409() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    assert_eq!(server.value("held"), 0);
    let lock = rusqlite::Connection::open(&db.path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let address = server.address;
    let first = std::thread::spawn(move || {
        tally_test_support::http_client::Client::connect(address, Duration::from_secs(30))
            .unwrap()
            .request_with_headers(
                "POST",
                "/counters/held/increment",
                Some("Idempotency-Key: in-flight"),
                None,
            )
            .unwrap()
    });
    // The first request claims its key before it takes its instance: once the server has given
    // out a second instance, fresh or reused (the first was for the GET above), the key is held.
    let instances = || {
        let metrics = server.request("GET", "/metrics", None).body;
        crate::resp::metric(&metrics, "tally_instances_created_total")
            + crate::resp::metric(&metrics, "tally_instances_reused_total")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while instances() < 2 {
        assert!(Instant::now() < deadline, "the first request never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let duplicate = keyed(
        &server,
        "POST",
        "/counters/held/increment",
        "in-flight",
        None,
    );
    assert_eq!(duplicate.status, 409, "{duplicate:?}");
    assert_eq!(code(&duplicate), "idempotency_key_in_use");
    assert_eq!(duplicate.header("retry-after"), Some("1"));
    lock.execute_batch("COMMIT").unwrap();
    let first = first.join().unwrap();
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, r#"{"name":"held","value":1}"#)
    );
    let retry = keyed(
        &server,
        "POST",
        "/counters/held/increment",
        "in-flight",
        None,
    );
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(server.value("held"), 1);
}

/// Keys expire after `--idempotency-retention-secs`: the key is then free for a new request,
/// and the server purges the expired records from the database by itself.
#[test]
fn keys_expire_and_are_purged() {
    let db = TempDb::new();
    let server = Server::start_with(&db.path, &["--idempotency-retention-secs", "1"], &[]);
    let first = keyed(&server, "POST", "/counters/short/increment", "k", None);
    assert_eq!(first.body, r#"{"name":"short","value":1}"#);
    std::thread::sleep(Duration::from_millis(1200));
    // Another request under the same key: applied, since the first record has expired.
    let again = keyed(
        &server,
        "POST",
        "/counters/short/increment",
        "k",
        Some(r#"{"by": 2}"#),
    );
    assert_eq!(
        (again.status, again.body.as_str()),
        (200, r#"{"name":"short","value":3}"#)
    );
    let records = || -> i64 {
        rusqlite::Connection::open(&db.path)
            .unwrap()
            .query_row("SELECT count(*) FROM idempotency", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(records(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while records() > 0 {
        assert!(
            Instant::now() < deadline,
            "the expired record was never purged"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.value("short"), 3);
}

/// A key that is not 1-255 visible ASCII characters is 400 `invalid_idempotency_key`, and
/// nothing is applied; so is a key sent twice. The CLI refuses it as a usage error (exit 2).
#[test]
fn bad_keys_are_400() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let long = "k".repeat(256);
    let bad = [
        format!("Idempotency-Key: {long}"),
        "Idempotency-Key: a\tb".to_string(),
        "Idempotency-Key: with space".to_string(),
        "Idempotency-Key: ключ".to_string(),
        "Idempotency-Key:".to_string(),
        "Idempotency-Key: one\r\nIdempotency-Key: two".to_string(),
    ];
    for header in &bad {
        let response = server
            .client()
            .request_with_headers("POST", "/counters/k/increment", Some(header), None)
            .unwrap();
        assert_eq!(response.status, 400, "{header:?}: {response:?}");
        assert_eq!(code(&response), "invalid_idempotency_key", "{header:?}");
    }
    let ok = keyed(
        &server,
        "POST",
        "/counters/k/increment",
        &"k".repeat(255),
        None,
    );
    assert_eq!(ok.body, r#"{"name":"k","value":1}"#);
    let stderr = tally_fails(&db.path, &["incr", "k", "--idempotency-key", &long], 2);
    assert!(
        stderr.contains("an idempotency key is at most 255 characters; this one has 256"),
        "{stderr}"
    );
    assert_eq!(server.value("k"), 1);
}

/// A database of schema version 1 (before idempotency keys, as earlier builds wrote it): read
/// as it is, upgraded in place by the first command that writes (counters kept, `user_version`
/// 3, the current one), after which keys work. A copy that only `nobody` reads (CI runs as root) is served
/// without the upgrade, and a keyed write on it is refused with the reason, changing nothing.
#[test]
fn a_version_1_database_is_upgraded_or_served_as_it_is() {
    fn version_1(path: &std::path::Path) {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE kv (bucket TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                              PRIMARY KEY (bucket, key));
             PRAGMA application_id = 1952541817;
             PRAGMA user_version = 1;
             INSERT INTO kv VALUES ('', 'visits', CAST('10' AS BLOB));",
        )
        .unwrap();
    }
    let user_version = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    };
    let db = TempDb::new();
    version_1(&db.path);
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "10\n");
    assert_eq!(user_version(&db.path), 1);
    assert_eq!(
        tally_ok(&db.path, &["incr", "visits", "--idempotency-key", "u1"]),
        "11\n"
    );
    assert_eq!(user_version(&db.path), 3);
    assert_eq!(
        tally_ok(&db.path, &["incr", "visits", "--idempotency-key", "u1"]),
        "11\n"
    );
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "11\n");

    use std::os::unix::fs::PermissionsExt;
    let old = TempDb::new();
    version_1(&old.path);
    std::fs::set_permissions(old.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&old.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(&old.path).unwrap();
    let as_nobody = |args: &[&str]| {
        crate::common::as_nobody(&old.path)
            .args(args)
            .output()
            .unwrap()
    };
    let read = as_nobody(&["get", "visits"]);
    assert_eq!(String::from_utf8_lossy(&read.stdout), "10\n", "{read:?}");
    let keyed = as_nobody(&["incr", "visits", "--idempotency-key", "k"]);
    assert_eq!(keyed.status.code(), Some(3), "{keyed:?}");
    let stderr = String::from_utf8_lossy(&keyed.stderr);
    assert!(stderr.contains("is read-only for this user"), "{stderr}");
    assert_eq!(std::fs::read(&old.path).unwrap(), before);
    assert_eq!(user_version(&old.path), 1);
}
