//! Durable `wasi:keyvalue` for wasmtime: `wasi:keyvalue/store`, `atomics` and `batch`
//! (`@0.2.0-draft`) on SQLite (the default), Redis, PostgreSQL or memory, for async (tokio) wasmtime 48
//! hosts.
//!
//! wasmtime's own `wasmtime-wasi-keyvalue` keeps its data in memory. This crate is the same shape
//! (a context in your store's data, a view, [`add_to_linker`]) over a [`storage::Storage`] that
//! survives restarts: a SQLite file in WAL mode with `synchronous=FULL`, where a write is
//! answered only after the group commit holding it is on disk. It is the storage half of
//! [tally](https://example.invalid/tally), which runs its counter component on it; nothing here
//! knows about tally's CLI, server or component.
//!
//! ```no_run
//! use tally_keyvalue::{KeyValue, KeyValueCtx, OpenOptions};
//! use wasmtime::component::{Linker, ResourceTable};
//!
//! /// Your store's data: your resource table (and WASI context), plus the keyvalue context.
//! struct MyState {
//!     table: ResourceTable,
//!     keyvalue: KeyValueCtx,
//! }
//!
//! # fn main() -> wasmtime::Result<()> {
//! // `sqlite:PATH`, `memory`, `redis://HOST/DB` or `postgres://USER@HOST/DB` (see [`open()`]).
//! let storage = tally_keyvalue::open("sqlite:kv.db", &OpenOptions::default())?;
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<MyState>::new(&engine);
//! tally_keyvalue::add_to_linker(&mut linker, |state: &mut MyState| {
//!     KeyValue::new(&state.keyvalue, &mut state.table)
//! })?;
//! // One context per store (per instance): it also keeps that instance's list cursors.
//! let state = MyState {
//!     table: ResourceTable::new(),
//!     keyvalue: KeyValueCtx::new(storage).allow_only([""]),
//! };
//! let store = wasmtime::Store::new(&engine, state);
//! // ... add WASI (wasmtime_wasi::p2::add_to_linker_async), instantiate, call ...
//! # let _ = store;
//! # Ok(()) }
//! ```
//!
//! `examples/custom_store.rs` in tally's repository is a complete embedder: its own host, its
//! own `bindgen!`, a backend written from scratch, and tally's counter component.
//!
//! # Writing a store
//! A store is a type that implements [`storage::Storage`]: three required methods (`get`,
//! `list_keys`, `write`), optional abilities declared once in `capabilities`, and the suite to
//! prove it (`storage::suite::run`, with the feature `testing`). The [`storage`] module's
//! documentation is the guide.
//!
//! # Features
//! - `sqlite` (default): [`storage::SqliteStorage`], one SQLite file (bundled SQLite).
//! - `redis`: [`storage::RedisStorage`], a Redis database shared with other hosts and clients.
//! - `postgres`: [`storage::PostgresStorage`], tables in a PostgreSQL schema shared with other
//!   hosts (tokio-postgres, a deadpool pool, TLS through rustls).
//! - `testing`: `storage::suite`, the storage suite, for another crate's store.
//!
//! [`storage::MemoryStorage`], a process-local map, is always there.
//!
//! # Layout
//! - [`mod@open`]: a store opened by its URL (`sqlite:PATH`, `memory`, `redis://...`,
//!   `postgres://...`), through one table of backends.
//! - [`storage`]: the [`storage::Storage`] trait every backend implements, its errors, and the
//!   backends, one file each.
//! - [`wasi`]: the host side of the imports for wasmtime: [`KeyValueCtx`], [`KeyValue`],
//!   [`add_to_linker`]. It only translates between the bindings and the trait.
//! - [`bindings`]: the wasmtime bindings of the vendored `wasi:keyvalue` WIT, for hosts whose
//!   own `bindgen!` maps `wasi:keyvalue` onto them (`with:`).
//! - [`numbered`]: numbers that stand for cursors, for clients that can only hold a number.
//! - [`observer`]: the hook through which a host may record what the store does (latencies,
//!   commit batch sizes); unset, nothing is recorded.

pub mod bindings;
mod listed;
pub mod numbered;
pub mod observer;
pub mod open;
pub mod storage;
pub mod wasi;

pub use observer::Observer;
pub use open::{OpenOptions, StoreOption, open};
pub use wasi::{
    Bucket, CallRecord, KeyValue, KeyValueCtx, KeyValueError, MAX_CURSORS, add_to_linker,
};
