//! `tally serve --resp`: the Redis protocol, proved with the real binary and real Redis
//! clients. Every command and refusal (compared byte for byte with a real `redis-server` where
//! both answer the same input), pipelining, authentication, the limits, restarts and metrics.
//! The client libraries (`redis-cli`, `redis-benchmark`, Python's `redis`, Rust's `redis`)
//! are in `resp_clients.rs`; `kill -9` under load is in `resp_crash.rs`.

use crate::common::TempDb;
use crate::common::server::Server;
use std::time::{Duration, Instant};
use tally_test_support::redis_server::RedisServer;
use tally_test_support::resp_client::RespClient;

/// `tally serve --resp 127.0.0.1:0` on `db`, with more serve options.
pub fn resp_server(db: &TempDb, serve_args: &[&str]) -> Server {
    let mut args = vec!["--resp", "127.0.0.1:0"];
    args.extend_from_slice(serve_args);
    Server::start(&db.path, &args)
}

/// Commands whose answers Redis 7 and tally must give byte for byte alike (both start empty).
const SHARED_SCRIPT: &[&[&str]] = &[
    &["PING"],
    &["PING", "hello there"],
    &["ECHO", "a\r\nb"],
    &["INCR", "visits"],
    &["incr", "visits"],
    &["INCRBY", "visits", "5"],
    &["INCRBY", "visits", "0"],
    &["GET", "visits"],
    &["GET", "never"],
    &["MGET", "visits", "never", "visits"],
    &["EXISTS", "visits", "never", "visits"],
    &["SET", "other", "10"],
    &["INCR", "other"],
    &["DEL", "other", "never", "other"],
    &["GET", "other"],
    &["DEL", "other"],
    &["SET", "top", "9223372036854775807"],
    &["INCR", "top"],
    &["INCRBY", "top", "0"],
    &["GET", "top"],
    &["INCRBY", "visits", "abc"],
    &["INCRBY", "visits", "05"],
    &["INCRBY", "visits", "+5"],
    &["INCRBY", "visits", "9223372036854775808"],
    &["INCRBY", "visits", "1.5"],
    &["INCR"],
    &["INCR", "a", "b"],
    &["GET"],
    &["MGET"],
    &["KEYS"],
    &["nosuch", "x", "y"],
    &["SELECT", "0"],
    &["SELECT", "x"],
    &["SCAN", "x"],
    &["SCAN", "0", "COUNT", "0"],
    &["SCAN", "0", "COUNT", "x"],
    &["SCAN", "0", "BOGUS", "1"],
    &["SCAN", "0", "MATCH"],
    &["AUTH", "pw"],
    &["AUTH", "a", "b", "c"],
    &["HELLO", "4"],
    &["HELLO", "x"],
    &["HELLO", "3", "AUTH", "x"],
    &["CLIENT", "SETNAME", "a b"],
    &["CLIENT", "SETNAME", "app"],
    &["CLIENT", "GETNAME"],
    &["CLIENT", "NOSUCH"],
    &["COMMAND", "NOSUCH"],
    &["PING", "a", "b"],
    &["SET", "k", "1", "bogus"],
    &["GET", "visits"],
    &["QUIT"],
];

/// A real `redis-server` and tally on a database of its own, both empty, to compare answers.
pub struct SideBySide {
    pub redis: RespClient,
    pub tally: RespClient,
    pub server: Server,
    pub db: TempDb,
    _redis_server: RedisServer,
}

impl SideBySide {
    pub fn start() -> Self {
        let redis_server = RedisServer::start(&[]).unwrap();
        let db = TempDb::new();
        let server = resp_server(&db, &[]);
        let address = ([127, 0, 0, 1], redis_server.port()).into();
        Self {
            redis: RespClient::connect(address, Duration::from_secs(10)).unwrap(),
            tally: server.resp_client(),
            server,
            db,
            _redis_server: redis_server,
        }
    }

    /// Sends each command to both, asserting the same answer byte for byte.
    pub fn answer_alike(&mut self, script: &[&[&str]]) {
        for command in script {
            let expected = self.redis.command(command).unwrap();
            let answered = self.tally.command(command).unwrap();
            assert_eq!(answered, expected, "{command:?}");
        }
    }
}

