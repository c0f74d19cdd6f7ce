//! `tally serve --resp ADDR`: the counters over the Redis protocol (RESP2, and RESP3 after
//! `HELLO 3`), so a Redis counter client (`r.incr("visits")`) points at tally unchanged and every
//! acknowledged increment is on disk.
//!
//! The listener shares the runtime (store, group-commit writer, instance limits), the auth token
//! and the metrics with the HTTP listener. Each command is a call into a fresh component
//! instance, except that the commands of one pipelined read from one connection share one; the
//! component does the counting, this module only parses and maps. Connections run concurrently;
//! one connection's commands run in order.
//!
//! # Layout
//! - [`frame`]: requests off the wire (multi-bulk and inline), with the size limits.
//! - [`inline`]: inline commands split into arguments as Redis splits them.
//! - [`number`]: integers as strictly as Redis reads them.
//! - [`cmd`]: the commands, one file each, and their table.
//! - [`session`]: a connection's state (authentication, protocol, the transaction it queues).
//! - [`dispatch`]: one command run: looked up, checked, queued or run.
//! - [`key_locks`]: turns for transactions over the same counters.
//! - [`connection`]: the read-run-answer loop of one client.
//! - [`reply`]: answers in RESP2 or RESP3.
//! - [`glob`]: `KEYS` and `SCAN MATCH` patterns.

pub mod cmd;
pub mod connection;
pub mod dispatch;
pub mod frame;
pub mod glob;
pub mod inline;
pub mod key_locks;
pub mod number;
pub mod reply;
pub mod session;

use crate::list_cursors::ListCursors;
use crate::metrics::Metrics;
use crate::service::Service;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The Redis version whose protocol and error texts tally follows (`INFO`'s `redis_version`,
/// `HELLO`'s `version`).
pub const REDIS_VERSION: &str = "7.0.0";

/// The largest value an increment over RESP may leave a counter at: RESP integers are signed
/// 64-bit, so the store refuses an increment past it atomically, whatever its own limit.
pub const RESP_INCREMENT_LIMIT: u64 = i64::MAX as u64;

/// What every RESP write carries to the store: the increment limit of signed 64-bit integers.
pub fn write_context() -> tally_keyvalue::storage::WriteContext {
    tally_keyvalue::storage::WriteContext::default().with_increment_limit(RESP_INCREMENT_LIMIT)
}

/// How the server's line on standard output that gives the RESP address starts.
const LISTENING_PREFIX: &str = "listening on redis://";

/// The line that says where the RESP listener listens: `listening on redis://ADDRESS`.
pub fn listening_line(address: SocketAddr) -> String {
    format!("{LISTENING_PREFIX}{address}")
}

/// Reads the [`listening_line`] from a server's standard output (after the HTTP one).
pub fn read_listening_address(stdout: &mut impl std::io::BufRead) -> Result<SocketAddr> {
    crate::server::read_address_line(stdout, LISTENING_PREFIX)
}

/// The RESP listener's settings.
#[derive(Debug, Clone)]
pub struct RespOptions {
    /// The most connections open at once; more are answered with an error and closed.
    pub max_clients: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The token `AUTH` needs (Redis's `requirepass`), if any.
    pub auth_token: Option<Arc<str>>,
}

/// What every connection shares.
pub struct Shared {
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    options: RespOptions,
    /// The `SCAN` cursors, numbers every server of the store takes back.
    cursors: ListCursors,
    port: u16,
    started: Instant,
    /// Turns for `EXEC`s over the same counters.
    key_locks: key_locks::KeyLocks,
}

impl Shared {
    /// Connections open now: the `tally_resp_clients` gauge, the one count of them.
    fn open_clients(&self) -> usize {
        usize::try_from(self.metrics.resp_clients.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }
}

/// One open connection, counted in `tally_resp_clients` from accept until dropped (however the
/// connection's task ends).
struct OpenClient(Arc<Metrics>);

impl OpenClient {
    fn new(shared: &Shared) -> Self {
        shared.metrics.resp_clients.fetch_add(1, Ordering::Relaxed);
        Self(shared.metrics.clone())
    }
}

impl Drop for OpenClient {
    fn drop(&mut self) {
        self.0.resp_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves RESP on `listener` until `shutdown` turns true, then stops accepting, lets every
/// connection answer what it has read, and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    options: RespOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    // Every RESP increment stops at the signed 64-bit limit, atomically in the store: a store
    // that cannot do that would fail every INCR, so it is refused before anyone connects.
    anyhow::ensure!(
        service.can_limit_increments_to(RESP_INCREMENT_LIMIT),
        "the counter store {} holds counters past {RESP_INCREMENT_LIMIT} and cannot stop an \
         increment there, which every RESP increment needs (Redis integers are signed 64-bit); \
         serve it over HTTP only, or give it the increment_limits capability",
        service.store_name()
    );
    let mut stopping = shutdown.clone();
    let port = listener
        .local_addr()
        .context("reading the RESP address")?
        .port();
    let cursors = ListCursors::new(
        service.storage().clone(),
        Arc::from(service.store_name()),
        service.counter_limit(),
    );
    let shared = Arc::new(Shared {
        service,
        metrics,
        options,
        cursors,
        port,
        started: Instant::now(),
        key_locks: key_locks::KeyLocks::default(),
    });
    let next_id = AtomicU64::new(1);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: pass, and try again shortly.
                        tracing::warn!("accepting a RESP connection failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if shared.open_clients() >= shared.options.max_clients {
                    shared.metrics.resp_clients_rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, "refusing a RESP client: --resp-max-clients reached");
                    connections.spawn(async move {
                        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
                    });
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                let open = OpenClient::new(&shared);
                connections.spawn(async move {
                    connection::serve(stream, shared.clone(), id, shutdown).await;
                    drop(open);
                });
            }
            // Reap finished connections so the set does not grow with every client ever seen.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopping.wait_for(|stop| *stop) => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}
