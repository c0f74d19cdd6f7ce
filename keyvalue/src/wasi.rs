//! `wasi:keyvalue/store`, `wasi:keyvalue/atomics` and `wasi:keyvalue/batch` (`@0.2.0-draft`) for
//! wasmtime, on any [`Storage`] backend.
//!
//! The shape follows `wasmtime-wasi-keyvalue`: a context ([`KeyValueCtx`]) owned by the store's
//! data, a short-lived view ([`KeyValue`]) pairing it with the resource table, and
//! [`add_to_linker`]. This file only translates: reads await the [`Storage`] method, writes go
//! through [`dyn Storage::submit`] with the context of the request that made the instance
//! ([`WriteContext`]: its idempotency key, which comes from the host beside the guest's write
//! since `wasi:keyvalue` has no place for it, and its increment limit).
//!
//! `list-keys` cursors are `u64` in the standard but opaque bytes in [`Storage`] (the last key
//! for SQLite): the context hands the guest a number per page and keeps the real cursor in a
//! table that every instance made from the same [`KeyValueCtx`] shares, so a listing can go on in
//! a later instance (a server's next request). The table keeps the newest [`MAX_CURSORS`]; an
//! older or unknown number is an error that says to list again from the start.

use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::observer::Observer;
use crate::storage::{
    Answer, Cursor, DurableFuture, MAX_PAGE_SIZE, Storage, StorageError, StoreFuture, Write,
    WriteContext, WriteRequest,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable, ResourceTableError};

/// The host side of a guest's `bucket` resource: the bucket it opened.
#[derive(Debug)]
pub struct Bucket {
    name: String,
}

/// Per-store state of the keyvalue implementation: the storage backend, which buckets guests may
/// open, who hears about operations, and what this instance's calls ran into.
#[derive(Clone)]
pub struct KeyValueCtx {
    storage: Arc<dyn Storage>,
    allowed_buckets: Option<Arc<BTreeSet<String>>>,
    observer: Option<Arc<dyn Observer>>,
    write_context: WriteContext,
    instance: Arc<InstanceState>,
    // A std mutex, held only to add or look up a cursor, never across an await.
    cursors: Arc<Mutex<CursorTable>>,
}

/// How many list cursors a context remembers (each a key of at most a few hundred bytes).
pub const MAX_CURSORS: usize = 4096;

/// What one instance's calls ran into: how they failed, so the host can answer in kind; and,
/// when the host stages writes, the durability of those not yet acknowledged.
#[derive(Default)]
struct InstanceState {
    busy: AtomicBool,
    unavailable: AtomicBool,
    overflow: AtomicBool,
    cursor_expired: AtomicBool,
    key_reused: AtomicBool,
    replayed: AtomicBool,
    staging: AtomicBool,
    more_follow: AtomicBool,
    // A std mutex, held only to push or take, never across an await.
    pending: Mutex<Vec<DurableFuture>>,
}

