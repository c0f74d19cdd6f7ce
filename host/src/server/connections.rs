//! The HTTP server's connections: accepted here, served by hyper, and each watched so that none
//! holds the server's resources for nothing.
//!
//! A connection is in one of three states ([`Phase`]): **idle** (waiting for a request, nothing
//! of it arrived yet), **head** (a request's first bytes arrived, its headers are not complete)
//! and **busy** (a request is running; its body is read within the body timeout by the
//! extractor, `super::extract`). An idle connection is closed after the idle timeout, one in
//! its head after the header timeout (a slow or stalled request line: slowloris); a busy one
//! runs until its answer, bounded by the guest deadline.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Where a connection is in its life (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Head,
    Busy,
}

/// One open connection, as its watchdog and the registry see it.
struct Slot {
    id: u64,
    // A std mutex: one assignment or read at a time, never across an await.
    phase: Mutex<(Phase, Instant)>,
    /// Set when the registry closes it to make room.
    evicted: AtomicBool,
    /// Wakes the watchdog: the phase changed, or the connection was evicted.
    changed: Notify,
}

impl Slot {
    fn new(id: u64) -> Self {
        Self {
            id,
            phase: Mutex::new((Phase::Idle, Instant::now())),
            evicted: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, (Phase, Instant)> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves to `to` (from any phase when `from` is `None`), restarting its clock.
    fn enter(&self, from: Option<Phase>, to: Phase) {
        let mut phase = self.phase();
        if from.is_none_or(|from| phase.0 == from) {
            *phase = (to, Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// When the connection's current wait ends; `None` while a request runs.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Phase, Instant)> {
        let (phase, since) = *self.phase();
        match phase {
            Phase::Idle => Some((phase, since + limits.idle_timeout)),
            Phase::Head => Some((phase, since + limits.header_timeout)),
            Phase::Busy => None,
        }
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.changed.notify_one();
    }
}

/// The open connections.
struct Registry {
    max: usize,
    // A std mutex: held to add, remove or pick one, never across an await.
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
        let evicting = open
            .values()
            .filter(|slot| slot.evicted.load(Ordering::Acquire));
        let live = open.len() - evicting.count();
        if live >= self.max {
            let victim = Self::victim(&open)?;
            victim.evict();
            self.metrics.record_connection_closed("evicted");
            self.cap_log.note(|more| {
                tracing::warn!(
                    "HTTP connections at --max-connections ({}): closing the longest-waiting \
                     idle or half-sent one for each new one{more}",
                    self.max
                );
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::new(id));
        open.insert(id, slot.clone());
        self.metrics
            .http_connections
            .store(open.len() as u64, Ordering::Relaxed);
        Some(slot)
    }

    /// The connection to close for room: the longest idle, else the oldest in its head.
    fn victim(open: &HashMap<u64, Arc<Slot>>) -> Option<&Arc<Slot>> {
        let waiting = |wanted: Phase| {
            open.values()
                .filter(|slot| !slot.evicted.load(Ordering::Acquire))
                .filter_map(move |slot| {
                    let (phase, since) = *slot.phase();
                    (phase == wanted).then_some((since, slot))
                })
                .min_by_key(|(since, _)| *since)
                .map(|(_, slot)| slot)
        };
        waiting(Phase::Idle).or_else(|| waiting(Phase::Head))
    }

    /// Closes the longest-idle connection (for a file descriptor); whether there was one.
    fn evict_idle(&self) -> bool {
        let open = self.open();
        match Self::victim(&open) {
            Some(victim) => {
                victim.evict();
                self.metrics.record_connection_closed("evicted");
                true
            }
            None => false,
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
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        metrics,
        cap_log: RateLimitedLog::default(),
        descriptor_log: RateLimitedLog::default(),
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
                            serve_connection(stream, slot, router, limits, stopping, &registry).await;
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

/// Serves one connection until the client closes it, a timeout or the registry closes it, or
/// the server stops.
async fn serve_connection(
    stream: TcpStream,
    slot: Arc<Slot>,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    registry: &Registry,
) {
    let service = {
        let slot = slot.clone();
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            slot.enter(None, Phase::Busy);
            let slot = slot.clone();
            let answered = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = answered.await;
                slot.enter(Some(Phase::Busy), Phase::Idle);
                response
            }
        })
    };
    let io = TokioIo::new(Watched {
        stream,
        slot: slot.clone(),
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        // This module's own timeouts, which tell a waiting connection from a half-sent one.
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(connection);
    // Once asked to close (its idle time is up, or the server stops): hyper closes an idle
    // connection at once, and one running a request after its answer.
    let mut closing = false;
    // An idle connection asked to close is dropped if it has not closed by then.
    let mut give_up: Option<Instant> = None;
    loop {
        if slot.evicted.load(Ordering::Acquire) {
            return;
        }
        let deadline = slot.deadline(&limits);
        let wake_at = match (deadline.map(|(_, at)| at), give_up) {
            (Some(at), Some(give_up)) => Some(at.min(give_up)),
            (at, give_up) => at.or(give_up),
        };
        let timer = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            () = timer => {
                let now = Instant::now();
                if give_up.is_some_and(|at| at <= now) {
                    return;
                }
                match deadline {
                    Some((Phase::Idle, at)) if at <= now => {
                        if !closing {
                            registry.metrics.record_connection_closed("idle_timeout");
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        give_up = Some(now + CLOSE_GRACE);
                    }
                    Some((Phase::Head, at)) if at <= now => {
                        registry.metrics.record_connection_closed("header_timeout");
                        return;
                    }
                    _ => {}
                }
            }
            () = slot.changed.notified() => {}
            _ = stopping.wait_for(|stop| *stop), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// A connection's socket that moves its [`Slot`] from idle to head when a request's first
/// bytes arrive.
struct Watched {
    stream: TcpStream,
    slot: Arc<Slot>,
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
            self.slot.enter(Some(Phase::Idle), Phase::Head);
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
