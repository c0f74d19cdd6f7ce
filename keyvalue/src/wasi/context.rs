//! The per-store context ([`KeyValueCtx`]): the backend, the buckets a guest may open, the
//! request's write context, and the record of the current call; and the list cursors it hands
//! guests as numbers.

use super::resources::KeyValueError;
use crate::listed::ListedValues;
use crate::numbered::NumberedTable;
use crate::observer::Observer;
use crate::storage::{
    Answer, Applied, Cursor, DurableFuture, MAX_PAGE_SIZE, Storage, StorageError, StoreFuture,
    Write, WriteContext, WriteRequest,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Per-store state of the keyvalue implementation: the storage backend, which buckets guests may
/// open, who hears about operations, and what the current guest call's operations came to.
#[derive(Clone)]
pub struct KeyValueCtx {
    pub(super) storage: Arc<dyn Storage>,
    pub(super) allowed_buckets: Option<Arc<BTreeSet<String>>>,
    observer: Option<Arc<dyn Observer>>,
    write_context: WriteContext,
    /// Writes the request has sent so far, across its calls: each write's place, for its own
    /// idempotency record ([`crate::storage::IdempotencyKey::for_write`]).
    writes_sent: Arc<AtomicUsize>,
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
            writes_sent: Arc::default(),
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
            writes_sent: Arc::default(),
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
    pub(super) fn listing_step(
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
    pub(super) fn note_page(&self, bucket: &str, page: &crate::storage::KeyPage) {
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
    pub(super) fn record<T>(&self, outcome: Result<T, StorageError>) -> Result<T, KeyValueError> {
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
    pub(super) async fn read<'a, T>(&self, read: StoreFuture<'a, T>) -> Result<T, KeyValueError> {
        let started = std::time::Instant::now();
        let outcome = read.await;
        self.finish(started, outcome)
    }

    /// Keeps the values `page` brought for a `get-many` of its keys, inside a started call.
    pub(super) fn keep_listed(&self, bucket: &str, page: &crate::storage::KeyPage) {
        if let Some(listed) = &mut self.call_state().listed {
            listed.add(bucket, page);
        }
    }

    /// The values of `keys` from the call's last listed page, when all are on it.
    pub(super) fn take_listed(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Option<Vec<Option<Vec<u8>>>> {
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
        let mut request = WriteRequest::new(bucket, write)
            .with_context(&self.write_context)
            .with_answer(answer);
        // A request's writes after its first each get a record of their own.
        if let Some(key) = request.idempotency_key.take() {
            let ordinal = self.writes_sent.fetch_add(1, Ordering::Relaxed);
            request.idempotency_key = Some(key.for_write(ordinal));
        }
        request
    }

    /// Applies one write: once for its idempotency key when the request carries one, answered
    /// when applied when the call asked for it (see [`KeyValueCtx::start_call`]), durable
    /// before it returns otherwise. What it came to goes into the call's record.
    pub(super) async fn write(&self, bucket: String, write: Write) -> Result<u64, KeyValueError> {
        let started = std::time::Instant::now();
        let outcome = self.storage.submit(self.request(bucket, write)).await;
        let outcome = outcome.map(|applied| self.note(applied));
        self.finish(started, outcome)
    }

    /// Applies `writes` in order: every one is handed to the store before the first is awaited,
    /// so a store that commits in groups (SQLite) can commit them together.
    pub(super) async fn write_all(
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
    pub(super) fn remember(&self, bucket: &str, cursor: Cursor) -> u64 {
        self.cursors.remember((bucket.to_string(), cursor))
    }

    /// The cursor the guest's number stands for, if it was handed out for `bucket` and is
    /// still remembered.
    pub(super) fn recall(&self, bucket: &str, number: u64) -> Result<Cursor, KeyValueError> {
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