/// Every shared command answers exactly as Redis 7 answers it: the same values, the same nil,
/// the same error texts.
#[test]
fn answers_match_redis_byte_for_byte() {
    let mut both = SideBySide::start();
    both.answer_alike(SHARED_SCRIPT);
    assert!(both.tally.is_closed(), "QUIT closes the connection");
}

/// Inline commands (what a person types into `nc`) split as Redis splits them: quotes,
/// escapes, and an unbalanced quote refused with Redis's protocol error (which closes the
/// connection, on both). No counter is created from a broken quote.
#[test]
fn inline_commands_parse_as_redis_does() {
    let mut both = SideBySide::start();
    for line in [
        "ECHO \"a b\"\r\n",
        "ECHO 'it\\'s'\r\n",
        "ECHO \"\\x41\\n\\\"q\\\"\"\r\n",
        "ECHO a\"b c\"\r\n",
        "INCRBY \"page views\" 2\r\n",
        "GET 'page views'\r\n",
        "INCR \"a\r\n",
    ] {
        both.redis.send_raw(line.as_bytes()).unwrap();
        both.tally.send_raw(line.as_bytes()).unwrap();
        let expected = both.redis.read_reply().unwrap();
        assert_eq!(both.tally.read_reply().unwrap(), expected, "{line:?}");
    }
    assert_eq!(
        both.redis.read_reply().ok(),
        None,
        "Redis closes after a protocol error"
    );
    assert!(
        both.tally.is_closed(),
        "tally closes after a protocol error"
    );
    let mut client = both.server.resp_client();
    assert_eq!(client.command(&["EXISTS", "\"a"]).unwrap(), ":0\r\n");
}

