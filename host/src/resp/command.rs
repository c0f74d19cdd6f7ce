//! The commands tally answers, as Redis defines them: a table of names and arities (what
//! `COMMAND` lists, and what is checked before authentication, as Redis does), and the parsing
//! of each command's arguments into a typed [`Command`].
//!
//! Every refusal here is the error Redis gives for the same input, word for word, where Redis
//! has one (`wrong number of arguments`, `value is not an integer or out of range`, `syntax
//! error`...), and otherwise an `ERR` line that says why tally refuses.

use super::number::{strict_i64, strict_u64};
use super::reply::{Protocol, Reply};

/// A command tally knows: its name, Redis's arity (positive: exactly that many arguments with
/// the name; negative: at least that many) and what `COMMAND` says of it.
#[derive(Debug)]
pub struct Spec {
    /// The name, lowercase.
    pub name: &'static str,
    /// Redis's arity.
    pub arity: i64,
    /// Redis's command flags.
    pub flags: &'static [&'static str],
    /// First key argument, last key argument (-1: the last argument) and step; 0 for none.
    pub keys: (i64, i64, i64),
    /// Redis's ACL categories.
    pub categories: &'static [&'static str],
}

const READ: &[&str] = &["readonly", "fast"];
const WRITE: &[&str] = &["write", "denyoom", "fast"];
const CONNECTION: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth"];

/// Every command tally answers, and those it knows only to refuse with a reason.
pub const COMMANDS: &[Spec] = &[
    spec("incr", 2, WRITE, (1, 1, 1), &["@write", "@string", "@fast"]),
    spec(
        "incrby",
        3,
        WRITE,
        (1, 1, 1),
        &["@write", "@string", "@fast"],
    ),
    spec("get", 2, READ, (1, 1, 1), &["@read", "@string", "@fast"]),
    spec(
        "set",
        -3,
        &["write", "denyoom"],
        (1, 1, 1),
        &["@write", "@string", "@slow"],
    ),
    spec(
        "del",
        -2,
        &["write"],
        (1, -1, 1),
        &["@keyspace", "@write", "@slow"],
    ),
    spec(
        "exists",
        -2,
        READ,
        (1, -1, 1),
        &["@keyspace", "@read", "@fast"],
    ),
    spec("mget", -2, READ, (1, -1, 1), &["@read", "@string", "@fast"]),
    spec(
        "scan",
        -2,
        &["readonly"],
        (0, 0, 0),
        &["@keyspace", "@read", "@slow"],
    ),
    spec(
        "keys",
        2,
        &["readonly"],
        (0, 0, 0),
        &["@keyspace", "@read", "@slow", "@dangerous"],
    ),
    spec("ping", -1, &["fast"], (0, 0, 0), &["@fast", "@connection"]),
    spec("echo", 2, &["fast"], (0, 0, 0), &["@fast", "@connection"]),
    spec(
        "select",
        2,
        &["loading", "stale", "fast"],
        (0, 0, 0),
        &["@fast", "@connection"],
    ),
    spec("auth", -2, CONNECTION, (0, 0, 0), &["@fast", "@connection"]),
    spec(
        "hello",
        -1,
        CONNECTION,
        (0, 0, 0),
        &["@fast", "@connection"],
    ),
    spec(
        "client",
        -2,
        &["loading", "stale"],
        (0, 0, 0),
        &["@slow", "@connection"],
    ),
    spec(
        "command",
        -1,
        &["loading", "stale"],
        (0, 0, 0),
        &["@slow", "@connection"],
    ),
    spec("quit", -1, CONNECTION, (0, 0, 0), &["@fast", "@connection"]),
    spec(
        "info",
        -1,
        &["loading", "stale"],
        (0, 0, 0),
        &["@slow", "@dangerous"],
    ),
    spec("decr", 2, WRITE, (1, 1, 1), &["@write", "@string", "@fast"]),
    spec(
        "decrby",
        3,
        WRITE,
        (1, 1, 1),
        &["@write", "@string", "@fast"],
    ),
];

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    categories: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
        categories,
    }
}

