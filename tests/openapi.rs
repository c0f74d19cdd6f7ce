//! The OpenAPI document (`host/src/server/openapi.json`) against the real server: it is what
//! `/openapi.json` serves, it names exactly the routes the router has and exactly the methods each
//! answers, its error codes are the server's, and schemathesis (installed by `./setup`) finds
//! nothing when it fuzzes the live server from it.

use crate::common::TempDb;
use crate::common::server::Server;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tally::error_code::ErrorCode;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn spec() -> Value {
    serde_json::from_str(tally::server::assets::openapi_document()).unwrap()
}

/// `(path, method)` for every operation in the document.
fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|key| METHODS.contains(&key.to_uppercase().as_str()))
                .map(|method| (path.clone(), method.to_uppercase()))
        })
        .collect()
}

/// The server serves the checked-in document, and it describes this version of tally.
#[test]
fn the_server_serves_the_checked_in_document() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let response = server.request("GET", "/openapi.json", None);
    assert_eq!(response.status, 200);
    let checked_in =
        std::fs::read_to_string(workspace().join("host/src/server/openapi.json")).unwrap();
    assert_eq!(checked_in, tally::server::assets::OPENAPI_JSON);
    assert_eq!(response.body, tally::server::assets::openapi_document());
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
}

/// The paths registered in the router's source are the document's paths, no more, no fewer.
#[test]
fn the_router_and_the_document_have_the_same_paths() {
    let source = std::fs::read_to_string(workspace().join("host/src/server/routes.rs")).unwrap();
    let routed: BTreeSet<String> = source
        .split(".route(")
        .skip(1)
        .map(|call| {
            let literal = call.trim_start().strip_prefix('"').unwrap();
            literal[..literal.find('"').unwrap()].to_string()
        })
        .collect();
    let spec = spec();
    let documented: BTreeSet<String> = spec["paths"].as_object().unwrap().keys().cloned().collect();
    assert!(routed.len() >= 9, "{routed:?}");
    assert_eq!(routed, documented);
}

/// On the live server, every documented operation is answered and every other method on a
/// documented path is 405 with an `Allow` header naming exactly the documented ones; a path the
/// document does not have is 404.
#[test]
fn the_live_server_answers_exactly_the_documented_operations() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let spec = spec();
    let operations = documented(&spec);
    for path in spec["paths"].as_object().unwrap().keys() {
        let concrete = path.replace("{name}", "probe");
        // A history needs its window's length.
        let concrete = if path == "/windows/{name}" {
            format!("{concrete}?window=1m")
        } else {
            concrete
        };
        let allowed: BTreeSet<&str> = operations
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, method)| method.as_str())
            .collect();
        for method in METHODS {
            let body = match method {
                "PUT" => Some(r#"{"value": 1}"#),
                "POST" if path.starts_with("/windows") => Some(r#"{"window": "1m", "limit": 5}"#),
                _ => None,
            };
            let response = server.request(method, &concrete, body);
            if allowed.contains(method) {
                assert!(
                    response.status < 400,
                    "{method} {path} is documented but answered {response:?}"
                );
            } else {
                assert_eq!(response.status, 405, "{method} {path}: {response:?}");
                let allow: BTreeSet<&str> = response
                    .header("allow")
                    .unwrap()
                    .split(',')
                    .map(str::trim)
                    .filter(|method| *method != "HEAD")
                    .collect();
                assert_eq!(allow, allowed, "Allow of {path}");
            }
        }
    }
    for path in [
        "/nope",
        "/counters/a/b",
        "/counters/a/increment/x",
        "/dashboard.html",
    ] {
        let response = server.request("GET", path, None);
        assert_eq!(response.status, 404, "{path}");
        assert!(response.body.contains("\"code\":\"not_found\""), "{path}");
    }
}

/// HEAD, which the document leaves out (its description says why), is answered wherever GET is,
/// with GET's status and headers and no body, as HTTP requires; elsewhere it is 405.
#[test]
fn head_answers_wherever_get_does() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let spec = spec();
    assert!(
        spec["info"]["description"]
            .as_str()
            .unwrap()
            .contains("Every GET operation also answers HEAD"),
        "the document must say that HEAD is answered"
    );
    let operations = documented(&spec);
    let mut answered = 0;
    for path in spec["paths"].as_object().unwrap().keys() {
        let concrete = path.replace("{name}", "probe");
        // A history needs its window's length.
        let concrete = if path == "/windows/{name}" {
            format!("{concrete}?window=1m")
        } else {
            concrete
        };
        let head = server.request("HEAD", &concrete, None);
        if operations.contains(&(path.clone(), "GET".to_string())) {
            let get = server.request("GET", &concrete, None);
            assert_eq!(head.status, get.status, "HEAD {path}");
            assert_eq!(
                head.header("content-type"),
                get.header("content-type"),
                "HEAD {path}"
            );
            assert_eq!(head.body, "", "HEAD {path}");
            answered += 1;
        } else {
            assert_eq!(head.status, 405, "HEAD {path}: {head:?}");
        }
    }
    assert!(answered >= 7, "{answered}");
}