/// What tally answers where Redis has no error of its own: counting down, values that are not
/// counters, expiry options, invalid names, a database other than 0, an unknown SCAN cursor,
/// commands counter clients send that tally lacks (expiry, `GETSET`, `INCRBYFLOAT`, scripts),
/// alone or queued in a transaction. Each refusal changes nothing.
#[test]
fn tally_refusals_say_why_and_change_nothing() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let mut client = server.resp_client();
    assert_eq!(
        client.command(&["INCRBY", "visits", "10"]).unwrap(),
        ":10\r\n"
    );
    let only_up = |what: &str| {
        format!(
            "-ERR tally counters only count up, so {what} is refused; the counter is unchanged \
             (INCRBY takes 0 to 9223372036854775807)\r\n"
        )
    };
    for (command, answer) in [
        (
            &["INCRBY", "visits", "-1"][..],
            only_up("a negative INCRBY"),
        ),
        (&["DECR", "visits"], only_up("DECR")),
        (&["DECRBY", "visits", "2"], only_up("DECRBY")),
        (
            &["SET", "visits", "ten"],
            "-ERR tally counters hold whole numbers from 0 to 18446744073709551615; SET takes \
             one in decimal digits (no sign, no leading zeros)\r\n"
                .into(),
        ),
        (
            &["SET", "visits", "1", "EX", "10"],
            "-ERR tally's SET takes no options (EX given): tally has no per-key expiry and SET \
             always replaces the value; send SET name value, and for counts that reset (rate \
             limits), use tally's windows: POST /windows/NAME/hit or `tally hit NAME --window 1m \
             --limit N`; nothing was changed\r\n"
                .into(),
        ),
        (
            &["INCR", ""],
            "-ERR invalid counter name: a counter name must be empty\r\n"
                .replace("must be", "must not be"),
        ),
        (
            &["GET", "a\nb"],
            "-ERR invalid counter name: a counter name must not contain control characters; \
             found U+000A at byte 1\r\n"
                .into(),
        ),
        (
            &["MGET", "visits", "a\tb"],
            "-ERR invalid counter name: a counter name must not contain control characters; \
             found U+0009 at byte 1\r\n"
                .into(),
        ),
        (&["SELECT", "1"], "-ERR DB index is out of range\r\n".into()),
        (
            &["SCAN", "12345"],
            "-ERR SCAN cursor 12345 is not one a server of this store handed out, or is older \
             than 60 minutes; SCAN again from 0\r\n"
                .into(),
        ),
        (
            &["INFO", "keyspace"],
            "-ERR tally does not count its counters in INFO keyspace; SCAN or KEYS list them\r\n"
                .into(),
        ),
    ] {
        assert_eq!(client.command(command).unwrap(), answer, "{command:?}");
    }
    // Commands counter clients send that tally does not have: why, and what instead.
    let never_expire = |name: &str| {
        format!(
            "-ERR {name} is refused: tally has no per-key expiry (a tally counter is a durable \
             count, not a cache entry), so there is no time to live to set or read; for counts \
             that reset (rate limits, quotas), use tally's windows: POST /windows/NAME/hit or \
             `tally hit NAME --window 1m --limit N`, one exact count per window; nothing was \
             changed\r\n"
        )
    };
    let no_scripts = |name: &str| {
        format!(
            "-ERR {name} is refused: tally runs no scripts (its counter logic is a WebAssembly \
             component); MULTI and EXEC run INCR, INCRBY, GET, SET, DEL, EXISTS and MGET as one \
             transaction, and a rate limiter's INCRBY-and-EXPIRE script is tally's windows: POST \
             /windows/NAME/hit or `tally hit NAME --window 1m --limit N`; nothing was changed\r\n"
        )
    };
    for (command, answer) in [
        (&["EXPIRE", "visits", "60"][..], never_expire("EXPIRE")),
        (&["pexpire", "visits", "60000"], never_expire("PEXPIRE")),
        (&["TTL", "visits"], never_expire("TTL")),
        (&["PTTL", "visits"], never_expire("PTTL")),
        (
            &["GETSET", "visits", "0"],
            "-ERR GETSET is refused: tally has no command that reads a counter and replaces or \
             removes it in one step; MULTI, GET, SET (or DEL), EXEC does it as one transaction; \
             nothing was changed\r\n"
                .into(),
        ),
        (
            &["INCRBYFLOAT", "visits", "1.5"],
            "-ERR INCRBYFLOAT is refused: tally counters are whole numbers from 0 to \
             18446744073709551615; INCRBY adds a whole number; nothing was changed\r\n"
                .into(),
        ),
        (
            &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "visits"],
            no_scripts("EVAL"),
        ),
        (&["EVALSHA", "abc", "1", "visits"], no_scripts("EVALSHA")),
    ] {
        assert_eq!(client.command(command).unwrap(), answer, "{command:?}");
    }
    // Queued in a transaction, the refusal discards it: nothing runs.
    assert_eq!(client.command(&["MULTI"]).unwrap(), "+OK\r\n");
    assert_eq!(client.command(&["INCR", "visits"]).unwrap(), "+QUEUED\r\n");
    assert_eq!(
        client.command(&["EXPIRE", "visits", "60"]).unwrap(),
        never_expire("EXPIRE")
    );
    assert_eq!(
        client.command(&["EXEC"]).unwrap(),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    let help = client.command(&["CLIENT", "HELP"]).unwrap();
    assert!(
        help.starts_with(
            "*11\r\n+CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"
        ),
        "{help}"
    );
    for subcommand in ["GETNAME", "ID", "SETINFO", "SETNAME", "HELP"] {
        assert!(help.contains(&format!("\r\n+{subcommand}")), "{help}");
    }
    let long = "x".repeat(257);
    assert_eq!(
        client.command(&["SET", &long, "1"]).unwrap(),
        "-ERR invalid counter name: a counter name is at most 256 bytes; this one is 257 bytes\r\n"
    );
    assert_eq!(client.command(&["GET", "visits"]).unwrap(), "$2\r\n10\r\n");
    assert_eq!(
        client.command(&["KEYS", "*"]).unwrap(),
        "*1\r\n$6\r\nvisits\r\n"
    );
}

/// Counters above Redis's integer range (set over HTTP or RESP on SQLite) read exactly, and an
/// increment that would pass i64::MAX is an overflow that leaves them unchanged.
#[test]
fn values_past_the_resp_range_read_exactly_and_refuse_increments() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let mut client = server.resp_client();
    assert_eq!(
        client
            .command(&["SET", "huge", "18446744073709551615"])
            .unwrap(),
        "+OK\r\n"
    );
    assert_eq!(
        client.command(&["GET", "huge"]).unwrap(),
        "$20\r\n18446744073709551615\r\n"
    );
    assert_eq!(
        client.command(&["INCRBY", "huge", "0"]).unwrap(),
        "-ERR increment or decrement would overflow\r\n"
    );
    assert_eq!(server.value("huge"), u64::MAX);
    assert_eq!(
        client
            .command(&["SET", "edge", "9223372036854775806"])
            .unwrap(),
        "+OK\r\n"
    );
    assert_eq!(
        client.command(&["INCR", "edge"]).unwrap(),
        ":9223372036854775807\r\n"
    );
    assert_eq!(
        client.command(&["INCRBY", "edge", "1"]).unwrap(),
        "-ERR increment or decrement would overflow\r\n"
    );
    assert_eq!(server.value("edge"), i64::MAX as u64);
    // Over HTTP the same counter still counts on to u64's limit: only RESP reads it signed.
    let response = server.request("POST", "/counters/edge/increment", None);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(server.value("edge"), i64::MAX as u64 + 1);
}

