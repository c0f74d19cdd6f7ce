//! `tally serve`: start the HTTP service (and with `--resp`, the Redis protocol listener) and run
//! it until SIGTERM or SIGINT.
//!
//! The first line on standard output is `listening on http://ADDRESS` once the socket is bound
//! (with `--listen 127.0.0.1:0` that is how a caller learns the port), followed with `--resp` by
//! `listening on redis://ADDRESS`; logs go to standard error,
//! at the level `RUST_LOG` sets (default `info`; `debug` logs every request).

use super::GlobalArgs;
use crate::metrics::Metrics;
use crate::runtime::{ComponentSource, MemoryBelowStart, RuntimeOptions};
use crate::service::Service;
use crate::{resp, server};
use anyhow::{Context, Result};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tally_keyvalue::storage::StorageError;
use tracing_subscriber::EnvFilter;

/// `tally serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on, HOST:PORT with an IP address or a host name (loopback by
    /// default: put a proxy in front to expose it).
    #[arg(
        long,
        env = "TALLY_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR",
        value_parser = listen_address
    )]
    listen: String,

    /// How long one request may run the component before it is stopped (a 500), in
    /// milliseconds, 1 to 3600000. Checked every 10 ms: a guest is stopped between the deadline
    /// and 10 ms after it (and gets 1 s more if it has already applied a write).
    #[arg(
        long,
        env = "TALLY_GUEST_TIMEOUT_MS",
        default_value_t = 10_000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..=3_600_000)
    )]
    guest_timeout_ms: u64,

    /// The most memory one component instance may use, in MiB, 1 to 4096 (and at least what
    /// the component needs to start, checked at start).
    #[arg(
        long,
        env = "TALLY_GUEST_MEMORY_MIB",
        default_value_t = 64,
        value_name = "MIB",
        value_parser = clap::value_parser!(u64).range(1..=4096)
    )]
    guest_memory_mib: u64,

    /// How many component instances may run at once (the pooling allocator's size), at
    /// least 1; more requests wait for one to finish.
    #[arg(
        long,
        env = "TALLY_MAX_INSTANCES",
        default_value_t = 1000,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_instances: u32,

    /// How many requests one component instance may serve before it is replaced, at least 1
    /// (1: a fresh instance per request). Default: 128 for the embedded component, which
    /// keeps no state between calls; 1 for a --component file, whose author must promise the
    /// same before raising it. An instance whose call failed is never reused.
    #[arg(
        long,
        env = "TALLY_INSTANCE_REUSE",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    instance_reuse: Option<u32>,

    /// Also serve the Redis protocol (RESP) on this address, HOST:PORT, for Redis counter
    /// clients (`INCR`, `GET`, `MGET`, `SCAN`...); the same store, limits, token and metrics.
    #[arg(long, env = "TALLY_RESP", value_name = "ADDR", value_parser = listen_address)]
    resp: Option<String>,

    /// The most RESP connections open at once; more are refused with an error.
    #[arg(
        long,
        env = "TALLY_RESP_MAX_CLIENTS",
        default_value_t = 10_000,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    resp_max_clients: u32,

    /// Close a RESP connection that has sent nothing for this many seconds.
    #[arg(
        long,
        env = "TALLY_RESP_IDLE_TIMEOUT_SECS",
        default_value_t = 300,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    resp_idle_timeout_secs: u64,

    /// The most HTTP connections open at once. Past it, a new connection closes the one that
    /// has waited longest for a request (idle, else half-sent); only when every one is running
    /// a request is it refused with a 503. Lowered, with a warning, to what the file
    /// descriptor limit allows.
    #[arg(
        long,
        env = "TALLY_MAX_CONNECTIONS",
        default_value_t = 10_000,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_connections: u32,

    /// Close an HTTP connection that has waited this long for a request.
    #[arg(
        long,
        env = "TALLY_HTTP_IDLE_TIMEOUT_SECS",
        default_value_t = 60,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    http_idle_timeout_secs: u64,

    /// Close an HTTP connection whose request's headers are not complete this long after its
    /// first byte (a stalled or deliberately slow request).
    #[arg(
        long,
        env = "TALLY_HTTP_HEADER_TIMEOUT_SECS",
        default_value_t = 10,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    http_header_timeout_secs: u64,

    /// Answer 408 and close the connection when a request's body has not arrived this long
    /// after its headers.
    #[arg(
        long,
        env = "TALLY_HTTP_BODY_TIMEOUT_SECS",
        default_value_t = 10,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    http_body_timeout_secs: u64,

    /// Let web pages of this origin (`https://ops.example.com`) change counters, besides the
    /// server's own (its dashboard); repeat it or separate origins with commas. Writes from
    /// other pages are refused.
    #[arg(
        long,
        env = "TALLY_ALLOW_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ',',
        value_parser = origin
    )]
    allow_origin: Vec<String>,

    /// Answer requests for this host name too (on a loopback address, only `localhost`,
    /// `*.localhost`, 127.x.x.x and [::1] are answered: a page that reaches the server through
    /// a name of its own is refused); repeat it or separate names with commas. On other
    /// addresses, giving names makes the server answer for those (and loopback ones) only.
    #[arg(
        long,
        env = "TALLY_ALLOW_HOST",
        value_name = "NAME",
        value_delimiter = ','
    )]
    allow_host: Vec<String>,

    /// Require `Authorization: Bearer TOKEN` on every request that changes counters (and, over
    /// RESP, `AUTH TOKEN` before any command, as Redis's `requirepass`).
    #[arg(
        long,
        env = "TALLY_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        value_parser = crate::token::parse_token
    )]
    auth_token: Option<String>,

    /// How often to sweep the windows that ended (delete the windows of every name older than
    /// --sweep-keep), in seconds; 0 never sweeps. Each sweep reads every key of the store once.
    #[arg(
        long,
        env = "TALLY_SWEEP_INTERVAL_SECS",
        default_value_t = 60,
        value_name = "SECS"
    )]
    sweep_interval_secs: u64,

    /// How many windows of every name a sweep keeps, the current one included (2-1000; hits keep
    /// 60 unless they say otherwise).
    #[arg(
        long,
        env = "TALLY_SWEEP_KEEP",
        default_value_t = crate::server::windows::DEFAULT_KEEP,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(2..=1000)
    )]
    sweep_keep: u32,
}

