//! Access control: `--auth-token` guards every write, and the component reaches no bucket but its
//! own.

use crate::common::TempDb;
use crate::common::server::Server;
use tally_test_support::http_client::Client;

/// Sends one request with an optional bearer token.
fn send(server: &Server, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut client = Client::connect(server.address, std::time::Duration::from_secs(10)).unwrap();
    let response = client
        .request_with_headers(
            method,
            path,
            token
                .map(|t| format!("Authorization: Bearer {t}"))
                .as_deref(),
            if method == "PUT" {
                Some(r#"{"value": 5}"#)
            } else {
                None
            },
        )
        .unwrap();
    (response.status, response.body)
}

/// Without the token, POST, PUT and DELETE are 401 and change nothing; reads stay open; the
/// right token (given through TALLY_AUTH_TOKEN's flag) works.
#[test]
fn writes_need_the_bearer_token() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &["--auth-token", "s3cret"]);
    for (method, path) in [
        ("POST", "/counters/visits/increment"),
        ("PUT", "/counters/visits"),
        ("DELETE", "/counters/visits"),
    ] {
        for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
            let (status, body) = send(&server, method, path, token);
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
        }
    }
    assert_eq!(send(&server, "GET", "/counters/visits", None).0, 200);
    assert_eq!(server.value("visits"), 0);
    assert_eq!(db.raw_value("visits"), None);
    let (status, body) = send(
        &server,
        "POST",
        "/counters/visits/increment",
        Some("s3cret"),
    );
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"name":"visits","value":1}"#)
    );
    assert_eq!(
        send(&server, "PUT", "/counters/visits", Some("s3cret")).0,
        200
    );
    assert_eq!(server.value("visits"), 5);
}

/// A non-loopback listen address without a token is allowed, with a warning in the log.
#[test]
fn open_address_without_token_warns() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &["--listen", "0.0.0.0:0"]);
    assert_eq!(server.request("GET", "/healthz", None).status, 200);
    let log = std::fs::read_to_string(db.path.with_extension("server.log")).unwrap();
    assert!(
        log.contains("not a loopback address, without --auth-token"),
        "{log}"
    );
}

/// The component can open its own bucket only: another is `access-denied`.
#[test]
fn other_buckets_are_denied() {
    let db = TempDb::new();
    let server = Server::start_with(
        &db.path,
        &["--component", tally_test_support::MISBEHAVING_GUEST_WASM],
        &[],
    );
    let response = server.request("GET", "/counters/other-bucket", None);
    assert_eq!(response.status, 500, "{}", response.body);
    assert!(response.body.contains("AccessDenied"), "{}", response.body);
    assert_eq!(
        server
            .request("POST", "/counters/ok/increment", None)
            .status,
        200
    );
}