impl InstanceState {
    /// The staged writes' durability. A push or a take cannot leave the list half-changed, so
    /// a panic elsewhere while it was held (poisoning) does not make it wrong: it is used anyway,
    /// and no durability is ever dropped.
    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<DurableFuture>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The cursors handed out as numbers, newest [`MAX_CURSORS`], each with the bucket it pages.
#[derive(Default)]
struct CursorTable {
    last: u64,
    cursors: BTreeMap<u64, (String, Cursor)>,
}

impl KeyValueCtx {
    /// A context whose buckets all live in `storage`; guests may open any bucket it serves.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            allowed_buckets: None,
            observer: None,
            write_context: WriteContext::default(),
            instance: Arc::default(),
            cursors: Arc::default(),
        }
    }

    /// Restricts guests to these buckets: opening any other is `access-denied`.
    pub fn allow_only<I: IntoIterator<Item = S>, S: Into<String>>(mut self, buckets: I) -> Self {
        self.allowed_buckets = Some(Arc::new(buckets.into_iter().map(Into::into).collect()));
        self
    }

    /// Tells `observer` the latency of every operation.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The same store, buckets, observer and list cursors for a new instance: fresh failure
    /// flags, and `context` on every write its guest makes (the request it serves).
    pub fn for_new_instance(&self, context: WriteContext) -> Self {
        Self {
            write_context: context,
            instance: Arc::default(),
            ..self.clone()
        }
    }

    /// Makes the next call's writes staged ([`Answer::WhenApplied`]): each returns to the
    /// guest as soon as the store applied it, and its durability is kept for the host to await
    /// ([`KeyValueCtx::take_durability`]) before it answers anyone. `more_follow`: the host has
    /// more writes right behind this call (a pipeline), so the store may hold its group commit
    /// open for them. [`KeyValueCtx::stop_staging`] goes back to writes that return durable.
    pub fn stage_writes(&self, more_follow: bool) {
        self.instance.staging.store(true, Ordering::Relaxed);
        self.instance
            .more_follow
            .store(more_follow, Ordering::Relaxed);
    }

    /// Writes return when durable again (the default).
    pub fn stop_staging(&self) {
        self.instance.staging.store(false, Ordering::Relaxed);
    }

    /// The durability of every staged write since the last call: complete them all before
    /// acknowledging those writes.
    pub fn take_durability(&self) -> Vec<DurableFuture> {
        std::mem::take(&mut *self.instance.pending())
    }

    /// Forgets how earlier calls of this instance failed, so the flags below describe the next
    /// call alone: for a host that makes several calls on one instance (tally's RESP listener
    /// runs a pipeline's commands on one).
    pub fn start_call(&self) {
        for flag in [
            &self.instance.busy,
            &self.instance.unavailable,
            &self.instance.overflow,
            &self.instance.cursor_expired,
            &self.instance.key_reused,
            &self.instance.replayed,
        ] {
            flag.store(false, Ordering::Relaxed);
        }
    }

    /// Whether an operation of this instance failed because the store was busy (locked by
    /// another process past its timeout): the caller may retry later.
    pub fn store_was_busy(&self) -> bool {
        self.instance.busy.load(Ordering::Relaxed)
    }

    /// Whether an operation of this instance failed because the store could not be reached: the
    /// caller may retry later.
    pub fn store_was_unavailable(&self) -> bool {
        self.instance.unavailable.load(Ordering::Relaxed)
    }

    /// Whether an increment of this instance was refused because it would pass the store's
    /// counter limit ([`StorageError::Overflow`]): a typed signal, where the guest only sees the
    /// error's text.
    pub fn increment_overflowed(&self) -> bool {
        self.instance.overflow.load(Ordering::Relaxed)
    }

    /// Whether a write of this instance carried an idempotency key that was first used for
    /// another write ([`StorageError::IdempotencyKeyReused`]): nothing was applied.
    pub fn idempotency_key_reused(&self) -> bool {
        self.instance.key_reused.load(Ordering::Relaxed)
    }

    /// Whether a write of this instance was answered from the record of its idempotency key
    /// (a retry of a write applied before): nothing was applied now.
    pub fn write_was_replayed(&self) -> bool {
        self.instance.replayed.load(Ordering::Relaxed)
    }

    /// Whether a `list-keys` call of this instance was given a cursor this context does not
    /// (or no longer) remember: the listing must start again.
    pub fn cursor_expired(&self) -> bool {
        self.instance.cursor_expired.load(Ordering::Relaxed)
    }

    /// Records how an operation failed and tells the observer how long it took.
    fn finish<T>(
        &self,
        started: std::time::Instant,
        outcome: Result<T, StorageError>,
    ) -> Result<T, KeyValueError> {
        if let Some(observer) = &self.observer {
            observer.store_operation(started.elapsed());
        }
        let flag = match &outcome {
            Err(StorageError::Busy(_)) => Some(&self.instance.busy),
            Err(StorageError::Unavailable(_)) => Some(&self.instance.unavailable),
            Err(StorageError::Overflow { .. }) => Some(&self.instance.overflow),
            Err(StorageError::IdempotencyKeyReused { .. }) => Some(&self.instance.key_reused),
            _ => None,
        };
        if let Some(flag) = flag {
            flag.store(true, Ordering::Relaxed);
        }
        outcome.map_err(KeyValueError::Storage)
    }

    /// Runs one read with the observer timing it and the failure recorded.
    async fn read<'a, T>(&self, read: StoreFuture<'a, T>) -> Result<T, KeyValueError> {
        let started = std::time::Instant::now();
        let outcome = read.await;
        self.finish(started, outcome)
    }

    /// The request for one write of this instance: its context, answered when durable or (when
    /// the host stages writes) when applied.
    fn request(&self, bucket: String, write: Write) -> WriteRequest {
        let answer = if self.instance.staging.load(Ordering::Relaxed) {
            Answer::WhenApplied {
                more_follow: self.instance.more_follow.load(Ordering::Relaxed),
            }
        } else {
            Answer::WhenDurable
        };
        WriteRequest::new(bucket, write)
            .with_context(&self.write_context)
            .with_answer(answer)
    }

    /// Applies one write: once for its idempotency key when the request carries one, staged
    /// when the host asked for it (see [`KeyValueCtx::stage_writes`]), durable before it
    /// returns otherwise.
    async fn write(&self, bucket: String, write: Write) -> Result<u64, KeyValueError> {
        let started = std::time::Instant::now();
        let outcome = self.storage.submit(self.request(bucket, write)).await;
        let outcome = match outcome {
            Ok(applied) => match applied.durable {
                Some(durable) => {
                    self.instance.pending().push(durable);
                    Ok(applied.written)
                }
                None => Ok(applied.written),
            },
            Err(failure) => Err(failure),
        };
        if outcome.as_ref().is_ok_and(|written| written.replayed) {
            self.instance.replayed.store(true, Ordering::Relaxed);
        }
        self.finish(started, outcome.map(|written| written.value))
    }

    /// Applies `writes` in order: every one is handed to the store before the first is awaited,
    /// so a store that commits in groups (SQLite) can commit them together.
    async fn write_all(
        &self,
        bucket: String,
        writes: impl Iterator<Item = Write>,
    ) -> Result<(), KeyValueError> {
        let pending: Vec<_> = writes
            .map(|write| self.storage.submit(self.request(bucket.clone(), write)))
            .collect();
        for write in pending {
            let started = std::time::Instant::now();
            let outcome = match write.await {
                Ok(applied) => applied.durable().await.map(|_| ()),
                Err(failure) => Err(failure),
            };
            self.finish(started, outcome)?;
        }
        Ok(())
    }

    /// The guest's number for `cursor`, which pages `bucket`.
    fn remember(&self, bucket: &str, cursor: Cursor) -> Result<u64, KeyValueError> {
        let mut table = self.cursors.lock().map_err(poisoned)?;
        table.last += 1;
        let number = table.last;
        table.cursors.insert(number, (bucket.to_string(), cursor));
        while table.cursors.len() > MAX_CURSORS {
            table.cursors.pop_first();
        }
        Ok(number)
    }

    /// The cursor the guest's number stands for, if it was handed out for `bucket` and is
    /// still remembered.
    fn recall(&self, bucket: &str, number: u64) -> Result<Cursor, KeyValueError> {
        let table = self.cursors.lock().map_err(poisoned)?;
        match table.cursors.get(&number) {
            Some((paged, cursor)) if paged == bucket => Ok(cursor.clone()),
            _ => {
                self.instance.cursor_expired.store(true, Ordering::Relaxed);
                Err(KeyValueError::Storage(StorageError::Backend(format!(
                    "list-keys cursor {number} is unknown here or expired (the newest {MAX_CURSORS} \
                 are kept); list again from the start"
                ))))
            }
        }
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> KeyValueError {
    KeyValueError::Trap(wasmtime::Error::msg("keyvalue cursor table poisoned"))
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

    /// The opened bucket's name and the context, owned, so the operation's future borrows
    /// nothing from the (non-`Sync`) resource table.
    fn target(&self, bucket: &Resource<Bucket>) -> Result<(KeyValueCtx, String), KeyValueError> {
        let name = self.table.get(bucket)?.name.clone();
        Ok((self.ctx.clone(), name))
    }
}

/// A failed keyvalue operation: a storage error the guest sees as `store.error`, or a host fault
/// (a bad resource handle, a crashed blocking task) that traps the guest.
#[derive(Debug)]
pub enum KeyValueError {
    /// Reported to the guest as `error::other(message)` (`no-such-store` for an unserved
    /// bucket).
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
    /// `""`). Buckets need no creation.
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
        ctx.read(ctx.storage.get(&name, &key)).await
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.write(name, Write::Set { key, value }).await.map(|_| ())
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.write(name, Write::Delete { key }).await.map(|_| ())
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<bool, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.read(ctx.storage.exists(&name, &key)).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        let after = cursor.map(|number| ctx.recall(&name, number)).transpose()?;
        let page = ctx
            .read(ctx.storage.list_keys(&name, after.as_ref(), MAX_PAGE_SIZE))
            .await?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page
                .cursor
                .map(|next| ctx.remember(&name, next))
                .transpose()?,
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
        ctx.write(name, Write::Increment { key, delta }).await
    }
}

