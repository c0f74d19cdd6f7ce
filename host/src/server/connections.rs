//! The HTTP server's connections: accepted here, served by hyper, and each watched so that none
//! holds the server's resources for nothing.
//!
//! A connection is in one of three states: **idle** (waiting for a request, nothing
//! of it arrived yet), **head** (a request's first bytes arrived, its headers are not complete)
//! and **busy** (a request is running; its body is read within the body timeout by the
//! extractor, `super::extract`). An idle connection is closed after the idle timeout, one in
//! its head after the header timeout (a slow or stalled request line: slowloris); a busy one
//! runs until its answer, bounded by the guest deadline. A request moves its connection through
//! the states with an atomic store each, and one sweeper task per server looks at every
//! connection a few times a second (every [`SWEEP_EVERY`] at most) and closes those whose time
//! is up: no timer and no wake-up per request.
//!
//! At most `max_connections` are open. A new connection past it makes room by closing the
//! longest-idle connection (else the oldest half-sent one): a server full of idle keep-alive
//! clients or of stalled requests still answers `/healthz` on a new connection. Only when every
//! connection is busy is the new one refused, with a 503 `too_many_connections` and
//! `Retry-After`. When the process runs out of file descriptors, `accept` fails: an idle
//! connection is closed to free one. Both are logged, at most once per
//! [`LOG_INTERVAL`].
//!
//! On shutdown, accepting stops, idle connections close at once, and requests running finish.

use crate::metrics::Metrics;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How many connections may be open, and how long one may wait.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once, at most.
    pub max_connections: usize,
    /// How long a connection may wait for a request.
    pub idle_timeout: Duration,
    /// How long a request's headers may take once its first byte arrived.
    pub header_timeout: Duration,
}

/// The rate limit of the log lines about the cap and the descriptor limit.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long a closing connection may take to finish before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How often the sweeper looks at the connections at most (more often for timeouts under four
/// times this): a timeout closes a connection at most this late.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Where a connection is in its life (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle = 0,
    Head = 1,
    Busy = 2,
}

/// Why the server closes a connection, as `tally_http_connections_closed_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Not closing.
    No = 0,
    /// It waited for a request past the idle timeout: closed once its answer is out.
    IdleTimeout = 1,
    /// Its headers were not complete within the header timeout: dropped.
    HeaderTimeout = 2,
    /// Closed to make room for a new connection: dropped.
    Evicted = 3,
}

/// One open connection, as its task, the sweeper and the registry see it.
struct Slot {
    id: u64,
    /// The phase and when it began, in milliseconds since the server started, packed as
    /// `millis << 2 | phase`: one atomic store per change on the request path.
    phase: AtomicU64,
    /// A [`Close`]: set by the sweeper or the registry, acted on by the connection's task.
    close: AtomicU8,
    /// Wakes the connection's task when `close` is set.
    closing: Notify,
}

impl Slot {
    fn new(id: u64, clock: &Clock) -> Self {
        Self {
            id,
            phase: AtomicU64::new(pack(Phase::Idle, clock.millis())),
            close: AtomicU8::new(Close::No as u8),
            closing: Notify::new(),
        }
    }

    /// The phase and when it began.
    fn phase(&self) -> (Phase, u64) {
        unpack(self.phase.load(Ordering::Acquire))
    }

