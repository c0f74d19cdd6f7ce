//! The Redis backend end to end: a real `redis-server` started by the test, the real `tally`
//! binary, plain Redis clients (`redis-cli`) on the same keys, and two servers scaled out on one
//! Redis.

use crate::common;

use common::TempDb;
use common::server::{Server, hammer};
use std::process::Command;
use tally_test_support::redis_server::RedisServer;

fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "redis-cli {args:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// `--store STORE` followed by `args`.
fn on_store<'a>(store: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    [&["--store", store][..], args].concat()
}

fn tally(store: &str, args: &[&str]) -> std::process::Output {
    common::run(&on_store(store, args))
}

fn tally_ok(store: &str, args: &[&str]) -> String {
    common::run_ok(&on_store(store, args))
}

/// A plain `INCR` from redis-cli and `tally incr` move the same counter, in both directions.
#[test]
fn redis_cli_and_tally_share_counters() {
    let redis = RedisServer::start(&[]).unwrap();
    let store = redis.url(0);
    assert_eq!(redis_cli(&redis, &["INCR", "visits"]), "1");
    assert_eq!(tally_ok(&store, &["incr", "visits"]), "2\n");
    assert_eq!(redis_cli(&redis, &["INCRBY", "visits", "8"]), "10");
    assert_eq!(tally_ok(&store, &["get", "visits"]), "10\n");
    assert_eq!(tally_ok(&store, &["incr", "visits", "--by", "5"]), "15\n");
    assert_eq!(redis_cli(&redis, &["GET", "visits"]), "15");
    assert_eq!(tally_ok(&store, &["list"]), "visits\t15\n");
    // Another database number is another, empty, set of counters.
    assert_eq!(tally_ok(&redis.url(1), &["get", "visits"]), "0\n");
}

/// Keys of other types (a list, a hash) in tally's database are not counters: `list`,
/// `export`, `get` and `GET /counters` fail naming the key, and no write (`incr`, `set`,
/// `reset`, `import`) replaces it; the key is left as it was.
#[test]
fn keys_of_other_types_are_named_and_never_replaced() {
    let redis = RedisServer::start(&[]).unwrap();
    let store = redis.url(0);
    assert_eq!(redis_cli(&redis, &["SET", "a", "5"]), "OK");
    assert_eq!(redis_cli(&redis, &["HSET", "b-hash", "f", "1"]), "1");
    assert_eq!(redis_cli(&redis, &["RPUSH", "z-list", "x"]), "1");
    let named = |key: &str, kind: &str| {
        format!(
            "the Redis key {key:?} holds a {kind}, not a counter: give tally a database of its \
             own (another number in the URL), or remove the key"
        )
    };
    for (args, key, kind) in [
        (&["list"][..], "b-hash", "hash"),
        (&["get", "z-list"], "z-list", "list"),
        (&["incr", "z-list"], "z-list", "list"),
        (&["set", "b-hash", "3"], "b-hash", "hash"),
        (&["reset", "b-hash"], "b-hash", "hash"),
        (&["export"], "b-hash", "hash"),
    ] {
        let output = tally(&store, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains(&named(key, kind)), "{args:?}: {stderr}");
    }
    let db = TempDb::new();
    let file = db.dir.path().join("import.jsonl");
    std::fs::write(
        &file,
        "{\"name\":\"new\",\"value\":2}\n{\"name\":\"b-hash\",\"value\":1}\n",
    )
    .unwrap();
    let output = tally(&store, &["import", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&named("b-hash", "hash")));
    let server = Server::start_with(&db.path, &["--store", &store], &[]);
    let page = server.request("GET", "/counters", None);
    assert_eq!(page.status, 500, "{page:?}");
    let body: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(
        body["error"].as_str(),
        Some(format!("the counter store failed: {}", named("b-hash", "hash")).as_str())
    );
    assert_eq!(redis_cli(&redis, &["TYPE", "b-hash"]), "hash");
    assert_eq!(redis_cli(&redis, &["HGET", "b-hash", "f"]), "1");
    assert_eq!(redis_cli(&redis, &["LRANGE", "z-list", "0", "-1"]), "x");
    assert_eq!(redis_cli(&redis, &["EXISTS", "new"]), "0");
    assert_eq!(redis_cli(&redis, &["GET", "a"]), "5");
}

