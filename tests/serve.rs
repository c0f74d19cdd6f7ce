//! `tally serve` as a real process on a free port: restarts (graceful and `kill -9`), exact
//! concurrent counting (one server, and two servers on one file), and every error status with the
//! stored value checked unchanged.

use crate::common;

use common::TempDb;
use common::server::{Server, hammer};

fn body(name: &str, value: u64) -> String {
    format!("{{\"name\":\"{name}\",\"value\":{value}}}")
}

/// Counter at 10, SIGTERM (exit 0), restart: 10. Then kill -9 and restart: still 10.
#[test]
fn value_survives_sigterm_and_sigkill() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let set = server.request("PUT", "/counters/visits", Some(r#"{"value": 10}"#));
    assert_eq!(
        (set.status, set.body.as_str()),
        (200, body("visits", 10).as_str())
    );
    assert!(server.terminate().success());

    let server = Server::start(&db.path, &[]);
    assert_eq!(server.value("visits"), 10);
    server.kill();
    let server = Server::start(&db.path, &[]);
    assert_eq!(server.value("visits"), 10);
}

/// 10, increment to 11, kill -9 right after the answer, restart: 11.
#[test]
fn acknowledged_increment_survives_sigkill() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    server.request("PUT", "/counters/visits", Some(r#"{"value": 10}"#));
    let incremented = server.request("POST", "/counters/visits/increment", None);
    assert_eq!(incremented.body, body("visits", 11));
    server.kill();
    let server = Server::start(&db.path, &[]);
    assert_eq!(server.value("visits"), 11);
}

/// 10, increments to 15 (one of them `{"by": 2}`), SIGTERM, restart: 15.
#[test]
fn increments_to_15_survive_sigterm() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    server.request("PUT", "/counters/visits", Some(r#"{"value": 10}"#));
    let mut client = server.client();
    for (by, expected) in [
        (None, 11),
        (Some(r#"{"by": 2}"#), 13),
        (None, 14),
        (None, 15),
    ] {
        let response = client
            .request("POST", "/counters/visits/increment", by)
            .unwrap();
        assert_eq!(response.body, body("visits", expected));
    }
    assert!(server.terminate().success());
    let server = Server::start(&db.path, &[]);
    assert_eq!(server.value("visits"), 15);
    // The CLI reads the same file and agrees.
    assert_eq!(common::tally_ok(&db.path, &["get", "visits"]), "15\n");
}

/// `--listen` takes a host name as well as an address; a value without a port is a usage error
/// that shows the expected form.
#[test]
fn listen_takes_host_names() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &["--listen", "localhost:0"]);
    assert!(server.address.ip().is_loopback(), "{}", server.address);
    let response = server.request("POST", "/counters/visits/increment", None);
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, body("visits", 1).as_str())
    );
    let stderr = common::tally_fails(&db.path, &["serve", "--listen", "localhost"], 2);
    assert!(
        stderr.starts_with(
            "tally: error: invalid value 'localhost' for '--listen <ADDR>': expected HOST:PORT"
        ),
        "{stderr}"
    );
}

/// A body that cannot be read (broken chunked framing) is a 400 `invalid_body`, not a 413, and
/// changes nothing.
#[test]
fn an_unreadable_body_is_a_bad_request() {
    use std::io::{Read, Write};
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let mut stream = std::net::TcpStream::connect(server.address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(
            b"POST /counters/visits/increment HTTP/1.1\r\nHost: localhost\r\n\
              Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n\
              zz\r\n{\"by\": 1}\r\n0\r\n\r\n",
        )
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("\"code\":\"invalid_body\""), "{answer}");
    assert_eq!(server.value("visits"), 0);
}

/// Listing, reset and health: the simple routes answer as documented.
#[test]
fn list_reset_health_and_metrics() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    assert_eq!(
        server.request("GET", "/counters/never", None).body,
        body("never", 0)
    );
    server.request("POST", "/counters/b/increment", Some(r#"{"by": 2}"#));
    server.request("POST", "/counters/a%2Fb/increment", None);
    server.request("PUT", "/counters/gone", Some(r#"{"value": 3}"#));
    assert_eq!(
        server.request("DELETE", "/counters/gone", None).body,
        body("gone", 0)
    );
    let list = server.request("GET", "/counters", None);
    assert_eq!(
        (list.status, list.body.as_str()),
        (200, r#"[{"name":"a/b","value":1},{"name":"b","value":2}]"#)
    );
    let health = server.request("GET", "/healthz", None);
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    let metrics = server.request("GET", "/metrics", None).body;
    for expected in [
        "tally_http_requests_total{method=\"POST\",route=\"/counters/{name}/increment\",status=\"200\"} 2",
        "tally_commit_batch_size_count ",
        "tally_store_operation_seconds_bucket{le=\"+Inf\"} ",
        "tally_instances_created_total ",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected:?} in\n{metrics}"
        );
    }
    // The metrics the server hands to the store and the runtime are recorded there: 4 writes
    // committed, every guest operation timed, one instance per counter request (6 so far),
    // the first fresh and the later ones reused (the embedded component's default).
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("tally_commit_batch_size_sum"), 4.0);
    // get, 2 increments, put, delete, and the list: one list-keys, which read the values
    // too, so the component's get-many of its keys was answered without a second store read.
    assert_eq!(value("tally_store_operation_seconds_count"), 6.0);
    assert_eq!(value("tally_instances_created_total"), 1.0);
    assert_eq!(value("tally_instances_reused_total"), 5.0);
}

/// 32 concurrent clients x 250 increments on 4 counters end at exactly 2,000 each.
#[test]
fn concurrent_clients_count_exactly() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    hammer(&[&server], 32, 250, 4);
    for counter in 0..4 {
        assert_eq!(server.value(&format!("c{counter}")), 2_000);
    }
}

/// The same with two server processes sharing one database file.
#[test]
fn two_servers_on_one_file_count_exactly() {
    let db = TempDb::new();
    let first = Server::start(&db.path, &[]);
    let second = Server::start(&db.path, &[]);
    hammer(&[&first, &second], 32, 250, 4);
    for counter in 0..4 {
        let name = format!("c{counter}");
        assert_eq!(first.value(&name), 2_000);
        assert_eq!(second.value(&name), 2_000);
    }
}

/// Every documented error status, with its code, and the stored values unchanged afterwards.
#[test]
fn errors_have_documented_statuses_and_change_nothing() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    server.request("PUT", "/counters/visits", Some(r#"{"value": 10}"#));
    server.request(
        "PUT",
        "/counters/big",
        Some(r#"{"value": 18446744073709551615}"#),
    );
    db.write_raw("bad", "abc");
    let long_name = "x".repeat(257);
    let long_path = format!("/counters/{long_name}/increment");
    let oversized = format!(r#"{{"by": 1, "pad": "{}"}}"#, "x".repeat(5000));
    let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        ("POST", "/counters/big/increment", None, 409, "overflow"),
        (
            "POST",
            "/counters/visits/increment",
            Some(r#"{"by": 18446744073709551615}"#),
            409,
            "overflow",
        ),
        (
            "POST",
            "/counters/a%00b/increment",
            None,
            400,
            "invalid_name",
        ),
        ("POST", "/counters/%FF/increment", None, 400, "invalid_name"),
        ("POST", &long_path, None, 400, "invalid_name"),
        (
            "POST",
            "/counters/visits/increment",
            Some("not json"),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/counters/visits/increment",
            Some(r#"{"by": -1}"#),
            400,
            "invalid_body",
        ),
        // serde would read a struct from an array; the document says the body is an object.
        (
            "POST",
            "/counters/visits/increment",
            Some("[1]"),
            400,
            "invalid_body",
        ),
        ("PUT", "/counters/visits", Some("[5]"), 400, "invalid_body"),
        // Exponents at the ends of i64 are refused, never overflowed.
        (
            "POST",
            "/counters/visits/increment",
            Some(r#"{"by": 1e9223372036854775807}"#),
            400,
            "invalid_body",
        ),
        (
            "PUT",
            "/counters/visits",
            Some(r#"{"value": 1e-9223372036854775808}"#),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/counters/visits/increment",
            Some(r#"{"by": 1.5}"#),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/counters/visits/increment",
            Some(r#"{"by": "1"}"#),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/counters/visits/increment",
            Some(r#"{"by": 18446744073709551616}"#),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/counters/visits/increment",
            Some(r#"{"bye": 1}"#),
            400,
            "invalid_body",
        ),
        ("PUT", "/counters/visits", None, 400, "invalid_body"),
        (
            "PUT",
            "/counters/visits",
            Some(r#"{"value": -5}"#),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/counters/visits/increment",
            Some(&oversized),
            413,
            "body_too_large",
        ),
        ("GET", "/counters/bad", None, 500, "corrupt_value"),
        (
            "POST",
            "/counters/bad/increment",
            None,
            500,
            "corrupt_value",
        ),
        ("GET", "/nowhere", None, 404, "not_found"),
        ("POST", "/counters/a/b/increment", None, 404, "not_found"),
        ("PATCH", "/counters/visits", None, 405, "method_not_allowed"),
        (
            "GET",
            "/counters/visits/increment",
            None,
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, request_body, status, code) in cases {
        let response = server.request(method, path, request_body);
        let json: serde_json::Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|_| panic!("{method} {path}: body is not JSON: {:?}", response.body));
        assert_eq!(
            (response.status, json["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {}",
            response.body
        );
        assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // A URL past the HTTP layer's limit is refused there (414, no JSON body).
    let huge = format!("/counters/{}/increment", "x".repeat(70_000));
    assert_eq!(server.request("POST", &huge, None).status, 414);
    assert_eq!(server.value("visits"), 10);
    assert_eq!(server.value("big"), u64::MAX);
    assert_eq!(db.raw_value("bad"), Some(b"abc".to_vec()));
    assert_eq!(db.raw_value("a\0b"), None);
    let list = server.request("GET", "/counters", None);
    assert_eq!(
        list.status, 500,
        "the corrupt value makes the list fail: {}",
        list.body
    );
}
