//! `tally bench`: the service's throughput and latency against Redis, measured side by side.
//!
//! It starts the real `tally serve` (this same binary) on a temporary database, once with
//! `--durability full` and once with `relaxed`, and drives each over loopback with C keep-alive
//! clients sending `POST /counters/{name}/increment` for a fixed time. In the same run it starts
//! `redis-server` with `appendonly yes` and `appendfsync always`, then `everysec`, and runs
//! `redis-benchmark -t incr -c C` against each. The machine is shared and noisy, so the ratios
//! within one run are the result; the absolute numbers are context.

use crate::cli::serve::read_listening_address;
use crate::http_client::Client;
use crate::redis_server::RedisServer;
use anyhow::{Context, Result, bail};
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// One measured configuration.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// What was measured.
    pub name: String,
    /// Answered requests per second.
    pub per_second: f64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Requests that failed (a status other than 200, or a broken connection).
    pub errors: u64,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Concurrent keep-alive clients.
    pub clients: usize,
    /// How long each tally configuration is driven (after a one-second warm-up).
    pub duration: Duration,
    /// Compare with Redis (needs `redis-server` and `redis-benchmark` on the PATH).
    pub redis: bool,
}

/// Runs every configuration and returns the measurements, tally's first.
pub fn run(options: &BenchOptions) -> Result<Vec<Measurement>> {
    let work = tempfile::tempdir().context("creating a temporary directory")?;
    let mut results = Vec::new();
    for durability in ["full", "relaxed"] {
        let db = work.path().join(format!("bench-{durability}.db"));
        let mut server = TallyServer::start(&db, durability)?;
        let name = format!("tally durability={durability}");
        let measurement = drive(server.address, options, &name, &mut || {});
        server.stop();
        results.push(measurement?);
    }
    if options.redis {
        for fsync in ["always", "everysec"] {
            results.push(redis(fsync, options)?);
        }
    }
    Ok(results)
}

/// `tally serve` on a temporary database, stopped with SIGTERM.
struct TallyServer {
    child: Child,
    address: SocketAddr,
}

