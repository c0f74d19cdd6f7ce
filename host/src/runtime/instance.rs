//! One instance of the counter component and its calls: each method is one call of the
//! exported interface, started (deadline, call record) and ended (the outcome) the same way,
//! and each ends in one value, the component's answer or the call's [`Failure`] made from that
//! answer and the store's record of the call ([`crate::failure::classify`]).

use super::sandbox::{HostState, Limits};
use crate::Refusal;
use crate::bindings::{
    CounterComponent, CounterError, HitOutcome, Page, Policy, SweepPage, WindowError, WindowSpec,
};
use crate::failure::{Done, Failure};
use std::sync::Arc;
use tally_keyvalue::KeyValueCtx;
use tally_keyvalue::storage::{Answer, Cursor};
use wasmtime::Store;

/// Told how every call of a runtime's instances ended: what a host logs about its store (an
/// outage starting and ending, a full store) is read from the calls, wherever they run.
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// A call ended: `failure` when it failed; `wrote`: it applied a write.
    fn call_ended(&self, failure: Option<&Failure>, wrote: bool);
}

/// How far an instance's linear memory may have grown since it started and still be reused:
/// wasm memory never shrinks, so an instance that once needed much (a large listing) is
/// replaced rather than kept large.
pub const MAX_MEMORY_GROWTH: usize = 1 << 20;

/// What every instance of a runtime shares.
#[derive(Debug)]
pub(super) struct Shared {
    /// What one instance may use.
    pub(super) limits: Limits,
    /// How failures name the store.
    pub(super) store_name: Arc<str>,
    /// The largest value the store holds.
    pub(super) counter_limit: u64,
    /// Told how each call ended.
    pub(super) calls: Option<Arc<dyn CallObserver>>,
}

/// One instance of the counter component. Each method is one call of the exported interface,
/// whose outcome is one value: the answer, or the call's [`Failure`] (see
/// [`crate::failure::classify`] for the precedence).
///
/// An instance may serve several calls (the RESP listener runs a pipeline's commands on one,
/// and a runtime that reuses instances runs several requests on one): each call gets the whole
/// deadline and reports only its own store failures. After a call that trapped the instance
/// may be broken; it is never reused, and a caller should make a fresh one.
pub struct Instance {
    store: Store<HostState>,
    bindings: CounterComponent,
    shared: Arc<Shared>,
    /// How the next calls' writes are answered.
    answer: Answer,
    /// Requests served, counting the current one.
    requests: u32,
    /// A call trapped, failed, or needed its grace period: the instance is not reused.
    broken: bool,
    /// Bytes of linear memory the instance started with.
    memory_at_start: usize,
    /// Where the last call's listing view left the store's listing
    /// (`tally_keyvalue::CallRecord::listing_resumes_at`).
    listing_resumes_at: Option<Cursor>,
}

/// The names with windows on one page of the store and where the listing goes on
/// ([`Instance::list_windows_from`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedWindows {
    /// Each name with windows and their length in milliseconds.
    pub windows: Vec<(String, u64)>,
    /// The page held keys that are not windows': on a store that lists in key order, no window
    /// follows.
    pub other_keys: bool,
    /// The store's position after the page; `None` on the last page.
    pub next: Option<Cursor>,
}

/// A page of counters and where the listing goes on ([`Instance::list_from`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPage {
    /// The counters, by name on stores that list by name.
    pub counters: Vec<(String, u64)>,
    /// The store's position after them, for the next page; `None` on the last page.
    pub next: Option<Cursor>,
}

/// One call on an exported interface of the instance: `$interface` is the bindings' accessor
/// of the interface, `$call` the `call_*` method, `$args` its arguments after the store, and
/// `$finish` how the interface's answer ends the call. Starts the call (deadline, record), ends
/// it (the outcome).
macro_rules! call {
    ($instance:ident, $interface:ident.$call:ident($($arg:expr),*) => $finish:ident) => {{
        $instance.store.set_epoch_deadline($instance.shared.limits.deadline_ticks);
        $instance.store.data_mut().in_grace = false;
        $instance.store.data().keyvalue.start_call($instance.answer);
        let interface = $instance.bindings.$interface();
        let answer = interface.$call(&mut $instance.store, $($arg),*).await;
        $instance.$finish(answer)
    }};
    ($instance:ident, $call:ident($($arg:expr),*)) => {
        call!($instance, tally_counter_counter.$call($($arg),*) => finish)
    };
}

/// A call of the `window` interface.
macro_rules! window_call {
    ($instance:ident, $call:ident($($arg:expr),*)) => {
        call!($instance, tally_counter_window.$call($($arg),*) => finish_window)
    };
}

impl Instance {
    /// `counter.get`
    pub async fn get(&mut self, name: &str) -> Result<Done<u64>, Failure> {
        call!(self, call_get(name))
    }

    /// `counter.increment`.
    pub async fn increment(&mut self, name: &str, by: u64) -> Result<Done<u64>, Failure> {
        call!(self, call_increment(name, by))
    }

