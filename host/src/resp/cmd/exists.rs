//! `EXISTS name...`: how many of the names were written (a name given twice counts twice).

use super::{Context, InTransaction, READ, Reading, Reply, Running, Spec, names};

/// `EXISTS`
pub(super) const SPEC: Spec = Spec {
    name: "exists",
    arity: -2,
    flags: READ,
    keys: (1, -1, 1),
    categories: &["@keyspace", "@read", "@fast"],
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
        Ok(Reply::Integer(
            values.iter().filter(|value| value.is_some()).count() as i64,
        ))
    })
}
