//! `SELECT 0`: tally serves one database.

use super::{Context, InTransaction, Reply, Running, Spec, not_an_integer, text};
use crate::resp::number::strict_i64;

/// `SELECT`
pub(super) const SPEC: Spec = Spec {
    name: "select",
    arity: 2,
    flags: &["loading", "stale", "fast"],
    keys: (0, 0, 0),
    categories: &["@fast", "@connection"],
    stages_writes: false,
    in_transaction: InTransaction::Refuse,
    run,
};

fn run<'a>(args: &'a [Vec<u8>], _: &'a mut Context<'_, '_>) -> Running<'a> {
    let reply = match text(&args[1]).and_then(strict_i64) {
        Some(0) => Ok(Reply::OK),
        Some(_) => Err(Reply::err("DB index is out of range").into()),
        None => Err(not_an_integer().into()),
    };
    Box::pin(std::future::ready(reply))
}