/// `SCAN` hands out numeric cursors that page through every counter exactly once (SQLite),
/// with `MATCH`, `COUNT` and `TYPE`; `KEYS` lists every match.
#[test]
fn scan_and_keys_list_every_counter() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let mut client = server.resp_client();
    let mut pipeline = Vec::new();
    for i in 0..2500 {
        let name = format!("user:{i:04}");
        pipeline.extend(RespClient::encode(&[b"SET", name.as_bytes(), b"1"]));
    }
    client.send_raw(&pipeline).unwrap();
    for _ in 0..2500 {
        assert_eq!(client.read_reply().unwrap(), "+OK\r\n");
    }
    client.command(&["INCR", "other"]).unwrap();

    let (mut seen, mut cursor, mut calls) = (Vec::new(), "0".to_string(), 0);
    loop {
        let answer = client
            .command(&["SCAN", &cursor, "MATCH", "user:*9", "COUNT", "300"])
            .unwrap();
        calls += 1;
        let lines: Vec<&str> = answer.split("\r\n").collect();
        assert_eq!(lines[0], "*2");
        cursor = lines[2].to_string();
        seen.extend(
            lines[4..]
                .iter()
                .filter(|line| !line.starts_with('$') && !line.is_empty())
                .map(|line| line.to_string()),
        );
        if cursor == "0" {
            break;
        }
    }
    let expected: Vec<String> = (0..2500)
        .filter(|i| i % 10 == 9)
        .map(|i| format!("user:{i:04}"))
        .collect();
    assert_eq!(seen, expected);
    // 2,501 counters, 300 looked at per call.
    assert_eq!(calls, 9);

    // Another type than string matches nothing, but the scan still moves on.
    let typed = client.command(&["SCAN", "0", "TYPE", "hash"]).unwrap();
    let lines: Vec<&str> = typed.split("\r\n").collect();
    assert_eq!((lines[0], lines[3]), ("*2", "*0"), "{typed}");
    assert_ne!(lines[2], "0");
    // A cursor names a note the store keeps: the one handed out works, its neighbours and
    // numbers nobody handed out are refused.
    let real: u64 = lines[2].parse().unwrap();
    assert!(
        client
            .command(&["SCAN", &real.to_string()])
            .unwrap()
            .starts_with("*2\r\n")
    );
    for forged in [real + 1, real - 1, real >> 32, real ^ (1 << 40)] {
        let answer = client.command(&["SCAN", &forged.to_string()]).unwrap();
        assert!(
            answer.starts_with(&format!(
                "-ERR SCAN cursor {forged} is not one a server of this store handed out"
            )),
            "{forged}: {answer}"
        );
    }
    let keys = client.command(&["KEYS", "user:000[0-2]"]).unwrap();
    assert_eq!(
        keys,
        "*3\r\n$9\r\nuser:0000\r\n$9\r\nuser:0001\r\n$9\r\nuser:0002\r\n"
    );
    assert!(
        client
            .command(&["KEYS", "*"])
            .unwrap()
            .starts_with("*2501\r\n")
    );
}

