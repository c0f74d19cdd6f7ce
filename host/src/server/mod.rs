//! `tally serve`: the counters over HTTP.
//!
//! Every request runs in a fresh component instance from the runtime's one `InstancePre`; the
//! component holds no state and the host caches no counter values, so the store is the only truth
//! and any number of servers (or CLI calls) can share it. Writes are acknowledged only after the
//! group commit that contains them returned (see `tally_keyvalue`'s SQLite writer).
//!
//! [`serve`] takes a bound listener, the metrics to record into and a shutdown future (the shape
//! of mini-redis' `server::run`) so tests can bind port 0 and stop the server when they like. The
//! server owns the line that says where it listens ([`listening_line`]) and its parser
//! ([`read_listening_address`]).
//!
//! # Layout
//! - [`connections`]: accepting connections, their idle and header timeouts, and the cap.
//! - [`cross_site`]: requests of web pages: foreign origins, foreign `Host` names.
//! - [`routes`]: the router and its handlers.
//! - [`error`]: the JSON error body, the status of each error and its stable
//!   [`crate::error_code::ErrorCode`].
//! - [`extract`]: request parsing (the counter name, size-limited JSON object bodies).
//! - [`listing`]: paging `GET /counters` (its `limit` and `cursor`, the `Link` to the next page).
//! - [`assets`]: the dashboard and the OpenAPI document, compiled in.
//! - [`auth`]: the bearer token that writes need with `--auth-token`.

pub mod assets;
pub mod auth;
pub mod connections;
pub mod cross_site;
pub mod error;
pub mod extract;
pub mod listing;
pub mod routes;
pub mod windows;

use crate::list_cursors::ListCursors;
use crate::metrics::Metrics;
use crate::service::Service;
use anyhow::{Context, Result};
use connections::ConnectionLimits;
use cross_site::SitePolicy;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What every handler shares: one `Arc`, so the clone each extractor and middleware takes is
/// one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<ServerState>);

impl std::ops::Deref for AppState {
    type Target = ServerState;

    fn deref(&self) -> &ServerState {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct ServerState {
    /// The counters: the component's runtime and its store.
    pub service: Arc<Service>,
    /// The bearer token writes need, if any (`--auth-token`).
    pub auth_token: Option<Arc<str>>,
    /// Where requests are counted; what `GET /metrics` shows.
    pub metrics: Arc<Metrics>,
    /// The list cursors this server hands out and takes back (every server of the store's).
    pub cursors: Arc<ListCursors>,
    /// Which hosts the server answers for and which pages may write.
    pub sites: Arc<SitePolicy>,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
}

/// How the HTTP server takes requests.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The bearer token writes need (`--auth-token`).
    pub auth_token: Option<String>,
    /// Host names answered besides loopback ones (`--allow-host`).
    pub allowed_hosts: Vec<String>,
    /// Origins whose pages may write (`--allow-origin`).
    pub allowed_origins: Vec<String>,
    /// Connections at once and their timeouts.
    pub limits: ConnectionLimits,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
}

/// The largest request body accepted, in bytes; larger bodies get 413.
pub const BODY_LIMIT: usize = 4096;

/// How the server's first line on standard output starts; the bound address follows.
const LISTENING_PREFIX: &str = "listening on http://";

/// The line that says where the server listens (with `--listen 127.0.0.1:0`, how a caller
/// learns the port): `listening on http://ADDRESS`.
pub fn listening_line(address: SocketAddr) -> String {
    format!("{LISTENING_PREFIX}{address}")
}

/// Reads the [`listening_line`] from a server's standard output and returns the address.
pub fn read_listening_address(stdout: &mut impl std::io::BufRead) -> Result<SocketAddr> {
    read_address_line(stdout, LISTENING_PREFIX)
}

/// Reads one line from a server's standard output and returns the address after `prefix`
/// (the HTTP line here, the RESP one in `crate::resp`).
pub(crate) fn read_address_line(
    stdout: &mut impl std::io::BufRead,
    prefix: &str,
) -> Result<SocketAddr> {
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .context("reading tally serve's standard output")?;
    line.trim()
        .strip_prefix(prefix)
        .and_then(|address| address.parse().ok())
        .with_context(|| format!("tally serve said {line:?} instead of `{prefix}ADDRESS`"))
}

/// Serves the HTTP API on `listener` until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish and returns. Requests are counted in `metrics`, which `GET
/// /metrics` shows; `options` says who may write and how long a connection may wait.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    options: HttpOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let loopback = listener
        .local_addr()
        .context("reading the bound address")?
        .ip()
        .is_loopback();
    let cursors = ListCursors::new(
        service.storage().clone(),
        Arc::from(service.store_name()),
        service.counter_limit(),
    );
    let app = routes::router(AppState(Arc::new(ServerState {
        service,
        auth_token: options.auth_token.map(Arc::from),
        metrics: metrics.clone(),
        cursors: Arc::new(cursors),
        sites: Arc::new(SitePolicy::new(
            loopback,
            &options.allowed_hosts,
            &options.allowed_origins,
        )),
        body_timeout: options.body_timeout,
    })));
    connections::serve(listener, app, options.limits, metrics, shutdown).await;
    Ok(())
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!("{name} received: finishing in-flight requests, then exiting");
}
