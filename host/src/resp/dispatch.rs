//! The running of one command on a connection: looked up in the table
//! ([`super::cmd::COMMANDS`]), checked for authentication as Redis does, queued inside a
//! transaction, or run by its own file with the connection's context; and what it came to
//! ([`Outcome`]).

use super::Shared;
use super::cmd::{self, Context, InTransaction};
use super::reply::Reply;
use super::session::Session;
use crate::service::Pipeline;
use tally_keyvalue::storage::StoreFuture;

/// What one command came to: its answer, how it is counted in the metrics, whether the
/// connection closes after it (`QUIT`), and the durability its answer must wait for.
pub struct Outcome {
    /// The answer.
    pub reply: Reply,
    /// `ok`, `refused` (the client's input or state) or `failed` (the server's side).
    pub label: &'static str,
    /// The command's name for the metrics (`unknown` for names tally does not know).
    pub command: &'static str,
    /// Close the connection once the answer is sent.
    pub close: bool,
    /// The command's staged writes: the answer may be sent only once all have completed, and
    /// becomes an error if one fails.
    pub durable: Vec<StoreFuture<'static, ()>>,
}

/// Runs one command (`args`, the name first) of `session` on the pipeline's instance. Its writes are
/// staged when its table entry says so; `more_follow` tells the store more staged writes
/// follow at once.
pub async fn run(
    session: &mut Session,
    args: &[Vec<u8>],
    shared: &Shared,
    pipeline: &mut Pipeline<'_>,
    more_follow: bool,
) -> Outcome {
    let spec = match cmd::lookup(args) {
        Ok(spec) => spec,
        Err(reply) => {
            if let Some(queue) = &mut session.transaction {
                queue.abort();
            }
            return Outcome::new(reply, "refused", "unknown");
        }
    };
    // As in Redis: an unknown command or a wrong arity is answered before authentication,
    // anything else only after it.
    if !session.authenticated && !spec.without_auth() {
        let reply = Reply::Error("NOAUTH Authentication required.".into());
        return Outcome::new(reply, "refused", spec.name);
    }
    if let Some(queue) = &mut session.transaction
        && !matches!(spec.in_transaction, InTransaction::RunNow)
    {
        return match cmd::check_queued(spec, args) {
            Ok(()) => {
                queue.push(args);
                Outcome::new(Reply::Simple("QUEUED"), "ok", spec.name)
            }
            Err(reply) => {
                queue.abort();
                Outcome::new(reply, "refused", spec.name)
            }
        };
    }
    let mut context = Context {
        session,
        shared,
        pipeline,
        more_follow,
        durable: Vec::new(),
    };
    let ran = (spec.run)(args, &mut context).await;
    let durable = context.durable;
    let mut outcome = match ran {
        Ok(reply) => Outcome::new(reply, "ok", spec.name),
        Err(error) => Outcome::new(
            error.reply,
            if error.refused { "refused" } else { "failed" },
            spec.name,
        ),
    };
    outcome.close = spec.name == "quit";
    outcome.durable = durable;
    outcome
}

impl Outcome {
    fn new(reply: Reply, label: &'static str, command: &'static str) -> Self {
        Self {
            reply,
            label,
            command,
            close: false,
            durable: Vec::new(),
        }
    }
}
