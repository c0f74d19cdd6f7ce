//! `tally bench`: prints the service-against-Redis table (see [`crate::bench`]).

use crate::bench::{self, BenchOptions};
use anyhow::Result;
use clap::Args;
use std::time::Duration;

/// `tally bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent keep-alive clients (and `redis-benchmark -c`).
    #[arg(long, env = "TALLY_BENCH_CLIENTS", default_value_t = 32)]
    clients: usize,

    /// Seconds to measure each configuration (after one second of warm-up).
    #[arg(long, env = "TALLY_BENCH_SECONDS", default_value_t = 10)]
    seconds: u64,

    /// Skip the Redis comparison.
    #[arg(long, env = "TALLY_BENCH_NO_REDIS", value_parser = clap::builder::BoolishValueParser::new())]
    no_redis: bool,

    /// Instead of the comparison, hold the load on a durable server for this many seconds and
    /// report requests served, errors, p99 and the server's memory (RSS) at start and end; fails
    /// if RSS grew by more than 10%.
    #[arg(long, env = "TALLY_BENCH_SOAK", value_name = "SECONDS", conflicts_with_all = ["seconds", "no_redis"])]
    soak: Option<u64>,
}

/// Runs the benchmark and prints its Markdown table (or the soak report).
pub(super) fn run(args: &BenchArgs) -> Result<()> {
    if let Some(seconds) = args.soak {
        return soak(args.clients, seconds);
    }
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

fn soak(clients: usize, seconds: u64) -> Result<()> {
    eprintln!("tally bench --soak: {clients} clients for {seconds} s against durability=full");
    let report = bench::soak(&BenchOptions {
        clients,
        duration: Duration::from_secs(seconds),
        redis: false,
    })?;
    println!(
        "| seconds | clients | served | errors | increments/s | p99 ms | RSS start | RSS end | growth |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n\
         | {seconds} | {clients} | {} | {} | {:.0} | {:.2} | {} KiB | {} KiB | {:+.1}% |",
        report.served,
        report.load.errors,
        report.load.per_second,
        report.load.p99_ms,
        report.rss_start_kib,
        report.rss_end_kib,
        report.rss_growth_percent()
    );
    if report.rss_growth_percent() > 10.0 {
        anyhow::bail!("the server's RSS grew by more than 10% during the soak");
    }
    if report.load.errors > 0 {
        anyhow::bail!("{} requests failed during the soak", report.load.errors);
    }
    Ok(())
}
