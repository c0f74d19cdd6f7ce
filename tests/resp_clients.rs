//! The Redis clients people already use, unchanged, against `tally serve --resp`: `redis-cli`,
//! `redis-benchmark`, Python's `redis` package (the commonest counter in the wild) and Rust's
//! `redis` crate. Also the Redis store behind the RESP listener.

use crate::common::TempDb;
use crate::common::server::Server;
use crate::resp::resp_server;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use tally_test_support::redis_server::RedisServer;

fn redis_cli(address: SocketAddr, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &address.port().to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "redis-cli {args:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// `redis-cli` as the README shows it: `INCR`, `GET`, `MGET`, `--scan`, and `-a` with a token.
#[test]
fn redis_cli_counts() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let address = server.resp.unwrap();
    assert_eq!(redis_cli(address, &["INCR", "visits"]), "1\n");
    assert_eq!(redis_cli(address, &["INCRBY", "visits", "9"]), "10\n");
    assert_eq!(redis_cli(address, &["GET", "visits"]), "10\n");
    assert_eq!(redis_cli(address, &["GET", "never"]), "\n");
    assert_eq!(redis_cli(address, &["MGET", "visits", "never"]), "10\n\n");
    assert_eq!(
        redis_cli(address, &["DECR", "visits"]),
        "ERR tally counters only count up, so DECR is refused; the counter is unchanged \
         (INCRBY takes 0 to 9223372036854775807)\n\n"
    );
    assert_eq!(redis_cli(address, &["SET", "other", "3"]), "OK\n");
    assert_eq!(redis_cli(address, &["--scan"]), "other\nvisits\n");
    assert_eq!(
        redis_cli(address, &["--scan", "--pattern", "v*"]),
        "visits\n"
    );
    assert!(redis_cli(address, &["INFO"]).contains("redis_version:7.0.0\r\n"));
    assert!(
        redis_cli(address, &["INFO"])
            .contains(&format!("tally_version:{}\r\n", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(server.value("visits"), 10);
    drop(server);

    let server = resp_server(&db, &["--auth-token", "s3cret"]);
    let address = server.resp.unwrap();
    assert_eq!(
        redis_cli(address, &["INCR", "visits"]),
        "NOAUTH Authentication required.\n\n"
    );
    assert_eq!(
        redis_cli(
            address,
            &["-a", "s3cret", "--no-auth-warning", "INCR", "visits"]
        ),
        "11\n"
    );
}

/// `redis-benchmark`, pipelined and not, counts every increment it sends, exactly.
#[test]
fn redis_benchmark_counts_exactly() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let port = server.resp.unwrap().port().to_string();
    for pipeline in ["1", "8"] {
        let output = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(["-t", "incr", "-n", "2000", "-c", "8", "-P", pipeline, "-q"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("INCR: "), "{stdout}");
    }
    // Without -r every INCR goes to one key.
    assert_eq!(server.value("counter:__rand_int__"), 4000);
}

/// The Python virtual environment with `redis` that `./setup --test` makes.
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/redis-py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./setup --test",
        python.display()
    );
    python
}

/// Python's `redis` package: `r.incr`, `r.get`, pipelines, `scan_iter`, refusals as
/// `ResponseError`, and RESP3.
#[test]
fn python_redis_client_counts() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/redis_py_client.py");
    let output = Command::new(python())
        .arg(script)
        .arg(server.resp.unwrap().port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        "incr 1\n\
         incr 2\n\
         incrby 42\n\
         get b'42'\n\
         missing None\n\
         mget [b'42', None]\n\
         exists 1\n\
         set True\n\
         get b'7'\n\
         delete 1\n\
         ping True\n\
         pipeline [1, 2, 3, 4, 5, b'5']\n\
         scan_iter 30\n\
         keys [b'user:00', b'user:01', b'user:02', b'user:03', b'user:04', b'user:05', \
         b'user:06', b'user:07', b'user:08', b'user:09']\n\
         decr refused: tally counters only count up\n\
         negative refused: tally counters only count up\n\
         non-number refused: tally counters hold whole numbers from 0 to 18446744073709551615\n\
         unchanged b'42'\n\
         transaction [1, 2, 3]\n\
         transaction refused: ResponseError Command # 2 (DECRBY tx 1) of pipeline caused error: tally counters only count up\n\
         transaction unchanged b'3'\n\
         resp3 incr 43\n\
         resp3 missing None\n\
         resp3 info 7.0.0\n"
    );
    assert_eq!(server.value("counter"), 43);
}

/// Rust's `redis` crate, RESP2 and RESP3: typed reads, a pipeline, `scan_match`.
#[test]
fn rust_redis_crate_counts() {
    use redis::Commands;
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let port = server.resp.unwrap().port();
    for (url, first) in [
        (format!("redis://127.0.0.1:{port}/"), 1),
        (format!("redis://127.0.0.1:{port}/?protocol=resp3"), 4),
    ] {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut con = client.get_connection().unwrap();
        let value: u64 = con.incr("counter", 1).unwrap();
        assert_eq!(value, first);
        let value: u64 = con.incr("counter", 2).unwrap();
        assert_eq!(value, first + 2);
        let read: Option<u64> = con.get("counter").unwrap();
        assert_eq!(read, Some(first + 2));
        let missing: Option<u64> = con.get("never").unwrap();
        assert_eq!(missing, None);
        let many: Vec<Option<u64>> = con.mget(&["counter", "never"]).unwrap();
        assert_eq!(many, vec![Some(first + 2), None]);
        let refused: redis::RedisResult<u64> = con.decr("counter", 1);
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("tally counters only count up")
        );
        let (a, b): (u64, u64) = redis::pipe()
            .incr("piped", 1)
            .incr("piped", 1)
            .query(&mut con)
            .unwrap();
        assert_eq!(b, a + 1);
        let mut names: Vec<String> = con
            .scan_match("c*")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        names.sort();
        assert_eq!(names, vec!["counter".to_string()]);
    }
    assert_eq!(server.value("counter"), 6);
}

/// On the Redis store the RESP listener serves the same counters that `redis-cli` sees on the
/// Redis server itself: tally in front of Redis, in both directions.
#[test]
fn resp_listener_over_the_redis_store() {
    let redis = RedisServer::start(&[]).unwrap();
    let db = TempDb::new();
    let server = Server::start_with(
        &db.path,
        &["--store", &redis.url(0)],
        &["--resp", "127.0.0.1:0"],
    );
    let address = server.resp.unwrap();
    let backing: SocketAddr = ([127, 0, 0, 1], redis.port()).into();
    assert_eq!(redis_cli(backing, &["INCRBY", "visits", "5"]), "5\n");
    assert_eq!(redis_cli(address, &["INCR", "visits"]), "6\n");
    assert_eq!(redis_cli(backing, &["GET", "visits"]), "6\n");
    assert_eq!(
        redis_cli(address, &["SET", "huge", "9223372036854775808"]),
        "ERR counter \"huge\" would overflow past 9223372036854775807 (the largest counter \
         this store holds, i64's maximum); its value is unchanged\n\n"
    );
    assert_eq!(redis_cli(address, &["--scan"]), "visits\n");
}
