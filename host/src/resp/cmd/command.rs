//! `COMMAND` (every command's description), `COMMAND COUNT`, `COMMAND INFO name...` and
//! `COMMAND DOCS [name...]` (tally keeps no documentation there: an empty answer, which
//! `redis-cli` takes as "no hints").

use super::{COMMANDS, Context, InTransaction, Reply, Running, Spec, find, wrong_arity};

/// `COMMAND`
pub(super) const SPEC: Spec = Spec {
    name: "command",
    arity: -1,
    flags: &["loading", "stale"],
    keys: (0, 0, 0),
    categories: &["@slow", "@connection"],
    stages_writes: false,
    in_transaction: InTransaction::Refuse,
    run,
};

fn run<'a>(args: &'a [Vec<u8>], _: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(std::future::ready(command(&args[1..]).map_err(Into::into)))
}

fn command(rest: &[Vec<u8>]) -> Result<Reply, Reply> {
    let Some((subcommand, names)) = rest.split_first() else {
        return Ok(Reply::Array(COMMANDS.iter().map(Spec::describe).collect()));
    };
    match String::from_utf8_lossy(subcommand)
        .to_ascii_lowercase()
        .as_str()
    {
        "count" if names.is_empty() => Ok(Reply::Integer(COMMANDS.len() as i64)),
        "count" => Err(wrong_arity("command|count")),
        "info" => Ok(Reply::Array(
            names
                .iter()
                .map(|name| find(&String::from_utf8_lossy(name)).map_or(Reply::Nil, Spec::describe))
                .collect(),
        )),
        "docs" => Ok(Reply::Map(Vec::new())),
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(subcommand)
        ))),
    }
}
