//! The service's metrics in the Prometheus text format.
//!
//! One [`Metrics`] value that `tally serve` makes and hands down: to the server (requests), the
//! runtime (instances, traps) and, as a `tally_keyvalue::Observer`, to the store (operation
//! latencies, group-commit sizes). Nothing is global: a library user that hands none records
//! nothing, and two servers in one process keep apart. Rendered by `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Every metric tally exports.
#[derive(Debug)]
pub struct Metrics {
    /// HTTP requests by (method, route template, status).
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// Latency of each storage operation, in seconds.
    pub store_operation_seconds: Histogram<12>,
    /// Write requests committed together per SQLite transaction.
    pub commit_batch_size: Histogram<10>,
    /// Component instances created.
    pub instances_created: AtomicU64,
    /// Requests served by an instance an earlier request used (`--instance-reuse`).
    pub instances_reused: AtomicU64,
    /// Guest calls that trapped (panics, timeouts, memory exhaustion).
    pub guest_traps: AtomicU64,
    /// RESP commands by (command, outcome).
    resp_commands: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// RESP connections open now.
    pub resp_clients: AtomicU64,
    /// RESP connections refused because `--resp-max-clients` were open.
    pub resp_clients_rejected: AtomicU64,
    /// Writes answered from their idempotency key's record (retries), nothing applied.
    pub idempotent_replays: AtomicU64,
    /// RESP transactions run again because another write changed a counter they read.
    pub transaction_reruns: AtomicU64,
    /// HTTP connections open now.
    pub http_connections: AtomicU64,
    /// HTTP connections closed by the server, by why: `idle_timeout`, `header_timeout`,
    /// `evicted` (an idle or half-sent one closed to make room at `--max-connections`).
    http_connections_closed: Mutex<BTreeMap<&'static str, u64>>,
    /// HTTP connections refused at `--max-connections`, with none to make room.
    pub http_connections_refused: AtomicU64,
    /// Window hits within their limit.
    pub hits_allowed: AtomicU64,
    /// Window hits over their limit (counted, and answered as limited).
    pub hits_limited: AtomicU64,
    /// Window keys deleted by sweeps.
    pub windows_swept: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl tally_keyvalue::Observer for Metrics {
    fn store_operation(&self, elapsed: Duration) {
        self.store_operation_seconds.observe_duration(elapsed);
    }

    fn commit_batch(&self, writes: usize) {
        self.commit_batch_size.observe(writes as f64);
    }
}

impl Metrics {
    /// Every metric at zero.
    pub const fn new() -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            store_operation_seconds: Histogram::new([
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 1.0,
            ]),
            commit_batch_size: Histogram::new([
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
            ]),
            instances_created: AtomicU64::new(0),
            instances_reused: AtomicU64::new(0),
            guest_traps: AtomicU64::new(0),
            resp_commands: Mutex::new(BTreeMap::new()),
            resp_clients: AtomicU64::new(0),
            resp_clients_rejected: AtomicU64::new(0),
            idempotent_replays: AtomicU64::new(0),
            transaction_reruns: AtomicU64::new(0),
            http_connections: AtomicU64::new(0),
            http_connections_closed: Mutex::new(BTreeMap::new()),
            http_connections_refused: AtomicU64::new(0),
            hits_allowed: AtomicU64::new(0),
            hits_limited: AtomicU64::new(0),
            windows_swept: AtomicU64::new(0),
        }
    }

    /// Counts an HTTP connection the server closed, and why.
    pub fn record_connection_closed(&self, reason: &'static str) {
        if let Ok(mut closed) = self.http_connections_closed.lock() {
            *closed.entry(reason).or_default() += 1;
        }
    }

    /// Counts one answered RESP command: its name (lowercase, `unknown` for one tally does not
    /// know) and outcome (`ok`, `refused`, `failed`).
    pub fn record_resp_command(&self, command: &'static str, outcome: &'static str) {
        if let Ok(mut commands) = self.resp_commands.lock() {
            *commands.entry((command, outcome)).or_default() += 1;
        }
    }

    /// Counts one window hit, within its limit or over it.
    pub fn record_hit(&self, allowed: bool) {
        let counter = if allowed {
            &self.hits_allowed
        } else {
            &self.hits_limited
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the window keys a sweep deleted.
    pub fn record_swept(&self, removed: u64) {
        self.windows_swept.fetch_add(removed, Ordering::Relaxed);
    }

    /// Counts one answered HTTP request.
    pub fn record_request(&self, method: &str, route: &str, status: u16) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP tally_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE tally_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((method, route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "tally_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP tally_resp_commands_total RESP commands answered, by command and outcome (ok, refused: the client's input, failed: the server's side).\n");
        out.push_str("# TYPE tally_resp_commands_total counter\n");
        if let Ok(commands) = self.resp_commands.lock() {
            for ((command, outcome), count) in commands.iter() {
                let _ = writeln!(
                    out,
                    "tally_resp_commands_total{{command=\"{command}\",outcome=\"{outcome}\"}} {count}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP tally_resp_clients RESP connections open.\n# TYPE tally_resp_clients gauge\ntally_resp_clients {}",
            self.resp_clients.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tally_http_connections HTTP connections open.\n# TYPE tally_http_connections gauge\ntally_http_connections {}",
            self.http_connections.load(Ordering::Relaxed)
        );
        out.push_str("# HELP tally_http_connections_closed_total HTTP connections the server closed, by reason (idle_timeout, header_timeout, evicted: closed to make room at --max-connections).\n");
        out.push_str("# TYPE tally_http_connections_closed_total counter\n");
        if let Ok(closed) = self.http_connections_closed.lock() {
            for (reason, count) in closed.iter() {
                let _ = writeln!(
                    out,
                    "tally_http_connections_closed_total{{reason=\"{reason}\"}} {count}"
                );
            }
        }
        self.store_operation_seconds.render(
            &mut out,
            "tally_store_operation_seconds",
            "Latency of storage operations (get, set, delete, exists, list-keys, increment).",
        );
        self.commit_batch_size.render(
            &mut out,
            "tally_commit_batch_size",
            "Write requests committed per transaction (group commit; SQLite and PostgreSQL).",
        );
        for (name, help, value) in [
            (
                "tally_instances_created_total",
                "Component instances created.",
                &self.instances_created,
            ),
            (
                "tally_instances_reused_total",
                "Requests served by a component instance an earlier request used.",
                &self.instances_reused,
            ),
            (
                "tally_guest_traps_total",
                "Guest calls that trapped (panic, deadline, memory limit).",
                &self.guest_traps,
            ),
            (
                "tally_resp_clients_rejected_total",
                "RESP connections refused because --resp-max-clients were open.",
                &self.resp_clients_rejected,
            ),
            (
                "tally_idempotent_replays_total",
                "Writes answered from their Idempotency-Key's record (retries; nothing applied).",
                &self.idempotent_replays,
            ),
            (
                "tally_resp_transaction_reruns_total",
                "RESP EXECs run again because another write changed a counter they read.",
                &self.transaction_reruns,
            ),
            (
                "tally_http_connections_refused_total",
                "HTTP connections refused at --max-connections (none idle to close instead).",
                &self.http_connections_refused,
            ),
            (
                "tally_window_hits_allowed_total",
                "Window hits within their limit.",
                &self.hits_allowed,
            ),
            (
                "tally_window_hits_limited_total",
                "Window hits over their limit (counted too).",
                &self.hits_limited,
            ),
            (
                "tally_windows_swept_total",
                "Window keys deleted by sweeps of windows that ended.",
                &self.windows_swept,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}

/// A Prometheus histogram with `N` fixed upper bounds (plus `+Inf`), lock-free to record.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: [f64; N],
    /// Per-bucket (non-cumulative) counts.
    buckets: [AtomicU64; N],
    /// Observations above the last bound (the `+Inf` bucket's own share).
    above: AtomicU64,
    /// The sum of observations, in millionths, so it can be an integer atomic.
    sum_micros: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    const fn new(bounds: [f64; N]) -> Self {
        Self {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            above: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        match self.bounds.iter().position(|bound| value <= *bound) {
            Some(slot) => self.buckets[slot].fetch_add(1, Ordering::Relaxed),
            None => self.above.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.above.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}