    /// `counter.set`, after checking that the store can hold `value`: the component stores any
    /// `u64`, and a store with narrower counters (Redis) would otherwise keep a value past its
    /// own range, which it then cannot increment or import. Such a value is refused as an
    /// `overflow` before the component or the store is touched, as an increment past the limit
    /// is. (An invalid name is still the component's to refuse first.)
    pub async fn set(&mut self, name: &str, value: u64) -> Result<Done<()>, Failure> {
        if value > self.shared.counter_limit && tally_guest::name::validate(name).is_ok() {
            return Err(Failure::Refused(Refusal::new(
                CounterError::Overflow(name.to_string()),
                self.shared.counter_limit,
            )));
        }
        call!(self, call_set(name, value))
    }

    /// `counter.reset`
    pub async fn reset(&mut self, name: &str) -> Result<Done<()>, Failure> {
        call!(self, call_reset(name))
    }

    /// `counter.find`: the value, `None` if the counter was never written.
    pub async fn find(&mut self, name: &str) -> Result<Done<Option<u64>>, Failure> {
        call!(self, call_find(name))
    }

    /// `counter.find-many`: the values of `names` in their order.
    pub async fn find_many(&mut self, names: &[String]) -> Result<Done<Vec<Option<u64>>>, Failure> {
        call!(self, call_find_many(names))
    }

    /// `counter.list`
    pub async fn list(&mut self) -> Result<Done<Vec<(String, u64)>>, Failure> {
        call!(self, call_list())
    }

