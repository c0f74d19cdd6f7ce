//! One client connection: read what the client sent, run every complete command in it in order
//! (a pipeline shares one component instance), send the answers in one write, and repeat.
//!
//! A pipeline feeds group commit: its `INCR`, `INCRBY` and `SET` are staged writes (the store
//! answers each once applied, inside its open transaction, and holds the transaction a moment
//! for the next one), so a pipeline's writes commit together instead of one commit each. No
//! answer leaves before its write is durable (`settle`), and any other command first waits for
//! the writes before it, so a read in a pipeline sees them.
//!
//! A protocol error is answered and closes the connection; an idle client is dropped after the
//! idle timeout; on shutdown a connection answers what it has already read and then closes.

use super::Shared;
use super::cmd;
use super::dispatch::{self, Outcome};
use super::frame::{self, Batch};
use super::reply::Reply;
use super::session::Session;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The most commands run before their answers are sent: a long pipeline is answered in parts,
/// so neither its answers nor its instance's memory pile up.
const MAX_BATCH: usize = 1024;

/// Bytes read at a time.
const READ_CHUNK: usize = 16 << 10;

/// Serves one client until it leaves, misbehaves, idles out or the server shuts down.
pub async fn serve(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    id: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut session = Session::new(id, &shared);
    let mut input: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut output: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        // Run what is complete in the input.
        let Batch {
            commands,
            used,
            error,
        } = frame::parse_batch(&input, MAX_BATCH);
        let ran = commands.len();
        let mut close = false;
        let mut pipeline = shared.service.pipeline(super::write_context());
        let mut unsettled = Vec::new();
        for (index, args) in commands.iter().enumerate() {
            if !cmd::stages_writes(args) {
                settle(&mut unsettled, &shared, &session, &mut output).await;
            }
            // Only a staged write right behind is worth holding a commit open for.
            let more_follow = commands
                .get(index + 1)
                .is_some_and(|next| cmd::stages_writes(next));
            let outcome =
                dispatch::run(&mut session, args, &shared, &mut pipeline, more_follow).await;
            close = outcome.close;
            unsettled.push(outcome);
            if close {
                break;
            }
        }
        if let Some(error) = error.filter(|_| !close) {
            tracing::debug!(client = id, "closing a RESP connection: {error}");
            settle(&mut unsettled, &shared, &session, &mut output).await;
            shared
                .metrics
                .record_resp_command("protocol_error", "refused");
            Reply::err(error).write(&mut output, session.protocol());
            close = true;
        }
        settle(&mut unsettled, &shared, &session, &mut output).await;
        drop(pipeline);
        input.drain(..used);
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        if close {
            return close_gently(stream).await;
        }
        if ran == MAX_BATCH {
            // More complete commands may wait in the input: run them before reading.
            continue;
        }
        let stopping = *shutdown.borrow();
        if stopping {
            return close_gently(stream).await;
        }
        input.reserve(READ_CHUNK);
        let stop = tokio::select! {
            read = tokio::time::timeout(shared.options.idle_timeout, stream.read_buf(&mut input)) => {
                match read {
                    Ok(Ok(0) | Err(_)) => return,
                    Ok(Ok(_)) => false,
                    Err(_) => {
                        tracing::debug!(client = id, "dropping an idle RESP client");
                        return;
                    }
                }
            }
            stopped = shutdown.wait_for(|stop| *stop) => stopped.is_ok(),
        };
        if stop {
            return close_gently(stream).await;
        }
    }
}

/// Waits until the staged writes of `outcomes` are durable, then writes their answers in order:
/// nothing is acknowledged before it is on disk, and an answer whose write did not commit
/// becomes that failure.
async fn settle(
    outcomes: &mut Vec<Outcome>,
    shared: &Shared,
    session: &Session,
    output: &mut Vec<u8>,
) {
    for mut outcome in outcomes.drain(..) {
        for durable in std::mem::take(&mut outcome.durable) {
            if let Err(failure) = durable.await
                && !outcome.reply.is_error()
            {
                outcome.reply = Reply::err(format!("the counter store failed: {failure}"));
                outcome.label = "failed";
            }
        }
        shared
            .metrics
            .record_resp_command(outcome.command, outcome.label);
        outcome.reply.write(output, session.protocol());
    }
}

/// How long a closing connection waits for the client to take its last answers and hang up.
const LINGER: Duration = Duration::from_secs(1);

/// Closes after the last answer: ends the sending side, then reads and drops what the client
/// still sends until it hangs up (or [`LINGER`] passes). Closing a socket with unread input
/// sends a reset, which can destroy answers the client has not read yet.
async fn close_gently(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut scratch = [0_u8; 4096];
    let drain = async { while matches!(stream.read(&mut scratch).await, Ok(read) if read > 0) {} };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
