//! `MGET name...`: each counter's value, nil for those never written.

use super::{Context, InTransaction, READ, Reading, Reply, Running, Spec, names};

/// `MGET`
pub(super) const SPEC: Spec = Spec {
    name: "mget",
    arity: -2,
    flags: READ,
    keys: (1, -1, 1),
    categories: &["@read", "@string", "@fast"],
    stages_writes: false,
    in_transaction: InTransaction::Queue(super::accept),
    run,
};

fn run<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        let names = names(&args[1..])?;
        let values = ctx
            .call(Reading::Other, false, async |counter| {
                counter.find_many(&names).await
            })
            .await?;
        Ok(Reply::Array(
            values
                .into_iter()
                .map(|value| value.map_or(Reply::Nil, |value| Reply::text(value.to_string())))
                .collect(),
        ))
    })
}
