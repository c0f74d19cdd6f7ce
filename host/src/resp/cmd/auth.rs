//! `AUTH [username] password` and `HELLO [protover [AUTH username password] [SETNAME name]]`,
//! with Redis's `requirepass` rules: the user is `default`, the password the server's token.

use super::{
    CONNECTION, CommandError, Context, InTransaction, Reply, Running, Spec, connection_name, text,
};
use crate::resp::REDIS_VERSION;
use crate::resp::number::strict_i64;
use crate::resp::reply::Protocol;

const CATEGORIES: &[&str] = &["@fast", "@connection"];

/// `AUTH`
pub(super) const AUTH: Spec = Spec {
    name: "auth",
    arity: -2,
    flags: CONNECTION,
    keys: (0, 0, 0),
    categories: CATEGORIES,
    stages_writes: false,
    in_transaction: InTransaction::Refuse,
    run: auth,
};

/// `HELLO`
pub(super) const HELLO: Spec = Spec {
    name: "hello",
    arity: -1,
    flags: CONNECTION,
    keys: (0, 0, 0),
    categories: CATEGORIES,
    stages_writes: false,
    in_transaction: InTransaction::Refuse,
    run: hello,
};

fn auth<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    let outcome = match &args[1..] {
        [password] => authenticate(ctx, None, password),
        [username, password] => authenticate(ctx, Some(username), password),
        _ => Err(super::syntax_error().into()),
    };
    Box::pin(std::future::ready(outcome.map(|()| Reply::OK)))
}

/// A parsed `HELLO`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Hello {
    /// The protocol asked for; `None` keeps the current one.
    pub protocol: Option<Protocol>,
    /// Credentials to authenticate with first.
    pub auth: Option<(Vec<u8>, Vec<u8>)>,
    /// A connection name to set.
    pub name: Option<String>,
}

pub(super) fn parse_hello(args: &[Vec<u8>]) -> Result<Hello, Reply> {
    let Some((version, options)) = args[1..].split_first() else {
        return Ok(Hello {
            protocol: None,
            auth: None,
            name: None,
        });
    };
    let protocol = match text(version).and_then(strict_i64) {
        Some(2) => Protocol::Resp2,
        Some(3) => Protocol::Resp3,
        Some(_) => return Err(Reply::Error("NOPROTO unsupported protocol version".into())),
        None => {
            return Err(Reply::err(
                "Protocol version is not an integer or out of range",
            ));
        }
    };
    let (mut auth, mut client_name) = (None, None);
    let mut at = 0;
    while at < options.len() {
        let option = String::from_utf8_lossy(&options[at]).to_ascii_uppercase();
        match (option.as_str(), options.len() - at - 1) {
            ("AUTH", 2..) => {
                auth = Some((options[at + 1].clone(), options[at + 2].clone()));
                at += 3;
            }
            ("SETNAME", 1..) => {
                client_name = Some(connection_name(&options[at + 1])?);
                at += 2;
            }
            _ => {
                return Err(Reply::err(format!(
                    "Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&options[at])
                )));
            }
        }
    }
    Ok(Hello {
        protocol: Some(protocol),
        auth,
        name: client_name,
    })
}

fn hello<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(std::future::ready(run_hello(args, ctx)))
}

fn run_hello(args: &[Vec<u8>], ctx: &mut Context<'_, '_>) -> Result<Reply, CommandError> {
    let hello = parse_hello(args)?;
    if let Some((username, password)) = &hello.auth {
        authenticate(ctx, Some(username), password)?;
    }
    let session = &mut *ctx.session;
    if !session.authenticated {
        return Err(Reply::Error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time"
                .into(),
        )
        .into());
    }
    if let Some(protocol) = hello.protocol {
        session.protocol = protocol;
    }
    if let Some(name) = hello.name {
        session.name = Some(name).filter(|name| !name.is_empty());
    }
    Ok(Reply::Map(vec![
        (Reply::text("server"), Reply::text("redis")),
        (Reply::text("version"), Reply::text(REDIS_VERSION)),
        (
            Reply::text("proto"),
            Reply::Integer(session.protocol.version()),
        ),
        (Reply::text("id"), Reply::Integer(session.id as i64)),
        (Reply::text("mode"), Reply::text("standalone")),
        (Reply::text("role"), Reply::text("master")),
        (Reply::text("modules"), Reply::Array(Vec::new())),
    ]))
}

/// Logs the connection in, with Redis's `requirepass` rules.
fn authenticate(
    ctx: &mut Context<'_, '_>,
    username: Option<&[u8]>,
    password: &[u8],
) -> Result<(), CommandError> {
    let wrong =
        || Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into());
    let default_user = username.is_none_or(|username| username == b"default");
    match ctx.shared.options.auth_token.as_deref() {
        None if username.is_none() => Err(Reply::err(
            "AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        )
        .into()),
        // Without a token the default user has no password: any password logs in.
        None if default_user => Ok(()),
        Some(token)
            if default_user
                && crate::token::tokens_match(&String::from_utf8_lossy(password), token) =>
        {
            ctx.session.authenticated = true;
            Ok(())
        }
        _ => Err(wrong().into()),
    }
}
