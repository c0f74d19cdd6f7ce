//! Runs the counter component: one compiled component and linker per [`Runtime`], a sandboxed
//! instance per request ([`Runtime::lease`]), fresh or reused.
//!
//! The component is compiled (or loaded from the cache) once, then linked once into an
//! `InstancePre`; instantiating from it costs microseconds, so callers can afford a fresh instance
//! per request and no guest state ever outlives one (the model of `wasmtime serve` and Spin).
//! With [`RuntimeOptions::instance_reuse`] above 1 an instance serves up to that many requests
//! (`crate::reuse`): what belongs to a request (its write context, store, call record,
//! deadline) is set per request and per call, never carried in the instance.
//!
//! Each instance is confined: a memory limit, and an epoch deadline (a background thread ticks the
//! engine's epoch every [`EPOCH_TICK`]) after which a guest that is still running traps. A
//! misbehaving guest therefore costs its own call an error, never the process. Servers also use
//! the pooling allocator, which keeps instance memory ready for reuse.
//!
//! Each call of a [`Counter`] ends in one value: the component's answer, or the call's
//! [`Failure`] made from that answer and the store's record of the call
//! ([`crate::failure::classify`]).

use crate::Refusal;
use crate::bindings::{CounterComponent, CounterComponentPre, CounterError, Page};
use crate::compiled_cache::load_component;
use crate::failure::{Done, Failure};
use crate::idempotency::{IdempotencyKey, KeyClaim, KeysInFlight};
use crate::metrics::Metrics;
use crate::reuse::{Idle, Lease, MAX_MEMORY_GROWTH};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tally_keyvalue::storage::{Answer, Cursor, Storage, StorageError, WriteContext};
use tally_keyvalue::{KeyValue, KeyValueCtx};
use tokio::sync::Semaphore;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the engine's epoch advances; the granularity of the guest deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How long a call that passes its deadline after one of its writes was applied may still run
/// to return: the deadline stops hung guests, not the last microseconds of one that has done
/// its work, whose failure would leave an applied write behind an error. A guest still running
/// after the grace is stopped (`applied_then_failed`).
pub const APPLIED_WRITE_GRACE: Duration = Duration::from_secs(1);

/// What one pooled component instance may contain (the counter component: 3 core instances,
/// 1 memory); a component that needs more fails to instantiate, saying which limit it met.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
/// See [`CORE_INSTANCES_PER_COMPONENT`]. Each pooled memory reserves address space (not RAM).
const MEMORIES_PER_COMPONENT: u32 = 2;
/// See [`CORE_INSTANCES_PER_COMPONENT`].
const TABLES_PER_COMPONENT: u32 = 8;

/// Bytes of each pooled memory and table kept resident between instances.
const KEEP_RESIDENT: usize = 256 << 10;

/// How a [`Runtime`] runs its instances.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled components are cached between processes (`None`: compile every time).
    pub cache_dir: Option<PathBuf>,
    /// The most linear memory one instance may use, in bytes.
    pub memory_limit: usize,
    /// How long one call may run before it traps.
    pub deadline: Duration,
    /// Use the pooling allocator sized for this many simultaneous instances (servers); `None`
    /// allocates on demand (one-shot CLI calls, where reserving a pool would only cost time).
    pub pooled_instances: Option<u32>,
    /// Where to count instances and traps (and store operations); `None` counts nothing.
    pub metrics: Option<Arc<Metrics>>,
    /// How long the store keeps the record of a write made with an idempotency key
    /// (`--idempotency-retention-secs`).
    pub idempotency_retention: Duration,
    /// How failures name the store (`sqlite:PATH`, `redis://HOST:PORT/DB` without its
    /// password).
    pub store_name: Arc<str>,
    /// How many requests one instance may serve before it is replaced; 1 (the default): a
    /// fresh instance per request. Only for a component that keeps no state between calls.
    pub instance_reuse: u32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            memory_limit: 64 << 20,
            deadline: Duration::from_secs(10),
            pooled_instances: None,
            metrics: None,
            idempotency_retention: tally_keyvalue::storage::idempotency::DEFAULT_RETENTION,
            store_name: Arc::from("the store"),
            instance_reuse: 1,
        }
    }
}

/// The counter component built from `guest/` by `host/build.rs`.
pub static EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("TALLY_GUEST_WASM"));

/// Which component to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// The component embedded in this binary.
    Embedded,
    /// A component file, e.g. another build of `guest/`.
    File(PathBuf),
}

