//! Component instances kept between requests: a [`Lease`] is one request's instance (with the
//! request's idempotency key claim and its `--max-instances` permit), and when the request ends
//! a healthy instance waits in its runtime's `Idle` list for the next one instead of being torn
//! down.
//!
//! Making an instance and tearing it down cost a large share of an increment's CPU (the
//! profiles are in `docs/benchmarks.md`), and the counter component holds no state between
//! calls by contract (`wit/counter.wit`). Reuse is bounded the way `wasmtime serve
//! --max-instance-reuse-count` bounds it: an instance serves at most `max_uses` requests; one
//! whose call trapped, failed, ran into its grace period, grew its memory past
//! [`MAX_MEMORY_GROWTH`] or left a resource handle open is dropped at once
//! (`Instance::reusable`). Everything that belongs to a request is set per request, not per
//! instance: its write context (idempotency key, increment limit, retention) and store, and its
//! call record, deadline and answer mode are reset per call.
//!
//! Idle instances hold no `--max-instances` permit: a permit is held by a [`Lease`], so a
//! request never waits behind an idle instance; the pooling allocator gets
//! [`MAX_IDLE_INSTANCES`] more slots than permits, so a fresh instance always finds one.

use super::instance::Instance;
#[cfg(doc)]
use super::instance::MAX_MEMORY_GROWTH;
use crate::idempotency::KeyClaim;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedSemaphorePermit;

/// How many requests an instance of the embedded component serves by default
/// (`--instance-reuse`); measured in `docs/benchmarks.md`.
pub const EMBEDDED_INSTANCE_REUSE: u32 = 128;

/// The most instances a runtime keeps idle. More than the requests a 2-core machine runs at
/// once; past it, instances are dropped as before reuse.
pub const MAX_IDLE_INSTANCES: u32 = 64;

/// A runtime's idle instances, ready for the next request.
pub(super) struct Idle {
    // A std mutex: held to push or pop, never across an await.
    instances: Mutex<Vec<Instance>>,
    /// The most requests one instance serves.
    max_uses: u32,
}

impl Idle {
    /// Keeps instances for up to `max_uses` requests each (1: none are kept).
    pub(super) fn new(max_uses: u32) -> Self {
        Self {
            instances: Mutex::new(Vec::new()),
            max_uses,
        }
    }

    /// How many idle instances this list may hold: the pool slots it needs beside the permits.
    pub(super) fn capacity(max_uses: u32) -> u32 {
        if max_uses > 1 { MAX_IDLE_INSTANCES } else { 0 }
    }

    /// The most recently used idle instance (its memory is the likeliest to be in cache).
    pub(super) fn take(&self) -> Option<Instance> {
        self.list().pop()
    }

    /// Keeps `counter` for another request if it may serve one and there is room; drops it
    /// (outside the lock) otherwise.
    fn give_back(&self, instance: Instance) {
        if !instance.reusable(self.max_uses) {
            return;
        }
        let mut idle = self.list();
        if idle.len() < Self::capacity(self.max_uses) as usize {
            idle.push(instance);
            return;
        }
        drop(idle);
        drop(instance);
    }

    /// The list. Every change is one push or pop, which a panic elsewhere cannot leave
    /// half-made, so a poisoned lock is used anyway.
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One request's component instance, fresh or reused, with the claim of the request's
/// idempotency key and the `--max-instances` permit it runs under. Dropped, it hands the
/// instance back to the idle list (which keeps it only if it may be reused), then releases the
/// claim and the permit.
pub struct Lease {
    instance: Option<Instance>,
    idle: Arc<Idle>,
    // Declared after `instance`: released after the instance went back or was dropped.
    _claim: Option<KeyClaim>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Lease {
    pub(super) fn new(
        instance: Instance,
        idle: Arc<Idle>,
        claim: Option<KeyClaim>,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Self {
        Self {
            instance: Some(instance),
            idle,
            _claim: claim,
            _slot: slot,
        }
    }
}

impl Deref for Lease {
    type Target = Instance;

    fn deref(&self) -> &Instance {
        self.instance
            .as_ref()
            .expect("a lease holds its instance until it is dropped")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Instance {
        self.instance
            .as_mut()
            .expect("a lease holds its instance until it is dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            self.idle.give_back(instance);
        }
    }
}
