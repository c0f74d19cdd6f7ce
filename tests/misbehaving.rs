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

/// The deadline stops hung guests, not finished ones: a guest still running at its deadline
/// after one of its writes was applied gets `APPLIED_WRITE_GRACE` (1 s) to return. One that
/// returns within it answers 200; one that does not answers 500 `applied_then_failed`, whose
/// message says the write stands, never `guest_failure` ("nothing changed"). A guest that wrote
/// nothing gets no grace.
#[test]
fn a_guest_past_its_deadline_after_a_write_gets_a_grace() {
    let db = TempDb::new();
    let server = Server::start_with(
        &db.path,
        &["--component", tally_test_support::MISBEHAVING_GUEST_WASM],
        &["--guest-timeout-ms", "100"],
    );
    let slow = server.request("POST", "/counters/applied-then-300ms/increment", None);
    assert_eq!(
        (slow.status, slow.body.as_str()),
        (200, r#"{"name":"applied-then-300ms","value":1}"#)
    );

    let started = Instant::now();
    let hung = server.request("POST", "/counters/applied-then-loop/increment", None);
    let elapsed = started.elapsed();
    let json: serde_json::Value = serde_json::from_str(&hung.body).unwrap();
    assert_eq!(
        (hung.status, json["code"].as_str()),
        (500, Some("applied_then_failed")),
        "{}",
        hung.body
    );
    let error = json["error"].as_str().unwrap();
    assert!(error.contains("was applied"), "{error}");
    assert!(
        elapsed.as_millis() >= 1100 && elapsed.as_secs() < 5,
        "stopped after {elapsed:?}"
    );
    assert_eq!(server.value("applied-then-loop"), 1);

    let started = Instant::now();
    let spin = server.request("POST", "/counters/loop/increment", None);
    assert!(spin.body.contains("\"guest_failure\""), "{}", spin.body);
    assert!(
        started.elapsed().as_millis() < 1000,
        "{:?}",
        started.elapsed()
    );
}

/// `--guest-timeout-ms 1` (a deadline shorter than one epoch tick, and than an fsync): every
/// increment either answers 200 or fails having applied nothing, so the counter holds exactly
/// the number of 200s.
#[test]
fn a_tiny_deadline_never_hides_an_applied_write() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &["--guest-timeout-ms", "1"]);
    let mut client = server.client();
    let mut answered = 0;
    for _ in 0..150 {
        let response = client
            .request("POST", "/counters/tiny/increment", None)
            .unwrap();
        match response.status {
            200 => answered += 1,
            _ => assert!(
                response.body.contains("\"guest_failure\""),
                "{}",
                response.body
            ),
        }
    }
    assert_eq!(server.value("tiny"), answered);
    assert!(answered > 0);
}

/// Limits that cannot work are refused at start, naming the flag: zero instances, memory,
/// time or requests per instance, and a memory limit the component cannot even start within
/// (this one needs 2 MiB).
#[test]
fn limits_that_cannot_work_are_refused_at_start() {
    let db = TempDb::new();
    for (flag, refusal) in [
        (
            "--max-instances",
            "invalid value '0' for '--max-instances <N>': 0 is not in 1..",
        ),
        (
            "--guest-memory-mib",
            "invalid value '0' for '--guest-memory-mib <MIB>': 0 is not in 1..=4096",
        ),
        (
            "--guest-timeout-ms",
            "invalid value '0' for '--guest-timeout-ms <MS>': 0 is not in 1..=3600000",
        ),
        (
            "--instance-reuse",
            "invalid value '0' for '--instance-reuse <N>': 0 is not in 1..",
        ),
    ] {
        let stderr = crate::common::tally_fails(&db.path, &["serve", flag, "0"], 2);
        assert!(
            stderr.starts_with(&format!("tally: error: {refusal}")),
            "{stderr}"
        );
    }
    let output = crate::common::run(&[
        "--db",
        db.path.to_str().unwrap(),
        "--component",
        tally_test_support::MISBEHAVING_GUEST_WASM,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--guest-memory-mib",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.starts_with(
            "tally: error: --guest-memory-mib 1 is too small: the component needs 3 MiB of \
             memory to start, more than the memory limit of 1 MiB; give it at least 3"
        ),
        "{stderr}"
    );
}