impl ComponentSource {
    fn load(&self) -> Result<(std::borrow::Cow<'static, [u8]>, String)> {
        match self {
            Self::Embedded => Ok((EMBEDDED_COMPONENT.into(), "the embedded component".into())),
            Self::File(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read component file {}", path.display()))?;
                Ok((bytes.into(), format!("component file {}", path.display())))
            }
        }
    }
}

/// What every instance's store holds: a locked-down WASI context, the resource table and the
/// keyvalue context.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    keyvalue: KeyValueCtx,
    limiter: Limiter,
    /// The current call passed its deadline after a write was applied and was given
    /// [`APPLIED_WRITE_GRACE`] to return.
    in_grace: bool,
}

/// The store's limits, remembering whether it refused the guest memory: how a trap is told to
/// be the memory limit's, without reading the error's text.
struct Limiter {
    limits: StoreLimits,
    refused_memory: bool,
    /// Bytes of linear memory the instance has (every memory's growth, allowed, summed).
    memory: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum);
        if matches!(allowed, Ok(true)) {
            self.memory += desired.saturating_sub(current);
        } else {
            self.refused_memory = true;
        }
        allowed
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The WASI the standard library of `wasm32-wasip2` links against, with nothing behind it: no
/// preopened directories, no environment, no arguments, no network, empty stdin and discarded
/// stdout/stderr. The component can reach nothing but its keyvalue store.
fn sandbox() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// A compiled, linked counter component over one storage backend.
pub struct Runtime {
    engine: Engine,
    pre: CounterComponentPre<HostState>,
    keyvalue: KeyValueCtx,
    limits: Limits,
    counter_limit: u64,
    /// The store, for readiness checks outside any instance.
    storage: Arc<dyn Storage>,
    /// With the pooling allocator, one permit per instance that may run at once, held by its
    /// [`Lease`]: a caller past them waits for a request to finish instead of failing to
    /// allocate an instance. (The pool has room for the idle instances beside them.)
    instance_slots: Option<Arc<Semaphore>>,
    /// Instances waiting for their next request.
    idle: Arc<Idle>,
    /// How long the store keeps records of keyed writes.
    idempotency_retention: Duration,
    /// The idempotency keys of the requests running now.
    keys_in_flight: KeysInFlight,
}

/// What one instance may use; kept to explain a trap in terms of the option that caused it.
#[derive(Debug, Clone)]
struct Limits {
    memory: usize,
    deadline: Duration,
    deadline_ticks: u64,
    metrics: Option<Arc<Metrics>>,
    store_name: Arc<str>,
    /// Shared by every instance of the runtime.
    log: Arc<StoreLog>,
}

