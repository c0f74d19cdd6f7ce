//! The commands tally answers, one file each (a family such as `INCR`/`INCRBY` shares one), as
//! tokio-rs/mini-redis's `src/cmd/`: each file holds the command's [`Spec`] (what `COMMAND`
//! lists, Redis's arity, whether its writes are staged for the pipeline's group commit), its
//! parsing, its run through the command layer ([`crate::service::Pipeline`]) and its reply.
//! [`COMMANDS`] is the table: adding a command is one file and one line there.
//!
//! Every refusal is the error Redis gives for the same input, word for word, where Redis has
//! one (`wrong number of arguments`, `value is not an integer or out of range`, `syntax
//! error`...), and otherwise an `ERR` line that says why tally refuses. A counter call's
//! failure is mapped by [`failed`], the one RESP mapping of [`Failure`].

mod auth;
mod client;
mod command;
mod del;
mod exists;
mod get;
mod incr;
mod info;
mod keys;
mod mget;
mod ping;
mod quit;
mod refused;
mod scan;
mod select;
mod set;
pub mod transaction;

use super::Shared;
use super::reply::Reply;
use super::session::Session;
use crate::failure::{Done, Failure};
use crate::runtime::Instance;
use crate::service::Pipeline;
use crate::{CounterError, Refusal};
use std::future::Future;
use std::pin::Pin;
use tally_keyvalue::storage::StoreFuture;

/// A command tally knows: its name, Redis's arity (positive: exactly that many arguments with
/// the name; negative: at least that many), what `COMMAND` says of it, and how it runs.
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
    /// Its writes are staged: answered once applied, acknowledged once durable, so a
    /// pipeline's writes share a group commit. Anything else runs only after the writes before
    /// it are durable, so a read in a pipeline sees the pipeline's writes.
    pub stages_writes: bool,
    /// What it does between `MULTI` and `EXEC`.
    pub in_transaction: InTransaction,
    /// Parses the arguments (the name first, the arity checked) and runs the command.
    pub run: Run,
}

/// What a command does inside a transaction (between `MULTI` and `EXEC`).
#[derive(Clone, Copy)]
pub enum InTransaction {
    /// It is queued (`+QUEUED`) once its key arguments pass the naming rule and the check
    /// accepts its other arguments; a refusal here makes `EXEC` run nothing
    /// (`EXECABORT`).
    Queue(Check),
    /// It runs at once, in a transaction or not (`MULTI`, `EXEC`, `DISCARD`, `QUIT`...).
    RunNow,
    /// It cannot be part of a transaction: refused, and `EXEC` then runs nothing.
    Refuse,
}

/// A queue-time check of a command's arguments (the name first): the refusal the command
/// would give whatever the store holds.
pub type Check = fn(&[Vec<u8>]) -> Result<(), Reply>;

/// The check of a command whose arguments are all names (or nothing to check).
fn accept(_: &[Vec<u8>]) -> Result<(), Reply> {
    Ok(())
}

/// How a command runs: its arguments and the connection's context, to its reply.
pub type Run = for<'a, 'c, 'r> fn(&'a [Vec<u8>], &'a mut Context<'c, 'r>) -> Running<'a>;

/// A running command.
pub type Running<'a> = Pin<Box<dyn Future<Output = Result<Reply, CommandError>> + Send + 'a>>;

/// Every command tally answers, and those it knows only to refuse with a reason.
pub const COMMANDS: &[Spec] = &[
    incr::INCR,
    incr::INCRBY,
    get::SPEC,
    set::SPEC,
    del::SPEC,
    exists::SPEC,
    mget::SPEC,
    scan::SPEC,
    keys::SPEC,
    ping::PING,
    ping::ECHO,
    select::SPEC,
    auth::AUTH,
    auth::HELLO,
    client::SPEC,
    command::SPEC,
    quit::SPEC,
    info::SPEC,
    incr::DECR,
    incr::DECRBY,
    transaction::MULTI,
    transaction::EXEC,
    transaction::DISCARD,
    transaction::WATCH,
    transaction::UNWATCH,
    refused::EXPIRE,
    refused::PEXPIRE,
    refused::EXPIREAT,
    refused::PEXPIREAT,
    refused::PERSIST,
    refused::TTL,
    refused::PTTL,
    refused::SETEX,
    refused::PSETEX,
    refused::SETNX,
    refused::GETSET,
    refused::GETDEL,
    refused::GETEX,
    refused::INCRBYFLOAT,
    refused::EVAL,
    refused::EVALSHA,
    refused::EVAL_RO,
    refused::EVALSHA_RO,
    refused::SCRIPT,
    refused::FCALL,
];

