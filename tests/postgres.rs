//! The PostgreSQL backend end to end: throwaway servers started by the tests from Debian's
//! binaries (a primary, a synchronous standby, one with TLS), the real `tally` binary, and
//! `psql` looking at what tally left in the database.

use crate::common;

use common::TempDb;
use common::server::{Server, hammer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tally_test_support::postgres_server::PostgresServer;

fn tally(store: &str, args: &[&str]) -> std::process::Output {
    common::run(&[&["--store", store][..], args].concat())
}

fn tally_ok(store: &str, args: &[&str]) -> String {
    common::run_ok(&[&["--store", store][..], args].concat())
}

/// The restart scenarios: 10 after a restart; 11 after a SIGKILL; 15 after another restart;
/// the CLI reads what the server wrote.
#[test]
fn counters_survive_restarts_on_postgres() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let store = postgres.url();
    let db = TempDb::new();
    let serve = || Server::start_with(&db.path, &["--store", &store], &[]);
    let server = serve();
    for _ in 0..10 {
        assert_eq!(
            server
                .request("POST", "/counters/visits/increment", None)
                .status,
            200
        );
    }
    assert!(server.terminate().success());
    let server = serve();
    assert_eq!(server.value("visits"), 10);
    assert_eq!(
        server
            .request("POST", "/counters/visits/increment", None)
            .body,
        r#"{"name":"visits","value":11}"#
    );
    server.kill();
    let server = serve();
    assert_eq!(server.value("visits"), 11);
    let body = server
        .request("POST", "/counters/visits/increment", Some(r#"{"by":4}"#))
        .body;
    assert_eq!(body, r#"{"name":"visits","value":15}"#);
    server.kill();
    assert_eq!(tally_ok(&store, &["get", "visits"]), "15\n");
    assert_eq!(tally_ok(&store, &["list"]), "visits\t15\n");
    assert_eq!(
        postgres
            .psql("SELECT key, convert_from(value, 'UTF8') FROM tally.counters")
            .unwrap(),
        "visits|15"
    );
    // An export moves the counters to another schema (or any other store) exactly.
    let exported = tally_ok(&store, &["export"]);
    assert_eq!(exported, "{\"name\":\"visits\",\"value\":15}\n");
    let file = db.dir.path().join("export.jsonl");
    std::fs::write(&file, &exported).unwrap();
    let other = ["--postgres-schema", "copy"];
    tally_ok(
        &store,
        &[&other[..], &["import", file.to_str().unwrap()]].concat(),
    );
    assert_eq!(
        tally_ok(&store, &[&other[..], &["get", "visits"]].concat()),
        "15\n"
    );
}

/// Two `tally serve` processes on one database, 32 clients over both, 2 x 800 increments on
/// 4 counters: exact totals, and PostgreSQL itself agrees.
#[test]
fn two_servers_on_one_postgres_count_exactly() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let store = postgres.url();
    let (db_a, db_b) = (TempDb::new(), TempDb::new());
    let a = Server::start_with(&db_a.path, &["--store", &store], &[]);
    let b = Server::start_with(&db_b.path, &["--store", &store], &[]);
    hammer(&[&a, &b], 32, 50, 4);
    let total: u64 = (0..4).map(|n| a.value(&format!("c{n}"))).sum();
    assert_eq!(total, 1600);
    assert_eq!(
        postgres
            .psql("SELECT sum(convert_from(value, 'UTF8')::numeric) FROM tally.counters")
            .unwrap(),
        "1600"
    );
}

/// Writes find counters through the primary key however the table grew after tally's
/// connections planned their statements: the server's first increments plan them on a table of
/// 8 counters (where a sequential scan looks cheapest, and PostgreSQL keeps that generic plan
/// until the next `ANALYZE`), `tally import` then adds 5,000 counters, and 16 clients increment
/// again. PostgreSQL counted no sequential scan of the counters table but the one that built its
/// primary key, and every total is exact.
#[test]
fn writes_find_counters_by_index_however_the_table_grew() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let store = postgres.url();
    let db = TempDb::new();
    let server = Server::start_with(&db.path, &["--store", &store], &[]);
    hammer(&[&server], 8, 5, 8);
    let file = db.path.with_extension("jsonl");
    let lines: String = (0..5000)
        .map(|n| format!("{{\"name\":\"n{n}\",\"value\":{n}}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        tally_ok(&store, &["import", file]),
        format!("imported 5000 counters into {store}\n")
    );
    hammer(&[&server], 16, 20, 16);
    assert_eq!(
        (0..8).map(|n| server.value(&format!("c{n}"))).sum::<u64>(),
        40 + 8 * 20
    );
    assert_eq!(server.value("n4999"), 4999);
    assert!(server.terminate().success());

    // A backend reports its counts when it ends: wait for tally's to end, then read them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tally'";
    while postgres.psql(sessions).unwrap() != "0" {
        assert!(Instant::now() < deadline, "tally's sessions did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One sequential scan is `CREATE TABLE` building the primary key; the build before this
    // test counted three more for every batch (the locking read, the update and the delete:
    // 31 after 10 increments one by one).
    let scans = "SELECT seq_scan, idx_scan > 0, n_tup_ins FROM pg_stat_user_tables
                 WHERE schemaname = 'tally' AND relname = 'counters'";
    loop {
        let counted = postgres.psql(scans).unwrap();
        if counted.ends_with("|5016") || Instant::now() > deadline {
            assert_eq!(counted, "1|t|5016");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A schema of tally's name holding another application's tables is refused (exit 3, the
/// words a foreign SQLite file gets) and left exactly as it was; reads of a database where
/// tally wrote nothing yet create nothing.
#[test]
fn a_foreign_schema_is_refused_untouched_and_reads_create_nothing() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let store = postgres.url();
    assert_eq!(tally_ok(&store, &["get", "visits"]), "0\n");
    assert_eq!(tally_ok(&store, &["list"]), "");
    let schemas = "SELECT count(*) FROM pg_namespace WHERE nspname = 'tally'";
    assert_eq!(postgres.psql(schemas).unwrap(), "0");

    postgres
        .psql("CREATE SCHEMA shop; CREATE TABLE shop.orders (id int); INSERT INTO shop.orders VALUES (7)")
        .unwrap();
    let output = tally(&store, &["--postgres-schema", "shop", "incr", "visits"]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "tally: error: cannot use the PostgreSQL store {store}: the PostgreSQL schema \
             \"shop\" belongs to another application (tables of its own and no tally version \
             row), so tally leaves it untouched; choose another --postgres-schema\n"
        )
    );
    assert_eq!(
        postgres
            .psql("SELECT string_agg(relname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'shop'")
            .unwrap(),
        "orders"
    );
    assert_eq!(postgres.psql("SELECT id FROM shop.orders").unwrap(), "7");
    // A schema of its own beside it works.
    assert_eq!(
        tally_ok(&store, &["--postgres-schema", "counting", "incr", "visits"]),
        "1\n"
    );
}

/// The password in a store URL never reaches a message or a log line; options of other
/// stores are refused, and so are this store's options with another store.
#[test]
fn passwords_stay_hidden_and_options_fit_the_store() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let port = postgres.port();
    for url in [
        format!("postgres://postgres:hunter2@127.0.0.1:{port}/postgres?bogus=1"),
        "postgres://postgres:hunter2@127.0.0.1:1/postgres".to_string(),
        "postgres://postgres@127.0.0.1:1/postgres?password=hunter2".to_string(),
    ] {
        let output = tally(&url, &["get", "x"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(stderr.contains("***"), "{stderr}");
    }
    // A server's log names the store without its password (trust authentication ignores it).
    let db = TempDb::new();
    let with_password = format!("postgres://postgres:hunter2@127.0.0.1:{port}/postgres");
    let server = Server::start_with(&db.path, &["--store", &with_password], &[]);
    assert_eq!(server.request("GET", "/readyz", None).status, 200);
    assert!(server.terminate().success());
    let log = std::fs::read_to_string(db.path.with_extension("server.log")).unwrap();
    assert!(log.contains("postgres://postgres:***@127.0.0.1"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");

    let store = postgres.url();
    let refused = common::run_fails(
        &["--store", &store, "--durability", "relaxed", "get", "x"],
        2,
    );
    assert!(
        refused.contains("--durability applies to SQLite stores only"),
        "{refused}"
    );
    let refused = common::run_fails(&["--store", "memory", "--pool-size", "4", "get", "x"], 2);
    assert!(
        refused.contains("--pool-size applies to PostgreSQL stores only"),
        "{refused}"
    );
    let backup = common::run_fails(&["--store", &store, "backup", "/tmp/never.db"], 1);
    assert!(backup.contains("pg_dump --schema=tally"), "{backup}");
}

/// The primary stopped: writes answer 503 with Retry-After and `/readyz` is 503; started
/// again: 200, from the same tally process.
#[test]
fn a_postgres_outage_is_503_and_tally_recovers_by_itself() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let db = TempDb::new();
    let server = Server::start_with(&db.path, &["--store", &postgres.url()], &[]);
    let increment = || server.request("POST", "/counters/up/increment", None);
    assert_eq!(increment().status, 200);
    postgres.stop().unwrap();
    let refused = increment();
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        refused.body.contains("\"store_unavailable\""),
        "{refused:?}"
    );
    let ready = server.request("GET", "/readyz", None);
    assert_eq!(ready.status, 503, "{ready:?}");
    postgres.start_again().unwrap();
    assert_eq!(increment().body, r#"{"name":"up","value":2}"#);
    assert_eq!(server.request("GET", "/readyz", None).status, 200);
}

/// A synchronous standby that is down makes every commit wait: tally answers "outcome
/// unknown" at its commit timeout (never 200, never "nothing changed"), `/readyz` is 503, and
/// once the standby is back a retry with the same key answers exactly.
#[test]
fn a_commit_waiting_for_a_missing_standby_has_an_unknown_outcome() {
    let primary = PostgresServer::start(&["synchronous_standby_names = '*'"]).unwrap();
    let standby = PostgresServer::standby_of(&primary, &[]).unwrap();
    primary.wait_for_synchronous_standby().unwrap();
    let db = TempDb::new();
    let server = Server::start_with(
        &db.path,
        &["--store", &primary.url(), "--commit-timeout-ms", "1000"],
        &[],
    );
    let keyed = |key: &str| {
        server
            .client()
            .request_with_headers(
                "POST",
                "/counters/k/increment",
                Some(&format!("Idempotency-Key: {key}")),
                None,
            )
            .unwrap()
    };
    assert_eq!(keyed("one").body, r#"{"name":"k","value":1}"#);
    standby.stop().unwrap();
    let unknown = keyed("two");
    assert_eq!(unknown.status, 500, "{unknown:?}");
    assert!(
        unknown.body.contains("\"write_outcome_unknown\""),
        "{unknown:?}"
    );
    assert_eq!(server.request("GET", "/readyz", None).status, 503);
    standby.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.request("GET", "/readyz", None).status != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready after the standby came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The timed-out commit did commit locally; its retry answers its record.
    let retried = keyed("two");
    assert_eq!(retried.body, r#"{"name":"k","value":2}"#, "{retried:?}");
    assert_eq!(retried.header("idempotent-replayed"), Some("true"));
    assert_eq!(server.value("k"), 2);
}

/// The failover: a primary with a synchronous standby, 8 clients incrementing through one tally
/// given both hosts, the primary SIGKILLed mid-load, the standby promoted. With idempotency keys
/// (each increment retried until answered) the final value is exactly the number of logical
/// increments; without keys, every acknowledged increment is there.
#[test]
fn nothing_acknowledged_is_lost_through_a_failover() {
    for keyed in [true, false] {
        let primary = PostgresServer::start(&["synchronous_standby_names = '*'"]).unwrap();
        // The promoted standby has no standby of its own: it must not wait for one.
        let standby =
            PostgresServer::standby_of(&primary, &["synchronous_standby_names = ''"]).unwrap();
        primary.wait_for_synchronous_standby().unwrap();
        let store = format!(
            "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=2",
            primary.port(),
            standby.port()
        );
        let db = TempDb::new();
        let server = Server::start_with(&db.path, &["--store", &store], &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicU64::new(0));
        let attempts = Arc::new(AtomicU64::new(0));
        let interrupted = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..8)
            .map(|client| {
                let address = server.address;
                let (stop, acknowledged, attempts, interrupted) = (
                    stop.clone(),
                    acknowledged.clone(),
                    attempts.clone(),
                    interrupted.clone(),
                );
                std::thread::spawn(move || {
                    failover_client(
                        client,
                        address,
                        keyed,
                        &stop,
                        &acknowledged,
                        &attempts,
                        &interrupted,
                    );
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(800));
        let before_kill = acknowledged.load(Ordering::SeqCst);
        primary.kill().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        standby.promote().unwrap();
        // Serving again through the new primary, with no restart of tally.
        let deadline = Instant::now() + Duration::from_secs(30);
        let resumed = acknowledged.load(Ordering::SeqCst);
        while acknowledged.load(Ordering::SeqCst) < resumed + 100 {
            assert!(
                Instant::now() < deadline,
                "tally did not serve through the promoted standby"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
        for client in clients {
            client.join().unwrap();
        }
        let acknowledged = acknowledged.load(Ordering::SeqCst);
        let attempts = attempts.load(Ordering::SeqCst);
        let interrupted = interrupted.load(Ordering::SeqCst);
        let value = server.value("failover");
        let stored = standby
            .psql("SELECT convert_from(value, 'UTF8') FROM tally.counters WHERE key = 'failover'")
            .unwrap();
        assert_eq!(stored, value.to_string());
        assert!(before_kill > 0, "no load before the kill");
        eprintln!(
            "failover ({}): {acknowledged} increments acknowledged, {attempts} sent, \
             {interrupted} answers on the way were not 200, value {value}",
            if keyed { "keyed" } else { "without keys" }
        );
        assert!(interrupted > 0, "no client met the failover");
        if keyed {
            assert_eq!(
                value, acknowledged,
                "keyed increments must count exactly once"
            );
        } else {
            assert!(
                (acknowledged..=attempts).contains(&value),
                "acknowledged {acknowledged}, sent {attempts}, stored {value}"
            );
        }
    }
}

/// One client of the failover test: increments until stopped. With `keyed`, each logical
/// increment carries its own key and is retried until answered 200; without, every attempt is
/// a new increment, counted in `attempts`, and only 200s in `acknowledged`. Answers that were
/// not 200 (503, outcome unknown) are counted in `interrupted`.
fn failover_client(
    client: usize,
    address: SocketAddr,
    keyed: bool,
    stop: &AtomicBool,
    acknowledged: &AtomicU64,
    attempts: &AtomicU64,
    interrupted: &AtomicU64,
) {
    let mut connection = None;
    let mut current = 0;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        if keyed {
            let key = format!("failover-{client}-{n}");
            attempts.fetch_add(1, Ordering::SeqCst);
            let unavailable = crate::exactly_once::increment_until_answered(
                &[address],
                &mut current,
                &mut connection,
                "/counters/failover/increment",
                Some(&key),
            );
            acknowledged.fetch_add(1, Ordering::SeqCst);
            interrupted.fetch_add(unavailable, Ordering::SeqCst);
        } else {
            attempts.fetch_add(1, Ordering::SeqCst);
            if connection.is_none() {
                connection = tally_test_support::http_client::Client::connect(
                    address,
                    Duration::from_secs(5),
                )
                .ok();
            }
            let answer = connection
                .as_mut()
                .map(|c| c.request("POST", "/counters/failover/increment", None));
            match answer {
                Some(Ok(response)) if response.status == 200 => {
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
                Some(Ok(response)) => {
                    interrupted.fetch_add(1, Ordering::SeqCst);
                    assert!(
                        matches!(response.status, 503 | 500),
                        "unexpected {response:?}"
                    );
                    if response.status == 500 {
                        assert!(
                            response.body.contains("\"write_outcome_unknown\""),
                            "{response:?}"
                        );
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => connection = None,
            }
        }
        n += 1;
    }
}

/// TLS: against a server whose certificate no public root signed, `sslmode=require` connects
/// encrypted (PostgreSQL's own `pg_stat_ssl` says so), `disable` in the clear, and
/// `verify-full` checks the certificate: refused (not as an outage) without the root that
/// signed it, accepted with it (`sslrootcert`).
#[test]
fn tls_modes_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    // A root of its own, and the server's certificate (for 127.0.0.1) signed by it.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=tally test root",
        "-keyout",
        &path("root.key"),
        "-out",
        &path("root.crt"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &path("server.key"),
        "-out",
        &path("server.csr"),
    ]);
    std::fs::write(path("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("server.csr"),
        "-CA",
        &path("root.crt"),
        "-CAkey",
        &path("root.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &path("san.ext"),
        "-out",
        &path("server.crt"),
    ]);
    let (cert, key) = (path("server.crt"), path("server.key"));
    let postgres = PostgresServer::start_with_files(
        &[
            "ssl = on",
            "ssl_cert_file = 'server.crt'",
            "ssl_key_file = 'server.key'",
        ],
        &[
            ("server.crt", &std::fs::read(&cert).unwrap()),
            ("server.key", &std::fs::read(&key).unwrap()),
        ],
    )
    .unwrap();
    let url = |options: &str| format!("{}?application_name=tls-test&{options}", postgres.url());
    let encrypted = || {
        postgres
            .psql("SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name = 'tls-test'")
            .unwrap()
    };
    let db = TempDb::new();
    for (mode, expected) in [("sslmode=require", "t"), ("sslmode=disable", "f")] {
        let server = Server::start_with(&db.path, &["--store", &url(mode)], &[]);
        assert_eq!(
            server
                .request("POST", "/counters/tls/increment", None)
                .status,
            200
        );
        assert_eq!(encrypted(), expected, "{mode}");
        assert!(server.terminate().success());
    }
    let output = tally(&url("sslmode=verify-full"), &["get", "tls"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert!(stderr.contains("check sslmode and sslrootcert"), "{stderr}");
    assert!(!stderr.contains("retry in a moment"), "{stderr}");
    let trusted = url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        path("root.crt")
    ));
    assert_eq!(tally_ok(&trusted, &["get", "tls"]), "2\n");
}

/// RESP over PostgreSQL: `MULTI`/`EXEC` is one write group, and plain Redis commands work.
#[test]
fn resp_transactions_commit_as_one_group_on_postgres() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let db = TempDb::new();
    let server = Server::start_with(
        &db.path,
        &["--store", &postgres.url()],
        &["--resp", "127.0.0.1:0"],
    );
    let mut resp = server.resp_client();
    assert_eq!(resp.command(&["INCRBY", "a", "5"]).unwrap(), ":5\r\n");
    assert_eq!(resp.command(&["MULTI"]).unwrap(), "+OK\r\n");
    assert_eq!(resp.command(&["INCR", "a"]).unwrap(), "+QUEUED\r\n");
    assert_eq!(resp.command(&["INCR", "b"]).unwrap(), "+QUEUED\r\n");
    assert_eq!(resp.command(&["EXEC"]).unwrap(), "*2\r\n:6\r\n:1\r\n");
    assert_eq!(
        postgres
            .psql("SELECT string_agg(key || '=' || convert_from(value, 'UTF8'), ',' ORDER BY key) FROM tally.counters")
            .unwrap(),
        "a=6,b=1"
    );
}

/// Two `tally serve` on one database follow one listing alternately, over HTTP and over
/// `SCAN`, and across a restart of both: every counter exactly once, in name order. Cursors no
/// server handed out (forged or altered) are refused by both.
#[test]
fn replicas_take_each_others_cursors() {
    let postgres = PostgresServer::start(&[]).unwrap();
    let store = postgres.url();
    let lines: String = (0..300)
        .map(|n| format!("{{\"name\":\"c{n:03}\",\"value\":{n}}}\n"))
        .collect();
    let (db_a, db_b) = (TempDb::new(), TempDb::new());
    let file = db_a.dir.path().join("counters.jsonl");
    std::fs::write(&file, lines).unwrap();
    tally_ok(&store, &["import", file.to_str().unwrap()]);
    let expected: Vec<String> = (0..300).map(|n| format!("c{n:03}")).collect();
    let serve = |db: &TempDb| {
        Server::start_with(&db.path, &["--store", &store], &["--resp", "127.0.0.1:0"])
    };
    let (mut a, mut b) = (serve(&db_a), serve(&db_b));

    // HTTP: pages of 7, each from the other server, both restarted halfway.
    let mut listed = Vec::new();
    let mut url = "/counters?limit=7".to_string();
    for page in 0.. {
        if page == 20 {
            a.kill();
            b.kill();
            (a, b) = (serve(&db_a), serve(&db_b));
        }
        let server = if page % 2 == 0 { &a } else { &b };
        let response = server.request("GET", &url, None);
        assert_eq!(response.status, 200, "page {page}: {response:?}");
        let counters: Vec<serde_json::Value> = serde_json::from_str(&response.body).unwrap();
        listed.extend(
            counters
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string()),
        );
        let Some(link) = response.header("link") else {
            break;
        };
        url = link
            .strip_prefix('<')
            .and_then(|rest| rest.split_once(">; rel=\"next\""))
            .unwrap()
            .0
            .to_string();
        if page == 3 {
            let (tag, position) = url
                .split_once("cursor=")
                .unwrap()
                .1
                .split_once('.')
                .unwrap();
            for forged in [
                format!("{}.{position}", "f".repeat(24)),
                format!("{tag}.YzAwMA"),
                format!("{tag}.{position}A"),
            ] {
                for server in [&a, &b] {
                    let response =
                        server.request("GET", &format!("/counters?limit=7&cursor={forged}"), None);
                    assert_eq!(response.status, 400, "{forged}: {response:?}");
                    assert!(response.body.contains("\"invalid_query\""), "{response:?}");
                }
            }
        }
    }
    assert_eq!(listed, expected);

    // SCAN: COUNT 11, each step on the other server, both restarted halfway.
    let mut listed = Vec::new();
    let mut cursor = "0".to_string();
    for step in 0.. {
        if step == 10 {
            a.kill();
            b.kill();
            (a, b) = (serve(&db_a), serve(&db_b));
        }
        let server = if step % 2 == 0 { &a } else { &b };
        let answer = server
            .resp_client()
            .command(&["SCAN", &cursor, "COUNT", "11"])
            .unwrap();
        let lines: Vec<&str> = answer.split("\r\n").collect();
        assert!(lines[0] == "*2", "step {step}: {answer:?}");
        cursor = lines[2].to_string();
        listed.extend(
            lines[4..]
                .iter()
                .filter(|line| !line.starts_with('$') && !line.is_empty())
                .map(|line| line.to_string()),
        );
        if step == 2 {
            let forged: u64 = cursor.parse::<u64>().unwrap() ^ 1;
            for server in [&a, &b] {
                let answer = server
                    .resp_client()
                    .command(&["SCAN", &forged.to_string()])
                    .unwrap();
                assert!(
                    answer.starts_with(&format!(
                        "-ERR SCAN cursor {forged} is not one a server of this store handed out"
                    )),
                    "{answer:?}"
                );
            }
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(listed, expected);
}

/// PostgreSQL's connection edges, each answered in words that say what is wrong and what to do:
/// `connect_timeout` in the URL bounds a server that takes the connection and never answers; a
/// missing or wrong password is the configuration's fault (exit 3, `store_misconfigured`, no
/// "retry in a moment"); a role that may not create tally's schema fails `/readyz` and every
/// write with the right it lacks; `--postgres-schema public` is refused.
#[test]
fn connection_edges_say_what_to_fix() {
    // A port that takes connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in silent.incoming() {
            held.push(connection);
        }
    });
    let url = format!("postgres://app@127.0.0.1:{port}/db?connect_timeout=2");
    let started = Instant::now();
    let output = tally(&url, &["get", "visits"]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "tally: error: the counter store {url} cannot be reached (PostgreSQL: no connection \
             within connect_timeout (2 s): the server took the connection but did not finish it \
             (a server that hangs, or a port that is not PostgreSQL's)); retry in a moment\n"
        )
    );

    let postgres = PostgresServer::start(&[]).unwrap();
    postgres
        .psql("CREATE ROLE locked LOGIN PASSWORD 's3cret'; CREATE ROLE app LOGIN")
        .unwrap();
    postgres.require_password_for("locked").unwrap();
    let at = |role: &str| format!("postgres://{role}@127.0.0.1:{}/postgres", postgres.port());
    let output = tally(&at("locked"), &["incr", "visits"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "tally: error: cannot use the PostgreSQL store {}: PostgreSQL asks for a password \
             and the store's URL has none: put it in the URL, after the user name and a colon \
             (tally never shows it)\n",
            at("locked")
        )
    );
    let wrong = format!(
        "postgres://locked:wrong@127.0.0.1:{}/postgres",
        postgres.port()
    );
    let output = common::run(&["--json", "--store", &wrong, "incr", "visits"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["code"], "store_misconfigured", "{error}");
    assert_eq!(
        error["error"],
        format!(
            "cannot use the PostgreSQL store postgres://locked:***@127.0.0.1:{}/postgres: \
             PostgreSQL: password authentication failed for user \"locked\" (SQLSTATE 28P01); \
             check the user and password in the store's URL (and the server's pg_hba.conf)",
            postgres.port()
        )
    );
    assert!(!error.to_string().contains("wrong"), "{error}");
    let right = format!(
        "postgres://locked:s3cret@127.0.0.1:{}/postgres",
        postgres.port()
    );
    assert!(tally(&right, &["get", "visits"]).status.success());

    // A role without CREATE on the database: not ready, and every write says which right.
    let db = TempDb::new();
    let server = Server::start_with(&db.path, &["--store", &at("app")], &[]);
    let lacks = "the role \"app\" may not create tally's schema \"tally\" in database \
                 \"postgres\" (it lacks CREATE on the database): GRANT CREATE ON DATABASE \
                 \"postgres\" TO \"app\", or have an administrator create the schema for it \
                 (CREATE SCHEMA \"tally\" AUTHORIZATION \"app\")";
    let ready = server.request("GET", "/readyz", None);
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(body["code"], "store_misconfigured");
    assert_eq!(body["error"], lacks);
    assert_eq!(ready.header("retry-after"), None);
    let write = server.request("POST", "/counters/visits/increment", None);
    let body: serde_json::Value = serde_json::from_str(&write.body).unwrap();
    assert_eq!(
        (write.status, body["code"].as_str()),
        (503, Some("store_misconfigured")),
        "{write:?}"
    );
    assert!(
        body["error"].as_str().unwrap().starts_with(&format!(
            "{lacks} (PostgreSQL: permission denied for database postgres (SQLSTATE 42501))"
        )),
        "{body}"
    );
    assert_eq!(server.request("GET", "/healthz", None).status, 200);
    // Given the right, the same server is ready and writes, with no restart.
    postgres
        .psql("GRANT CREATE ON DATABASE postgres TO app")
        .unwrap();
    assert_eq!(server.request("GET", "/readyz", None).status, 200);
    assert_eq!(
        server
            .request("POST", "/counters/visits/increment", None)
            .body,
        r#"{"name":"visits","value":1}"#
    );

    let output = tally(
        &postgres.url(),
        &["--postgres-schema", "public", "incr", "visits"],
    );
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "tally: error: cannot use the PostgreSQL store {}: the schema name \"public\" will \
             not do: public is the database's shared default schema, where every role and \
             application puts its tables; give tally a schema of its own (the default, tally, \
             or another name)\n",
            postgres.url()
        )
    );
}
