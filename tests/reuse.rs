//! Instance reuse (`--instance-reuse`): the embedded component's instances serve many requests
//! with nothing of one request reaching the next (idempotency key, increment limit, replay), a
//! `--component` file gets a fresh instance per request unless the user asks, a reused instance
//! is bounded, an instance whose call failed or that kept a handle or grew is never reused, and
//! idle instances never make a request wait.

use crate::common::TempDb;
use crate::common::server::Server;
use crate::resp::{metric, resp_server};
use tally_test_support::MISBEHAVING_GUEST_WASM;
use tally_test_support::http_client::Response;

/// Instances created and instances reused, from `/metrics`.
fn instances(server: &Server) -> (u64, u64) {
    let metrics = server.request("GET", "/metrics", None).body;
    (
        metric(&metrics, "tally_instances_created_total"),
        metric(&metrics, "tally_instances_reused_total"),
    )
}

/// A POST of an increment of `name`, with an `Idempotency-Key` when `key` is given.
fn increment(server: &Server, name: &str, key: Option<&str>) -> Response {
    let header = key.map(|key| format!("Idempotency-Key: {key}"));
    server
        .client()
        .request_with_headers(
            "POST",
            &format!("/counters/{name}/increment"),
            header.as_deref(),
            None,
        )
        .unwrap()
}

/// One embedded instance serves every request of a sequence, and each request gets only its
/// own context: a keyed increment after an unkeyed one is applied (not replayed, not refused),
/// an unkeyed one after a keyed one is applied again, a retry of the key is its replay, and
/// RESP's signed 64-bit limit binds RESP's increments only, not the HTTP ones before or after.
#[test]
fn a_reused_instance_serves_each_request_with_its_own_context() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let mut resp = server.resp_client();

    let body = |response: &Response| (response.status, response.body.clone());
    let plain = increment(&server, "hits", None);
    assert_eq!(body(&plain), (200, r#"{"name":"hits","value":1}"#.into()));
    let keyed = increment(&server, "hits", Some("first-key"));
    assert_eq!(body(&keyed), (200, r#"{"name":"hits","value":2}"#.into()));
    assert_eq!(keyed.header("idempotent-replayed"), None);
    let plain = increment(&server, "hits", None);
    assert_eq!(body(&plain), (200, r#"{"name":"hits","value":3}"#.into()));
    assert_eq!(plain.header("idempotent-replayed"), None);
    let retry = increment(&server, "hits", Some("first-key"));
    assert_eq!(body(&retry), (200, r#"{"name":"hits","value":2}"#.into()));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    let other = increment(&server, "hits", Some("second-key"));
    assert_eq!(body(&other), (200, r#"{"name":"hits","value":4}"#.into()));
    assert_eq!(other.header("idempotent-replayed"), None);

    let set = server.request(
        "PUT",
        "/counters/wide",
        Some(r#"{"value": 9223372036854775806}"#),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(
        resp.command(&["INCR", "wide"]).unwrap(),
        ":9223372036854775807\r\n"
    );
    assert_eq!(
        resp.command(&["INCR", "wide"]).unwrap(),
        "-ERR increment or decrement would overflow\r\n"
    );
    let past_i64 = increment(&server, "wide", None);
    assert_eq!(
        body(&past_i64),
        (200, r#"{"name":"wide","value":9223372036854775808}"#.into())
    );
    assert_eq!(resp.command(&["INCR", "hits"]).unwrap(), ":5\r\n");

    // 10 requests (the PUT and the RESP commands included), one instance.
    assert_eq!(instances(&server), (1, 9));
    assert_eq!(server.value("hits"), 5);
}

/// A `--component` file gets a fresh instance per request by default: the guest that remembers
/// its calls never sees an earlier one. `--instance-reuse 4` is the user's promise that it keeps
/// no state; the guest's memory then shows what reuse means, and after 4 requests an instance
/// is replaced.
#[test]
fn a_component_file_is_reused_only_when_asked() {
    let db = TempDb::new();
    let fresh = Server::start_with(&db.path, &["--component", MISBEHAVING_GUEST_WASM], &[]);
    for _ in 0..3 {
        assert_eq!(fresh.value("remembered"), 0);
    }
    assert_eq!(instances(&fresh), (3, 0));
    drop(fresh);

    let reused = Server::start_with(
        &db.path,
        &["--component", MISBEHAVING_GUEST_WASM],
        &["--instance-reuse", "4"],
    );
    let seen: Vec<u64> = (0..6).map(|_| reused.value("remembered")).collect();
    assert_eq!(seen, [0, 1, 2, 3, 0, 1]);
    assert_eq!(instances(&reused), (2, 4));
}

/// An instance is dropped, not reused, after a call that trapped, after one that needed the
/// grace past its deadline, after one that left a bucket handle open, and after one that grew
/// its memory by 2 MiB: the next request finds a fresh instance (the guest remembers nothing).
#[test]
fn a_failed_or_changed_instance_is_not_reused() {
    let db = TempDb::new();
    let server = Server::start_with(
        &db.path,
        &["--component", MISBEHAVING_GUEST_WASM],
        &["--instance-reuse", "100", "--guest-timeout-ms", "100"],
    );
    assert_eq!(server.value("remembered"), 0);
    for (name, status) in [
        ("trap", 500),
        ("applied-then-300ms", 200),
        ("keep-bucket", 200),
        ("grow", 200),
    ] {
        assert_eq!(server.value("remembered"), 1, "before {name}: reused");
        let response = increment(&server, name, None);
        assert_eq!(response.status, status, "{name}: {}", response.body);
        assert_eq!(
            server.value("remembered"),
            0,
            "after {name}: a fresh instance"
        );
    }
    assert_eq!(instances(&server), (5, 8));
}

/// With `--max-instances 2`, 16 clients making 50 increments each all succeed and count
/// exactly: an idle instance never holds a slot a request waits for, and at most 2 run at once
/// (so no more than 2 instances exist until reuse retires them).
#[test]
fn idle_instances_never_hold_a_slot() {
    let db = TempDb::new();
    let server = Server::start(
        &db.path,
        &["--max-instances", "2", "--instance-reuse", "1000"],
    );
    crate::common::server::hammer(&[&server], 16, 50, 1);
    assert_eq!(server.value("c0"), 800);
    let (created, reused) = instances(&server);
    assert_eq!(created + reused, 801);
    assert!(created <= 2, "{created} instances for 2 slots");
}
