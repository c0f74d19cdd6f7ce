//! The `wit-bindgen` glue: implements the exported `tally:counter/counter@0.2.1` and
//! `tally:counter/window@0.2.1` interfaces ([`counter`], [`window`]) on the imported
//! `wasi:keyvalue/store`, `wasi:keyvalue/atomics` and `wasi:keyvalue/batch` (`@0.2.0-draft`).

mod counter;
mod window;

wit_bindgen::generate!({
    path: "../wit",
    world: "tally:counter/counter-component@0.2.1",
    // The world imports another package's interfaces, so their bindings are generated here too.
    generate_all,
});

use wasi::keyvalue::store::{self, Bucket};

/// The default bucket: the identifier wasmtime's `wasi-keyvalue` and wasmCloud use.
const DEFAULT_BUCKET: &str = "";

/// The component: both exported interfaces on the same imports.
struct Component;

/// The default bucket, or why the store would not open it.
fn open() -> Result<Bucket, String> {
    store::open(DEFAULT_BUCKET).map_err(store_failure)
}

/// What a failed `increment` of `key` by `by` was, as the component tells it (the key's value
/// read back: `wasi:keyvalue` has no typed overflow or not-a-number error).
enum FailedIncrement {
    /// The sum would pass the `u64` maximum, or the store's own limit.
    Overflow,
    /// The stored value is not a decimal `u64`.
    CorruptValue,
    /// The store failed, in its words.
    StoreFailure(String),
}

/// `wasi:keyvalue` has no typed overflow or not-a-number error, so when `atomics.increment` fails
/// this reads the value back to tell the caller why. The increment itself stays one atomic call;
/// this read only classifies its failure (every host of the standard, wasmtime's included, leaves
/// the value unchanged when it refuses an increment). A store whose counters are narrower than
/// `u64` (Redis: `i64`) says "overflow" in its message, as wasmtime's and tally's hosts do.
fn explain_failed_increment(
    bucket: &Bucket,
    key: &str,
    by: u64,
    failure: store::Error,
) -> FailedIncrement {
    let says_overflow = matches!(&failure, store::Error::Other(message) if message.to_ascii_lowercase().contains("overflow"));
    match bucket.get(key) {
        Ok(Some(bytes)) => match crate::value::decode(&bytes) {
            None => FailedIncrement::CorruptValue,
            Some(current) if current.checked_add(by).is_none() || says_overflow => {
                FailedIncrement::Overflow
            }
            Some(_) => FailedIncrement::StoreFailure(store_failure(failure)),
        },
        Ok(None) if says_overflow => FailedIncrement::Overflow,
        _ => FailedIncrement::StoreFailure(store_failure(failure)),
    }
}

/// A store error in words.
fn store_failure(error: store::Error) -> String {
    match error {
        store::Error::NoSuchStore => "the host has no key-value store named \"\"".to_string(),
        store::Error::AccessDenied => "the host denied access to the key-value store".to_string(),
        store::Error::Other(message) => message,
    }
}

export!(Component);