/// Checks that an `--allow-origin` value is an origin: `http://` or `https://`, a host, perhaps
/// a port, and nothing after it.
fn origin(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    let host = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match host {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => {
            Ok(value.to_string())
        }
        _ => Err(
            "expected an origin: http:// or https://, a host and an optional port, such \
                  as https://ops.example.com"
                .into(),
        ),
    }
}

/// Checks that a `--listen` value is `HOST:PORT` (`127.0.0.1:8080`, `[::1]:8080`,
/// `localhost:8080`); the host is resolved when the server binds.
fn listen_address(value: &str) -> Result<String, String> {
    let valid = value.parse::<SocketAddr>().is_ok()
        || value
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(value.to_string())
    } else {
        Err("expected HOST:PORT, such as 127.0.0.1:8080, [::1]:8080 or localhost:8080".into())
    }
}

/// Runs the server on a multi-threaded runtime until a termination signal.
pub(super) fn run(global: &GlobalArgs, args: &ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(super::use_color(std::io::stderr().is_terminal()))
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_async(global, args))
}

async fn run_async(global: &GlobalArgs, args: &ServeArgs) -> Result<()> {
    // One set of metrics for the whole service, handed to each layer that records.
    let metrics = Arc::new(Metrics::new());
    let (storage, store) = global.open_storage(Some(metrics.clone()))?;
    let options = RuntimeOptions {
        memory_limit: usize::try_from(args.guest_memory_mib << 20)
            .context("--guest-memory-mib does not fit this machine's address space")?,
        deadline: Duration::from_millis(args.guest_timeout_ms),
        pooled_instances: Some(args.max_instances),
        metrics: Some(metrics.clone()),
        instance_reuse: args
            .instance_reuse
            .unwrap_or(match global.component_source() {
                ComponentSource::Embedded => crate::runtime::pool::EMBEDDED_INSTANCE_REUSE,
                ComponentSource::File(_) => 1,
            }),
        ..global.runtime_options()
    };
    let service = Service::new(
        &global.component_source(),
        &options,
        storage.clone(),
        global.idempotency_retention(),
    )
    .map(|service| service.with_clock(global.clock()))
    .map_err(|error| match error.downcast_ref::<MemoryBelowStart>() {
        Some(below) => anyhow::anyhow!(
            "--guest-memory-mib {} is too small: {below}; give it at least {}",
            args.guest_memory_mib,
            below.needed.div_ceil(1 << 20)
        ),
        None => error,
    })?;
    let service = Arc::new(service);
    let listener = tokio::net::TcpListener::bind(args.listen.as_str())
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let resp_listener = match &args.resp {
        Some(resp) => Some(
            tokio::net::TcpListener::bind(resp.as_str())
                .await
                .with_context(|| format!("cannot listen for RESP on {resp}"))?,
        ),
        None => None,
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", server::listening_line(address))
        .and_then(|()| stdout.flush())
        .context("writing to standard output")?;
    if let Some(resp_listener) = &resp_listener {
        let resp_address = resp_listener
            .local_addr()
            .context("reading the bound RESP address")?;
        writeln!(stdout, "{}", resp::listening_line(resp_address))
            .and_then(|()| stdout.flush())
            .context("writing to standard output")?;
        tracing::info!("serving counters over RESP on redis://{resp_address}");
        if args.auth_token.is_none() && !resp_address.ip().is_loopback() {
            tracing::warn!(
                "RESP listens on {resp_address}, which is not a loopback address, without \
                 --auth-token: anyone who can reach it can change counters"
            );
        }
    }
    drop(stdout);
    tracing::info!(
        store,
        durability = global.durability_label(),
        "serving counters on http://{address}"
    );
    if args.auth_token.is_none() && !address.ip().is_loopback() {
        tracing::warn!(
            "listening on {address}, which is not a loopback address, without --auth-token: \
             anyone who can reach it can change counters"
        );
    }
    // One signal stops both listeners; each answers what it has already read.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        server::termination_signal().await;
        let _ = stop.send(true);
    });
    let http_stopped = {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let http_options = server::HttpOptions {
        auth_token: args.auth_token.clone(),
        allowed_hosts: args.allow_host.clone(),
        allowed_origins: args.allow_origin.clone(),
        limits: server::connections::ConnectionLimits {
            max_connections: descriptor_room(
                args.max_connections,
                args.resp.as_ref().map(|_| args.resp_max_clients),
            ),
            idle_timeout: Duration::from_secs(args.http_idle_timeout_secs),
            header_timeout: Duration::from_secs(args.http_header_timeout_secs),
        },
        body_timeout: Duration::from_secs(args.http_body_timeout_secs),
    };
    let http = server::serve(
        listener,
        service.clone(),
        http_options,
        metrics.clone(),
        http_stopped,
    );
    let resp = async {
        match resp_listener {
            Some(resp_listener) => {
                let options = resp::RespOptions {
                    max_clients: usize::try_from(args.resp_max_clients).unwrap_or(usize::MAX),
                    idle_timeout: Duration::from_secs(args.resp_idle_timeout_secs),
                    auth_token: args.auth_token.as_deref().map(Arc::from),
                };
                resp::serve(
                    resp_listener,
                    service.clone(),
                    metrics.clone(),
                    options,
                    stopped,
                )
                .await
            }
            None => Ok(()),
        }
    };
    let purge = tokio::spawn(purge_expired(
        service.clone(),
        purge_interval(global.idempotency_retention()),
    ));
    let sweep = (args.sweep_interval_secs > 0).then(|| {
        let every = Duration::from_secs(args.sweep_interval_secs);
        tracing::info!(
            "sweeping windows every {} s, keeping the last {} of every name",
            every.as_secs(),
            args.sweep_keep
        );
        tokio::spawn(sweep_windows(service.clone(), every, args.sweep_keep))
    });
    let served = tokio::try_join!(http, resp);
    purge.abort();
    let _ = purge.await;
    if let Some(sweep) = sweep {
        sweep.abort();
        let _ = sweep.await;
    }
    served?;
    drop(service);
    // Every acknowledged write was committed before its answer; dropping the last reference to
    // the storage stops a SQLite writer thread once it has nothing left.
    drop(storage);
    tracing::info!("stopped");
    Ok(())
}