/// A pipeline (many commands in one write) is answered in order, runs on one component
/// instance, feeds group commit (its increments share commits instead of taking one each),
/// and every command is counted in /metrics by name and outcome.
#[test]
fn pipelines_answer_in_order_on_one_instance() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let mut client = server.resp_client();
    assert_eq!(client.command(&["PING"]).unwrap(), "+PONG\r\n");
    let read = |server: &Server, name: &str| {
        let metrics = server.request("GET", "/metrics", None).body;
        metric(&metrics, name)
    };
    // Instances given to requests, fresh or reused: one per pipelined read.
    let instances = |server: &Server| {
        read(server, "tally_instances_created_total") + read(server, "tally_instances_reused_total")
    };
    let commits = |server: &Server| read(server, "tally_commit_batch_size_count");
    let before = instances(&server);
    let commits_before = commits(&server);
    let mut pipeline = Vec::new();
    for _ in 0..200 {
        pipeline.extend(RespClient::encode(&[b"INCR", b"piped"]));
    }
    pipeline.extend(RespClient::encode(&[b"GET", b"piped"]));
    pipeline.extend(RespClient::encode(&[b"DECR", b"piped"]));
    client.send_raw(&pipeline).unwrap();
    for expected in 1..=200 {
        assert_eq!(client.read_reply().unwrap(), format!(":{expected}\r\n"));
    }
    assert_eq!(client.read_reply().unwrap(), "$3\r\n200\r\n");
    assert!(
        client
            .read_reply()
            .unwrap()
            .starts_with("-ERR tally counters only count up")
    );
    assert_eq!(
        instances(&server) - before,
        1,
        "one instance for the pipeline"
    );
    let committed = commits(&server) - commits_before;
    assert!(
        committed <= 100,
        "200 pipelined increments took {committed} commits: they should share them"
    );

    // A read in a pipeline sees the writes before it (it waits until they are durable).
    let mut mixed = Vec::new();
    for command in [
        &[&b"INCR"[..], b"mixed"][..],
        &[b"GET", b"mixed"],
        &[b"INCRBY", b"mixed", b"5"],
        &[b"MGET", b"mixed", b"never"],
        &[b"SET", b"mixed", b"9"],
        &[b"EXISTS", b"mixed"],
        &[b"GET", b"mixed"],
    ] {
        mixed.extend(RespClient::encode(command));
    }
    client.send_raw(&mixed).unwrap();
    for expected in [
        ":1\r\n",
        "$1\r\n1\r\n",
        ":6\r\n",
        "*2\r\n$1\r\n6\r\n$-1\r\n",
        "+OK\r\n",
        ":1\r\n",
        "$1\r\n9\r\n",
    ] {
        assert_eq!(client.read_reply().unwrap(), expected);
    }

    let metrics = server.request("GET", "/metrics", None).body;
    for (line, value) in [
        (
            r#"tally_resp_commands_total{command="incr",outcome="ok"}"#,
            201,
        ),
        (
            r#"tally_resp_commands_total{command="get",outcome="ok"}"#,
            3,
        ),
        (
            r#"tally_resp_commands_total{command="decr",outcome="refused"}"#,
            1,
        ),
        (
            r#"tally_resp_commands_total{command="ping",outcome="ok"}"#,
            1,
        ),
        ("tally_resp_clients", 1),
    ] {
        assert_eq!(metric(&metrics, line), value, "{line} in\n{metrics}");
    }
}

/// The value of the metric line that starts with `name ` in a Prometheus text.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// With `--auth-token`, every command but AUTH, HELLO ... AUTH and QUIT needs the token first,
/// as Redis's `requirepass`: `-NOAUTH` before it, `-WRONGPASS` for a wrong one; an unknown
/// command is still named as unknown.
#[test]
fn auth_token_works_like_requirepass() {
    let db = TempDb::new();
    let server = resp_server(&db, &["--auth-token", "s3cret"]);
    let mut client = server.resp_client();
    let noauth = "-NOAUTH Authentication required.\r\n";
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(client.command(&["INCR", "visits"]).unwrap(), noauth);
    assert_eq!(client.command(&["PING"]).unwrap(), noauth);
    assert_eq!(client.command(&["GET", "visits"]).unwrap(), noauth);
    assert_eq!(
        client.command(&["NOSUCH"]).unwrap(),
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
    );
    assert_eq!(client.command(&["AUTH", "wrong"]).unwrap(), wrongpass);
    assert_eq!(
        client.command(&["AUTH", "admin", "s3cret"]).unwrap(),
        wrongpass
    );
    assert!(
        client
            .command(&["HELLO", "3"])
            .unwrap()
            .starts_with("-NOAUTH HELLO must be called with the client already authenticated")
    );
    assert_eq!(client.command(&["INCR", "visits"]).unwrap(), noauth);
    assert_eq!(client.command(&["AUTH", "s3cret"]).unwrap(), "+OK\r\n");
    assert_eq!(client.command(&["INCR", "visits"]).unwrap(), ":1\r\n");

    let mut other = server.resp_client();
    let hello = other
        .command(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "app"])
        .unwrap();
    assert!(
        hello.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{hello}"
    );
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"), "{hello}");
    assert_eq!(other.command(&["INCR", "visits"]).unwrap(), ":2\r\n");
    assert_eq!(
        other.command(&["CLIENT", "GETNAME"]).unwrap(),
        "$3\r\napp\r\n"
    );
    // RESP3's nil.
    assert_eq!(other.command(&["GET", "never"]).unwrap(), "_\r\n");
    assert_eq!(server.value("visits"), 2);
}

