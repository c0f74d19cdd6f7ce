//! tally: persistent named counters. The counter logic is a WebAssembly component (`guest/`, built
//! against `wit/`); this crate is the product around it: the runtime that runs it over durable
//! `wasi:keyvalue` storage (the `tally-keyvalue` crate), the `tally` command line and the HTTP
//! service.
//!
//! # Layout
//! Layers point down: [`cli`] → [`server`] / [`resp`] / [`transfer`] → [`service`] → [`runtime`] →
//! `tally_keyvalue`.
//! - [`bindings`]: host bindings of the counter world, generated from `wit/`; `wasi:keyvalue`
//!   is `tally_keyvalue`'s.
//! - [`compiled_cache`]: compile the component once, reuse the native code across processes.
//! - [`runtime`]: the component run in rooms: engine and pool sizing, sandbox and limits, the
//!   instance and its calls, instances kept between requests (`--instance-reuse`).
//! - [`failure`]: a counter call's failure as one value, in one precedence.
//! - [`service`]: the command layer under HTTP, RESP and the CLI: key claim, instance, calls,
//!   and what concerns the store (readiness, purges, the log of its outages).
//! - [`error_code`]: the one list of stable error codes every surface derives from.
//! - [`refusal`]: a refused counter operation in words.
//! - [`idempotency`]: a client's idempotency key, checked and claimed while its request runs.
//! - [`metrics`]: the service's Prometheus metrics, one value handed to whoever records.
//! - [`token`]: the server's token, checked alike by HTTP and RESP.
//! - [`list_cursors`]: the list cursors clients hold (HTTP's signed, `SCAN`'s numbered),
//!   accepted by every server of the store.
//! - [`server`]: `tally serve`, the HTTP API.
//! - [`resp`]: `tally serve --resp`, the counters over the Redis protocol.
//! - [`transfer`]: `tally export` and `tally import`, counters as JSON lines.
//! - [`whole_number`]: counter values from JSON numbers (`5`, `5.0`, `5e0`), read exactly.
//! - [`window_length`]: window lengths as people write them (`30s`, `1m`, `1h`).
//! - [`cli`]: the `tally` command line (`src/main.rs` only calls it).

pub mod bindings;
pub mod cli;
pub mod compiled_cache;
pub mod error_code;
pub mod failure;
pub mod idempotency;
pub mod list_cursors;
pub mod metrics;
pub mod refusal;
pub mod resp;
pub mod runtime;
pub mod server;
pub mod service;
pub mod token;
pub mod transfer;
pub mod whole_number;
pub mod window_length;

pub use bindings::{CounterError, Page};
pub use failure::{Done, Failure};
pub use refusal::Refusal;
pub use runtime::{ComponentSource, Instance, Lease, ListedPage, Runtime, RuntimeOptions};
pub use service::Service;