impl Runtime {
    /// Compiles (or loads from `cache_dir`) the component, links it against WASI and the
    /// keyvalue store, and checks that it exports `tally:counter/counter@0.2.0`.
    pub fn new(
        source: &ComponentSource,
        options: &RuntimeOptions,
        storage: Arc<dyn Storage>,
    ) -> Result<Self> {
        let engine = Engine::new(&engine_config(options))?;
        let (wasm, origin) = source.load()?;
        let component = load_component(&engine, &wasm, &origin, options.cache_dir.as_deref())
            .map_err(
                |error| match memory_needed_at_start(options, &wasm, &origin) {
                    Some(needed) if needed > options.memory_limit as u64 => {
                        anyhow::Error::new(MemoryBelowStart {
                            needed,
                            limit: options.memory_limit,
                        })
                    }
                    _ => error,
                },
            )?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        tally_keyvalue::add_to_linker(&mut linker, |state: &mut HostState| {
            KeyValue::new(&state.keyvalue, &mut state.table)
        })?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{origin} needs an import that tally does not provide"))?;
        let pre = CounterComponentPre::new(pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
            format!("{origin} is not a tally counter component (it must export tally:counter/counter@0.2.0)")
        })?;
        start_epoch_ticker(&engine)?;
        // The first tick comes anywhere within EPOCH_TICK of the call's start, so one more than
        // the deadline's ticks stops a guest between the deadline and one tick after it.
        let deadline_ticks = options
            .deadline
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            + 1;
        let counter_limit = storage.counter_limit();
        // The counter component needs the default bucket only; nothing else is reachable.
        let mut keyvalue = KeyValueCtx::new(storage.clone()).allow_only([""]);
        if let Some(metrics) = &options.metrics {
            keyvalue = keyvalue.with_observer(metrics.clone());
        }
        Ok(Self {
            engine,
            pre,
            keyvalue,
            limits: Limits {
                memory: options.memory_limit,
                deadline: options.deadline,
                deadline_ticks: u64::try_from(deadline_ticks).unwrap_or(u64::MAX),
                metrics: options.metrics.clone(),
                store_name: options.store_name.clone(),
                log: Arc::default(),
            },
            counter_limit,
            storage,
            instance_slots: options
                .pooled_instances
                .map(|slots| Arc::new(Semaphore::new(slots as usize))),
            idle: Arc::new(Idle::new(options.instance_reuse)),
            idempotency_retention: options.idempotency_retention,
            keys_in_flight: KeysInFlight::default(),
        })
    }

    /// Claims `key`, when a request has one, for that request of this process until the claim
    /// is dropped; while another request with it is running, the refusal in words (see
    /// [`crate::idempotency`]).
    pub fn claim_idempotency_key(
        &self,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<KeyClaim>, String> {
        key.map(|key| self.keys_in_flight.claim(key)).transpose()
    }

    /// The write context of a request with `key` (when it has one): the store then applies its
    /// writes once per key and keeps the record for the retention this runtime was given. The
    /// caller should hold the key's claim ([`Runtime::claim_idempotency_key`]) meanwhile.
    pub fn write_context(&self, key: Option<&IdempotencyKey>) -> WriteContext {
        let context =
            WriteContext::default().with_idempotency_retention(self.idempotency_retention);
        match key {
            Some(key) => context.with_idempotency_key(key.clone()),
            None => context,
        }
    }

    /// Deletes expired idempotency records: how many.
    pub async fn purge_expired(&self) -> Result<usize, StorageError> {
        self.storage.purge_expired().await
    }

    /// Whether the store can be reached and written now (`Storage::check_ready`): an outage in
    /// the words every front end uses, or a store that can only be read.
    pub async fn check_store_ready(&self) -> Result<(), Failure> {
        let ready = self
            .storage
            .check_ready()
            .await
            .map_err(|failure| match failure {
                StorageError::ReadOnly(_)
                | StorageError::NoSpace(_)
                | StorageError::Misconfigured(_)
                | StorageError::Unavailable(_) => {
                    Failure::of_store(failure, &self.limits.store_name, self.counter_limit)
                }
                // Not ready, whatever else kept the store from answering.
                failure => Failure::Unavailable(crate::refusal::store_unreachable(
                    &self.limits.store_name,
                    &failure.to_string(),
                )),
            });
        self.limits.log.note(&ready, true);
        ready
    }

    /// How failures name the store.
    pub fn store_name(&self) -> &str {
        &self.limits.store_name
    }

    /// The store the instances run on.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The largest value the store holds (`Storage::counter_limit`).
    pub fn counter_limit(&self) -> u64 {
        self.counter_limit
    }

    /// A fresh instance in a fresh store, with the default write context: nothing from earlier
    /// calls survives in it.
    pub async fn instantiate(&self) -> Result<Lease> {
        let slot = self.instance_slot().await?;
        let keyvalue = self.keyvalue.for_request(WriteContext::default());
        let counter = self.instantiate_with(keyvalue).await?;
        Ok(Lease::new(counter, self.idle.clone(), slot))
    }

    /// The instance for one request whose writes carry `context`: an idle one when this runtime
    /// reuses instances and has one, a fresh one otherwise.
    pub async fn lease(&self, context: WriteContext) -> Result<Lease> {
        self.lease_over(None, context).await
    }

    /// [`Runtime::lease`], over `store` (a transaction) instead of this runtime's store when
    /// one is given.
    pub async fn lease_over(
        &self,
        store: Option<Arc<dyn Storage>>,
        context: WriteContext,
    ) -> Result<Lease> {
        let slot = self.instance_slot().await?;
        let mut keyvalue = self.keyvalue.for_request(context);
        if let Some(store) = store {
            keyvalue = keyvalue.over(store);
        }
        let counter = match self.idle.take() {
            Some(mut counter) => {
                counter.serve(keyvalue);
                if let Some(metrics) = &self.limits.metrics {
                    metrics.instances_reused.fetch_add(1, Ordering::Relaxed);
                }
                counter
            }
            None => self.instantiate_with(keyvalue).await?,
        };
        Ok(Lease::new(counter, self.idle.clone(), slot))
    }

    /// The store a [`tally_keyvalue::storage::Transaction`] can run over: this runtime's,
    /// when it applies write groups; `None` when it cannot.
    pub fn transaction_store(&self) -> Option<Arc<dyn Storage>> {
        self.storage
            .capabilities()
            .write_groups
            .then(|| self.storage.clone())
    }

    /// Whether the store can stop an increment at `limit` atomically: its own counters are no
    /// wider, or it declares increment limits.
    pub fn can_limit_increments_to(&self, limit: u64) -> bool {
        self.counter_limit <= limit || self.storage.capabilities().increment_limits
    }

    /// A permit to run one more instance (with the pooling allocator), once one is free.
    async fn instance_slot(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>> {
        match &self.instance_slots {
            Some(slots) => Ok(Some(
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .context("waiting for a free component instance")?,
            )),
            None => Ok(None),
        }
    }

    /// A fresh instance in a fresh store, serving the request `keyvalue` is for.
    async fn instantiate_with(&self, keyvalue: KeyValueCtx) -> Result<Counter> {
        let state = HostState {
            wasi: sandbox(),
            table: ResourceTable::new(),
            keyvalue,
            limiter: Limiter {
                limits: StoreLimitsBuilder::new()
                    .memory_size(self.limits.memory)
                    .trap_on_grow_failure(true)
                    .build(),
                refused_memory: false,
                memory: 0,
            },
            in_grace: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(self.limits.deadline_ticks);
        let grace_ticks = grace_ticks();
        store.epoch_deadline_callback(move |mut store| {
            let state = store.data_mut();
            if !state.in_grace && state.keyvalue.writes_applied() > 0 {
                state.in_grace = true;
                Ok(UpdateDeadline::Continue(grace_ticks))
            } else {
                Ok(UpdateDeadline::Interrupt)
            }
        });
        if let Some(metrics) = &self.limits.metrics {
            metrics.instances_created.fetch_add(1, Ordering::Relaxed);
        }
        let bindings = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .context("instantiating the counter component")?;
        let memory_at_start = store.data().limiter.memory;
        Ok(Counter {
            store,
            bindings,
            limits: self.limits.clone(),
            counter_limit: self.counter_limit,
            answer: Answer::WhenDurable,
            requests: 1,
            broken: false,
            memory_at_start,
            listing_resumes_at: None,
        })
    }
}

/// A memory limit below what the component needs to start: the pooling allocator refuses the
/// component, whatever the request.
#[derive(Debug)]
pub struct MemoryBelowStart {
    /// Bytes of linear memory the component starts with.
    pub needed: u64,
    /// The limit, in bytes.
    pub limit: usize,
}

impl std::fmt::Display for MemoryBelowStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the component needs {} MiB of memory to start, more than the memory limit of {} MiB",
            self.needed.div_ceil(1 << 20),
            self.limit >> 20
        )
    }
}

