//! An embedder's own wasmtime host that runs tally's counter component on a storage backend of
//! its own: only `tally-keyvalue` (the `wasi:keyvalue` glue and the `Storage` trait), wasmtime,
//! and a `bindgen!` of `wit/`; nothing of tally's CLI, server or runtime.
//!
//! The backend keeps every bucket in one JSON file and rewrites it atomically (write a temporary
//! file, fsync, rename) on every change: slow, but simple and crash-safe. The component is a
//! file: `tally component --out counter.wasm` writes the one tally embeds.
//!
//!     cargo run -p tally-keyvalue --example custom_store -- counter.wasm counters.json visits 5
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tally_keyvalue::storage::apply::{WorkingCopy, apply_write};
use tally_keyvalue::storage::{
    Applied, Cursor, KeyPage, MAX_PAGE_SIZE, Storage, StorageError, StoreFuture, WriteRequest,
    Written,
};
use tally_keyvalue::{KeyValue, KeyValueCtx};
use wasmtime::component::{Component, Linker, ResourceTable};

/// The counter world from tally's contract; its `wasi:keyvalue` imports are tally-keyvalue's.
mod bindings {
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
    });
}
use bindings::CounterComponentPre;
use bindings::exports::tally::counter::counter::Error as CounterError;
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// A stored value: text where it is UTF-8 (counters are ASCII digits), else its bytes.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Stored {
    Text(String),
    Bytes(Vec<u8>),
}

impl Stored {
    fn new(bytes: Vec<u8>) -> Self {
        String::from_utf8(bytes).map_or_else(|e| Self::Bytes(e.into_bytes()), Self::Text)
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Text(text) => text.clone().into_bytes(),
            Self::Bytes(bytes) => bytes.clone(),
        }
    }
}

/// bucket -> key -> value.
type Buckets = BTreeMap<String, BTreeMap<String, Stored>>;

/// All counters in one JSON file. It declares no optional capability: no idempotency records,
/// no write groups, no increment limits, so tally-keyvalue refuses those for it.
struct JsonFileStorage {
    path: PathBuf,
    lock: Mutex<()>, // one writer at a time within this process
}

impl JsonFileStorage {
    fn read(&self) -> Result<Buckets, StorageError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| fail("parse", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Buckets::new()),
            Err(e) => Err(fail("read", e)),
        }
    }

    /// Loads the file, applies `change`, and writes the file back atomically.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut Buckets) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| StorageError::Other("poisoned".into()))?;
        let mut buckets = self.read()?;
        let outcome = change(&mut buckets)?;
        let json = serde_json::to_vec_pretty(&buckets).map_err(|e| fail("encode", e))?;
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(".".as_ref());
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail("create", e))?;
        std::io::Write::write_all(&mut temp, &json).map_err(|e| fail("write", e))?;
        temp.as_file().sync_all().map_err(|e| fail("fsync", e))?;
        temp.persist(&self.path).map_err(|e| fail("rename", e))?;
        Ok(outcome)
    }

    /// A page of keys in key order after `cursor` (the last key of the page before).
    fn page(
        &self,
        bucket: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<KeyPage, StorageError> {
        let after = cursor
            .map(|cursor| std::str::from_utf8(cursor.as_bytes()))
            .transpose()
            .map_err(|_| StorageError::Other("not a cursor of the JSON store".into()))?;
        let buckets = self.read()?;
        let Some(values) = buckets.get(bucket) else {
            return Ok(KeyPage::by_key(Vec::new(), false));
        };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut keys = values
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(k, _)| k.clone());
        let page: Vec<String> = keys.by_ref().take(limit.clamp(1, MAX_PAGE_SIZE)).collect();
        Ok(KeyPage::by_key(page, keys.next().is_some()))
    }

    /// One write, under the lock, by tally-keyvalue's rules: the new value for an increment, 0
    /// otherwise.
    fn apply(&self, request: &WriteRequest) -> Result<u64, StorageError> {
        let limit = request.limit_within(u64::MAX);
        self.update(|buckets| {
            let Ok(applied) = apply_write(
                &mut Contents(buckets),
                &request.bucket,
                &request.write,
                limit,
            );
            applied
        })
    }
}

/// The file's buckets, as the working copy the write rules read and change.
struct Contents<'a>(&'a mut Buckets);

