//! Host bindings generated from `wit/` (the same files the guest is built from).
//!
//! Only the counter world's own exports are generated here: its `wasi:keyvalue` imports are the
//! `tally-keyvalue` crate's bindings (`with:`), so the glue that implements them is that crate's.

// The generated items carry the WIT doc comments where WIT has them; the rest is plumbing.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "tally:counter/counter-component@0.2.1",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:keyvalue/store": tally_keyvalue::bindings::wasi::keyvalue::store,
        "wasi:keyvalue/atomics": tally_keyvalue::bindings::wasi::keyvalue::atomics,
        "wasi:keyvalue/batch": tally_keyvalue::bindings::wasi::keyvalue::batch,
    },
    additional_derives: [PartialEq, Eq],
});

pub use exports::tally::counter::counter::{Error as CounterError, Page};
pub use exports::tally::counter::window::{
    Error as WindowError, HitOutcome, Policy, SweepPage, WindowSpec, Windowed, WindowsPage,
};