    /// Moves to `to`, restarting its clock: from any phase when `from` is `None`, else only
    /// from `from`.
    fn enter(&self, from: Option<Phase>, to: Phase, clock: &Clock) {
        let next = pack(to, clock.millis());
        match from {
            None => self.phase.store(next, Ordering::Release),
            Some(from) => {
                let current = self.phase.load(Ordering::Acquire);
                if unpack(current).0 == from {
                    // Lost to another change only if the phase moved on meanwhile: keep that.
                    let _ = self.phase.compare_exchange(
                        current,
                        next,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
            }
        }
    }

    /// Asks the connection's task to close, for `why` (the first reason stays).
    fn close(&self, why: Close) -> bool {
        let asked = self
            .close
            .compare_exchange(
                Close::No as u8,
                why as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if asked {
            self.closing.notify_one();
        }
        asked
    }

    /// Why it is to close ([`Close::No`]: it is not).
    fn closing_for(&self) -> Close {
        match self.close.load(Ordering::Acquire) {
            1 => Close::IdleTimeout,
            2 => Close::HeaderTimeout,
            3 => Close::Evicted,
            _ => Close::No,
        }
    }

    /// Why its time is up at `now` (milliseconds), if it is.
    fn expired(&self, now: u64, limits: &ConnectionLimits) -> Option<Close> {
        let (phase, since) = self.phase();
        let waited = Duration::from_millis(now.saturating_sub(since));
        match phase {
            Phase::Idle if waited >= limits.idle_timeout => Some(Close::IdleTimeout),
            Phase::Head if waited >= limits.header_timeout => Some(Close::HeaderTimeout),
            _ => None,
        }
    }
}

fn pack(phase: Phase, millis: u64) -> u64 {
    millis << 2 | phase as u64
}

fn unpack(packed: u64) -> (Phase, u64) {
    let phase = match packed & 3 {
        0 => Phase::Idle,
        1 => Phase::Head,
        _ => Phase::Busy,
    };
    (phase, packed >> 2)
}

/// Milliseconds since the server started: what a [`Slot`] keeps its phase's start in. Copied
/// into whatever needs it, so the request path touches nothing shared.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn millis(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX >> 2)
    }
}

/// The open connections.
struct Registry {
    max: usize,
    limits: ConnectionLimits,
    clock: Clock,
    // A std mutex: held to add, remove, pick or sweep, never across an await.
    open: Mutex<HashMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    /// When the cap was last logged, and how often it was met since.
    cap_log: RateLimitedLog,
    /// When the descriptor limit was last logged, and how often it was met since.
    descriptor_log: RateLimitedLog,
}

impl Registry {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new connection, after closing one to make room at the cap; `None` when
    /// every open connection is running a request.
    fn admit(&self) -> Option<Arc<Slot>> {
        let mut open = self.open();
        let closing = open
            .values()
            .filter(|slot| slot.closing_for() != Close::No)
            .count();
        if open.len() - closing >= self.max {
            let victim = Self::victim(&open)?;
            if victim.close(Close::Evicted) {
                self.metrics.record_connection_closed("evicted");
            }
            self.cap_log.note(|more| {
                tracing::warn!(
                    "HTTP connections at --max-connections ({}): closing the longest-waiting \
                     idle or half-sent one for each new one{more}",
                    self.max
                );
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::new(id, &self.clock));
        open.insert(id, slot.clone());
        self.metrics
            .http_connections
            .store(open.len() as u64, Ordering::Relaxed);
        Some(slot)
    }

    /// The connection to close for room: the longest idle, else the oldest in its head; of
    /// those that began waiting in the same millisecond, the one accepted first.
    fn victim(open: &HashMap<u64, Arc<Slot>>) -> Option<&Arc<Slot>> {
        let waiting = |wanted: Phase| {
            open.values()
                .filter(|slot| slot.closing_for() == Close::No)
                .filter_map(move |slot| {
                    let (phase, since) = slot.phase();
                    (phase == wanted).then_some(((since, slot.id), slot))
                })
                .min_by_key(|(waited_since, _)| *waited_since)
                .map(|(_, slot)| slot)
        };
        waiting(Phase::Idle).or_else(|| waiting(Phase::Head))
    }

    /// Closes the longest-idle connection (for a file descriptor); whether there was one.
    fn evict_idle(&self) -> bool {
        let open = self.open();
        match Self::victim(&open) {
            Some(victim) => {
                if victim.close(Close::Evicted) {
                    self.metrics.record_connection_closed("evicted");
                }
                true
            }
            None => false,
        }
    }

    /// Asks every connection whose time is up to close.
    fn sweep(&self) {
        let now = self.clock.millis();
        for slot in self.open().values() {
            if let Some(why) = slot.expired(now, &self.limits)
                && slot.close(why)
            {
                self.metrics.record_connection_closed(match why {
                    Close::IdleTimeout => "idle_timeout",
                    _ => "header_timeout",
                });
            }
        }
    }

    fn remove(&self, id: u64) {
        let mut open = self.open();
        open.remove(&id);
        self.metrics
            .http_connections
            .store(open.len() as u64, Ordering::Relaxed);
    }
}

/// A log line that goes out at most once per [`LOG_INTERVAL`], saying how often its cause came
/// since the last one.
#[derive(Default)]
struct RateLimitedLog {
    // A std mutex, held to decide, never across an await.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    /// Calls `log` (with the words for the times it was held back) unless a line went out in
    /// the last [`LOG_INTERVAL`].
    fn note(&self, log: impl FnOnce(&str)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if state
            .0
            .is_some_and(|last| now.duration_since(last) < LOG_INTERVAL)
        {
            state.1 += 1;
            return;
        }
        let held_back = std::mem::take(&mut state.1);
        state.0 = Some(now);
        drop(state);
        if held_back == 0 {
            log("");
        } else {
            log(&format!(" ({held_back} more times since the last line)"));
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting, closes idle connections, lets running requests finish and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let registry = Arc::new(Registry {
        max: limits.max_connections.max(1),
        limits,
        clock: Clock(Instant::now()),
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        metrics,
        cap_log: RateLimitedLog::default(),
        descriptor_log: RateLimitedLog::default(),
    });
    let sweeper = tokio::spawn({
        let registry = registry.clone();
        let every = (limits.idle_timeout.min(limits.header_timeout) / 4)
            .clamp(Duration::from_millis(10), SWEEP_EVERY);
        async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                registry.sweep();
            }
        }
    });
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        out_of_descriptors(&registry, &error).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match registry.admit() {
                    Some(slot) => {
                        let registry = registry.clone();
                        let router = router.clone();
                        let stopping = stopping.clone();
                        connections.spawn(async move {
                            let id = slot.id;
                            serve_connection(stream, slot, router, stopping, &registry).await;
                            registry.remove(id);
                        });
                    }
                    None => {
                        registry.metrics.http_connections_refused.fetch_add(1, Ordering::Relaxed);
                        registry.cap_log.note(|more| {
                            tracing::warn!(
                                "refusing an HTTP connection: --max-connections ({}) are open, \
                                 every one running a request{more}",
                                registry.max
                            );
                        });
                        connections.spawn(refuse(stream));
                    }
                }
            }
            // Reap finished connections so the set does not grow with every client ever seen.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    sweeper.abort();
}

/// `accept` failed: out of file descriptors (close an idle connection to free one), or
/// anything else; logged at most once per [`LOG_INTERVAL`], and a short pause before the next.
async fn out_of_descriptors(registry: &Registry, error: &std::io::Error) {
    let descriptors = matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
    let freed = descriptors && registry.evict_idle();
    registry.descriptor_log.note(|more| {
        if descriptors {
            tracing::warn!(
                "accepting an HTTP connection failed: the process is out of file descriptors \
                 ({error}); {}; raise the limit (ulimit -n) or lower --max-connections{more}",
                if freed {
                    "closing an idle connection to free one"
                } else {
                    "none is idle to close"
                }
            );
        } else {
            tracing::warn!("accepting an HTTP connection failed: {error}{more}");
        }
    });
    tokio::time::sleep(Duration::from_millis(if freed { 1 } else { 20 })).await;
}

/// Answers a connection past the cap with a 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::json!({
        "code": crate::error_code::ErrorCode::TooManyConnections.as_str(),
        "error": "the server has --max-connections open, every one running a request; retry \
                  in a moment",
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves one connection until the client closes it, the server closes it (a timeout, room
/// for another), or the server stops.
async fn serve_connection(
    stream: TcpStream,
    slot: Arc<Slot>,
    router: Router,
    mut stopping: watch::Receiver<bool>,
    registry: &Registry,
) {
    let clock = registry.clock;
    let service = {
        let slot = slot.clone();
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            slot.enter(None, Phase::Busy, &clock);
            let slot = slot.clone();
            let answered = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = answered.await;
                slot.enter(Some(Phase::Busy), Phase::Idle, &clock);
                response
            }
        })
    };
    let io = TokioIo::new(Watched {
        stream,
        slot: slot.clone(),
        clock,
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        // This module's own timeouts, which tell a waiting connection from a half-sent one.
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(connection);
    // Asked to close gracefully (its idle time is up, or the server stops): hyper closes an
    // idle connection at once, and one running a request after its answer.
    let mut graceful = false;
    // A connection that its idle time closed is dropped if it has not closed by then.
    let mut give_up: Option<Instant> = None;
    loop {
        match slot.closing_for() {
            Close::HeaderTimeout | Close::Evicted => return,
            Close::IdleTimeout if !graceful => {
                connection.as_mut().graceful_shutdown();
                graceful = true;
                give_up = Some(Instant::now() + CLOSE_GRACE);
            }
            _ => {}
        }
        let grace = async {
            match give_up {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            () = slot.closing.notified() => {}
            () = grace => return,
            _ = stopping.wait_for(|stop| *stop), if !graceful => {
                connection.as_mut().graceful_shutdown();
                graceful = true;
            }
        }
    }
}

/// A connection's socket that moves its [`Slot`] from idle to head when a request's first
/// bytes arrive.
struct Watched {
    stream: TcpStream,
    slot: Arc<Slot>,
    clock: Clock,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.slot.enter(Some(Phase::Idle), Phase::Head, &self.clock);
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