impl WorkingCopy for Contents<'_> {
    type Error = Infallible;

    fn get(&mut self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self
            .0
            .get(bucket)
            .and_then(|b| b.get(key))
            .map(Stored::bytes))
    }

    fn put(&mut self, bucket: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), Infallible> {
        let values = self.0.entry(bucket.to_string()).or_default();
        match value {
            Some(value) => values.insert(key.to_string(), Stored::new(value)),
            None => values.remove(key),
        };
        Ok(())
    }
}

fn fail(what: &str, error: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("JSON store: cannot {what}: {error}").into())
}

/// Three methods; every other one has a default. The file is small, so each call does its work
/// right away and answers with a ready future.
impl Storage for JsonFileStorage {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let value = self.read().map(|buckets| {
            buckets
                .get(bucket)
                .and_then(|b| b.get(key))
                .map(Stored::bytes)
        });
        Box::pin(std::future::ready(value))
    }

    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, KeyPage> {
        Box::pin(std::future::ready(self.page(bucket, cursor, limit)))
    }

    fn write(&self, request: WriteRequest) -> StoreFuture<'_, Applied> {
        let written = self
            .apply(&request)
            .map(|value| Applied::durable_now(Written::applied(value)));
        Box::pin(std::future::ready(written))
    }
}

/// The embedder's own store data: WASI plus tally's keyvalue context.
struct MyState {
    table: ResourceTable,
    wasi: WasiCtx,
    keyvalue: KeyValueCtx,
}

impl WasiView for MyState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Runs the counter component (the file `component`) on `file`: `increment(name, by)`,
/// returning the new value.
async fn increment(component: &Path, file: PathBuf, name: &str, by: u64) -> Result<u64> {
    let storage = Arc::new(JsonFileStorage {
        path: file,
        lock: Mutex::new(()),
    });
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    tally_keyvalue::add_to_linker(&mut linker, |s: &mut MyState| {
        KeyValue::new(&s.keyvalue, &mut s.table)
    })?;
    let component = Component::from_file(&engine, component).map_err(|error| {
        anyhow::anyhow!("cannot load the component {}: {error}", component.display())
    })?;
    let pre = CounterComponentPre::new(linker.instantiate_pre(&component)?)?;
    let state = MyState {
        table: ResourceTable::new(),
        wasi: WasiCtx::builder().build(),
        keyvalue: KeyValueCtx::new(storage),
    };
    let mut store = Store::new(&engine, state);
    let counter = pre.instantiate_async(&mut store).await?;
    let value = counter
        .tally_counter_counter()
        .call_increment(&mut store, name, by)
        .await?;
    value.map_err(|refused| match refused {
        CounterError::InvalidName(why) => anyhow::anyhow!("invalid counter name: {why}"),
        CounterError::Overflow(name) => anyhow::anyhow!("counter {name:?} would overflow"),
        CounterError::CorruptValue(name) => anyhow::anyhow!("counter {name:?} is not a number"),
        CounterError::StoreFailure(why) => anyhow::anyhow!("the store failed: {why}"),
        CounterError::InvalidPage(why) => anyhow::anyhow!("invalid page: {why}"),
    })
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: custom_store COMPONENT FILE NAME [BY]";
    let component = args.next().context(usage)?;
    let file = args.next().context(usage)?;
    let name = args.next().context(usage)?;
    let by = args
        .next()
        .map_or(Ok(1), |by| by.parse())
        .context("BY must be a u64")?;
    let value = increment(component.as_ref(), file.into(), &name, by).await?;
    println!("{value}");
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The JSON-file store passes tally-keyvalue's storage suite (the cases for what it
    /// declares: none of the optional abilities, which it is checked to refuse).
    #[test]
    fn the_json_store_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = 0;
        tally_keyvalue::storage::suite::run(|| {
            files += 1;
            super::JsonFileStorage {
                path: dir.path().join(format!("{files}.json")),
                lock: std::sync::Mutex::new(()),
            }
        });
    }

    /// Counts survive across "restarts" (a new engine and store each call) in the JSON file.
    #[tokio::test]
    async fn counts_in_one_json_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("counters.json");
        let component = tally_test_support::COUNTER_COMPONENT_WASM.as_ref();
        assert_eq!(
            super::increment(component, file.clone(), "visits", 10)
                .await
                .unwrap(),
            10
        );
        assert_eq!(
            super::increment(component, file.clone(), "visits", 1)
                .await
                .unwrap(),
            11
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(json[""]["visits"], "11");
        assert!(
            super::increment(component, file, "", 1)
                .await
                .unwrap_err()
                .to_string()
                .contains("invalid counter name")
        );
    }
}
