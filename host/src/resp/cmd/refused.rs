//! Commands Redis counter clients send that tally does not have, answered with why and what to
//! use instead rather than Redis's bare "unknown command": expiry (`EXPIRE`, `TTL`, ...), the
//! value swaps (`GETSET`, `SETNX`, ...), `INCRBYFLOAT` and scripts (`EVAL`, `EVALSHA`). Refused
//! whatever their arguments, queued or not (inside `MULTI` the refusal makes `EXEC` run
//! nothing), so nothing changes.

use super::{InTransaction, Reply, Running, Spec};

const KEYSPACE: &[&str] = &["@keyspace"];
const STRING: &[&str] = &["@string"];
const SCRIPTING: &[&str] = &["@scripting"];

/// `EXPIRE`: refused.
pub(super) const EXPIRE: Spec = spec("expire", KEYSPACE);
/// `PEXPIRE`: refused.
pub(super) const PEXPIRE: Spec = spec("pexpire", KEYSPACE);
/// `EXPIREAT`: refused.
pub(super) const EXPIREAT: Spec = spec("expireat", KEYSPACE);
/// `PEXPIREAT`: refused.
pub(super) const PEXPIREAT: Spec = spec("pexpireat", KEYSPACE);
/// `PERSIST`: refused.
pub(super) const PERSIST: Spec = spec("persist", KEYSPACE);
/// `TTL`: refused.
pub(super) const TTL: Spec = spec("ttl", KEYSPACE);
/// `PTTL`: refused.
pub(super) const PTTL: Spec = spec("pttl", KEYSPACE);
/// `SETEX`: refused.
pub(super) const SETEX: Spec = spec("setex", STRING);
/// `PSETEX`: refused.
pub(super) const PSETEX: Spec = spec("psetex", STRING);
/// `SETNX`: refused.
pub(super) const SETNX: Spec = spec("setnx", STRING);
/// `GETSET`: refused.
pub(super) const GETSET: Spec = spec("getset", STRING);
/// `GETDEL`: refused.
pub(super) const GETDEL: Spec = spec("getdel", STRING);
/// `GETEX`: refused.
pub(super) const GETEX: Spec = spec("getex", STRING);
/// `INCRBYFLOAT`: refused.
pub(super) const INCRBYFLOAT: Spec = spec("incrbyfloat", STRING);
/// `EVAL`: refused.
pub(super) const EVAL: Spec = spec("eval", SCRIPTING);
/// `EVALSHA`: refused.
pub(super) const EVALSHA: Spec = spec("evalsha", SCRIPTING);
/// `EVAL_RO`: refused.
pub(super) const EVAL_RO: Spec = spec("eval_ro", SCRIPTING);
/// `EVALSHA_RO`: refused.
pub(super) const EVALSHA_RO: Spec = spec("evalsha_ro", SCRIPTING);
/// `SCRIPT`: refused.
pub(super) const SCRIPT: Spec = spec("script", SCRIPTING);
/// `FCALL`: refused.
pub(super) const FCALL: Spec = spec("fcall", SCRIPTING);

const fn spec(name: &'static str, categories: &'static [&'static str]) -> Spec {
    Spec {
        name,
        arity: -1,
        flags: &["write"],
        keys: (0, 0, 0),
        categories,
        stages_writes: false,
        in_transaction: InTransaction::Queue(refuse_queued),
        run,
    }
}

fn run<'a>(args: &'a [Vec<u8>], _: &'a mut super::Context<'_, '_>) -> Running<'a> {
    let refused = why(&args[0]);
    Box::pin(async move { Err(refused.into()) })
}

fn refuse_queued(args: &[Vec<u8>]) -> Result<(), Reply> {
    Err(why(&args[0]))
}

/// Why tally refuses the command `name`, and what to use instead.
fn why(name: &[u8]) -> Reply {
    let name = String::from_utf8_lossy(name).to_uppercase();
    let reason = match name.as_str() {
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" | "PERSIST" | "TTL" | "PTTL" | "SETEX"
        | "PSETEX" | "GETEX" => {
            "tally has no per-key expiry (a tally counter is a durable count, not a cache \
             entry), so there is no time to live to set or read; for counts that reset (rate \
             limits, quotas), use tally's windows: POST /windows/NAME/hit or `tally hit NAME \
             --window 1m --limit N`, one exact count per window"
        }
        "SETNX" => {
            "tally has no SETNX; INCRBY name 0 makes a missing counter 0 and leaves an existing \
             one as it is"
        }
        "GETSET" | "GETDEL" => {
            "tally has no command that reads a counter and replaces or removes it in one step; \
             MULTI, GET, SET (or DEL), EXEC does it as one transaction"
        }
        "INCRBYFLOAT" => {
            "tally counters are whole numbers from 0 to 18446744073709551615; INCRBY adds a \
             whole number"
        }
        _ => {
            "tally runs no scripts (its counter logic is a WebAssembly component); MULTI and \
             EXEC run INCR, INCRBY, GET, SET, DEL, EXISTS and MGET as one transaction, and a \
             rate limiter's INCRBY-and-EXPIRE script is tally's windows: POST \
             /windows/NAME/hit or `tally hit NAME --window 1m --limit N`"
        }
    };
    Reply::err(format!("{name} is refused: {reason}; nothing was changed"))
}