/// Input past the limits, or garbage, is answered with an error and the connection is closed,
/// while other connections go on; an argument of exactly 1 MiB is fine.
#[test]
fn limits_and_garbage_close_only_that_connection() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let mut bystander = server.resp_client();
    assert_eq!(bystander.command(&["INCR", "c"]).unwrap(), ":1\r\n");

    let mut client = server.resp_client();
    let exact = "x".repeat(1 << 20);
    let echoed = client.command(&["ECHO", &exact]).unwrap();
    assert_eq!(echoed, format!("$1048576\r\n{exact}\r\n"));

    for (input, answer) in [
        (
            &b"*2\r\n$4\r\nECHO\r\n$1048577\r\n"[..],
            "-ERR Protocol error: a bulk string has at most 1048576 bytes; this one announced \
             1048577\r\n",
        ),
        (
            b"*1025\r\n",
            "-ERR Protocol error: a command has at most 1024 arguments; this one announced \
             1025\r\n",
        ),
        (
            b"*x\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '+', got '+'\r\n",
        ),
    ] {
        let mut client = server.resp_client();
        client.send_raw(input).unwrap();
        let answer = answer.replace("expected '+'", "expected '$'");
        assert_eq!(client.read_reply().unwrap(), answer, "{input:?}");
        assert!(client.is_closed(), "{input:?} left the connection open");
    }
    // A command before garbage in the same write is answered, then the error.
    let mut client = server.resp_client();
    let mut input = RespClient::encode(&[b"INCR", b"c"]);
    input.extend_from_slice(b"*1\r\n$x\r\n");
    client.send_raw(&input).unwrap();
    assert_eq!(client.read_reply().unwrap(), ":2\r\n");
    assert_eq!(
        client.read_reply().unwrap(),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(client.is_closed());

    // Inline commands, as typed into nc.
    let mut client = server.resp_client();
    client.send_raw(b"INCR c\r\nGET c\n").unwrap();
    assert_eq!(client.read_reply().unwrap(), ":3\r\n");
    assert_eq!(client.read_reply().unwrap(), "$1\r\n3\r\n");

    assert_eq!(bystander.command(&["INCR", "c"]).unwrap(), ":4\r\n");
}

/// `--resp-max-clients` refuses connections past it with Redis's error, and takes new ones once
/// others have left.
#[test]
fn max_clients_refuses_extra_connections() {
    let db = TempDb::new();
    let server = resp_server(&db, &["--resp-max-clients", "2"]);
    let mut first = server.resp_client();
    let mut second = server.resp_client();
    assert_eq!(first.command(&["PING"]).unwrap(), "+PONG\r\n");
    assert_eq!(second.command(&["PING"]).unwrap(), "+PONG\r\n");
    let mut third = server.resp_client();
    assert_eq!(
        third.read_reply().unwrap(),
        "-ERR max number of clients reached\r\n"
    );
    assert!(third.is_closed());
    assert_eq!(first.command(&["QUIT"]).unwrap(), "+OK\r\n");
    assert!(first.is_closed());
    // The server notices the close at once, but give its task a moment to finish.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut next = server.resp_client();
        if next
            .command(&["PING"])
            .is_ok_and(|answer| answer == "+PONG\r\n")
        {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot was never reused");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = server.request("GET", "/metrics", None).body;
    assert!(metric(&metrics, "tally_resp_clients_rejected_total") >= 1);
}

/// A client that sends nothing for `--resp-idle-timeout-secs` is dropped; one that keeps talking
/// is not.
#[test]
fn idle_clients_are_dropped() {
    let db = TempDb::new();
    let server = resp_server(&db, &["--resp-idle-timeout-secs", "1"]);
    let mut idle = server.resp_client();
    let mut busy = server.resp_client();
    assert_eq!(idle.command(&["PING"]).unwrap(), "+PONG\r\n");
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(busy.command(&["PING"]).unwrap(), "+PONG\r\n");
    }
    assert!(idle.is_closed(), "an idle client was kept past the timeout");
}

