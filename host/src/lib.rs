//! tally: persistent named counters. The counter logic is a WebAssembly component (`guest/`, built
//! against `wit/`); this crate is the native host that runs it over durable `wasi:keyvalue`
//! storage, and the `tally` command line.
//!
//! # Layout
//! - [`storage`]: the [`storage::Storage`] trait and its backends (SQLite, in-memory, Redis).
//! - [`keyvalue`]: `wasi:keyvalue/{store,atomics}@0.2.0-draft` for wasmtime, on any `Storage`.
//! - [`bindings`]: host bindings generated from `wit/`.
//! - [`compiled_cache`]: compile the component once, reuse the native code across processes.
//! - [`runtime`]: engine, linker, sandbox and limits; a fresh component instance per call.
//! - [`refusal`]: a refused counter operation in words and as a stable code.
//! - [`whole_number`]: counter values from JSON numbers (`5`, `5.0`, `5e0`), read exactly.
//! - [`server`]: `tally serve`, the HTTP API.
//! - [`metrics`]: process-wide Prometheus metrics.
//! - [`http_client`]: a minimal HTTP/1.1 client for `tally bench` and the tests.
//! - [`redis_server`]: a throwaway `redis-server` for `tally bench` and the tests.
//! - [`bench`]: `tally bench`, the service against Redis, side by side.
//! - [`transfer`]: `tally export` and `tally import`, counters as JSON lines.
//! - [`cli`]: the `tally` command line (`src/main.rs` only calls it).

pub mod bench;
pub mod bindings;
pub mod cli;
pub mod compiled_cache;
pub mod http_client;
pub mod keyvalue;
pub mod metrics;
pub mod redis_server;
pub mod refusal;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod transfer;
pub mod whole_number;

pub use bindings::CounterError;
pub use refusal::Refusal;
pub use runtime::{ComponentSource, Counter, Runtime, RuntimeOptions};
