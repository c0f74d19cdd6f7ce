//! A guest that traps, spins forever or exhausts its memory costs its own request a 500 and
//! nothing else: the server answers the next request normally.

use crate::common::TempDb;
use crate::common::server::Server;
use std::time::Instant;

/// Each kind of misbehaviour gives a 500 `guest_failure`, and a normal request right after it on
/// the same server succeeds; the loop is stopped by the deadline, not left running.
#[test]
fn misbehaving_guest_costs_one_request() {
    let db = TempDb::new();
    let server = Server::start_with(
        &db.path,
        &["--component", tally_test_support::MISBEHAVING_GUEST_WASM],
        &["--guest-timeout-ms", "500", "--guest-memory-mib", "16"],
    );

    assert_eq!(
        server
            .request("POST", "/counters/ok/increment", None)
            .status,
        200
    );
    for (name, why) in [
        (
            "trap",
            "the counter component failed with a wasm trap: wasm `unreachable` instruction",
        ),
        ("loop", "the counter component ran past its time limit of "),
        (
            "oom",
            "the counter component needed more than its memory limit of ",
        ),
    ] {
        let started = Instant::now();
        let response = server.request("POST", &format!("/counters/{name}/increment"), None);
        let json: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(
            (response.status, json["code"].as_str()),
            (500, Some("guest_failure")),
            "{name}: {}",
            response.body
        );
        let error = json["error"].as_str().unwrap();
        assert!(error.starts_with(why), "{name}: {error}");
        assert!(!error.contains("backtrace"), "{name}: {error}");
        assert!(
            started.elapsed().as_secs() < 5,
            "{name} took {:?}",
            started.elapsed()
        );
        let next = server.request("POST", "/counters/ok/increment", None);
        assert_eq!(next.status, 200, "after {name}: {}", next.body);
    }
    assert_eq!(server.value("ok"), 4);
    let metrics = server.request("GET", "/metrics", None).body;
    assert!(metrics.contains("tally_guest_traps_total 3"), "{metrics}");
}

/// The sandbox: a guest that reads a file or the environment finds nothing there (it would
/// answer 200 with what it found otherwise), and the server goes on.
#[test]
fn guest_finds_no_files_and_no_environment() {
    let db = TempDb::new();
    let server = Server::start_with(
        &db.path,
        &["--component", tally_test_support::MISBEHAVING_GUEST_WASM],
        &[],
    );
    for name in ["file", "env"] {
        let response = server.request("GET", &format!("/counters/{name}"), None);
        let json: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(
            (response.status, json["code"].as_str()),
            (500, Some("store_failure")),
            "{name}: {}",
            response.body
        );
        let error = json["error"].as_str().unwrap();
        assert!(error.contains("sandbox refused"), "{name}: {error}");
        assert_eq!(
            server
                .request("POST", "/counters/ok/increment", None)
                .status,
            200
        );
    }
}
