//! `GET name`: the counter's value, nil when it was never written.

use super::{Context, InTransaction, READ, Reading, Reply, Running, Spec, name};

/// `GET`
pub(super) const SPEC: Spec = Spec {
    name: "get",
    arity: 2,
    flags: READ,
    keys: (1, 1, 1),
    categories: &["@read", "@string", "@fast"],
    stages_writes: false,
    in_transaction: InTransaction::Queue(super::accept),
    run,
};

fn run<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        let name = name(&args[1])?;
        let found = ctx
            .call(Reading::Other, false, async |counter| {
                counter.find(&name).await
            })
            .await?;
        Ok(found.map_or(Reply::Nil, |value| Reply::text(value.to_string())))
    })
}
