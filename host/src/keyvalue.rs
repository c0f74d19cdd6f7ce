//! `wasi:keyvalue/store@0.2.0-draft` and `wasi:keyvalue/atomics@0.2.0-draft` for wasmtime, on any
//! [`Storage`] backend.
//!
//! The shape follows `wasmtime-wasi-keyvalue`: a context ([`KeyValueCtx`]) owned by the store's
//! data, a short-lived view ([`KeyValue`]) pairing it with the resource table, and
//! [`add_to_linker`]. This file only translates: every operation is one [`Storage`] call, run on
//! tokio's blocking pool because backends do blocking I/O.
//!
//! # Durable `wasi:keyvalue` in your own wasmtime host
//!
//! wasmtime's own `wasi:keyvalue` store is in memory. To give your components a persistent one,
//! put a [`KeyValueCtx`] over any [`Storage`] (tally's SQLite or Redis backends, or your own) in
//! your store's data and add it to your linker:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use wasmtime::component::{Linker, ResourceTable};
//! # use tally::keyvalue::{KeyValue, KeyValueCtx};
//! struct MyState { table: ResourceTable, keyvalue: KeyValueCtx /* , your WASI context ... */ }
//!
//! # fn main() -> anyhow::Result<()> {
//! let storage = Arc::new(tally::storage::SqliteStorage::open("kv.db".as_ref())?);
//! let state = MyState { table: ResourceTable::new(), keyvalue: KeyValueCtx::new(storage) };
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<MyState>::new(&engine);
//! tally::keyvalue::add_to_linker(&mut linker, |s: &mut MyState| {
//!     KeyValue::new(&s.keyvalue, &mut s.table)
//! })?;
//! // ... wasmtime_wasi::p2::add_to_linker_async, instantiate, call ...
//! # Ok(()) }
//! ```
//!
//! `examples/custom_store.rs` does all of it with a storage backend written from scratch.

use crate::bindings::wasi::keyvalue::{atomics, store};
use crate::metrics::METRICS;
use crate::storage::{Storage, StorageError};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable, ResourceTableError};

/// The host side of a guest's `bucket` resource: the bucket it opened.
#[derive(Debug)]
pub struct Bucket {
    name: String,
}

/// Per-store state of the keyvalue implementation: the storage backend and which buckets guests
/// may open.
#[derive(Clone)]
pub struct KeyValueCtx {
    storage: Arc<dyn Storage>,
    allowed_buckets: Option<Arc<BTreeSet<String>>>,
    /// Set when an operation found the store busy (locked by another process past its timeout).
    busy: Arc<AtomicBool>,
}

impl KeyValueCtx {
    /// A context whose buckets all live in `storage`; guests may open any bucket it serves.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            allowed_buckets: None,
            busy: Arc::default(),
        }
    }

    /// The same store and buckets with a fresh busy flag: one per instance, so
    /// [`KeyValueCtx::store_was_busy`] speaks of that instance's calls only.
    pub fn for_new_instance(&self) -> Self {
        Self {
            busy: Arc::default(),
            ..self.clone()
        }
    }

    /// Whether an operation since [`KeyValueCtx::for_new_instance`] failed because the store was
    /// busy: the caller may retry later (a server answers 503).
    pub fn store_was_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// Restricts guests to these buckets: opening any other is `access-denied`.
    pub fn allow_only<I: IntoIterator<Item = S>, S: Into<String>>(mut self, buckets: I) -> Self {
        self.allowed_buckets = Some(Arc::new(buckets.into_iter().map(Into::into).collect()));
        self
    }

    /// Runs one blocking storage operation on tokio's blocking pool, off the async executor,
    /// records its latency, and remembers if the store was busy.
    async fn run<T, F>(self, operation: F) -> Result<T, KeyValueError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Storage) -> Result<T, StorageError> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let storage = self.storage;
        let outcome = tokio::task::spawn_blocking(move || operation(storage.as_ref())).await;
        METRICS
            .store_operation_seconds
            .observe_duration(started.elapsed());
        let outcome =
            outcome.map_err(|join| KeyValueError::Trap(wasmtime::Error::msg(join.to_string())))?;
        if let Err(StorageError::Busy(_)) = &outcome {
            self.busy.store(true, Ordering::Relaxed);
        }
        outcome.map_err(KeyValueError::Storage)
    }
}

/// A view of a store's data that implements the keyvalue host traits.
pub struct KeyValue<'a> {
    ctx: &'a KeyValueCtx,
    table: &'a mut ResourceTable,
}

impl<'a> KeyValue<'a> {
    /// Pairs the keyvalue context with the resource table that holds the guest's buckets.
    pub fn new(ctx: &'a KeyValueCtx, table: &'a mut ResourceTable) -> Self {
        Self { ctx, table }
    }

    /// The opened bucket's name and the storage, owned, so the operation's future borrows nothing
    /// from the (non-`Sync`) resource table.
    fn target(&self, bucket: &Resource<Bucket>) -> Result<(KeyValueCtx, String), KeyValueError> {
        let name = self.table.get(bucket)?.name.clone();
        Ok((self.ctx.clone(), name))
    }
}

/// A failed keyvalue operation: a storage error the guest sees as `store.error`, or a host fault
/// (a bad resource handle, a crashed blocking task) that traps the guest.
#[derive(Debug)]
pub enum KeyValueError {
    /// Reported to the guest as `error::other(message)`.
    Storage(StorageError),
    /// The guest may not open this bucket: reported as `error::access-denied`.
    Denied(String),
    /// Aborts the guest's call.
    Trap(wasmtime::Error),
}

impl From<ResourceTableError> for KeyValueError {
    fn from(error: ResourceTableError) -> Self {
        Self::Trap(error.into())
    }
}

impl store::Host for KeyValue<'_> {
    /// Opens any allowed bucket the storage serves (SQLite and memory: every identifier; Redis:
    /// `""`). Buckets need no creation. tally's component uses `""`.
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KeyValueError> {
        if let Some(allowed) = &self.ctx.allowed_buckets
            && !allowed.contains(&identifier)
        {
            return Err(KeyValueError::Denied(identifier));
        }
        self.ctx
            .storage
            .check_bucket(&identifier)
            .map_err(KeyValueError::Storage)?;
        Ok(self.table.push(Bucket { name: identifier })?)
    }

    fn convert_error(&mut self, error: KeyValueError) -> wasmtime::Result<store::Error> {
        match error {
            KeyValueError::Storage(StorageError::NoSuchBucket(_)) => Ok(store::Error::NoSuchStore),
            KeyValueError::Denied(_) => Ok(store::Error::AccessDenied),
            KeyValueError::Storage(error) => Ok(store::Error::Other(error.to_string())),
            KeyValueError::Trap(error) => Err(error),
        }
    }
}

impl store::HostBucket for KeyValue<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.run(move |s| s.get(&name, &key)).await
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.run(move |s| s.set(&name, &key, &value)).await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.run(move |s| s.delete(&name, &key)).await
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<bool, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.run(move |s| s.exists(&name, &key)).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        let page = ctx.run(move |s| s.list_keys(&name, cursor)).await?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValue<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.run(move |s| s.increment(&name, &key, delta)).await
    }
}

/// Adds `wasi:keyvalue/store` and `wasi:keyvalue/atomics` to `linker`; `view` projects the store's
/// data onto a [`KeyValue`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValue<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, HasKeyValue>(linker, view)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValue<'a>;
}
