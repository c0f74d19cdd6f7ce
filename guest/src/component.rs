//! The `wit-bindgen` glue: implements the exported `tally:counter/counter@0.1.0` interface on the
//! imported `wasi:keyvalue/store@0.2.0-draft` and `wasi:keyvalue/atomics@0.2.0-draft`.

use crate::{name, value};

wit_bindgen::generate!({
    path: "../wit",
    world: "tally:counter/counter-component@0.1.0",
    // The world imports another package's interfaces, so their bindings are generated here too.
    generate_all,
});

use exports::tally::counter::counter::{Error, Guest};
use wasi::keyvalue::atomics;
use wasi::keyvalue::store::{self, Bucket};

/// The default bucket: the identifier wasmtime's `wasi-keyvalue` and wasmCloud use.
const DEFAULT_BUCKET: &str = "";

struct Counter;

impl Guest for Counter {
    fn get(name: String) -> Result<u64, Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        read(&open()?, &name).map(|value| value.unwrap_or(0))
    }

    fn increment(name: String, by: u64) -> Result<u64, Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        let bucket = open()?;
        atomics::increment(&bucket, &name, by)
            .map_err(|failure| explain_failed_increment(&bucket, &name, by, failure))
    }

    fn set(name: String, value: u64) -> Result<(), Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        open()?
            .set(&name, &value::encode(value))
            .map_err(store_failure)
    }

    fn reset(name: String) -> Result<(), Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        open()?.delete(&name).map_err(store_failure)
    }

    fn list() -> Result<Vec<(String, u64)>, Error> {
        let bucket = open()?;
        let mut counters = Vec::new();
        for key in all_keys(&bucket)? {
            // A key deleted between the listing and this read is simply gone.
            if let Some(value) = read(&bucket, &key)? {
                counters.push((key, value));
            }
        }
        counters.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // Some stores' listings (Redis SCAN) may return a key twice.
        counters.dedup_by(|a, b| a.0 == b.0);
        Ok(counters)
    }
}

fn open() -> Result<Bucket, Error> {
    store::open(DEFAULT_BUCKET).map_err(store_failure)
}

/// The stored value of `name`, `None` when absent.
fn read(bucket: &Bucket, name: &str) -> Result<Option<u64>, Error> {
    match bucket.get(name).map_err(store_failure)? {
        None => Ok(None),
        Some(bytes) => value::decode(&bytes)
            .map(Some)
            .ok_or_else(|| Error::CorruptValue(name.to_string())),
    }
}

/// Every key of the bucket, following `list-keys` cursors until the store says there are no more.
fn all_keys(bucket: &Bucket) -> Result<Vec<String>, Error> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = bucket.list_keys(cursor).map_err(store_failure)?;
        keys.extend(page.keys);
        match page.cursor {
            None => return Ok(keys),
            // A store that hands back the cursor it was given would loop forever.
            Some(next) if Some(next) == cursor => {
                return Err(Error::StoreFailure(format!(
                    "the store returned list-keys cursor {next} twice; refusing to loop"
                )));
            }
            Some(next) => cursor = Some(next),
        }
    }
}

/// `wasi:keyvalue` has no typed overflow or not-a-number error, so when `atomics.increment` fails
/// this reads the value back to tell the caller why. The increment itself stays one atomic call;
/// this read only classifies its failure (every host of the standard, wasmtime's included, leaves
/// the value unchanged when it refuses an increment). A store whose counters are narrower than
/// `u64` (Redis: `i64`) says "overflow" in its message, as wasmtime's and tally's hosts do.
fn explain_failed_increment(bucket: &Bucket, name: &str, by: u64, failure: store::Error) -> Error {
    let says_overflow = matches!(&failure, store::Error::Other(message) if message.to_ascii_lowercase().contains("overflow"));
    match bucket.get(name) {
        Ok(Some(bytes)) => match value::decode(&bytes) {
            None => Error::CorruptValue(name.to_string()),
            Some(current) if current.checked_add(by).is_none() || says_overflow => {
                Error::Overflow(name.to_string())
            }
            Some(_) => store_failure(failure),
        },
        Ok(None) if says_overflow => Error::Overflow(name.to_string()),
        _ => store_failure(failure),
    }
}

fn store_failure(error: store::Error) -> Error {
    Error::StoreFailure(match error {
        store::Error::NoSuchStore => "the host has no key-value store named \"\"".to_string(),
        store::Error::AccessDenied => "the host denied access to the key-value store".to_string(),
        store::Error::Other(message) => message,
    })
}

export!(Counter);