impl Spec {
    /// Whether a client that has not authenticated may run it (Redis's `no_auth` flag).
    pub fn without_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }

    /// Whether `count` arguments (the name included) fit the arity.
    fn arity_allows(&self, count: usize) -> bool {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        if self.arity >= 0 {
            count == self.arity
        } else {
            count >= -self.arity
        }
    }
}

/// The command named by `args[0]` (any case), or the error Redis gives for an unknown command
/// or a wrong number of arguments.
pub fn lookup(args: &[Vec<u8>]) -> Result<&'static Spec, Reply> {
    let name = String::from_utf8_lossy(&args[0]);
    let Some(spec) = COMMANDS
        .iter()
        .find(|spec| spec.name.eq_ignore_ascii_case(&name))
    else {
        return Err(unknown_command(&name, &args[1..]));
    };
    if spec.arity_allows(args.len()) {
        Ok(spec)
    } else {
        Err(wrong_arity(spec.name))
    }
}

/// Redis's error for an unknown command: the name and the start of its arguments, quoted.
fn unknown_command(name: &str, args: &[Vec<u8>]) -> Reply {
    let mut shown = String::new();
    for arg in args {
        if shown.len() >= 128 {
            break;
        }
        let arg = String::from_utf8_lossy(arg);
        let room = 128 - shown.len();
        shown.push_str(&format!("'{}' ", truncated(&arg, room)));
    }
    Reply::err(format!(
        "unknown command '{}', with args beginning with: {shown}",
        truncated(name, 128)
    ))
}

fn truncated(text: &str, bytes: usize) -> &str {
    let mut end = text.len().min(bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!("wrong number of arguments for '{name}' command"))
}

/// Redis's answer to a number it cannot read.
pub fn not_an_integer() -> Reply {
    Reply::err("value is not an integer or out of range")
}

fn syntax_error() -> Reply {
    Reply::err("syntax error")
}

/// A parsed command, ready to run.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `INCR name` (`by` 1) and `INCRBY name by`.
    Increment {
        /// The counter.
        name: String,
        /// What to add.
        by: u64,
    },
    /// `GET name`
    Get(String),
    /// `SET name value`
    Set {
        /// The counter.
        name: String,
        /// Its new value.
        value: u64,
    },
    /// `DEL name...`
    Del(Vec<String>),
    /// `EXISTS name...`
    Exists(Vec<String>),
    /// `MGET name...`
    MGet(Vec<String>),
    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`
    Scan {
        /// 0 to start; otherwise a number an earlier `SCAN` answered.
        cursor: u64,
        /// Only names matching this glob.
        pattern: Option<Vec<u8>>,
        /// How many counters to look at (a hint, as in Redis).
        count: u32,
        /// `false` after `TYPE` with a type other than `string`: nothing matches.
        strings: bool,
    },
    /// `KEYS pattern`
    Keys(Vec<u8>),
    /// `PING [message]`
    Ping(Option<Vec<u8>>),
    /// `ECHO message`
    Echo(Vec<u8>),
    /// `SELECT 0`
    Select,
    /// `AUTH [username] password`
    Auth {
        /// `None`: the default user.
        username: Option<Vec<u8>>,
        /// The token.
        password: Vec<u8>,
    },
    /// `HELLO [protover [AUTH username password] [SETNAME name]]`
    Hello {
        /// The protocol asked for; `None` keeps the current one.
        protocol: Option<Protocol>,
        /// Credentials to authenticate with first.
        auth: Option<(Vec<u8>, Vec<u8>)>,
        /// A connection name to set.
        name: Option<String>,
    },
    /// `CLIENT SETNAME name` (an empty name clears it).
    ClientSetName(String),
    /// `CLIENT GETNAME`
    ClientGetName,
    /// `CLIENT ID`
    ClientId,
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value`: accepted and kept with the connection.
    ClientSetInfo,
    /// `COMMAND`: every command's description.
    CommandList,
    /// `COMMAND COUNT`
    CommandCount,
    /// `COMMAND INFO name...`
    CommandInfo(Vec<Vec<u8>>),
    /// `COMMAND DOCS [name...]`: tally keeps no documentation there (an empty answer, which
    /// `redis-cli` takes as "no hints").
    CommandDocs,
    /// `QUIT`
    Quit,
    /// `INFO [section...]`, sections lowercase.
    Info(Vec<String>),
}

