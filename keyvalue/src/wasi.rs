//! `wasi:keyvalue/store`, `wasi:keyvalue/atomics` and `wasi:keyvalue/batch` (`@0.2.0-draft`) for
//! wasmtime, on any [`Storage`] backend.
//!
//! The shape follows `wasmtime-wasi-keyvalue`: a context ([`KeyValueCtx`]) owned by the store's
//! data, a short-lived view ([`KeyValue`]) pairing it with the resource table, and
//! [`add_to_linker`]. This file only translates: reads await the [`Storage`] method, writes go
//! through [`dyn Storage::submit`] with the context of the request the instance serves
//! ([`WriteContext`], set per request by [`KeyValueCtx::for_request`]: its idempotency key,
//! which comes from the host beside the guest's write since `wasi:keyvalue` has no place for
//! it, and its increment limit).
//!
//! The guest sees a store failure only as `store.error` text; the context keeps the typed
//! [`StorageError`] in the call's [`CallRecord`] (with the writes applied, a replay, and the
//! durability of writes answered early), which the host takes when the call ends
//! ([`KeyValueCtx::finish_call`]) and reads as one value instead of flags.
//!
//! A `get-many` whose keys all came in the call's last `list-keys` page (what a guest
//! listing values does) is answered from the values the store read with that page, when it read
//! them ([`crate::storage::KeyPage::values`]): one store read per page instead of two
//! (`listed`, and [`KeyValueCtx::start_call`] for when it applies).
//!
//! `list-keys` cursors are `u64` in the standard but opaque bytes in [`Storage`] (the last key
//! for SQLite): the context hands the guest a number per page and keeps the real cursor in a
//! table that every instance made from the same [`KeyValueCtx`] shares, so a listing can go on in
//! a later instance (a server's next request). The table keeps the newest [`MAX_CURSORS`]; an
//! older or unknown number is an error that says to list again from the start. A host that
//! hands listings to clients of several processes resumes them itself instead, at the store's
//! own cursor ([`KeyValueCtx::list_from`]), which any process on the store understands.

use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::listed::ListedValues;
use crate::numbered::NumberedTable;
use crate::observer::Observer;
use crate::storage::{
    Answer, Applied, Cursor, DurableFuture, MAX_PAGE_SIZE, Storage, StorageError, StoreFuture,
    Write, WriteContext, WriteRequest,
};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable, ResourceTableError};

/// The host side of a guest's `bucket` resource: the bucket it opened.
#[derive(Debug)]
pub struct Bucket {
    name: String,
}

/// Per-store state of the keyvalue implementation: the storage backend, which buckets guests may
/// open, who hears about operations, and what the current guest call's operations came to.
#[derive(Clone)]
pub struct KeyValueCtx {
    storage: Arc<dyn Storage>,
    allowed_buckets: Option<Arc<BTreeSet<String>>>,
    observer: Option<Arc<dyn Observer>>,
    write_context: WriteContext,
    // A std mutex, held only to record or take, never across an await.
    call: Arc<Mutex<CallState>>,
    cursors: Arc<NumberedTable<(String, Cursor)>>,
}

/// How many list cursors a context remembers (each a key of at most a few hundred bytes).
pub const MAX_CURSORS: usize = 4096;

/// The current guest call: how its writes are answered, its record so far, (inside a call
/// the host started) the values its last `list-keys` page brought, and the view of a listing
/// the host set for it.
#[derive(Default)]
struct CallState {
    answer: Answer,
    record: CallRecord,
    listed: Option<ListedValues>,
    view: Option<ListingView>,
}

/// A listing as the host lets one call see it ([`KeyValueCtx::list_from`]): the bucket starts at
/// `start`, and pages hold `page_size` keys between them.
struct ListingView {
    bucket: String,
    start: Option<Cursor>,
    page_size: usize,
    /// Keys the call's pages have held so far.
    served: usize,
}

