//! `tally serve`: start the HTTP service and run it until SIGTERM or SIGINT.
//!
//! The first line on standard output is `listening on http://ADDRESS` once the socket is bound
//! (with `--listen 127.0.0.1:0` that is how a caller learns the port); logs go to standard error,
//! at the level `RUST_LOG` sets (default `info`; `debug` logs every request).

use super::GlobalArgs;
use crate::metrics::Metrics;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::server;
use anyhow::{Context, Result};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
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
    /// milliseconds.
    #[arg(
        long,
        env = "TALLY_GUEST_TIMEOUT_MS",
        default_value_t = 10_000,
        value_name = "MS"
    )]
    guest_timeout_ms: u64,

    /// The most memory one component instance may use, in MiB.
    #[arg(
        long,
        env = "TALLY_GUEST_MEMORY_MIB",
        default_value_t = 64,
        value_name = "MIB"
    )]
    guest_memory_mib: usize,

    /// How many component instances may run at once (the pooling allocator's size).
    #[arg(
        long,
        env = "TALLY_MAX_INSTANCES",
        default_value_t = 1000,
        value_name = "N"
    )]
    max_instances: u32,

    /// Require `Authorization: Bearer TOKEN` on every request that changes counters.
    #[arg(
        long,
        env = "TALLY_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    auth_token: Option<String>,
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
        memory_limit: args.guest_memory_mib << 20,
        deadline: Duration::from_millis(args.guest_timeout_ms),
        pooled_instances: Some(args.max_instances),
        metrics: Some(metrics.clone()),
        ..global.runtime_options()
    };
    let runtime = Arc::new(Runtime::new(
        &global.component_source(),
        &options,
        storage.clone(),
    )?);
    let listener = tokio::net::TcpListener::bind(args.listen.as_str())
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", server::listening_line(address))
        .and_then(|()| stdout.flush())
        .context("writing to standard output")?;
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
    server::serve(
        listener,
        runtime,
        args.auth_token.clone(),
        metrics,
        server::termination_signal(),
    )
    .await?;
    // Every acknowledged write was committed before its answer; dropping the last reference to
    // the storage stops a SQLite writer thread once it has nothing left.
    drop(storage);
    tracing::info!("stopped");
    Ok(())
}
