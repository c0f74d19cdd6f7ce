//! `MULTI`, `EXEC`, `DISCARD`, and `WATCH`/`UNWATCH` (refused): transactions as far as tally can
//! keep Redis's promise.
//!
//! After `MULTI` a command is checked and queued (`+QUEUED`); one refused at queue time (unknown,
//! wrong arity, an argument tally refuses whatever the store holds) makes `EXEC` run nothing
//! (`EXECABORT`), as in Redis. `EXEC` runs the queued commands in order on one component
//! instance over a [`Transaction`]: their writes stay in the transaction (later commands read
//! them) and commit as one write group, all or none, once durable. A command refused at run
//! time (an overflow) answers its error inside `EXEC`'s array while the others apply, as in
//! Redis.
//!
//! The group commits only if every counter the transaction read still holds what it read
//! ([`Transaction::commit`]); when another write came in between, the whole transaction runs
//! again on fresh values, so `EXEC`'s answers are exactly what was committed and no other
//! write lands between its commands. Transactions of this process over the same counters take
//! turns ([`crate::resp::key_locks::KeyLocks`]), so they do not make each other run again; only writes from outside a
//! transaction (or another process) can.

use super::{CommandError, Context, InTransaction, Reply, Running, Spec, lookup};
use crate::resp::session::Queue;
use std::sync::Arc;
use tally_keyvalue::storage::{StorageError, Transaction};

/// How many times `EXEC` runs a transaction whose counters other writes kept changing.
const ATTEMPTS: usize = 32;

const TRANSACTION: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];

const fn spec(name: &'static str, arity: i64, run: super::Run) -> Spec {
    Spec {
        name,
        arity,
        flags: TRANSACTION,
        keys: (0, 0, 0),
        categories: &["@fast", "@transaction"],
        stages_writes: false,
        in_transaction: InTransaction::RunNow,
        run,
    }
}

/// `MULTI`
pub(super) const MULTI: Spec = spec("multi", 1, multi);
/// `EXEC`
pub(super) const EXEC: Spec = spec("exec", 1, exec);
/// `DISCARD`
pub(super) const DISCARD: Spec = spec("discard", 1, discard);
/// `WATCH`: refused.
pub(super) const WATCH: Spec = Spec {
    keys: (1, -1, 1),
    ..spec("watch", -2, refuse_watch)
};
/// `UNWATCH`: refused.
pub(super) const UNWATCH: Spec = spec("unwatch", 1, refuse_watch);

fn multi<'a>(_: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        if ctx.session.transaction.is_some() {
            // As in Redis, the transaction goes on.
            return Err(Reply::err("MULTI calls can not be nested").into());
        }
        ctx.session.transaction = Some(Queue::default());
        Ok(Reply::OK)
    })
}

fn discard<'a>(_: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        match ctx.session.transaction.take() {
            Some(_) => Ok(Reply::OK),
            None => Err(Reply::err("DISCARD without MULTI").into()),
        }
    })
}

fn refuse_watch<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    let name = String::from_utf8_lossy(&args[0]).to_uppercase();
    Box::pin(async move {
        if let Some(queue) = &mut ctx.session.transaction {
            queue.abort();
        }
        Err(Reply::err(format!(
            "tally does not support {name}: a transaction's EXEC already commits only on the \
             counter values its commands read, and runs again when another write changed them"
        ))
        .into())
    })
}

fn exec<'a>(_: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        let Some(queue) = ctx.session.transaction.take() else {
            return Err(Reply::err("EXEC without MULTI").into());
        };
        if queue.aborted {
            return Err(Reply::Error(
                "EXECABORT Transaction discarded because of previous errors.".into(),
            )
            .into());
        }
        let service = ctx.shared.service.clone();
        let Some(store) = service.transaction_store() else {
            return Err(CommandError::failed(Reply::err(format!(
                "the counter store {} cannot apply writes together, so tally runs no \
                 transactions on it; nothing was applied",
                service.store_name()
            ))));
        };
        let keys = queue
            .commands
            .iter()
            .filter_map(|args| lookup(args).ok().map(|spec| (spec, args)))
            .flat_map(|(spec, args)| super::key_arguments(spec, args));
        let _turn = ctx.shared.key_locks.lock(keys).await;
        for _ in 0..ATTEMPTS {
            let transaction = Arc::new(Transaction::new(store.clone()));
            let replies = run_queued(&queue.commands, ctx, transaction.clone()).await?;
            match transaction.commit().await {
                Ok(_) => return Ok(Reply::Array(replies)),
                Err(StorageError::Conflict { .. }) => {
                    ctx.shared
                        .metrics
                        .transaction_reruns
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(failure) => return Err(not_committed(&failure)),
            }
        }
        Err(CommandError::failed(Reply::err(format!(
            "other writes kept changing this transaction's counters; it ran {ATTEMPTS} times \
             and nothing was applied; try again"
        ))))
    })
}

/// Runs `commands` in order on one instance whose store is `transaction`: each command's
/// answer (a refusal included), or the failure that ends the transaction with nothing applied.
async fn run_queued(
    commands: &[Vec<Vec<u8>>],
    ctx: &mut Context<'_, '_>,
    transaction: Arc<Transaction>,
) -> Result<Vec<Reply>, CommandError> {
    let service = ctx.shared.service.clone();
    let mut pipeline = service.pipeline_over(crate::resp::write_context(), transaction);
    let mut replies = Vec::with_capacity(commands.len());
    for args in commands {
        let spec = lookup(args).map_err(CommandError::failed)?;
        let mut queued = Context {
            session: &mut *ctx.session,
            shared: ctx.shared,
            pipeline: &mut pipeline,
            more_follow: false,
            durable: Vec::new(),
        };
        match (spec.run)(args, &mut queued).await {
            Ok(reply) => replies.push(reply),
            Err(CommandError {
                reply,
                refused: true,
            }) => replies.push(reply),
            Err(CommandError { reply, .. }) => {
                let why = match reply {
                    Reply::Error(line) => line.strip_prefix("ERR ").unwrap_or(&line).to_string(),
                    other => format!("{other:?}"),
                };
                return Err(CommandError::failed(Reply::err(format!(
                    "the transaction failed at {} and nothing was applied: {why}",
                    spec.name.to_uppercase()
                ))));
            }
        }
    }
    Ok(replies)
}

/// A commit that failed: nothing was applied, unless the store cannot tell.
fn not_committed(failure: &StorageError) -> CommandError {
    let words = crate::refusal::store_error(failure);
    CommandError::failed(Reply::err(match failure {
        StorageError::OutcomeUnknown(_) => format!(
            "the transaction's outcome is unknown (it may have been applied, whole or not at \
             all): {words}"
        ),
        _ => format!("the transaction was not applied: {words}"),
    }))
}
