//! Runs the counter component: one compiled component and linker per [`Runtime`], a sandboxed
//! instance per request ([`Runtime::lease`]), fresh or reused.
//!
//! The component is compiled (or loaded from the cache) once, then linked once into an
//! `InstancePre`; instantiating from it costs microseconds, so callers can afford a fresh instance
//! per request and no guest state ever outlives one (the model of `wasmtime serve` and Spin).
//! With [`RuntimeOptions::instance_reuse`] above 1 an instance serves up to that many requests
//! ([`pool`]): what belongs to a request (its write context, store, call record, deadline) is
//! set per request and per call, never carried in the instance.
//!
//! The rooms, each depending only on those after it:
//! - this file: [`Runtime`], which compiles, links and leases instances;
//! - [`pool`]: the [`Lease`] of one request's instance and the idle instances kept for reuse;
//! - [`instance`]: the [`Instance`] and its calls, each ending in one value;
//! - `sandbox`: what confines an instance (WASI with nothing behind it, a memory limit, a
//!   deadline) and the words for a call it stopped;
//! - [`component`]: which component runs, compiled or loaded from the cache;
//! - [`engine`]: the engine, its instance pool sized for the instances that may run, and the
//!   epoch clock deadlines run on.

pub mod component;
pub mod engine;
pub mod instance;
pub mod pool;
mod sandbox;

pub use component::{ComponentSource, EMBEDDED_COMPONENT, MemoryBelowStart};
pub use instance::{CallObserver, Instance, ListedPage, ListedWindows};
pub use pool::Lease;

use crate::bindings::CounterComponentPre;
use crate::idempotency::KeyClaim;
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use instance::Shared;
use pool::Idle;
use sandbox::{HostState, Limits};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tally_keyvalue::storage::{Storage, WriteContext};
use tally_keyvalue::{KeyValue, KeyValueCtx};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, UpdateDeadline};

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
    /// How failures name the store (`sqlite:PATH`, `redis://HOST:PORT/DB` without its
    /// password).
    pub store_name: Arc<str>,
    /// How many requests one instance may serve before it is replaced; 1 (the default): a
    /// fresh instance per request. Only for a component that keeps no state between calls.
    pub instance_reuse: u32,
    /// Told how every call ended (the command layer's store log); `None`: nobody.
    pub calls: Option<Arc<dyn CallObserver>>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            memory_limit: 64 << 20,
            deadline: Duration::from_secs(10),
            pooled_instances: None,
            metrics: None,
            store_name: Arc::from("the store"),
            instance_reuse: 1,
            calls: None,
        }
    }
}

/// A compiled, linked counter component over one storage backend.
pub struct Runtime {
    engine: Engine,
    pre: CounterComponentPre<HostState>,
    keyvalue: KeyValueCtx,
    shared: Arc<Shared>,
    /// With the pooling allocator, one permit per instance that may run at once, held by its
    /// [`Lease`]: a caller past them waits for a request to finish instead of failing to
    /// allocate an instance. (The pool has room for the idle instances beside them.)
    instance_slots: Option<Arc<Semaphore>>,
    /// Instances waiting for their next request.
    idle: Arc<Idle>,
}