/// Parses the arguments of a command that passed [`lookup`].
pub fn parse(spec: &Spec, args: &[Vec<u8>]) -> Result<Command, Reply> {
    let rest = &args[1..];
    Ok(match spec.name {
        "incr" => Command::Increment {
            name: name(&rest[0])?,
            by: 1,
        },
        "incrby" => {
            let by = text(&rest[1])
                .and_then(strict_i64)
                .ok_or_else(not_an_integer)?;
            let by = u64::try_from(by).map_err(|_| only_up("a negative INCRBY"))?;
            Command::Increment {
                name: name(&rest[0])?,
                by,
            }
        }
        "decr" | "decrby" => return Err(only_up(&spec.name.to_uppercase())),
        "get" => Command::Get(name(&rest[0])?),
        "set" => parse_set(rest)?,
        "del" => Command::Del(names(rest)?),
        "exists" => Command::Exists(names(rest)?),
        "mget" => Command::MGet(names(rest)?),
        "scan" => parse_scan(rest)?,
        "keys" => Command::Keys(rest[0].clone()),
        "ping" => match rest {
            [] => Command::Ping(None),
            [message] => Command::Ping(Some(message.clone())),
            _ => return Err(wrong_arity("ping")),
        },
        "echo" => Command::Echo(rest[0].clone()),
        "select" => match text(&rest[0]).and_then(strict_i64) {
            Some(0) => Command::Select,
            Some(_) => return Err(Reply::err("DB index is out of range")),
            None => return Err(not_an_integer()),
        },
        "auth" => match rest {
            [password] => Command::Auth {
                username: None,
                password: password.clone(),
            },
            [username, password] => Command::Auth {
                username: Some(username.clone()),
                password: password.clone(),
            },
            _ => return Err(syntax_error()),
        },
        "hello" => parse_hello(rest)?,
        "client" => parse_client(rest)?,
        "command" => parse_command(rest)?,
        "quit" => Command::Quit,
        "info" => Command::Info(
            rest.iter()
                .map(|section| String::from_utf8_lossy(section).to_ascii_lowercase())
                .collect(),
        ),
        other => return Err(Reply::err(format!("'{other}' is not implemented"))),
    })
}

/// Why tally refuses to count down.
fn only_up(what: &str) -> Reply {
    Reply::err(format!(
        "tally counters only count up, so {what} is refused; the counter is unchanged (INCRBY \
         takes 0 to 9223372036854775807)"
    ))
}

fn text(arg: &[u8]) -> Option<&str> {
    std::str::from_utf8(arg).ok()
}

/// A counter name: any UTF-8 text here (the component checks the naming rule).
fn name(arg: &[u8]) -> Result<String, Reply> {
    String::from_utf8(arg.to_vec())
        .map_err(|_| Reply::err("invalid counter name: a counter name must be valid UTF-8"))
}

fn names(args: &[Vec<u8>]) -> Result<Vec<String>, Reply> {
    args.iter().map(|arg| name(arg)).collect()
}

fn parse_set(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    if let Some(option) = rest.get(2) {
        let option = String::from_utf8_lossy(option).to_ascii_uppercase();
        return Err(
            if matches!(
                option.as_str(),
                "EX" | "PX" | "EXAT" | "PXAT" | "KEEPTTL" | "NX" | "XX" | "GET"
            ) {
                Reply::err(format!(
                    "tally's SET takes no options ({option} given): counters never expire and \
                     SET always replaces the value; send SET name value"
                ))
            } else {
                syntax_error()
            },
        );
    }
    let value = text(&rest[1]).and_then(strict_u64).ok_or_else(|| {
        Reply::err(
            "tally counters hold whole numbers from 0 to 18446744073709551615; SET takes one \
             in decimal digits (no sign, no leading zeros)",
        )
    })?;
    Ok(Command::Set {
        name: name(&rest[0])?,
        value,
    })
}

