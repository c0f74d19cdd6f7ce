//! `tally bench`: prints the service-against-Redis table (see [`crate::bench`]).

use crate::bench::{self, BenchOptions};
use anyhow::Result;
use clap::Args;
use std::time::Duration;

/// `tally bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent keep-alive clients (and `redis-benchmark -c`).
    #[arg(long, default_value_t = 32)]
    clients: usize,

    /// Seconds to measure each configuration (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,

    /// Skip the Redis comparison.
    #[arg(long)]
    no_redis: bool,
}

/// Runs the benchmark and prints its Markdown table.
pub(super) fn run(args: &BenchArgs) -> Result<()> {
    let options = BenchOptions {
        clients: args.clients,
        duration: Duration::from_secs(args.seconds),
        redis: !args.no_redis,
    };
    eprintln!(
        "tally bench: {} clients, {} s per configuration{}",
        args.clients,
        args.seconds,
        if options.redis { ", then Redis" } else { "" }
    );
    let results = bench::run(&options)?;
    print!("{}", bench::table(&results));
    Ok(())
}
