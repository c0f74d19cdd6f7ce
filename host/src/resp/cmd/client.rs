//! `CLIENT SETNAME name`, `CLIENT GETNAME`, `CLIENT ID` and `CLIENT SETINFO LIB-NAME|LIB-VER
//! value` (accepted and kept with the connection).

use super::{
    CommandError, Context, InTransaction, Reply, Running, Spec, connection_name, wrong_arity,
};

/// `CLIENT`
pub(super) const SPEC: Spec = Spec {
    name: "client",
    arity: -2,
    flags: &["loading", "stale"],
    keys: (0, 0, 0),
    categories: &["@slow", "@connection"],
    stages_writes: false,
    in_transaction: InTransaction::Refuse,
    run,
};

/// `CLIENT HELP`: the subcommands tally answers, in Redis's form.
const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

fn run<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(std::future::ready(client(&args[1..], ctx)))
}

fn client(rest: &[Vec<u8>], ctx: &mut Context<'_, '_>) -> Result<Reply, CommandError> {
    let subcommand = String::from_utf8_lossy(&rest[0]).to_ascii_lowercase();
    let arity = |expected: usize| {
        if rest.len() == expected {
            Ok(())
        } else {
            Err(wrong_arity(&format!("client|{subcommand}")))
        }
    };
    let session = &mut *ctx.session;
    match subcommand.as_str() {
        "setname" => {
            arity(2)?;
            let name = connection_name(&rest[1])?;
            session.name = Some(name).filter(|name| !name.is_empty());
            Ok(Reply::OK)
        }
        "getname" => {
            arity(1)?;
            Ok(session.name.clone().map_or(Reply::Nil, Reply::text))
        }
        "id" => {
            arity(1)?;
            Ok(Reply::Integer(session.id as i64))
        }
        "setinfo" => {
            arity(3)?;
            let attribute = String::from_utf8_lossy(&rest[1]).to_ascii_lowercase();
            if !matches!(attribute.as_str(), "lib-name" | "lib-ver") {
                return Err(Reply::err(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(&rest[1])
                ))
                .into());
            }
            Ok(Reply::OK)
        }
        "help" => {
            arity(1)?;
            Ok(Reply::Array(
                HELP.iter().map(|line| Reply::Simple(line)).collect(),
            ))
        }
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&rest[0])
        ))
        .into()),
    }
}