/// What one guest call's store operations came to ([`KeyValueCtx::finish_call`]): every
/// failure as the store reported it (the guest saw only its text), how many writes the store
/// applied, whether one was answered from its idempotency record, and the durability of the
/// writes answered early ([`Answer::WhenApplied`]), which the host must complete before it
/// acknowledges them.
#[derive(Default)]
pub struct CallRecord {
    /// The failures, in the order they happened.
    pub failures: Vec<StorageError>,
    /// How many writes the store applied (replays not counted).
    pub writes_applied: usize,
    /// A write was answered from its idempotency key's record: nothing was applied for it.
    pub replayed: bool,
    /// The durability of the writes answered when applied.
    pub durable: Vec<DurableFuture>,
    /// For a call that listed through a view ([`KeyValueCtx::list_from`]): where the store's
    /// listing goes on after the last page the call was given; `None` when that page was the
    /// store's last (or the call listed nothing).
    pub listing_resumes_at: Option<Cursor>,
}

impl std::fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecord")
            .field("failures", &self.failures)
            .field("writes_applied", &self.writes_applied)
            .field("replayed", &self.replayed)
            .field("durable", &self.durable.len())
            .field("listing_resumes_at", &self.listing_resumes_at)
            .finish()
    }
}

impl KeyValueCtx {
    /// A context whose buckets all live in `storage`; guests may open any bucket it serves.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            allowed_buckets: None,
            observer: None,
            write_context: WriteContext::default(),
            call: Arc::default(),
            cursors: Arc::new(NumberedTable::new(MAX_CURSORS, 0)),
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

    /// The same store, buckets, observer and list cursors for one request: a call state of its
    /// own, and `context` on every write the guest makes while it serves that request. A host
    /// that reuses an instance for several requests gives it a fresh one per request, so no
    /// idempotency key, limit, failure or pending durability passes from one to the next.
    pub fn for_request(&self, context: WriteContext) -> Self {
        Self {
            write_context: context,
            call: Arc::default(),
            ..self.clone()
        }
    }

