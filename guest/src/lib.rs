//! The tally counter component: counter logic over a host-provided `wasi:keyvalue` store.
//!
//! The component keeps no state between calls; every call opens the default bucket, does its work
//! through the `wasi:keyvalue` imports and returns. Increments are one `atomics.increment` call, so
//! concurrent instances (or processes, or other Redis clients) never lose an update.
//!
//! # Layout
//! - [`name`]: the naming rule, checked before the store is touched.
//! - [`value`]: the ASCII-decimal value encoding shared with Redis `INCR` and wasmtime.
//! - [`page`]: the paged listing's cursor and where a listing resumes in a store page.
//! - [`window`]: counters that reset: which window holds an instant, its key, the sliding
//!   policy's weighing.
//! - `component` (wasm only): the `wit-bindgen` glue that implements the exported `counter` and
//!   `window` interfaces with the modules above.
//!
//! The pure modules compile natively too, so `cargo test` at the workspace root unit-tests them
//! without wasm; the bindings only exist for `target_family = "wasm"`.

pub mod name;
pub mod page;
pub mod value;
pub mod window;

#[cfg(target_family = "wasm")]
mod component;