/// File descriptors kept for the store, the component cache, logs and accepting: a quarter of
/// the limit, at most this many.
const RESERVED_DESCRIPTORS: u64 = 256;

/// `--max-connections`, within what the file descriptor limit allows beside the RESP
/// listener's clients: the soft limit is first raised to the hard one (as most servers do), and
/// a cap it still cannot hold is lowered, saying so.
fn descriptor_room(max_connections: u32, resp_clients: Option<u32>) -> usize {
    let wanted = u64::from(max_connections);
    let limit = raise_descriptor_limit();
    let room = limit
        .saturating_sub(RESERVED_DESCRIPTORS.min(limit / 4))
        .saturating_sub(resp_clients.map_or(0, u64::from).min(limit / 4))
        .max(1);
    if wanted > room {
        tracing::warn!(
            "--max-connections {wanted} does not fit this process's file descriptor limit \
             ({limit}, ulimit -n): serving at most {room} HTTP connections at once"
        );
    }
    usize::try_from(wanted.min(room)).unwrap_or(usize::MAX)
}

/// Raises the soft limit on open files to the hard limit; the soft limit in force after.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// How often expired idempotency records are purged: half the retention, between 1 s and 60 s,
/// so a record outlives its retention by at most about half of it (it is ignored once expired
/// either way; purging only reclaims space).
fn purge_interval(retention: Duration) -> Duration {
    (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Deletes expired idempotency records every `every`, until aborted. The store does it in
/// bounded steps queued among the writes (SQLite), so writes are never held up for long.
async fn purge_expired(service: Arc<Service>, every: Duration) {
    // The first purge after one interval, not at start: a server starting is busy enough.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match service.purge_expired().await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "purged expired idempotency records"),
            // A store this process may only read has nothing of its own to purge.
            Err(StorageError::ReadOnly { .. }) => {}
            Err(failure) => {
                tracing::warn!("purging expired idempotency records failed: {failure}");
            }
        }
    }
}

/// Sweeps the windows that ended every `every`, keeping `keep` of every name, until aborted.
/// Each step is one page of the store's keys on an instance of its own, between requests.
async fn sweep_windows(service: Arc<Service>, every: Duration, keep: u32) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match service.sweep(keep).await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "swept windows that ended"),
            Err(crate::Failure::ReadOnly(_)) => {}
            Err(failure) => tracing::warn!("sweeping windows failed: {}", failure.message()),
        }
    }
}