    /// `counter.list-page`. A cursor whose store cursor this runtime no longer remembers (it
    /// keeps the newest `tally_keyvalue::MAX_CURSORS`, and none across restarts) is refused as
    /// `invalid-page`, which is what it is, rather than the store failure the component sees.
    pub async fn list_page(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Done<Page>, Failure> {
        call!(self, call_list_page(cursor, limit))
    }

    /// Up to `limit` counters (1 to 1000) from `from`, a position an earlier page gave
    /// (`None`: the beginning), and the position after them. The component's `list-page` is
    /// called without a cursor on a view of the store that starts at `from` in pages of `limit`
    /// keys ([`tally_keyvalue::KeyValueCtx::list_from`]), so the page ends where a store page
    /// ends and the position is the store's own cursor: exact however counters are created or
    /// removed anywhere (on stores that list by key), and understood by every process on the
    /// store, after restarts too.
    pub async fn list_from(
        &mut self,
        from: Option<Cursor>,
        limit: u32,
    ) -> Result<Done<ListedPage>, Failure> {
        self.store
            .data()
            .keyvalue
            .list_from("", from, limit as usize);
        let done = call!(self, call_list_page(None, limit))?;
        let next = self.resumes_at(done.value.next.is_some(), "counters")?;
        Ok(Done {
            value: ListedPage {
                counters: done.value.counters,
                next,
            },
            replayed: done.replayed,
            durable: done.durable,
        })
    }

    /// `window.hit`: adds `cost` to the window of `spec` that holds `now_ms` and answers the
    /// window's count against `limit` under `policy`.
    pub async fn hit(
        &mut self,
        name: &str,
        spec: WindowSpec,
        cost: u64,
        limit: u64,
        policy: Policy,
        now_ms: u64,
    ) -> Result<Done<HitOutcome>, Failure> {
        window_call!(self, call_hit(name, spec, cost, limit, policy, now_ms))
    }

    /// `window.history`: the counts of the `last` windows of `length_ms` up to the one that
    /// holds `now_ms`, oldest first.
    pub async fn history(
        &mut self,
        name: &str,
        length_ms: u64,
        last: u32,
        now_ms: u64,
    ) -> Result<Done<Vec<u64>>, Failure> {
        window_call!(self, call_history(name, length_ms, last, now_ms))
    }

    /// One step of `window.sweep` from `cursor` (the component's, from the step before).
    pub async fn sweep(
        &mut self,
        cursor: Option<&str>,
        keep: u32,
        now_ms: u64,
    ) -> Result<Done<SweepPage>, Failure> {
        window_call!(self, call_sweep(cursor, keep, now_ms))
    }

    /// The names with windows on the page of `limit` store keys at `from` (a position an
    /// earlier page gave; `None`: the beginning), and the position after it, as
    /// [`Instance::list_from`] pages counters.
    pub async fn list_windows_from(
        &mut self,
        from: Option<Cursor>,
        limit: u32,
    ) -> Result<Done<ListedWindows>, Failure> {
        self.store
            .data()
            .keyvalue
            .list_from("", from, limit as usize);
        let done = window_call!(self, call_list_windows(None))?;
        let next = self.resumes_at(done.value.next.is_some(), "windows")?;
        Ok(Done {
            value: ListedWindows {
                windows: done
                    .value
                    .windows
                    .into_iter()
                    .map(|windowed| (windowed.name, windowed.length_ms))
                    .collect(),
                other_keys: done.value.other_keys,
                next,
            },
            replayed: done.replayed,
            durable: done.durable,
        })
    }

    /// Where the listing the last call read resumes: the store position after the page, when
    /// the component said more `what` follow (`more`); `None` at the end.
    fn resumes_at(&mut self, more: bool, what: &str) -> Result<Option<Cursor>, Failure> {
        match (more, self.listing_resumes_at.take()) {
            (false, _) => Ok(None),
            (true, Some(position)) => Ok(Some(position)),
            (true, None) => Err(Failure::Trap(anyhow::anyhow!(
                "the counter component said more {what} follow a page whose store listing had \
                 ended; it does not list as tally's component does"
            ))),
        }
    }

    /// The largest value the store holds (`Storage::counter_limit`): what "overflow" means here.
    pub fn counter_limit(&self) -> u64 {
        self.shared.counter_limit
    }

    /// Answers the next calls' writes as soon as the store applied them, their durability in
    /// [`Done::durable`] (`Answer::WhenApplied`): the caller must complete those futures before
    /// it acknowledges anything. `more_follow`: more writes come right after this call.
    pub fn answer_when_applied(&mut self, more_follow: bool) {
        self.answer = Answer::WhenApplied { more_follow };
    }

    /// Writes answer when durable again (the default).
    pub fn answer_when_durable(&mut self) {
        self.answer = Answer::WhenDurable;
    }

    /// The call's outcome from the component's answer and the store's record of the call.
    fn finish<T>(
        &mut self,
        answer: wasmtime::Result<Result<T, CounterError>>,
    ) -> Result<Done<T>, Failure> {
        let mut record = self.store.data().keyvalue.finish_call();
        self.listing_resumes_at = record.listing_resumes_at.take();
        let wrote = record.writes_applied > 0;
        let answer = answer.map_err(|error| {
            let state = self.store.data();
            self.shared
                .limits
                .explain(error, state.limiter.refused_memory, state.in_grace)
        });
        let outcome = crate::failure::classify(
            answer,
            record,
            self.shared.counter_limit,
            &self.shared.store_name,
        );
        // A refusal is the component's answer; any other failure may have left the instance
        // in a state no later request should meet.
        if matches!(&outcome, Err(failure) if !matches!(failure, Failure::Refused(_)))
            || self.store.data().in_grace
        {
            self.broken = true;
        }
        if let Some(calls) = &self.shared.calls {
            calls.call_ended(outcome.as_ref().err(), wrote);
        }
        outcome
    }

    /// A `window` call's outcome: its errors are the `counter` interface's but for
    /// `invalid-window`, which the component finds before it touches the store, and which ends
    /// the call as [`Failure::InvalidWindow`] unless the store's account of the call says
    /// otherwise.
    fn finish_window<T>(
        &mut self,
        answer: wasmtime::Result<Result<T, WindowError>>,
    ) -> Result<Done<T>, Failure> {
        let mut invalid_window = None;
        let answer = answer.map(|answer| {
            answer.map_err(|error| match error {
                WindowError::InvalidName(reason) => CounterError::InvalidName(reason),
                WindowError::Overflow(name) => CounterError::Overflow(name),
                WindowError::CorruptValue(name) => CounterError::CorruptValue(name),
                WindowError::StoreFailure(message) => CounterError::StoreFailure(message),
                WindowError::InvalidPage(reason) => CounterError::InvalidPage(reason),
                WindowError::InvalidWindow(reason) => {
                    invalid_window = Some(reason.clone());
                    CounterError::InvalidPage(reason)
                }
            })
        });
        match (self.finish(answer), invalid_window) {
            (Err(Failure::Refused(_)), Some(reason)) => Err(Failure::InvalidWindow(reason)),
            (outcome, _) => outcome,
        }
    }

    /// Whether the instance may serve another request, of at most `max_uses` per instance: no
    /// call of it failed, it holds no resource handle from an earlier call (a guest that kept
    /// a bucket open would carry it into the next request), and its memory stayed near its
    /// starting size.
    pub(super) fn reusable(&self, max_uses: u32) -> bool {
        let state = self.store.data();
        !self.broken
            && self.requests < max_uses
            && state.table.is_empty()
            && !state.limiter.refused_memory
            && state.limiter.memory.saturating_sub(self.memory_at_start) <= MAX_MEMORY_GROWTH
    }

    /// Readies a reused instance for the next request, whose context `keyvalue` holds: a fresh
    /// call state, that request's write context and store, and writes answered when durable.
    pub(super) fn serve(&mut self, keyvalue: KeyValueCtx) {
        self.store.data_mut().keyvalue = keyvalue;
        self.answer = Answer::WhenDurable;
        self.requests += 1;
    }
}

impl Instance {
    /// The instance `bindings` made in `store`, before its first call.
    pub(super) fn new(
        store: Store<HostState>,
        bindings: CounterComponent,
        shared: Arc<Shared>,
    ) -> Self {
        let memory_at_start = store.data().limiter.memory;
        Self {
            store,
            bindings,
            shared,
            answer: Answer::WhenDurable,
            requests: 1,
            broken: false,
            memory_at_start,
            listing_resumes_at: None,
        }
    }
}