/// The served document's `Error.code` enum is exactly the codes the HTTP API answers with
/// (`ErrorCode::ALL` but the command line's own, which the build checks is complete).
#[test]
fn error_codes_match_the_server() {
    let used: BTreeSet<&str> = ErrorCode::ALL
        .iter()
        .filter(|code| code.over_http())
        .map(|code| code.as_str())
        .collect();
    assert_eq!(
        used.len(),
        ErrorCode::ALL.len() - 2,
        "a code is listed twice"
    );
    let spec = spec();
    let listed: Vec<&str> = spec["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    assert_eq!(listed.iter().copied().collect::<BTreeSet<_>>(), used);
    assert_eq!(listed.len(), used.len(), "the document lists a code twice");
}

/// schemathesis generates thousands of requests from the document (valid and invalid ones, and
/// sequences that follow the links between operations) and checks every answer against it:
/// status codes, content types, headers, bodies, and that no valid request is refused or crashes
/// the server.
///
/// One check is switched off: `use_after_free` expects a deleted resource to answer 404, but a
/// tally counter that was reset reads 0 by design (documented on the DELETE and GET operations).
/// And for `GET /counters` only, `positive_data_acceptance`: a listing's `cursor` is any string
/// by schema but valid only when the server made it, so a made-up one is rightly refused with
/// 400 (`tests/listing.rs` checks that valid limits and cursors are accepted). And for the
/// writes, that check also accepts 422 `idempotency_key_reused`: generated requests reuse
/// `Idempotency-Key` values (the documented example, short strings) for other requests, which is
/// exactly what that refusal is for (`tests/idempotency.rs` checks keys used as meant). The
/// same for `GET /windows` (its cursor), and for the other window routes that check also
/// accepts 400 `invalid_window`: the length's pattern admits lengths past ten years, which the
/// component refuses (`tests/windows.rs` checks valid ones are accepted).
#[test]
fn schemathesis_finds_nothing() {
    let schemathesis = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".tools/schemathesis/bin/schemathesis"));
    assert!(
        schemathesis.exists(),
        "{} is missing: run ./setup (it installs schemathesis from PyPI into .tools/)",
        schemathesis.display()
    );
    let db = TempDb::new();
    // Every check is on unless switched off here (a `--checks` option would override this).
    std::fs::write(
        db.dir.path().join("schemathesis.toml"),
        "checks.use_after_free.enabled = false\n\n\
         [[operations]]\ninclude-path = \"/counters\"\ninclude-method = \"GET\"\n\
         checks.positive_data_acceptance.enabled = false\n\n\
         [[operations]]\ninclude-path-regex = \"^/counters/\"\n\
         include-method-regex = \"^(POST|PUT|DELETE)$\"\n\
         checks.positive_data_acceptance.expected-statuses = \
         [\"2xx\", \"3xx\", \"401\", \"403\", \"404\", \"409\", \"422\", \"429\", \"5xx\"]\n\n\
         [[operations]]\ninclude-path = \"/windows\"\ninclude-method = \"GET\"\n\
         checks.positive_data_acceptance.enabled = false\n\n\
         [[operations]]\ninclude-path-regex = \"^/windows/\"\n\
         checks.positive_data_acceptance.expected-statuses = \
         [\"2xx\", \"3xx\", \"400\", \"401\", \"403\", \"404\", \"409\", \"422\", \"429\", \"5xx\"]\n",
    )
    .unwrap();
    let server = Server::start(&db.path, &[]);
    let output = std::process::Command::new(&schemathesis)
        .arg("run")
        .arg(format!("http://{}/openapi.json", server.address))
        .args(["--max-examples", "100", "--generation-database", "none"])
        .arg("--no-color")
        .current_dir(db.dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every operation of the document was exercised: the count schemathesis prints is exactly
    // the number of operations (not merely a number that starts with it), `GET /openapi.json`
    // included.
    let tested: usize = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Tested: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no \"Tested: N\" line in:\n{report}"));
    let documented = documented(&spec());
    assert!(documented.contains(&("/openapi.json".to_string(), "GET".to_string())));
    assert_eq!(tested, documented.len(), "{report}");
    assert!(!report.contains("❌"), "{report}");
}