const READ: &[&str] = &["readonly", "fast"];
const WRITE: &[&str] = &["write", "denyoom", "fast"];
const CONNECTION: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth"];

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

    /// `COMMAND`'s description of the command, in Redis 7's ten-field form.
    pub fn describe(&self) -> Reply {
        let words = |words: &'static [&'static str]| {
            Reply::Array(words.iter().map(|word| Reply::Simple(word)).collect())
        };
        Reply::Array(vec![
            Reply::text(self.name),
            Reply::Integer(self.arity),
            words(self.flags),
            Reply::Integer(self.keys.0),
            Reply::Integer(self.keys.1),
            Reply::Integer(self.keys.2),
            words(self.categories),
            Reply::Array(Vec::new()),
            Reply::Array(Vec::new()),
            Reply::Array(Vec::new()),
        ])
    }
}

/// The command named by `args[0]` (any case), or the error Redis gives for an unknown command
/// or a wrong number of arguments.
pub fn lookup(args: &[Vec<u8>]) -> Result<&'static Spec, Reply> {
    let name = String::from_utf8_lossy(&args[0]);
    let Some(spec) = find(&name) else {
        return Err(unknown_command(&name, &args[1..]));
    };
    if spec.arity_allows(args.len()) {
        Ok(spec)
    } else {
        Err(wrong_arity(spec.name))
    }
}

/// The command called `name`, in any case.
fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.eq_ignore_ascii_case(name))
}

/// Whether the command `args` names has its writes staged ([`Spec::stages_writes`]).
pub fn stages_writes(args: &[Vec<u8>]) -> bool {
    find(&String::from_utf8_lossy(&args[0])).is_some_and(|spec| spec.stages_writes)
}

/// A command that did not succeed: its error reply, and whether it was refused (the client's
/// input or state) or failed (the server's side), as the metrics count it.
#[derive(Debug)]
pub struct CommandError {
    /// The error reply.
    pub reply: Reply,
    /// Refused (`true`) or failed.
    pub refused: bool,
}

impl CommandError {
    /// A failure on the server's side.
    pub fn failed(reply: Reply) -> Self {
        Self {
            reply,
            refused: false,
        }
    }
}

impl From<Reply> for CommandError {
    fn from(reply: Reply) -> Self {
        Self {
            reply,
            refused: true,
        }
    }
}

/// How a command reads a refusal of the component.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reading {
    /// `INCR` and `INCRBY`: overflow and a stored non-number get Redis's own errors.
    Increment,
    /// Everything else: tally's sentence for the refusal.
    Other,
}

/// A counter call's failure as a Redis error line: the one RESP mapping of [`Failure`].
pub fn failed(failure: Failure, reading: Reading) -> CommandError {
    match failure {
        Failure::Refused(refusal) => match (&refusal.error, reading) {
            (CounterError::Overflow(_), Reading::Increment) => {
                Reply::err("increment or decrement would overflow").into()
            }
            (CounterError::CorruptValue(_), Reading::Increment) => not_an_integer().into(),
            (CounterError::StoreFailure(_), _) => CommandError::failed(Reply::err(refusal)),
            _ => Reply::err(refusal).into(),
        },
        Failure::Busy(message) => CommandError::failed(Reply::err(format!(
            "{}; nothing changed, try again",
            Refusal::new(CounterError::StoreFailure(message), u64::MAX)
        ))),
        Failure::KeyInUse(message) | Failure::KeyReused(message) => Reply::err(message).into(),
        // No RESP command calls the window interface; said as any refusal would be.
        failure @ Failure::InvalidWindow(_) => Reply::err(failure.message()).into(),
        failure @ (Failure::Unavailable(_)
        | Failure::ReadOnly(_)
        | Failure::NoSpace(_)
        | Failure::Misconfigured(_)
        | Failure::OutcomeUnknown(_)
        | Failure::AppliedThenFailed(_)
        | Failure::Trap(_)) => CommandError::failed(Reply::err(failure.message())),
    }
}

