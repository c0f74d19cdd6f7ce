//! Host bindings generated from `wit/` (the same files the guest is built from).
//!
//! Imports are async (storage calls run on blocking threads) and trappable: a store failure is
//! returned to the guest as `wasi:keyvalue/store.error`, while a broken resource handle traps.

// The generated items carry the WIT doc comments where WIT has them; the rest is plumbing.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "tally:counter/counter-component@0.1.0",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket,
    },
    trappable_error_type: {
        "wasi:keyvalue/store.error" => crate::keyvalue::KeyValueError,
    },
    additional_derives: [PartialEq, Eq],
});

pub use exports::tally::counter::counter::Error as CounterError;
