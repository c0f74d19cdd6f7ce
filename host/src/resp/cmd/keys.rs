//! `KEYS pattern`: every page of the component's listing, filtered by the pattern.

use super::{Context, InTransaction, Reading, Reply, Running, Spec};
use crate::resp::glob;

/// `KEYS`
pub(super) const SPEC: Spec = Spec {
    name: "keys",
    arity: 2,
    flags: &["readonly"],
    keys: (0, 0, 0),
    categories: &["@keyspace", "@read", "@slow", "@dangerous"],
    stages_writes: false,
    in_transaction: InTransaction::Refuse,
    run,
};

fn run<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        let pattern = &args[1];
        let mut names = Vec::new();
        let mut from = None;
        loop {
            let page = ctx
                .call(Reading::Other, false, async |counter| {
                    counter
                        .list_from(from.clone(), tally_guest::page::MAX_LIMIT)
                        .await
                })
                .await?;
            names.extend(
                page.counters
                    .into_iter()
                    .filter(|(name, _)| glob::matches(pattern, name.as_bytes()))
                    .map(|(name, _)| Reply::text(name)),
            );
            match page.next {
                Some(next) => from = Some(next),
                None => return Ok(Reply::Array(names)),
            }
        }
    })
}