/// What a command runs with: its connection's state, what every connection shares, the
/// pipeline's instance, and the durability its staged writes leave to wait for.
pub struct Context<'c, 'r> {
    /// The connection's state.
    pub session: &'c mut Session,
    /// What every connection shares.
    pub shared: &'c Shared,
    /// The instance this pipelined read's commands share.
    pub pipeline: &'c mut Pipeline<'r>,
    /// More staged writes come right behind this command.
    pub more_follow: bool,
    /// The durability of the command's staged writes: its answer waits for all of them.
    pub durable: Vec<StoreFuture<'static, ()>>,
}

impl Context<'_, '_> {
    /// Runs one call on the pipeline's instance (its writes answered when durable, or, with
    /// `staged`, when applied), and reads its outcome as `reading` says.
    async fn call<T>(
        &mut self,
        reading: Reading,
        staged: bool,
        call: impl AsyncFnOnce(&mut Instance) -> Result<Done<T>, Failure>,
    ) -> Result<T, CommandError> {
        let more_follow = self.more_follow;
        let outcome = match self.pipeline.instance().await {
            Ok(counter) => {
                if staged {
                    counter.answer_when_applied(more_follow);
                } else {
                    counter.answer_when_durable();
                }
                call(counter).await
            }
            Err(failure) => Err(failure),
        };
        let done = self
            .pipeline
            .settle(outcome)
            .map_err(|failure| failed(failure, reading))?;
        self.durable.extend(done.durable);
        Ok(done.value)
    }
}

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

/// Redis's error for a wrong number of arguments.
fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!("wrong number of arguments for '{name}' command"))
}

/// Redis's answer to a number it cannot read.
fn not_an_integer() -> Reply {
    Reply::err("value is not an integer or out of range")
}

fn syntax_error() -> Reply {
    Reply::err("syntax error")
}

fn text(arg: &[u8]) -> Option<&str> {
    std::str::from_utf8(arg).ok()
}

/// The key arguments of `args` for `spec` (Redis's first, last, step; a negative last counts
/// from the end).
fn key_arguments<'a>(spec: &Spec, args: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
    let (first, last, step) = spec.keys;
    let count = i64::try_from(args.len()).unwrap_or(i64::MAX);
    let last = if last < 0 { count + last } else { last };
    if first <= 0 || step <= 0 {
        return Vec::new();
    }
    let mut keys = Vec::new();
    let mut index = first;
    while index <= last {
        if let Some(arg) = usize::try_from(index)
            .ok()
            .and_then(|index| args.get(index))
        {
            keys.push(arg.as_slice());
        }
        index += step;
    }
    keys
}

/// Whether `args` may be queued in a transaction: the refusal if not.
pub fn check_queued(spec: &Spec, args: &[Vec<u8>]) -> Result<(), Reply> {
    let InTransaction::Queue(check) = spec.in_transaction else {
        return Err(Reply::err(format!(
            "{} cannot run inside a tally transaction (MULTI): only INCR, INCRBY, GET, SET, \
             DEL, EXISTS, MGET, PING and ECHO can; the transaction is discarded",
            spec.name.to_uppercase()
        )));
    };
    for key in key_arguments(spec, args) {
        let name = name(key)?;
        tally_guest::name::validate(&name).map_err(|why| {
            Reply::err(crate::Refusal::new(
                CounterError::InvalidName(why),
                super::RESP_INCREMENT_LIMIT,
            ))
        })?;
    }
    check(args)
}

/// A counter name: any UTF-8 text here (the component checks the naming rule).
fn name(arg: &[u8]) -> Result<String, Reply> {
    String::from_utf8(arg.to_vec())
        .map_err(|_| Reply::err("invalid counter name: a counter name must be valid UTF-8"))
}

fn names(args: &[Vec<u8>]) -> Result<Vec<String>, Reply> {
    args.iter().map(|arg| name(arg)).collect()
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

#[cfg(test)]
mod tests;