impl TallyServer {
    fn start(db: &Path, durability: &str) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the tally binary")?;
        let mut child = Command::new(exe)
            .arg("--db")
            .arg(db)
            .args([
                "--durability",
                durability,
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .context("starting tally serve")?;
        let stdout = child.stdout.take().context("tally serve has no stdout")?;
        let address = read_listening_address(&mut BufReader::new(stdout))?;
        Ok(Self { child, address })
    }

    fn stop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

impl Drop for TallyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drives `address` with `options.clients` keep-alive clients for a warm-up second and then
/// `options.duration`, counting only answers in the measured window.
/// `at_window` runs when the measured window opens and when it closes.
fn drive(
    address: SocketAddr,
    options: &BenchOptions,
    name: &str,
    at_window: &mut dyn FnMut(),
) -> Result<Measurement> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(options.clients + 1));
    let clients: Vec<_> = (0..options.clients)
        .map(|client| {
            let (measuring, stop, ready) = (measuring.clone(), stop.clone(), ready.clone());
            std::thread::spawn(move || -> Result<(Vec<Duration>, u64)> {
                let connect = || Client::connect(address, Duration::from_secs(30));
                let mut connection = connect()?;
                let path = format!("/counters/bench{}/increment", client % 4);
                let (mut latencies, mut errors) = (Vec::new(), 0);
                ready.wait();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let ok = match connection.request("POST", &path, None) {
                        Ok(response) => response.status == 200,
                        Err(_) => {
                            connection = connect()?;
                            false
                        }
                    };
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            latencies.push(started.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                }
                Ok((latencies, errors))
            })
        })
        .collect();
    ready.wait();
    std::thread::sleep(Duration::from_secs(1));
    at_window();
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(options.duration);
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    at_window();
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for client in clients {
        let (client_latencies, client_errors) = client
            .join()
            .map_err(|_| anyhow::anyhow!("a benchmark client panicked"))??;
        latencies.extend(client_latencies);
        errors += client_errors;
    }
    if latencies.is_empty() {
        bail!("no request was answered while measuring {name}");
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
        latencies[index].as_secs_f64() * 1000.0
    };
    Ok(Measurement {
        name: name.to_string(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        errors,
    })
}

/// What a soak run found.
#[derive(Debug, Clone)]
pub struct Soak {
    /// Throughput, latency and errors over the whole run.
    pub load: Measurement,
    /// Requests answered 200 during the run.
    pub served: u64,
    /// The server's resident set size when the measured run began, in KiB.
    pub rss_start_kib: u64,
    /// Its resident set size at the end, in KiB.
    pub rss_end_kib: u64,
}

impl Soak {
    /// RSS growth over the run, in percent.
    pub fn rss_growth_percent(&self) -> f64 {
        (self.rss_end_kib as f64 / self.rss_start_kib.max(1) as f64 - 1.0) * 100.0
    }
}

/// Holds `options.clients` clients against a durable `tally serve` for `options.duration`,
/// sampling the server's RSS when the run begins (after a one-second warm-up) and when it ends.
pub fn soak(options: &BenchOptions) -> Result<Soak> {
    let work = tempfile::tempdir().context("creating a temporary directory")?;
    let mut server = TallyServer::start(&work.path().join("soak.db"), "full")?;
    let pid = server.child.id();
    let mut samples = Vec::new();
    let load = drive(server.address, options, "tally soak", &mut || {
        samples.push(resident_kib(pid));
    });
    server.stop();
    let load = load?;
    let (Some(Ok(rss_start_kib)), Some(Ok(rss_end_kib))) =
        (samples.first().cloned(), samples.last().cloned())
    else {
        bail!("could not read the server's memory use from /proc");
    };
    Ok(Soak {
        served: (load.per_second * options.duration.as_secs_f64()).round() as u64,
        load,
        rss_start_kib,
        rss_end_kib,
    })
}

/// `VmRSS` of process `pid`, from `/proc/PID/status`.
fn resident_kib(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS line".to_string())
}

/// `redis-benchmark -t incr` against a fresh `redis-server` with `appendfsync <fsync>`, sized to
/// run for about `options.duration` after a short pilot run.
fn redis(fsync: &str, options: &BenchOptions) -> Result<Measurement> {
    let server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", fsync])?;
    let pilot = redis_benchmark(server.port(), options.clients, 2_000)?;
    let requests = (pilot.per_second * options.duration.as_secs_f64()).max(2_000.0);
    let mut measured = redis_benchmark(server.port(), options.clients, requests as u64)?;
    measured.name = format!("redis appendfsync={fsync}");
    Ok(measured)
}

fn redis_benchmark(port: u16, clients: usize, requests: u64) -> Result<Measurement> {
    let output = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "incr",
            "--csv",
        ])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .output()
        .context("running redis-benchmark (./setup --bench installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let row = text
        .lines()
        .find(|line| line.starts_with("\"INCR\""))
        .with_context(|| format!("unexpected redis-benchmark output: {text}"))?;
    let fields: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|field| field.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    match fields.as_slice() {
        [per_second, _avg, _min, p50, _p95, p99, ..] => Ok(Measurement {
            name: "redis".into(),
            per_second: *per_second,
            p50_ms: *p50,
            p99_ms: *p99,
            errors: 0,
        }),
        _ => bail!("unexpected redis-benchmark row: {row}"),
    }
}

/// The results as a Markdown table with ratios to the Redis rows (when present).
pub fn table(results: &[Measurement]) -> String {
    let rate = |name: &str| {
        results
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.per_second)
    };
    let (always, everysec) = (
        rate("redis appendfsync=always"),
        rate("redis appendfsync=everysec"),
    );
    let mut out = String::from(
        "| configuration | increments/s | p50 ms | p99 ms | vs redis always | vs redis everysec |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for m in results {
        let ratio = |base: Option<f64>| {
            base.map_or("-".to_string(), |b| format!("{:.2}x", m.per_second / b))
        };
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} |\n",
            m.name,
            m.per_second,
            m.p50_ms,
            m.p99_ms,
            ratio(always),
            ratio(everysec)
        ));
    }
    out
}
