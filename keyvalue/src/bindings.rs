//! wasmtime bindings generated from the vendored `wasi:keyvalue@0.2.0-draft` WIT (`wit/deps/`),
//! the same files the counter component is built against.
//!
//! Imports are async (a store may do I/O) and trappable: a store failure reaches the guest as
//! `wasi:keyvalue/store.error`, while a broken resource handle traps. A host whose own
//! `bindgen!` imports `wasi:keyvalue` maps it onto these modules with
//! `with: { "wasi:keyvalue/store": tally_keyvalue::bindings::wasi::keyvalue::store, ... }`, so
//! both name the same types.

pub use generated::wasi;

/// Everything `bindgen!` makes; only the interfaces (`wasi`) are this crate's API, not the
/// world's own `Imports` plumbing, which no host of a component that imports them needs.
mod generated {
    // The generated items carry the WIT doc comments where WIT has them; the rest is plumbing.
    #![allow(missing_docs, dead_code)]

    wasmtime::component::bindgen!({
    path: "../wit/deps/keyvalue",
    world: "wasi:keyvalue/imports",
    imports: { default: async | trappable },
    with: {
        "wasi:keyvalue/store.bucket": crate::wasi::resources::Bucket,
    },
    trappable_error_type: {
        "wasi:keyvalue/store.error" => crate::wasi::resources::KeyValueError,
    },
    });
}