fn parse_scan(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let cursor = text(&rest[0])
        .and_then(strict_u64)
        .ok_or_else(|| Reply::err("invalid cursor"))?;
    let (mut pattern, mut count, mut strings) = (None, 10, true);
    let mut options = rest[1..].iter();
    while let Some(option) = options.next() {
        let value = options.next().ok_or_else(syntax_error)?;
        match String::from_utf8_lossy(option)
            .to_ascii_uppercase()
            .as_str()
        {
            "MATCH" => pattern = Some(value.clone()),
            "COUNT" => {
                let asked = text(value)
                    .and_then(strict_i64)
                    .ok_or_else(not_an_integer)?;
                if asked < 1 {
                    return Err(syntax_error());
                }
                count = u32::try_from(asked).unwrap_or(u32::MAX);
            }
            "TYPE" => strings = value.eq_ignore_ascii_case(b"string"),
            _ => return Err(syntax_error()),
        }
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        strings,
    })
}

fn parse_hello(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let Some((version, options)) = rest.split_first() else {
        return Ok(Command::Hello {
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
    Ok(Command::Hello {
        protocol: Some(protocol),
        auth,
        name: client_name,
    })
}

/// A connection name as Redis allows it: printable ASCII without spaces.
fn connection_name(arg: &[u8]) -> Result<String, Reply> {
    if arg.iter().all(|&byte| (b'!'..=b'~').contains(&byte)) {
        Ok(String::from_utf8_lossy(arg).into_owned())
    } else {
        Err(Reply::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}

fn parse_client(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let subcommand = String::from_utf8_lossy(&rest[0]).to_ascii_lowercase();
    let arity = |expected: usize| {
        if rest.len() == expected {
            Ok(())
        } else {
            Err(wrong_arity(&format!("client|{subcommand}")))
        }
    };
    match subcommand.as_str() {
        "setname" => {
            arity(2)?;
            Ok(Command::ClientSetName(connection_name(&rest[1])?))
        }
        "getname" => arity(1).map(|()| Command::ClientGetName),
        "id" => arity(1).map(|()| Command::ClientId),
        "setinfo" => {
            arity(3)?;
            let attribute = String::from_utf8_lossy(&rest[1]).to_ascii_lowercase();
            if !matches!(attribute.as_str(), "lib-name" | "lib-ver") {
                return Err(Reply::err(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(&rest[1])
                )));
            }
            Ok(Command::ClientSetInfo)
        }
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&rest[0])
        ))),
    }
}

fn parse_command(rest: &[Vec<u8>]) -> Result<Command, Reply> {
    let Some((subcommand, names)) = rest.split_first() else {
        return Ok(Command::CommandList);
    };
    match String::from_utf8_lossy(subcommand)
        .to_ascii_lowercase()
        .as_str()
    {
        "count" if names.is_empty() => Ok(Command::CommandCount),
        "count" => Err(wrong_arity("command|count")),
        "info" => Ok(Command::CommandInfo(names.to_vec())),
        "docs" => Ok(Command::CommandDocs),
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(subcommand)
        ))),
    }
}