    /// The same context over `storage` instead (a [`crate::storage::Transaction`] over this
    /// context's store, say), with the same buckets, observer and list cursors.
    pub fn over(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// Starts a guest call: an empty record, and its writes answered as `answer` says
    /// ([`Answer::WhenApplied`]: each returns to the guest as soon as the store applied it,
    /// and its durability waits in the record for the host to complete before it answers
    /// anyone).
    ///
    /// Until [`KeyValueCtx::finish_call`], a `get-many` of keys that all came in the call's
    /// last `list-keys` page, with no `get-many` or write between, is answered from the values
    /// the store read with that page ([`crate::storage::KeyPage::values`]) instead of a second
    /// read: the page is one point in time for keys and values. Outside a started call every
    /// `get-many` reads the store.
    pub fn start_call(&self, answer: Answer) {
        let mut call = self.call_state();
        call.answer = answer;
        call.record = CallRecord::default();
        call.listed = Some(ListedValues::default());
    }

    /// Lets the next call see `bucket`'s listing from `start` (a cursor of an earlier page, from
    /// this process or another; `None`: the beginning) in pages that hold `page_size` keys
    /// between them: the guest's `list-keys` without a cursor answers the page at `start`, and
    /// pages after it are sized so that the call's keys add up to `page_size` (each at least
    /// one). The call's [`CallRecord::listing_resumes_at`] says where the listing goes on.
    ///
    /// A host that hands listing positions to its clients uses this instead of the guest's own
    /// cursor: a guest that returns every key of the pages it reads (tally's counter component
    /// asked for `page_size` counters does) then ends its page where the store's ends, and the
    /// store's cursor, which every process on the store understands, is where the next page
    /// starts. Cleared when the call finishes.
    pub fn list_from(&self, bucket: &str, start: Option<Cursor>, page_size: usize) {
        self.call_state().view = Some(ListingView {
            bucket: bucket.to_string(),
            start,
            page_size: page_size.clamp(1, MAX_PAGE_SIZE),
            served: 0,
        });
    }

    /// How many writes the current call has had applied so far.
    pub fn writes_applied(&self) -> usize {
        self.call_state().record.writes_applied
    }

    /// Ends a guest call: what its operations came to. Writes answered when durable again, and
    /// the listing's view (if any) cleared.
    pub fn finish_call(&self) -> CallRecord {
        let mut call = self.call_state();
        call.answer = Answer::WhenDurable;
        call.listed = None;
        call.view = None;
        std::mem::take(&mut call.record)
    }

    /// Where a `list-keys` of `bucket` with the guest's `cursor` starts, and how many keys its
    /// page holds: the view's, when the host set one for the bucket.
    fn listing_step(
        &self,
        bucket: &str,
        cursor: Option<u64>,
    ) -> Result<(Option<Cursor>, usize), KeyValueError> {
        let view = {
            let call = self.call_state();
            call.view
                .as_ref()
                .filter(|view| view.bucket == bucket)
                .map(|view| {
                    let size = view.page_size.saturating_sub(view.served).max(1);
                    (view.start.clone(), size)
                })
        };
        match (cursor, view) {
            (None, Some((start, size))) => Ok((start, size)),
            (Some(number), view) => Ok((
                Some(self.recall(bucket, number)?),
                view.map_or(MAX_PAGE_SIZE, |(_, size)| size),
            )),
            (None, None) => Ok((None, MAX_PAGE_SIZE)),
        }
    }

    /// Notes a page a `list-keys` of `bucket` answered, for the view's count and the call's
    /// record of where the listing goes on.
    fn note_page(&self, bucket: &str, page: &crate::storage::KeyPage) {
        let mut call = self.call_state();
        let CallState { view, record, .. } = &mut *call;
        if let Some(view) = view.as_mut().filter(|view| view.bucket == bucket) {
            view.served += page.keys.len();
            record.listing_resumes_at.clone_from(&page.cursor);
        }
    }

    /// The call state. Every change to it is one assignment or push, which a panic elsewhere
    /// while it was held (poisoning) cannot leave half-made: it is used anyway, and no failure
    /// or durability is ever dropped.
    fn call_state(&self) -> std::sync::MutexGuard<'_, CallState> {
        self.call
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells the observer how long an operation took, and [`KeyValueCtx::record`]s its outcome.
    fn finish<T>(
        &self,
        started: std::time::Instant,
        outcome: Result<T, StorageError>,
    ) -> Result<T, KeyValueError> {
        if let Some(observer) = &self.observer {
            observer.store_operation(started.elapsed());
        }
        self.record(outcome)
    }

    /// Keeps a failure in the call's record and hands the guest its words.
    fn record<T>(&self, outcome: Result<T, StorageError>) -> Result<T, KeyValueError> {
        outcome.map_err(|failure| {
            let reported = match &failure {
                StorageError::NoSuchBucket(_) => KeyValueError::NoSuchStore,
                failure => KeyValueError::Other(failure.to_string()),
            };
            self.call_state().record.failures.push(failure);
            reported
        })
    }

    /// Runs one read with the observer timing it and the failure recorded.
    async fn read<'a, T>(&self, read: StoreFuture<'a, T>) -> Result<T, KeyValueError> {
        let started = std::time::Instant::now();
        let outcome = read.await;
        self.finish(started, outcome)
    }

    /// Keeps the values `page` brought for a `get-many` of its keys, inside a started call.
    fn keep_listed(&self, bucket: &str, page: &crate::storage::KeyPage) {
        if let Some(listed) = &mut self.call_state().listed {
            listed.add(bucket, page);
        }
    }

    /// The values of `keys` from the call's last listed page, when all are on it.
    fn take_listed(&self, bucket: &str, keys: &[String]) -> Option<Vec<Option<Vec<u8>>>> {
        self.call_state().listed.as_mut()?.take(bucket, keys)
    }

    /// The request for one write of this instance: its context, answered when durable or (when
    /// the host stages writes) when applied. The listed values are forgotten: the write may
    /// change them.
    fn request(&self, bucket: String, write: Write) -> WriteRequest {
        let answer = {
            let mut call = self.call_state();
            if let Some(listed) = &mut call.listed {
                listed.forget();
            }
            call.answer
        };
        WriteRequest::new(bucket, write)
            .with_context(&self.write_context)
            .with_answer(answer)
    }