/// The Redis range is i64: the increment past it is the overflow error, the value unchanged.
#[test]
fn redis_range_is_reported_as_overflow() {
    let redis = RedisServer::start(&[]).unwrap();
    let store = redis.url(0);
    tally_ok(&store, &["set", "big", "9223372036854775806"]);
    assert_eq!(tally_ok(&store, &["incr", "big"]), "9223372036854775807\n");
    let output = tally(&store, &["incr", "big"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("would overflow"));
    assert_eq!(redis_cli(&redis, &["GET", "big"]), "9223372036854775807");
    redis_cli(&redis, &["SET", "word", "abc"]);
    let output = tally(&store, &["incr", "word"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a decimal u64"));
    assert_eq!(redis_cli(&redis, &["GET", "word"]), "abc");
}

/// Every write path refuses a value past the Redis range (i64's maximum) before anything is
/// written, and every overflow message names that limit, not u64's: `set`, `PUT`, `import` and
/// increments, through the CLI and HTTP.
#[test]
fn redis_range_is_enforced_on_every_write_path() {
    let redis = RedisServer::start(&[]).unwrap();
    let store = redis.url(0);
    let limit = "9223372036854775807";
    let past = "9223372036854775808";
    let message = format!(
        "counter \"top\" would overflow past {limit} (the largest counter this store holds, \
         i64's maximum); its value is unchanged"
    );
    tally_ok(&store, &["set", "top", "5"]);

    let output = tally(&store, &["set", "top", past]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("tally: error: {message}\n")
    );
    assert_eq!(redis_cli(&redis, &["GET", "top"]), "5");

    let logs = TempDb::new();
    let server = Server::start_with(&logs.path, &["--store", &store], &[]);
    for body in [
        format!("{{\"value\": {past}}}"),
        "{\"value\": 1e19}".to_string(),
    ] {
        let response = server.request("PUT", "/counters/top", Some(&body));
        assert_eq!(response.status, 409, "{response:?}");
        let answer: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(answer["code"], "overflow");
        assert_eq!(answer["error"], message.as_str());
    }
    assert_eq!(redis_cli(&redis, &["GET", "top"]), "5");

    let file = logs.dir.path().join("past.jsonl");
    std::fs::write(
        &file,
        format!("{{\"name\":\"other\",\"value\":1}}\n{{\"name\":\"top\",\"value\":{past}}}\n"),
    )
    .unwrap();
    let output = tally(&store, &["import", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!(
            "line 2: counter \"top\" has the value {past}, above this store's largest counter \
             {limit}"
        )),
        "{output:?}"
    );
    assert_eq!(redis_cli(&redis, &["EXISTS", "other"]), "0");

    // The limit itself is fine; one past it by increment is the same overflow, named the same.
    let response = server.request(
        "PUT",
        "/counters/top",
        Some(&format!("{{\"value\": {limit}}}")),
    );
    assert_eq!(response.status, 200, "{response:?}");
    let response = server.request("POST", "/counters/top/increment", None);
    assert_eq!(response.status, 409);
    let answer: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(answer["error"], message.as_str());
    let output = tally(&store, &["incr", "top"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("tally: error: {message}\n")
    );
    assert_eq!(redis_cli(&redis, &["GET", "top"]), limit);
    // The same value is fine on SQLite, whose range is u64's.
    assert_eq!(
        common::tally_ok(&logs.path, &["set", "top", past]),
        format!("{past}\n")
    );
}

/// tally refuses a Redis that may evict counters or idempotency records, unless told to accept
/// it.
#[test]
fn evicting_redis_is_refused_without_override() {
    let redis = RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]).unwrap();
    let store = redis.url(0);
    let output = tally(&store, &["incr", "visits"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("maxmemory-policy allkeys-lru"), "{stderr}");
    assert_eq!(redis_cli(&redis, &["EXISTS", "visits"]), "0");
    assert_eq!(
        tally_ok(&store, &["--allow-redis-eviction", "incr", "visits"]),
        "1\n"
    );
    // volatile-* evicts keys with a TTL: idempotency records.
    let volatile = RedisServer::start(&["--maxmemory-policy", "volatile-lru"]).unwrap();
    let output = tally(&volatile.url(0), &["incr", "visits"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("maxmemory-policy volatile-lru, so it may evict idempotency records"),
        "{stderr}"
    );
}

/// Two `tally serve` replicas on one Redis, 32 clients spread over both, 4 counters: exact
/// totals, and Redis itself agrees.
#[test]
fn two_servers_on_one_redis_count_exactly() {
    let redis = RedisServer::start(&[]).unwrap();
    let store = redis.url(0);
    let logs = TempDb::new();
    let first = Server::start_with(&logs.path, &["--store", &store], &[]);
    let second = Server::start_with(&logs.path, &["--store", &store], &[]);
    hammer(&[&first, &second], 32, 250, 4);
    for counter in 0..4 {
        let name = format!("c{counter}");
        assert_eq!(first.value(&name), 2_000);
        assert_eq!(second.value(&name), 2_000);
        assert_eq!(redis_cli(&redis, &["GET", &name]), "2000");
    }
}
