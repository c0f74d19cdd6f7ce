//! The command layer under HTTP, RESP and the command line: one [`Service`] per process over a
//! runtime and its store. A request's idempotency key is claimed, its instance leased with the
//! claim ([`Service::request`]), its calls run, and their outcome is one value
//! ([`crate::failure::Failure`], classified where each call ends). The front ends only parse
//! their input and map the outcome to their own terms.
//!
//! What concerns the store rather than an instance lives here too: readiness, the purge of
//! expired idempotency records, whether the store runs transactions or stops increments at a
//! limit, and the log of its outages (`store_log.rs`); and windows' time and sweeps
//! (`windows.rs`, [`Clock`]).
//!
//! A request gets its own instance (fresh, or reused when the runtime reuses instances, see
//! [`crate::runtime::pool`]), except that the commands of one pipelined read from one RESP
//! connection share one ([`Pipeline`]), taken when the first of them needs it and dropped after
//! a call that trapped.

mod clock;
mod pipeline;
mod store_log;
mod windows;

pub use clock::Clock;
pub use pipeline::Pipeline;
pub use windows::Hit;

use crate::failure::Failure;
use crate::idempotency::{IdempotencyKey, KeysInFlight};
use crate::metrics::Metrics;
use crate::runtime::{ComponentSource, Lease, Runtime, RuntimeOptions};
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;
use store_log::StoreLog;
use tally_keyvalue::storage::{Storage, StorageError, WriteContext};

/// The counters of one store, served through one runtime: what every front end of a process
/// shares.
pub struct Service {
    runtime: Runtime,
    storage: Arc<dyn Storage>,
    /// How long the store keeps the record of a write made with an idempotency key
    /// (`--idempotency-retention-secs`).
    idempotency_retention: Duration,
    /// The idempotency keys of the requests running now.
    keys_in_flight: KeysInFlight,
    /// What the log says about the store; also told every call's outcome by the runtime.
    log: Arc<StoreLog>,
    /// Where windows' "now" comes from.
    clock: Clock,
    /// Where hits and sweeps are counted.
    metrics: Option<Arc<Metrics>>,
}

impl Service {
    /// Starts the runtime of `source` with `options` over `storage`; keyed writes are
    /// remembered for `idempotency_retention`.
    pub fn new(
        source: &ComponentSource,
        options: &RuntimeOptions,
        storage: Arc<dyn Storage>,
        idempotency_retention: Duration,
    ) -> Result<Self> {
        let log = Arc::new(StoreLog::default());
        let options = RuntimeOptions {
            calls: Some(log.clone()),
            ..options.clone()
        };
        Ok(Self {
            runtime: Runtime::new(source, &options, storage.clone())?,
            storage,
            idempotency_retention,
            keys_in_flight: KeysInFlight::default(),
            log,
            clock: Clock::default(),
            metrics: options.metrics.clone(),
        })
    }

    /// Now, by the service's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> Result<u64, Failure> {
        self.clock.now_ms()
    }

    /// The same service with windows' time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The instance for one request, its writes carrying `key` (when there is one) to the store,
    /// which then applies them once per key. While another request of this process holds the
    /// key: [`Failure::KeyInUse`]. The key stays claimed until the lease is dropped (after the
    /// answer is made).
    pub async fn request(&self, key: Option<&IdempotencyKey>) -> Result<Lease, Failure> {
        let claim = key
            .map(|key| self.keys_in_flight.claim(key))
            .transpose()
            .map_err(Failure::KeyInUse)?;
        self.runtime
            .lease_for(self.write_context(key), None, claim)
            .await
            .map_err(Failure::Trap)
    }

    /// The instance for a request without a key (reads).
    pub async fn read(&self) -> Result<Lease, Failure> {
        self.request(None).await
    }

    /// The instance the commands of one pipelined read share, its writes carrying `context`.
    pub fn pipeline(&self, context: WriteContext) -> Pipeline<'_> {
        Pipeline::new(&self.runtime, context, None)
    }

    /// [`Service::pipeline`] over `store` (a transaction over the service's store).
    pub fn pipeline_over(&self, context: WriteContext, store: Arc<dyn Storage>) -> Pipeline<'_> {
        Pipeline::new(&self.runtime, context, Some(store))
    }

    /// The write context of a request with `key` (when it has one): the store then applies its
    /// writes once per key and keeps the record for the retention this service was given.
    fn write_context(&self, key: Option<&IdempotencyKey>) -> WriteContext {
        let context =
            WriteContext::default().with_idempotency_retention(self.idempotency_retention);
        match key {
            Some(key) => context.with_idempotency_key(key.clone()),
            None => context,
        }
    }

    /// How long keyed writes are remembered.
    pub fn idempotency_retention(&self) -> Duration {
        self.idempotency_retention
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
                    Failure::of_store(failure, self.store_name(), self.counter_limit())
                }
                // Not ready, whatever else kept the store from answering.
                failure => Failure::Unavailable(crate::refusal::store_unreachable(
                    self.store_name(),
                    &failure.to_string(),
                )),
            });
        self.log.note(ready.as_ref().err(), true);
        ready
    }

    /// The runtime the requests' instances come from.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// How failures name the store.
    pub fn store_name(&self) -> &str {
        self.runtime.store_name()
    }

    /// The store the counters are in.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The largest value the store holds (`Storage::counter_limit`).
    pub fn counter_limit(&self) -> u64 {
        self.runtime.counter_limit()
    }

    /// The store a [`tally_keyvalue::storage::Transaction`] can run over: this service's,
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
        self.counter_limit() <= limit || self.storage.capabilities().increment_limits
    }
}
