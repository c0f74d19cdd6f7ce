//! `PING [message]` and `ECHO message`.

use super::{Context, InTransaction, Reply, Running, Spec, wrong_arity};

const FLAGS: &[&str] = &["fast"];
const CATEGORIES: &[&str] = &["@fast", "@connection"];

/// `PING`
pub(super) const PING: Spec = Spec {
    name: "ping",
    arity: -1,
    flags: FLAGS,
    keys: (0, 0, 0),
    categories: CATEGORIES,
    stages_writes: false,
    in_transaction: InTransaction::Queue(super::accept),
    run: ping,
};

/// `ECHO`
pub(super) const ECHO: Spec = Spec {
    name: "echo",
    arity: 2,
    flags: FLAGS,
    keys: (0, 0, 0),
    categories: CATEGORIES,
    stages_writes: false,
    in_transaction: InTransaction::Queue(super::accept),
    run: echo,
};

fn ping<'a>(args: &'a [Vec<u8>], _: &'a mut Context<'_, '_>) -> Running<'a> {
    let reply = match &args[1..] {
        [] => Ok(Reply::Simple("PONG")),
        [message] => Ok(Reply::Bulk(message.clone())),
        _ => Err(wrong_arity("ping").into()),
    };
    Box::pin(std::future::ready(reply))
}

fn echo<'a>(args: &'a [Vec<u8>], _: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(std::future::ready(Ok(Reply::Bulk(args[1].clone()))))
}