    /// Applies one write: once for its idempotency key when the request carries one, answered
    /// when applied when the call asked for it (see [`KeyValueCtx::start_call`]), durable
    /// before it returns otherwise. What it came to goes into the call's record.
    async fn write(&self, bucket: String, write: Write) -> Result<u64, KeyValueError> {
        let started = std::time::Instant::now();
        let outcome = self.storage.submit(self.request(bucket, write)).await;
        let outcome = outcome.map(|applied| self.note(applied));
        self.finish(started, outcome)
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
            let outcome = write.await.map(|applied| self.note(applied));
            self.finish(started, outcome)?;
        }
        Ok(())
    }

    /// Notes in the call's record what one applied write came to (applied now, or a replay)
    /// and keeps its durability there when it is still to come; the write's value.
    fn note(&self, applied: Applied) -> u64 {
        let mut call = self.call_state();
        if applied.written.replayed {
            call.record.replayed = true;
        } else {
            call.record.writes_applied += 1;
        }
        call.record.durable.extend(applied.durable);
        applied.written.value
    }

    /// The guest's number for `cursor`, which pages `bucket`.
    fn remember(&self, bucket: &str, cursor: Cursor) -> u64 {
        self.cursors.remember((bucket.to_string(), cursor))
    }

    /// The cursor the guest's number stands for, if it was handed out for `bucket` and is
    /// still remembered.
    fn recall(&self, bucket: &str, number: u64) -> Result<Cursor, KeyValueError> {
        match self.cursors.recall(number) {
            Some((paged, cursor)) if paged == bucket => Ok(cursor),
            _ => {
                let expired = StorageError::InvalidCursor(format!(
                    "list-keys cursor {number} is unknown here or expired (the newest \
                     {MAX_CURSORS} are kept); list again from the start"
                ));
                self.record(Err(expired))
            }
        }
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

    /// The opened bucket's name and the context, owned, so the operation's future borrows
    /// nothing from the (non-`Sync`) resource table.
    fn target(&self, bucket: &Resource<Bucket>) -> Result<(KeyValueCtx, String), KeyValueError> {
        let name = self.table.get(bucket)?.name.clone();
        Ok((self.ctx.clone(), name))
    }
}

