//! What web pages cannot do to a local tally: a write from a page of another origin (a
//! `text/plain` POST, a form, a no-cors fetch) is refused and changes nothing; a body that is
//! not JSON is refused; a page that reaches a loopback server through a name of its own (DNS
//! rebinding) is refused, reads included; two `Authorization` headers are refused. The server's
//! own pages, clients without a browser, and the origins and names an operator allows pass.

use crate::common::TempDb;
use crate::common::server::Server;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

/// Sends `request` (with `HOST` replaced by the server's address) on a new connection and
/// returns the status and body.
fn raw(address: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(request.replace("HOST", &address.to_string()).as_bytes())
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A POST of `body` with `headers` (CRLF-terminated lines), on a connection that closes after.
fn post(address: SocketAddr, path: &str, headers: &str, body: &str) -> (u16, String) {
    raw(
        address,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: HOST\r\n{headers}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn code(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
    json["code"].as_str().unwrap().to_string()
}

/// A page of another origin cannot count (a `text/plain` POST, a bodyless one, a `null`
/// origin, `Sec-Fetch-Site: cross-site`), a non-JSON body is refused even without an
/// `Origin`, and the server's own origin and clients without one count.
#[test]
fn cross_site_writes_are_refused_and_change_nothing() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let address = server.address;
    let path = "/counters/visits/increment";
    for (headers, body, expected) in [
        (
            "Origin: https://evil.example\r\nContent-Type: text/plain\r\n",
            r#"{"by": 5}"#,
            (403, "forbidden_origin"),
        ),
        (
            "Origin: https://evil.example\r\n",
            "",
            (403, "forbidden_origin"),
        ),
        ("Origin: null\r\n", "", (403, "forbidden_origin")),
        (
            "Sec-Fetch-Site: cross-site\r\n",
            "",
            (403, "forbidden_origin"),
        ),
        (
            "Content-Type: text/plain\r\n",
            r#"{"by": 5}"#,
            (415, "unsupported_media_type"),
        ),
        (
            "Content-Type: application/x-www-form-urlencoded\r\n",
            r#"{"by": 5}"#,
            (415, "unsupported_media_type"),
        ),
        ("", r#"{"by": 5}"#, (415, "unsupported_media_type")),
    ] {
        let (status, answer) = post(address, path, headers, body);
        assert_eq!(
            (status, code(&answer).as_str()),
            expected,
            "{headers:?}: {answer}"
        );
    }
    let (_, answer) = post(
        address,
        path,
        "Origin: https://evil.example\r\nContent-Type: text/plain\r\n",
        "{}",
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()["error"],
        "a write from a web page of another origin (https://evil.example) is refused: only this \
         server's own pages, clients that are not browsers, and origins given with \
         --allow-origin may change counters; nothing was changed"
    );
    assert_eq!(server.value("visits"), 0);

    let own = format!("Origin: http://{address}\r\nContent-Type: application/json\r\n");
    assert_eq!(post(address, path, &own, r#"{"by": 2}"#).0, 200);
    assert_eq!(post(address, path, "", "").0, 200);
    assert_eq!(
        post(
            address,
            path,
            "Content-Type: application/json; charset=utf-8\r\n",
            r#"{"by": 4}"#
        )
        .0,
        200
    );
    assert_eq!(server.value("visits"), 7);
}

/// On loopback, a `Host` that is not a loopback name is refused for reads and writes (a DNS
/// rebinding page is its own origin), and changes nothing; `--allow-host` and
/// `--allow-origin` let an operator's names and pages through.
#[test]
fn foreign_hosts_are_refused_and_allowed_names_pass() {
    let db = TempDb::new();
    let server = Server::start(
        &db.path,
        &[
            "--allow-host",
            "tally.internal",
            "--allow-origin",
            "https://ops.example,http://localhost:3000",
        ],
    );
    let address = server.address;
    let port = address.port();
    for (method, host) in [
        ("GET", format!("rebind.example:{port}")),
        ("POST", format!("rebind.example:{port}")),
        ("GET", format!("127.0.0.1.nip.io:{port}")),
    ] {
        let path = if method == "GET" {
            "/counters/visits"
        } else {
            "/counters/visits/increment"
        };
        let (status, body) = raw(
            address,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(
            (status, code(&body).as_str()),
            (403, "forbidden_host"),
            "{method} {host}"
        );
    }
    assert_eq!(server.value("visits"), 0);
    for host in [
        format!("localhost:{port}"),
        format!("tally.internal:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, body) = raw(
            address,
            &format!(
                "POST /counters/visits/increment HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(status, 200, "{host}: {body}");
    }
    for origin in ["https://ops.example", "http://localhost:3000"] {
        let headers = format!("Origin: {origin}\r\n");
        assert_eq!(
            post(address, "/counters/visits/increment", &headers, "").0,
            200
        );
    }
    assert_eq!(server.value("visits"), 5);
}

/// With `--auth-token`, two `Authorization` headers are refused, whichever comes first,
/// and change nothing.
#[test]
fn two_authorization_headers_are_refused() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &["--auth-token", "s3cret"]);
    for headers in [
        "Authorization: Bearer s3cret\r\nAuthorization: Bearer other\r\n",
        "Authorization: Bearer other\r\nAuthorization: Bearer s3cret\r\n",
        "Authorization: Bearer s3cret\r\nAuthorization: Bearer s3cret\r\n",
    ] {
        let (status, body) = post(server.address, "/counters/visits/increment", headers, "");
        assert_eq!(
            (status, code(&body).as_str()),
            (401, "unauthorized"),
            "{headers}"
        );
        assert!(
            body.contains("the Authorization header came more than once"),
            "{body}"
        );
    }
    assert_eq!(server.value("visits"), 0);
    let one = "Authorization: Bearer s3cret\r\n";
    assert_eq!(
        post(server.address, "/counters/visits/increment", one, "").0,
        200
    );
}