/// The restart scenario through RESP: 10 survives `kill -9`, then 11, then 15, and HTTP reads
/// the same values.
#[test]
fn counters_survive_kill_9_through_resp() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    assert_eq!(
        server
            .resp_client()
            .command(&["INCRBY", "visits", "10"])
            .unwrap(),
        ":10\r\n"
    );
    server.kill();

    let server = resp_server(&db, &[]);
    let mut client = server.resp_client();
    assert_eq!(client.command(&["GET", "visits"]).unwrap(), "$2\r\n10\r\n");
    assert_eq!(client.command(&["INCR", "visits"]).unwrap(), ":11\r\n");
    server.kill();

    let server = resp_server(&db, &[]);
    let mut client = server.resp_client();
    assert_eq!(client.command(&["GET", "visits"]).unwrap(), "$2\r\n11\r\n");
    assert_eq!(
        client.command(&["INCRBY", "visits", "4"]).unwrap(),
        ":15\r\n"
    );
    server.kill();

    let server = resp_server(&db, &[]);
    assert_eq!(
        server.resp_client().command(&["GET", "visits"]).unwrap(),
        "$2\r\n15\r\n"
    );
    assert_eq!(server.value("visits"), 15);
}

/// SIGTERM while a client pipelines increments: every increment answered is stored, none is
/// stored unanswered past what was read, and the server exits cleanly.
#[test]
fn sigterm_answers_what_was_read_then_closes() {
    let db = TempDb::new();
    let server = resp_server(&db, &[]);
    let mut client = server.resp_client();
    assert_eq!(client.command(&["PING"]).unwrap(), "+PONG\r\n");
    let mut pipeline = Vec::new();
    for _ in 0..2000 {
        pipeline.extend(RespClient::encode(&[b"INCR", b"drained"]));
    }
    client.send_raw(&pipeline).unwrap();
    let status = {
        let pid = libc::pid_t::try_from(server.pid()).unwrap();
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let mut answered = 0;
        while let Ok(answer) = client.read_reply() {
            answered += 1;
            assert_eq!(answer, format!(":{answered}\r\n"));
        }
        let status = server.terminate();
        (status, answered)
    };
    assert!(status.0.success(), "{:?}", status.0);
    let server = resp_server(&db, &[]);
    let stored = server.value("drained");
    // Commands read before the signal are answered; the read ones are the stored ones.
    assert_eq!(
        stored, status.1,
        "answered {} but stored {stored}",
        status.1
    );
}

/// A disk that fills up under pipelined writes: a write whose commit failed is answered with
/// the failure, never `+OK`, and every write that was answered `+OK` is there after a restart.
#[test]
fn full_disk_fails_pipelined_writes_and_keeps_acknowledged_ones() {
    let Some(disk) = crate::common::SmallDisk::mount("256k") else {
        return;
    };
    let path = disk.dir.path().join("counters.db");
    let server = Server::start(&path, &["--resp", "127.0.0.1:0"]);
    let mut client = server.resp_client();
    let (mut acknowledged, mut failure) = (Vec::new(), None);
    'fill: for round in 0..1000 {
        let names: Vec<String> = (0..20)
            .map(|i| format!("counter-{round:04}-{i:02}-{}", "x".repeat(200)))
            .collect();
        let mut pipeline = Vec::new();
        for name in &names {
            pipeline.extend(RespClient::encode(&[b"SET", name.as_bytes(), b"7"]));
        }
        client.send_raw(&pipeline).unwrap();
        for name in names {
            match client.read_reply().unwrap().as_str() {
                "+OK\r\n" => acknowledged.push(name),
                other => failure = Some(other.to_string()),
            }
        }
        if failure.is_some() {
            break 'fill;
        }
    }
    let failure = failure.expect("256 KiB never filled up");
    assert!(
        failure.starts_with("-ERR ") && failure.contains("full"),
        "{failure}"
    );
    assert!(
        acknowledged.len() > 10,
        "only {} writes fit",
        acknowledged.len()
    );
    server.kill();

    let server = Server::start(&path, &["--resp", "127.0.0.1:0"]);
    let mut client = server.resp_client();
    for name in &acknowledged {
        assert_eq!(
            client.command(&["GET", name]).unwrap(),
            "$1\r\n7\r\n",
            "{name}"
        );
    }
}