impl Runtime {
    /// Compiles (or loads from `cache_dir`) the component, links it against WASI and the
    /// keyvalue store, and checks that it exports `tally:counter/counter@0.2.1` and
    /// `tally:counter/window@0.2.1`.
    pub fn new(
        source: &ComponentSource,
        options: &RuntimeOptions,
        storage: Arc<dyn Storage>,
    ) -> Result<Self> {
        // Room for the idle instances beside the ones running, so none waits for an idle one.
        let pool_slots = options
            .pooled_instances
            .map(|running| running.saturating_add(Idle::capacity(options.instance_reuse)));
        let engine = Engine::new(&engine::config(pool_slots, options.memory_limit))?;
        let pooled_memory_limit = pool_slots.map(|_| options.memory_limit);
        let (component, origin) = component::compile(
            &engine,
            source,
            options.cache_dir.as_deref(),
            pooled_memory_limit,
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
            format!("{origin} is not a tally counter component (it must export tally:counter/counter@0.2.1 and tally:counter/window@0.2.1)")
        })?;
        engine::start_epoch_ticker(&engine)?;
        let counter_limit = storage.counter_limit();
        // The counter component needs the default bucket only; nothing else is reachable.
        let mut keyvalue = KeyValueCtx::new(storage).allow_only([""]);
        if let Some(metrics) = &options.metrics {
            keyvalue = keyvalue.with_observer(metrics.clone());
        }
        Ok(Self {
            engine,
            pre,
            keyvalue,
            shared: Arc::new(Shared {
                limits: Limits {
                    memory: options.memory_limit,
                    deadline: options.deadline,
                    deadline_ticks: engine::deadline_ticks(options.deadline),
                    metrics: options.metrics.clone(),
                },
                store_name: options.store_name.clone(),
                counter_limit,
                calls: options.calls.clone(),
            }),
            instance_slots: options
                .pooled_instances
                .map(|slots| Arc::new(Semaphore::new(slots as usize))),
            idle: Arc::new(Idle::new(options.instance_reuse)),
        })
    }

    /// How failures name the store.
    pub fn store_name(&self) -> &str {
        &self.shared.store_name
    }

    /// The largest value the store holds (`Storage::counter_limit`).
    pub fn counter_limit(&self) -> u64 {
        self.shared.counter_limit
    }

    /// A fresh instance in a fresh store, with the default write context: nothing from earlier
    /// calls survives in it.
    pub async fn instantiate(&self) -> Result<Lease> {
        let slot = self.instance_slot().await?;
        let keyvalue = self.keyvalue.for_request(WriteContext::default());
        let instance = self.instantiate_with(keyvalue).await?;
        Ok(Lease::new(instance, self.idle.clone(), None, slot))
    }

    /// The instance for one request whose writes carry `context`: an idle one when this runtime
    /// reuses instances and has one, a fresh one otherwise.
    pub async fn lease(&self, context: WriteContext) -> Result<Lease> {
        self.lease_for(context, None, None).await
    }

    /// [`Runtime::lease`], over `store` (a transaction) instead of this runtime's store when
    /// one is given, holding `claim` (the request's idempotency key) as long as the lease.
    pub async fn lease_for(
        &self,
        context: WriteContext,
        store: Option<Arc<dyn Storage>>,
        claim: Option<KeyClaim>,
    ) -> Result<Lease> {
        let slot = self.instance_slot().await?;
        let mut keyvalue = self.keyvalue.for_request(context);
        if let Some(store) = store {
            keyvalue = keyvalue.over(store);
        }
        let instance = match self.idle.take() {
            Some(mut instance) => {
                instance.serve(keyvalue);
                if let Some(metrics) = &self.shared.limits.metrics {
                    metrics.instances_reused.fetch_add(1, Ordering::Relaxed);
                }
                instance
            }
            None => self.instantiate_with(keyvalue).await?,
        };
        Ok(Lease::new(instance, self.idle.clone(), claim, slot))
    }

    /// A permit to run one more instance (with the pooling allocator), once one is free.
    async fn instance_slot(&self) -> Result<Option<OwnedSemaphorePermit>> {
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
    async fn instantiate_with(&self, keyvalue: KeyValueCtx) -> Result<Instance> {
        let limits = &self.shared.limits;
        let mut store = Store::new(&self.engine, HostState::new(keyvalue, limits.memory));
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(limits.deadline_ticks);
        let grace_ticks = engine::grace_ticks();
        store.epoch_deadline_callback(move |mut store| {
            let state = store.data_mut();
            if !state.in_grace && state.keyvalue.writes_applied() > 0 {
                state.in_grace = true;
                Ok(UpdateDeadline::Continue(grace_ticks))
            } else {
                Ok(UpdateDeadline::Interrupt)
            }
        });
        if let Some(metrics) = &limits.metrics {
            metrics.instances_created.fetch_add(1, Ordering::Relaxed);
        }
        let bindings = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .context("instantiating the counter component")?;
        Ok(Instance::new(store, bindings, self.shared.clone()))
    }
}