/// `COMMAND`'s description of one command, in Redis 7's ten-field form.
pub fn describe(spec: &Spec) -> Reply {
    let words = |words: &'static [&'static str]| {
        Reply::Array(words.iter().map(|word| Reply::Simple(word)).collect())
    };
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Integer(spec.arity),
        words(spec.flags),
        Reply::Integer(spec.keys.0),
        Reply::Integer(spec.keys.1),
        Reply::Integer(spec.keys.2),
        words(spec.categories),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|word| word.as_bytes().to_vec()).collect()
    }

    fn parsed(words: &[&str]) -> Result<Command, Reply> {
        let args = args(words);
        parse(lookup(&args)?, &args)
    }

    fn refusal(words: &[&str]) -> String {
        match parsed(words) {
            Err(Reply::Error(message)) => message,
            other => panic!("{words:?} answered {other:?}"),
        }
    }

    /// Names are found in any case; arguments become typed values.
    #[test]
    fn commands_parse() {
        assert_eq!(
            parsed(&["incr", "visits"]),
            Ok(Command::Increment {
                name: "visits".into(),
                by: 1
            })
        );
        assert_eq!(
            parsed(&["IncrBy", "visits", "9223372036854775807"]),
            Ok(Command::Increment {
                name: "visits".into(),
                by: i64::MAX as u64
            })
        );
        assert_eq!(
            parsed(&["SET", "big", "18446744073709551615"]),
            Ok(Command::Set {
                name: "big".into(),
                value: u64::MAX
            })
        );
        assert_eq!(
            parsed(&["scan", "0", "match", "user:*", "COUNT", "100"]),
            Ok(Command::Scan {
                cursor: 0,
                pattern: Some(b"user:*".to_vec()),
                count: 100,
                strings: true
            })
        );
        assert_eq!(
            parsed(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "app"]),
            Ok(Command::Hello {
                protocol: Some(Protocol::Resp3),
                auth: Some((b"default".to_vec(), b"pw".to_vec())),
                name: Some("app".into())
            })
        );
    }

    /// Refusals carry Redis's own words where Redis has them.
    #[test]
    fn refusals_in_redis_words() {
        assert_eq!(
            refusal(&["FLUSHALL", "ASYNC"]),
            "ERR unknown command 'FLUSHALL', with args beginning with: 'ASYNC' "
        );
        assert_eq!(
            refusal(&["nosuch"]),
            "ERR unknown command 'nosuch', with args beginning with: "
        );
        assert_eq!(
            refusal(&["INCR"]),
            "ERR wrong number of arguments for 'incr' command"
        );
        assert_eq!(
            refusal(&["GET", "a", "b"]),
            "ERR wrong number of arguments for 'get' command"
        );
        for bad in ["x", "1.5", "05", "9223372036854775808", " 1"] {
            assert_eq!(
                refusal(&["INCRBY", "visits", bad]),
                "ERR value is not an integer or out of range"
            );
        }
        assert!(
            refusal(&["INCRBY", "visits", "-1"]).starts_with("ERR tally counters only count up")
        );
        assert!(refusal(&["DECR", "visits"]).starts_with("ERR tally counters only count up"));
        assert!(refusal(&["SET", "visits", "ten"]).starts_with("ERR tally counters hold whole"));
        assert!(refusal(&["SET", "visits", "-1"]).starts_with("ERR tally counters hold whole"));
        assert!(
            refusal(&["SET", "visits", "1", "EX", "10"])
                .starts_with("ERR tally's SET takes no options (EX given)")
        );
        assert_eq!(
            refusal(&["SET", "visits", "1", "bogus"]),
            "ERR syntax error"
        );
        assert_eq!(refusal(&["SELECT", "1"]), "ERR DB index is out of range");
        assert_eq!(
            refusal(&["SELECT", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(refusal(&["SCAN", "x"]), "ERR invalid cursor");
        assert_eq!(refusal(&["SCAN", "0", "COUNT", "0"]), "ERR syntax error");
        assert_eq!(refusal(&["SCAN", "0", "MATCH"]), "ERR syntax error");
        assert_eq!(
            refusal(&["HELLO", "4"]),
            "NOPROTO unsupported protocol version"
        );
        assert_eq!(
            refusal(&["HELLO", "3", "AUTH", "x"]),
            "ERR Syntax error in HELLO option 'AUTH'"
        );
        assert_eq!(
            refusal(&["CLIENT", "KILL", "x"]),
            "ERR unknown subcommand 'KILL'. Try CLIENT HELP."
        );
        assert_eq!(
            refusal(&["CLIENT", "SETNAME", "a b"]),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
        assert_eq!(
            refusal(&["PING", "a", "b"]),
            "ERR wrong number of arguments for 'ping' command"
        );
        let not_utf8 = vec![b"GET".to_vec(), vec![0xff, 0xfe]];
        assert_eq!(
            parse(lookup(&not_utf8).unwrap(), &not_utf8),
            Err(Reply::err(
                "invalid counter name: a counter name must be valid UTF-8"
            ))
        );
    }
}
