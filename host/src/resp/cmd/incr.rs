//! `INCR name` and `INCRBY name by`: the counter's new value. Counters only count up, so
//! `DECR` and `DECRBY` (and a negative `INCRBY`) are refused with a reason. RESP integers are
//! signed 64-bit: the store refuses an increment past [`RESP_INCREMENT_LIMIT`] atomically, and
//! a refused increment answers in Redis's words.

use super::{
    CommandError, Context, InTransaction, Reading, Reply, Running, Spec, WRITE, name,
    not_an_integer,
};
use crate::resp::RESP_INCREMENT_LIMIT;
use crate::resp::number::strict_i64;

const CATEGORIES: &[&str] = &["@write", "@string", "@fast"];

/// `INCR`
pub(super) const INCR: Spec = spec("incr", 2, run, check);
/// `INCRBY`
pub(super) const INCRBY: Spec = spec("incrby", 3, run, check);
/// `DECR`: refused.
pub(super) const DECR: Spec = spec("decr", 2, refuse_down, refuse_down_queued);
/// `DECRBY`: refused.
pub(super) const DECRBY: Spec = spec("decrby", 3, refuse_down, refuse_down_queued);

const fn spec(name: &'static str, arity: i64, run: super::Run, check: super::Check) -> Spec {
    Spec {
        name,
        arity,
        flags: WRITE,
        keys: (1, 1, 1),
        categories: CATEGORIES,
        stages_writes: true,
        in_transaction: InTransaction::Queue(check),
        run,
    }
}

/// The counter and what to add.
pub(super) fn parse(args: &[Vec<u8>]) -> Result<(String, u64), Reply> {
    let by = match args.get(2) {
        None => 1,
        Some(by) => {
            let by = std::str::from_utf8(by)
                .ok()
                .and_then(strict_i64)
                .ok_or_else(not_an_integer)?;
            u64::try_from(by).map_err(|_| only_up("a negative INCRBY"))?
        }
    };
    Ok((name(&args[1])?, by))
}

/// Queued unless tally refuses it (counting down); a number Redis cannot read is queued, and
/// refused inside `EXEC`'s answer, as Redis does.
fn check(args: &[Vec<u8>]) -> Result<(), Reply> {
    match parse(args) {
        Err(refused) if refused == not_an_integer() => Ok(()),
        parsed => parsed.map(drop),
    }
}

fn run<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        let (name, by) = parse(args)?;
        let value = ctx
            .call(Reading::Increment, true, async |counter| {
                counter.increment(&name, by).await
            })
            .await?;
        // The store refused anything past the limit; a value beyond it would be a bug.
        let value = i64::try_from(value).map_err(|_| {
            CommandError::failed(Reply::err("increment or decrement would overflow"))
        })?;
        Ok(Reply::Integer(value))
    })
}

fn refuse_down<'a>(args: &'a [Vec<u8>], _: &'a mut Context<'_, '_>) -> Running<'a> {
    let what = String::from_utf8_lossy(&args[0]).to_uppercase();
    Box::pin(async move { Err(only_up(&what).into()) })
}

/// `DECR` and `DECRBY` are refused whatever their arguments, queued or not.
fn refuse_down_queued(args: &[Vec<u8>]) -> Result<(), Reply> {
    Err(only_up(&String::from_utf8_lossy(&args[0]).to_uppercase()))
}

/// Why tally refuses to count down.
fn only_up(what: &str) -> Reply {
    Reply::err(format!(
        "tally counters only count up, so {what} is refused; the counter is unchanged (INCRBY \
         takes 0 to {RESP_INCREMENT_LIMIT})"
    ))
}
