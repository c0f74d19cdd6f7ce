//! HTTP connections cannot hold the server: an idle one is closed after the idle timeout, a
//! half-sent request after the header timeout, a stalled body with a 408 after the body
//! timeout; past `--max-connections` a new connection closes the longest-waiting one instead
//! of waiting or failing, so `/healthz` answers however many idle or half-sent connections are
//! open, and only when every connection runs a request is a new one refused (503, with
//! `Retry-After`). Hitting the cap, or a file descriptor limit the cap was lowered to fit, is
//! logged.

use crate::common::TempDb;
use crate::common::server::Server;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Whether the server has closed `stream` (a read sees the end, or a reset), waiting at most
/// `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0_u8; 256];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            // An answer (a 408, say) comes before the close.
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// One request on a new connection: its status line and the rest of the answer.
fn get(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn metric(address: SocketAddr, line: &str) -> u64 {
    let metrics = get(address, "/metrics");
    metrics
        .lines()
        .find_map(|found| found.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in {metrics}"))
}

/// More idle and half-sent connections than the cap: `/healthz` on a new connection answers
/// each time (the longest-waiting connection closed for it), and the rest are closed by their
/// timeouts (idle 2 s, headers 1 s); the log says the cap was met, once.
#[test]
fn idle_and_half_sent_connections_cannot_fill_the_server() {
    let db = TempDb::new();
    let server = Server::start(
        &db.path,
        &[
            "--max-connections",
            "20",
            "--http-idle-timeout-secs",
            "2",
            "--http-header-timeout-secs",
            "1",
        ],
    );
    let address = server.address;
    let mut idle: Vec<TcpStream> = (0..15)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    let mut half_sent: Vec<TcpStream> = (0..15)
        .map(|_| {
            let mut stream = TcpStream::connect(address).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0")
                .unwrap();
            stream
        })
        .collect();
    for _ in 0..5 {
        let answer = get(address, "/healthz");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
    // 30 opened, 20 fit: ten closed for room, and one more for the first /healthz (those
    // after it find room where the one before closed, unless they come before it is gone).
    let evicted = metric(
        address,
        "tally_http_connections_closed_total{reason=\"evicted\"}",
    );
    assert!((11..=16).contains(&evicted), "{evicted}");
    // The oldest idle ones went first.
    assert!(closed_within(&mut idle[0], Duration::from_millis(500)));

    let started = Instant::now();
    for stream in half_sent.iter_mut() {
        assert!(
            closed_within(stream, Duration::from_secs(3)),
            "a half-sent one stayed open"
        );
    }
    for stream in idle.iter_mut() {
        assert!(
            closed_within(stream, Duration::from_secs(4)),
            "an idle one stayed open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        metric(
            address,
            "tally_http_connections_closed_total{reason=\"header_timeout\"}"
        ) >= 1
    );
    assert!(
        metric(
            address,
            "tally_http_connections_closed_total{reason=\"idle_timeout\"}"
        ) >= 1
    );
    let log = std::fs::read_to_string(db.path.with_extension("server.log")).unwrap();
    assert_eq!(
        log.matches("HTTP connections at --max-connections (20): closing the longest-waiting")
            .count(),
        1,
        "{log}"
    );
}

/// A body that stalls halfway gets 408 `request_timeout` after the body timeout and its
/// connection closed, changing nothing; when every connection runs a request (bodies arriving
/// slowly), a new one is refused with 503 `too_many_connections` and `Retry-After`.
#[test]
fn stalled_bodies_time_out_and_busy_servers_refuse() {
    let db = TempDb::new();
    let server = Server::start(
        &db.path,
        &["--max-connections", "2", "--http-body-timeout-secs", "1"],
    );
    let address = server.address;
    let stalled = || {
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "POST /counters/visits/increment HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{{\"by\r\n"
        )
        .unwrap();
        stream
    };
    let mut busy = [stalled(), stalled()];
    std::thread::sleep(Duration::from_millis(200));
    let refused = get(address, "/healthz");
    assert!(
        refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{refused}"
    );
    assert!(refused.contains("retry-after: 1\r\n"), "{refused}");
    assert!(
        refused.contains("\"code\":\"too_many_connections\""),
        "{refused}"
    );

    for stream in busy.iter_mut() {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{answer}"
        );
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    }
    assert_eq!(server.value("visits"), 0);
    assert_eq!(metric(address, "tally_http_connections_refused_total"), 1);
}

/// A server whose file descriptor limit (64 here) cannot hold `--max-connections` says so and
/// serves at most what fits, so with 100 idle connections open `/healthz` still answers.
#[test]
fn the_descriptor_limit_lowers_the_cap_and_healthz_answers() {
    let db = TempDb::new();
    let log = std::fs::File::create(db.path.with_extension("server.log")).unwrap();
    let binary = env!("CARGO_BIN_EXE_tally");
    let mut child = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("ulimit -n 64 && exec {binary} \"$@\""),
            "tally",
        ])
        .arg("--cache-dir")
        .arg(crate::common::cache_dir())
        .arg("--db")
        .arg(&db.path)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let address = tally::server::read_listening_address(&mut stdout).unwrap();
    let idle: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(address).ok())
        .collect();
    for _ in 0..3 {
        let answer = get(address, "/healthz");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
    drop(idle);
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(db.path.with_extension("server.log")).unwrap();
    assert!(
        log.contains(
            "--max-connections 10000 does not fit this process's file descriptor limit (64, \
             ulimit -n): serving at most 48 HTTP connections at once"
        ),
        "{log}"
    );
    assert!(
        log.contains("HTTP connections at --max-connections (48)"),
        "{log}"
    );
}
