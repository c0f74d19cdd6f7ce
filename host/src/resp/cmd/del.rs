//! `DEL name...`: reads which of the names exist, then resets those (each name once), and
//! answers how many were removed.

use super::{Context, InTransaction, Reading, Reply, Running, Spec, names};
use std::collections::BTreeSet;

/// `DEL`
pub(super) const SPEC: Spec = Spec {
    name: "del",
    arity: -2,
    flags: &["write"],
    keys: (1, -1, 1),
    categories: &["@keyspace", "@write", "@slow"],
    stages_writes: false,
    in_transaction: InTransaction::Queue(super::accept),
    run,
};

fn run<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        let mut seen = BTreeSet::new();
        let unique: Vec<String> = names(&args[1..])?
            .into_iter()
            .filter(|name| seen.insert(name.clone()))
            .collect();
        let values = ctx
            .call(Reading::Other, false, async |counter| {
                counter.find_many(&unique).await
            })
            .await?;
        let mut removed = 0;
        for (name, value) in unique.iter().zip(values) {
            if value.is_some() {
                ctx.call(Reading::Other, false, async |counter| {
                    counter.reset(name).await
                })
                .await?;
                removed += 1;
            }
        }
        Ok(Reply::Integer(removed))
    })
}
