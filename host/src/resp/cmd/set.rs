//! `SET name value`: the counter set to a whole number. tally's counters never expire and `SET`
//! always replaces, so its options are refused with a reason.

use super::{Context, InTransaction, Reading, Reply, Running, Spec, name, syntax_error, text};
use crate::resp::number::strict_u64;

/// `SET`
pub(super) const SPEC: Spec = Spec {
    name: "set",
    arity: -3,
    flags: &["write", "denyoom"],
    keys: (1, 1, 1),
    categories: &["@write", "@string", "@slow"],
    stages_writes: true,
    in_transaction: InTransaction::Queue(check),
    run,
};

/// The counter and its new value.
pub(super) fn parse(args: &[Vec<u8>]) -> Result<(String, u64), Reply> {
    if let Some(option) = args.get(3) {
        let option = String::from_utf8_lossy(option).to_ascii_uppercase();
        return Err(
            if matches!(
                option.as_str(),
                "EX" | "PX" | "EXAT" | "PXAT" | "KEEPTTL" | "NX" | "XX" | "GET"
            ) {
                Reply::err(format!(
                    "tally's SET takes no options ({option} given): tally has no per-key expiry \
                     and SET always replaces the value; send SET name value, and for counts \
                     that reset (rate limits), use tally's windows: POST /windows/NAME/hit or \
                     `tally hit NAME --window 1m --limit N`; nothing was changed"
                ))
            } else {
                syntax_error()
            },
        );
    }
    let value = text(&args[2]).and_then(strict_u64).ok_or_else(|| {
        Reply::err(
            "tally counters hold whole numbers from 0 to 18446744073709551615; SET takes one \
             in decimal digits (no sign, no leading zeros)",
        )
    })?;
    Ok((name(&args[1])?, value))
}

/// Queued unless tally refuses it (options, a value that is not a counter's); Redis's own
/// syntax error is queued, and answered inside `EXEC`'s answer, as Redis does.
fn check(args: &[Vec<u8>]) -> Result<(), Reply> {
    match parse(args) {
        Err(refused) if refused == syntax_error() => Ok(()),
        parsed => parsed.map(drop),
    }
}

fn run<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        let (name, value) = parse(args)?;
        ctx.call(Reading::Other, true, async |counter| {
            counter.set(&name, value).await
        })
        .await?;
        Ok(Reply::OK)
    })
}