impl std::error::Error for MemoryBelowStart {}

/// The linear memory the component starts with, in bytes, when a pooled engine refused it
/// (read with an engine without a pool, so only on that error path).
fn memory_needed_at_start(options: &RuntimeOptions, wasm: &[u8], origin: &str) -> Option<u64> {
    options.pooled_instances?;
    let plain = RuntimeOptions {
        pooled_instances: None,
        ..options.clone()
    };
    let engine = Engine::new(&engine_config(&plain)).ok()?;
    let component = load_component(&engine, wasm, origin, None).ok()?;
    let pages = component.resources_required()?.max_initial_memory_size?;
    Some(pages.saturating_mul(64 << 10))
}

fn engine_config(options: &RuntimeOptions) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if let Some(instances) = options.pooled_instances {
        let mut pool = PoolingAllocationConfig::default();
        // Room for the idle instances beside the ones running, so none waits for an idle one.
        let slots = instances.saturating_add(Idle::capacity(options.instance_reuse));
        // Each component instance draws its core instances, memories and tables from pools of
        // their own (1000 each by default, whatever the component count): without these, the
        // counter component (3 core instances) could not run more than 333 at once.
        pool.total_component_instances(slots)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_memories(slots.saturating_mul(MEMORIES_PER_COMPONENT))
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .total_tables(slots.saturating_mul(TABLES_PER_COMPONENT))
            .total_stacks(slots)
            .max_memory_size(options.memory_limit)
            // Reset a reused slot's first pages with memset instead of returning them to the OS:
            // madvise on every request costs TLB shootdowns across cores and a page fault per
            // page on the next request. The counter component (64 KiB stack, see
            // .cargo/config.toml) touches little more than this.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// [`APPLIED_WRITE_GRACE`] in epoch ticks.
fn grace_ticks() -> u64 {
    u64::try_from(
        APPLIED_WRITE_GRACE
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis()),
    )
    .unwrap_or(1)
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) -> Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("tally-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("starting the epoch thread")?;
    Ok(())
}