/// A failed keyvalue operation: a storage error the guest sees as `store.error` (the typed
/// error stays in the call's record, [`CallRecord`]), or a host fault (a bad resource handle)
/// that traps the guest.
#[derive(Debug)]
pub enum KeyValueError {
    /// Reported to the guest as `error::no-such-store`: the store does not serve the bucket.
    NoSuchStore,
    /// Reported to the guest as `error::other(message)`.
    Other(String),
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
            .record(self.ctx.storage.check_bucket(&identifier))?;
        Ok(self.table.push(Bucket { name: identifier })?)
    }

    fn convert_error(&mut self, error: KeyValueError) -> wasmtime::Result<store::Error> {
        match error {
            KeyValueError::NoSuchStore => Ok(store::Error::NoSuchStore),
            KeyValueError::Denied(_) => Ok(store::Error::AccessDenied),
            KeyValueError::Other(message) => Ok(store::Error::Other(message)),
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
        let (after, size) = ctx.listing_step(&name, cursor)?;
        let page = ctx
            .read(ctx.storage.list_keys(&name, after.as_ref(), size))
            .await?;
        ctx.keep_listed(&name, &page);
        ctx.note_page(&name, &page);
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor.map(|next| ctx.remember(&name, next)),
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
    /// One [`Storage::get_many`]: from SQLite, every value of one point in time. Or, for keys
    /// all listed in the call's last page, that page's values (see
    /// [`KeyValueCtx::start_call`]): one point in time too, without a second read.
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KeyValueError> {
        let (ctx, name) = self.target(&bucket)?;
        let values = match ctx.take_listed(&name, &keys) {
            Some(listed) => listed,
            None => ctx.read(ctx.storage.get_many(&name, &keys)).await?,
        };
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

    /// Counts the store operations a context makes.
    #[derive(Default)]
    struct Operations(std::sync::atomic::AtomicUsize);

    impl Observer for Operations {
        fn store_operation(&self, _: std::time::Duration) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Inside a started call, `get-many` of the keys the last `list-keys` page brought is
    /// answered from that page (one store operation for both); a write between them, a second
    /// `get-many`, keys off the page, or no started call read the store, and see its values.
    #[test]
    fn get_many_after_list_keys_answers_from_the_page() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let storage = Arc::new(crate::storage::MemoryStorage::new());
        let operations = Arc::new(Operations::default());
        let ctx = KeyValueCtx::new(storage.clone()).with_observer(operations.clone());
        let mut table = ResourceTable::new();
        let mut view = KeyValue::new(&ctx, &mut table);
        let counted = || operations.0.load(std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(async {
            for (key, value) in [("a", "1"), ("b", "2")] {
                storage
                    .write(WriteRequest::new(
                        String::new(),
                        Write::Set {
                            key: key.into(),
                            value: value.into(),
                        },
                    ))
                    .await
                    .unwrap();
            }
            let bucket = store::Host::open(&mut view, String::new()).await.unwrap();
            let borrow = || Resource::<Bucket>::new_borrow(bucket.rep());
            let entry = |key: &str, value: &str| Some((key.to_string(), value.as_bytes().to_vec()));
            let ab = || vec!["a".to_string(), "b".to_string()];

            ctx.start_call(Answer::WhenDurable);
            let page = store::HostBucket::list_keys(&mut view, borrow(), None)
                .await
                .unwrap();
            assert_eq!(page.keys, ab());
            let got = batch::Host::get_many(&mut view, borrow(), ab())
                .await
                .unwrap();
            assert_eq!(got, vec![entry("a", "1"), entry("b", "2")]);
            assert_eq!(
                counted(),
                1,
                "list-keys only: get-many answered from its page"
            );
            let again = batch::Host::get_many(&mut view, borrow(), ab())
                .await
                .unwrap();
            assert_eq!(again, got);
            assert_eq!(counted(), 2, "a second get-many reads the store");

            store::HostBucket::list_keys(&mut view, borrow(), None)
                .await
                .unwrap();
            atomics::Host::increment(&mut view, borrow(), "a".into(), 5)
                .await
                .unwrap();
            let after_write = batch::Host::get_many(&mut view, borrow(), ab())
                .await
                .unwrap();
            assert_eq!(after_write, vec![entry("a", "6"), entry("b", "2")]);
            assert_eq!(counted(), 5, "list, increment, and get-many from the store");

            store::HostBucket::list_keys(&mut view, borrow(), None)
                .await
                .unwrap();
            let off_page = vec!["a".to_string(), "zz".to_string()];
            let got = batch::Host::get_many(&mut view, borrow(), off_page)
                .await
                .unwrap();
            assert_eq!(got, vec![entry("a", "6"), None]);
            assert_eq!(counted(), 7, "a key off the page: the store is read");
            ctx.finish_call();

            store::HostBucket::list_keys(&mut view, borrow(), None)
                .await
                .unwrap();
            batch::Host::get_many(&mut view, borrow(), ab())
                .await
                .unwrap();
            assert_eq!(
                counted(),
                9,
                "outside a started call every get-many reads the store"
            );
        });
    }

    /// A cursor handed out to one instance goes on in another made from the same context, for
    /// the bucket it pages only; the oldest are forgotten past the limit, with an error that
    /// says what to do.
    #[test]
    fn cursors_outlive_instances_within_their_bucket() {
        let shared = ctx();
        let first = shared.for_request(WriteContext::default());
        let later = shared.for_request(WriteContext::default());
        let number = first.remember("", Cursor::from_bytes("k0999"));
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
            first.remember("", Cursor::from_bytes(format!("c{i}")));
        }
        let KeyValueError::Other(error) = later.recall("", number).unwrap_err() else {
            panic!("an expired cursor is a storage error, not a trap");
        };
        assert!(matches!(
            later.finish_call().failures.as_slice(),
            [
                StorageError::InvalidCursor(_),
                StorageError::InvalidCursor(_)
            ]
        ));
        assert!(
            error.to_string().contains("list again from the start"),
            "{error}"
        );
    }
}
