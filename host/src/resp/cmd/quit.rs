//! `QUIT`: `OK`, then the connection closes (the session sees the name).

use super::{Context, InTransaction, Reply, Running, Spec};

/// `QUIT`
pub(super) const SPEC: Spec = Spec {
    name: "quit",
    arity: -1,
    flags: super::CONNECTION,
    keys: (0, 0, 0),
    categories: &["@fast", "@connection"],
    stages_writes: false,
    in_transaction: InTransaction::RunNow,
    run,
};

fn run<'a>(_: &'a [Vec<u8>], _: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(std::future::ready(Ok(Reply::OK)))
}