impl Limits {
    /// A failed call as one line that names its cause (the wasm backtrace goes to the debug
    /// log): the deadline, the memory limit (`out_of_memory`: the limiter refused a
    /// `memory.grow`, which wasmtime reports as an error that is not a `Trap`), or the trap
    /// itself. Counted as a guest trap.
    fn explain(
        &self,
        error: wasmtime::Error,
        out_of_memory: bool,
        in_grace: bool,
    ) -> anyhow::Error {
        if let Some(metrics) = &self.metrics {
            metrics.guest_traps.fetch_add(1, Ordering::Relaxed);
        }
        let error = anyhow::Error::from(error);
        let why = match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) if in_grace => format!(
                "ran past its time limit of {} ms and the {} ms grace after its write, and was \
                 stopped",
                self.deadline.as_millis(),
                APPLIED_WRITE_GRACE.as_millis()
            ),
            Some(Trap::Interrupt) => format!(
                "ran past its time limit of {} ms and was stopped",
                self.deadline.as_millis()
            ),
            _ if out_of_memory => format!(
                "needed more than its memory limit of {} MiB and was stopped",
                self.memory >> 20
            ),
            Some(trap) => format!("failed with a {trap}"),
            None => return error,
        };
        tracing::debug!("guest failure: {error:?}");
        anyhow::anyhow!("the counter component {why}")
    }
}

/// One instance of the counter component. Each method is one call of the exported interface,
/// whose outcome is one value: the answer, or the call's [`Failure`] (see
/// [`crate::failure::classify`] for the precedence).
///
/// An instance may serve several calls (the RESP listener runs a pipeline's commands on one,
/// and a runtime that reuses instances runs several requests on one): each call gets the whole
/// deadline and reports only its own store failures. After a call that trapped the instance
/// may be broken; it is never reused, and a caller should make a fresh one.
pub struct Counter {
    store: Store<HostState>,
    bindings: CounterComponent,
    limits: Limits,
    counter_limit: u64,
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

/// A page of counters and where the listing goes on ([`Counter::list_from`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPage {
    /// The counters, by name on stores that list by name.
    pub counters: Vec<(String, u64)>,
    /// The store's position after them, for the next page; `None` on the last page.
    pub next: Option<Cursor>,
}

/// One call on the instance's exported interface: `$call` is the `call_*` method, `$args` its
/// arguments after the store. Starts the call (deadline, record), ends it (the outcome).
macro_rules! call {
    ($counter:ident, $call:ident($($arg:expr),*)) => {{
        $counter.store.set_epoch_deadline($counter.limits.deadline_ticks);
        $counter.store.data_mut().in_grace = false;
        $counter.store.data().keyvalue.start_call($counter.answer);
        let interface = $counter.bindings.tally_counter_counter();
        let answer = interface.$call(&mut $counter.store, $($arg),*).await;
        $counter.finish(answer)
    }};
}

