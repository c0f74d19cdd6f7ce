//! One client connection: read what the client sent, run every complete command in it in order
//! (a pipeline shares one component instance), send the answers in one write, and repeat.
//!
//! A protocol error is answered and closes the connection; an idle client is dropped after the
//! idle timeout; on shutdown a connection answers what it has already read and then closes.

use super::Shared;
use super::frame::{self, Frame};
use super::reply::Reply;
use super::session::{Instance, Session};
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
        let mut consumed = 0;
        let mut close = false;
        let mut ran = 0;
        let mut instance = Instance::new(&shared);
        while ran < MAX_BATCH {
            match frame::parse(&input[consumed..]) {
                Ok(Some(Frame { args, used })) => {
                    consumed += used;
                    if args.is_empty() {
                        continue;
                    }
                    ran += 1;
                    let outcome = session.run(&args, &shared, &mut instance).await;
                    shared
                        .metrics
                        .record_resp_command(outcome.command, outcome.label);
                    outcome.reply.write(&mut output, session.protocol());
                    if outcome.close {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(client = id, "closing a RESP connection: {error}");
                    shared
                        .metrics
                        .record_resp_command("protocol_error", "refused");
                    Reply::err(error).write(&mut output, session.protocol());
                    close = true;
                    break;
                }
            }
        }
        drop(instance);
        input.drain(..consumed);
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