impl batch::Host for KeyValue<'_> {
    /// One [`Storage::get_many`]: from SQLite, every value of one point in time.
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        let values = ctx.read(ctx.storage.get_many(&name, &keys)).await?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    /// The writes in order, all queued before the first is awaited (SQLite commits them
    /// together). Not atomic, as the standard says: after a failure, the writes before it stand.
    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        let writes = key_values
            .into_iter()
            .map(|(key, value)| Write::Set { key, value });
        ctx.write_all(name, writes).await
    }

    /// Like `set-many`: in order, not atomic.
    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        ctx.write_all(name, keys.into_iter().map(|key| Write::Delete { key }))
            .await
    }
}

/// Adds `wasi:keyvalue/store`, `wasi:keyvalue/atomics` and `wasi:keyvalue/batch` to `linker`
/// (what `wasmtime-wasi-keyvalue` adds); `view` projects the store's data onto a [`KeyValue`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValue<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, HasKeyValue>(linker, view)?;
    batch::add_to_linker::<_, HasKeyValue>(linker, view)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValue<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> KeyValueCtx {
        KeyValueCtx::new(Arc::new(crate::storage::MemoryStorage::new()))
    }

    /// `wasi:keyvalue/batch` through the host traits, as a guest calls them: `set-many` and
    /// `delete-many` apply in order, `get-many` answers in the order asked with absent keys as
    /// `none`.
    #[test]
    fn batch_operations() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let storage = Arc::new(crate::storage::MemoryStorage::new());
        let ctx = KeyValueCtx::new(storage.clone());
        let mut table = ResourceTable::new();
        let mut view = KeyValue::new(&ctx, &mut table);
        runtime.block_on(async {
            let bucket = store::Host::open(&mut view, String::new()).await.unwrap();
            let borrow = || Resource::<Bucket>::new_borrow(bucket.rep());
            let pairs = |pairs: &[(&str, &str)]| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect::<Vec<_>>()
            };
            batch::Host::set_many(
                &mut view,
                borrow(),
                pairs(&[("a", "1"), ("b", "2"), ("a", "3")]),
            )
            .await
            .unwrap();
            batch::Host::delete_many(&mut view, borrow(), vec!["b".into(), "zz".into()])
                .await
                .unwrap();
            let got = batch::Host::get_many(&mut view, borrow(), vec!["a".into(), "b".into()])
                .await
                .unwrap();
            assert_eq!(got, vec![Some(("a".to_string(), b"3".to_vec())), None]);
        });
        assert_eq!(
            runtime.block_on(storage.get("", "a")).unwrap(),
            Some(b"3".to_vec())
        );
    }

    /// A cursor handed out to one instance goes on in another made from the same context, for
    /// the bucket it pages only; the oldest are forgotten past the limit, with an error that
    /// says what to do.
    #[test]
    fn cursors_outlive_instances_within_their_bucket() {
        let shared = ctx();
        let first = shared.for_new_instance(WriteContext::default());
        let later = shared.for_new_instance(WriteContext::default());
        let number = first.remember("", Cursor::from_bytes("k0999")).unwrap();
        assert_eq!(
            later.recall("", number).unwrap(),
            Cursor::from_bytes("k0999")
        );
        assert!(later.recall("other", number).is_err());
        assert!(
            ctx().recall("", number).is_err(),
            "another context shares nothing"
        );
        for i in 0..MAX_CURSORS {
            first
                .remember("", Cursor::from_bytes(format!("c{i}")))
                .unwrap();
        }
        let KeyValueError::Storage(error) = later.recall("", number).unwrap_err() else {
            panic!("an expired cursor is a storage error, not a trap");
        };
        assert!(
            error.to_string().contains("list again from the start"),
            "{error}"
        );
    }
}