impl Counter {
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
        if value > self.counter_limit && tally_guest::name::validate(name).is_ok() {
            return Err(Failure::Refused(Refusal::new(
                CounterError::Overflow(name.to_string()),
                self.counter_limit,
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
        let resumes_at = self.listing_resumes_at.take();
        let next = match (done.value.next, resumes_at) {
            (None, _) => None,
            (Some(_), Some(position)) => Some(position),
            (Some(_), None) => {
                return Err(Failure::Trap(anyhow::anyhow!(
                    "the counter component said more counters follow a page whose store listing \
                     had ended; it does not list as tally's component does"
                )));
            }
        };
        Ok(Done {
            value: ListedPage {
                counters: done.value.counters,
                next,
            },
            replayed: done.replayed,
            durable: done.durable,
        })
    }

    /// The largest value the store holds (`Storage::counter_limit`): what "overflow" means here.
    pub fn counter_limit(&self) -> u64 {
        self.counter_limit
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
            self.limits
                .explain(error, state.limiter.refused_memory, state.in_grace)
        });
        let outcome =
            crate::failure::classify(answer, record, self.counter_limit, &self.limits.store_name);
        // A refusal is the component's answer; any other failure may have left the instance
        // in a state no later request should meet.
        if matches!(&outcome, Err(failure) if !matches!(failure, Failure::Refused(_)))
            || self.store.data().in_grace
        {
            self.broken = true;
        }
        self.limits.log.note(&outcome, wrote);
        outcome
    }

    /// Whether the instance may serve another request, of at most `max_uses` per instance: no
    /// call of it failed, it holds no resource handle from an earlier call (a guest that kept
    /// a bucket open would carry it into the next request), and its memory stayed near its
    /// starting size.
    pub(crate) fn reusable(&self, max_uses: u32) -> bool {
        let state = self.store.data();
        !self.broken
            && self.requests < max_uses
            && state.table.is_empty()
            && !state.limiter.refused_memory
            && state.limiter.memory.saturating_sub(self.memory_at_start) <= MAX_MEMORY_GROWTH
    }

    /// Readies a reused instance for the next request, whose context `keyvalue` holds: a fresh
    /// call state, that request's write context and store, and writes answered when durable.
    fn serve(&mut self, keyvalue: KeyValueCtx) {
        self.store.data_mut().keyvalue = keyvalue;
        self.answer = Answer::WhenDurable;
        self.requests += 1;
    }
}

/// What the log says about the store, as the calls and readiness checks of one runtime find
/// it. An outage is said once when it starts and once when it ends, and so is a full store;
/// every other failure of the store (a write refused for lack of space, a missing right, a
/// failed commit, a lost answer, a busy database) is logged too, but at most one line per
/// [`STORE_FAILURE_LOG_INTERVAL`]: the first at once, then how many more came with the last
/// one's words. The metrics count every request.
#[derive(Debug, Default)]
struct StoreLog {
    outage: AtomicBool,
    full: AtomicBool,
    // A std mutex, held to count or to decide to log, never across an await.
    failures: std::sync::Mutex<FailureWindow>,
}

/// The rate limit of [`StoreLog`]'s failure lines.
const STORE_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Store failures since the last line.
#[derive(Debug, Default)]
struct FailureWindow {
    /// When the last line was logged.
    logged_at: Option<std::time::Instant>,
    /// Failures since then, not logged.
    suppressed: u64,
}

impl StoreLog {
    /// Notes what a call or check came to; `wrote`: it committed a write (or the store says it
    /// can commit one again), which ends a full store.
    fn note<T>(&self, outcome: &Result<T, Failure>, wrote: bool) {
        match outcome {
            Err(Failure::Unavailable(message)) => {
                if !self.outage.swap(true, Ordering::Relaxed) {
                    tracing::warn!("store outage: {message}; requests fail until it is back");
                }
            }
            Err(failure @ Failure::NoSpace(_)) => {
                self.end_outage();
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "store full: {}; writes fail until space is freed, /readyz says so",
                        failure.message()
                    );
                } else {
                    self.failed(failure);
                }
            }
            Err(
                failure @ (Failure::Misconfigured(_)
                | Failure::Busy(_)
                | Failure::OutcomeUnknown(_)
                | Failure::AppliedThenFailed(_)),
            ) => {
                self.end_outage();
                self.failed(failure);
            }
            Err(failure @ Failure::Refused(refusal))
                if matches!(refusal.error, CounterError::StoreFailure(_)) =>
            {
                self.end_outage();
                self.failed(failure);
            }
            Ok(_) => {
                self.end_outage();
                // A load first: the swap, a write to a line every core shares, only when set.
                if wrote
                    && self.full.load(Ordering::Relaxed)
                    && self.full.swap(false, Ordering::Relaxed)
                {
                    tracing::warn!("store full no more: writes commit again");
                }
            }
            Err(_) => {}
        }
    }

    /// The store answered: an outage, if one was going on, is over.
    fn end_outage(&self) {
        if self.outage.load(Ordering::Relaxed) && self.outage.swap(false, Ordering::Relaxed) {
            tracing::warn!("store outage over: the store answers again");
        }
    }

    /// Logs `failure` unless a line went out in the last [`STORE_FAILURE_LOG_INTERVAL`]; then
    /// counts it for the next line.
    fn failed(&self, failure: &Failure) {
        let mut window = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if window
            .logged_at
            .is_some_and(|at| now.duration_since(at) < STORE_FAILURE_LOG_INTERVAL)
        {
            window.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut window.suppressed);
        window.logged_at = Some(now);
        drop(window);
        if suppressed == 0 {
            tracing::warn!("store failure: {}", failure.message());
        } else {
            tracing::warn!(
                "store failure: {} ({suppressed} more since the last line)",
                failure.message()
            );
        }
    }
}
