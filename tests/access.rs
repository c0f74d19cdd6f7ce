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

/// `Authorization: <scheme> TOKEN` as a client sends it, with the full response.
fn send_authorization(
    server: &Server,
    authorization: &str,
) -> tally_test_support::http_client::Response {
    let mut client = Client::connect(server.address, std::time::Duration::from_secs(10)).unwrap();
    client
        .request_with_headers(
            "POST",
            "/counters/visits/increment",
            Some(&format!("Authorization: {authorization}")),
            None,
        )
        .unwrap()
}

/// RFC 9110 makes the scheme case-insensitive: `bearer`, `BEARER` and extra spaces work. A
/// missing token and a wrong one are both 401, with messages (and RFC 6750 challenges) that
/// tell them apart and never hint at the token.
#[test]
fn bearer_scheme_in_any_case_and_wrong_differs_from_missing() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &["--auth-token", "s3cret"]);
    for (n, authorization) in ["bearer s3cret", "BEARER s3cret", "Bearer   s3cret"]
        .into_iter()
        .enumerate()
    {
        let response = send_authorization(&server, authorization);
        assert_eq!(response.status, 200, "{authorization}: {}", response.body);
        assert_eq!(
            response.body,
            format!(r#"{{"name":"visits","value":{}}}"#, n + 1)
        );
    }
    let missing = send(&server, "POST", "/counters/visits/increment", None);
    assert_eq!(
        missing,
        (
            401,
            r#"{"code":"unauthorized","error":"changing counters needs the header `Authorization: Bearer TOKEN` with the server's --auth-token"}"#
                .to_string()
        )
    );
    let wrong = send_authorization(&server, "Bearer s3cre");
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.body,
        r#"{"code":"unauthorized","error":"the bearer token in the Authorization header is not the server's --auth-token; nothing was changed"}"#
    );
    assert_eq!(
        wrong.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    let basic = send_authorization(&server, "Basic czNjcmV0");
    assert_eq!(basic.status, 401);
    assert_eq!(basic.header("www-authenticate"), Some("Bearer"));
    assert_eq!(server.value("visits"), 3);
}

/// An empty token (flag or variable) is refused at start, naming where it came from, so a
/// server has a real token on HTTP and RESP alike, or none.
#[test]
fn an_empty_token_is_refused_at_start() {
    let db = TempDb::new();
    let stderr = crate::common::tally_fails(&db.path, &["serve", "--auth-token", ""], 2);
    assert!(
        stderr.contains("invalid value '' for '--auth-token <TOKEN>': the token is empty"),
        "{stderr}"
    );
    let output = crate::common::tally_command()
        .args([
            "--db",
            db.path.to_str().unwrap(),
            "serve",
            "--resp",
            "127.0.0.1:0",
        ])
        .env("TALLY_AUTH_TOKEN", "")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("for TALLY_AUTH_TOKEN (the variable of --auth-token): the token is empty"),
        "{stderr}"
    );
    let stderr = crate::common::tally_fails(&db.path, &["serve", "--auth-token", "two words"], 2);
    assert!(stderr.contains("without spaces"), "{stderr}");
    assert!(!db.path.exists(), "a refused start created the database");
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
