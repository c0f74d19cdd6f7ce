//! The table's lookup, each command's parsing, and the one RESP mapping of a counter failure.

use super::*;
use crate::resp::reply::Protocol;

fn args(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|word| word.as_bytes().to_vec()).collect()
}

fn error_text(reply: Reply) -> String {
    match reply {
        Reply::Error(message) => message,
        other => panic!("not an error: {other:?}"),
    }
}

/// Runs `words` through `lookup` and the command's parser, as far as a refusal.
fn refusal(words: &[&str]) -> String {
    let args = args(words);
    let spec = match lookup(&args) {
        Ok(spec) => spec,
        Err(reply) => return error_text(reply),
    };
    let parsed = match spec.name {
        "incr" | "incrby" => incr::parse(&args).map(|_| ()),
        "set" => set::parse(&args).map(|_| ()),
        "scan" => scan::parse(&args).map(|_| ()),
        "hello" => auth::parse_hello(&args).map(|_| ()),
        other => panic!("no parser for {other}"),
    };
    error_text(parsed.expect_err("refused"))
}

/// Names are found in any case; arguments become typed values.
#[test]
fn commands_parse() {
    assert_eq!(
        incr::parse(&args(&["incr", "visits"])),
        Ok(("visits".into(), 1))
    );
    assert_eq!(
        incr::parse(&args(&["IncrBy", "visits", "9223372036854775807"])),
        Ok(("visits".into(), i64::MAX as u64))
    );
    assert_eq!(
        set::parse(&args(&["SET", "big", "18446744073709551615"])),
        Ok(("big".into(), u64::MAX))
    );
    assert_eq!(
        scan::parse(&args(&["scan", "0", "match", "user:*", "COUNT", "100"])),
        Ok(scan::Scan {
            cursor: 0,
            pattern: Some(b"user:*".to_vec()),
            count: 100,
            strings: true
        })
    );
    assert_eq!(
        auth::parse_hello(&args(&[
            "HELLO", "3", "AUTH", "default", "pw", "SETNAME", "app"
        ])),
        Ok(auth::Hello {
            protocol: Some(Protocol::Resp3),
            auth: Some((b"default".to_vec(), b"pw".to_vec())),
            name: Some("app".into())
        })
    );
    assert_eq!(
        lookup(&args(&["gEt", "x"])).map(|spec| spec.name),
        Ok("get")
    );
    assert!(stages_writes(&args(&["incr", "x"])));
    assert!(stages_writes(&args(&["SET", "x", "1"])));
    assert!(!stages_writes(&args(&["del", "x"])));
    assert!(!stages_writes(&args(&["nosuch"])));
}

/// Refusals carry Redis's own words where Redis has them.
#[test]
fn refusals_in_redis_words() {
    assert_eq!(
        refusal(&["FLUSHALL", "ASYNC"]),
        "ERR unknown command 'FLUSHALL', with args beginning with: 'ASYNC' "
    );
    assert_eq!(
        refusal(&["nosuch"]),
        "ERR unknown command 'nosuch', with args beginning with: "
    );
    assert_eq!(
        refusal(&["INCR"]),
        "ERR wrong number of arguments for 'incr' command"
    );
    assert_eq!(
        refusal(&["GET", "a", "b"]),
        "ERR wrong number of arguments for 'get' command"
    );
    for bad in ["x", "1.5", "05", "9223372036854775808", " 1"] {
        assert_eq!(
            refusal(&["INCRBY", "visits", bad]),
            "ERR value is not an integer or out of range"
        );
    }
    assert!(refusal(&["INCRBY", "visits", "-1"]).starts_with("ERR tally counters only count up"));
    assert!(refusal(&["SET", "visits", "ten"]).starts_with("ERR tally counters hold whole"));
    assert!(refusal(&["SET", "visits", "-1"]).starts_with("ERR tally counters hold whole"));
    assert!(
        refusal(&["SET", "visits", "1", "EX", "10"])
            .starts_with("ERR tally's SET takes no options (EX given)")
    );
    assert_eq!(
        refusal(&["SET", "visits", "1", "bogus"]),
        "ERR syntax error"
    );
    assert_eq!(refusal(&["SCAN", "x"]), "ERR invalid cursor");
    assert_eq!(refusal(&["SCAN", "0", "COUNT", "0"]), "ERR syntax error");
    assert_eq!(refusal(&["SCAN", "0", "MATCH"]), "ERR syntax error");
    assert_eq!(
        refusal(&["HELLO", "4"]),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        refusal(&["HELLO", "3", "AUTH", "x"]),
        "ERR Syntax error in HELLO option 'AUTH'"
    );
    let not_utf8 = vec![b"GET".to_vec(), vec![0xff, 0xfe]];
    assert!(lookup(&not_utf8).is_ok());
    assert_eq!(
        name(&not_utf8[1]),
        Err(Reply::err(
            "invalid counter name: a counter name must be valid UTF-8"
        ))
    );
}

/// Every counter failure is one Redis error line, refused or failed, read as an increment or
/// not: the table of RESP's mapping.
#[test]
fn failures_map_to_redis_errors() {
    let refused = |error| Failure::Refused(Refusal::new(error, u64::MAX));
    let table = [
        (
            refused(CounterError::Overflow("a".into())),
            Reading::Increment,
            "ERR increment or decrement would overflow",
            true,
        ),
        (
            refused(CounterError::CorruptValue("a".into())),
            Reading::Increment,
            "ERR value is not an integer or out of range",
            true,
        ),
        (
            refused(CounterError::InvalidName("empty".into())),
            Reading::Other,
            "ERR invalid counter name: empty",
            true,
        ),
        (
            refused(CounterError::StoreFailure("disk full".into())),
            Reading::Other,
            "ERR the counter store failed: disk full",
            false,
        ),
        (
            Failure::Busy("the database is busy".into()),
            Reading::Increment,
            "ERR the counter store failed: the database is busy; nothing changed, try again",
            false,
        ),
        (
            Failure::Unavailable("the counter store redis://h cannot be reached (x)".into()),
            Reading::Increment,
            "ERR the counter store redis://h cannot be reached (x)",
            false,
        ),
        (
            Failure::AppliedThenFailed("the component stopped; the write stands".into()),
            Reading::Increment,
            "ERR the component stopped; the write stands",
            false,
        ),
        (
            Failure::Trap(anyhow::anyhow!("the counter component failed")),
            Reading::Other,
            "ERR the counter component failed",
            false,
        ),
    ];
    for (failure, reading, line, refused) in table {
        let error = failed(failure, reading);
        assert_eq!(error_text(error.reply), line);
        assert_eq!(error.refused, refused, "{line}");
    }
}
