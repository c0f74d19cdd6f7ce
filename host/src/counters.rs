//! The command layer under HTTP, RESP and the command line: a request's idempotency key claimed,
//! its component instance made, its calls run, and their outcome as one value
//! ([`crate::failure::Failure`], classified where each call ends). The front ends only parse
//! their input and map the outcome to their own terms.
//!
//! A request gets its own instance ([`Request`]; fresh, or reused when the runtime reuses
//! instances, see [`crate::reuse`]), except that the commands of one pipelined read from one
//! RESP connection share one ([`Pipeline`]), taken when the first of them needs it and dropped
//! after a call that trapped.

use crate::failure::Failure;
use crate::idempotency::{IdempotencyKey, KeyClaim};
use crate::reuse::Lease;
use crate::runtime::{Counter, Runtime};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tally_keyvalue::storage::{Storage, WriteContext};

/// One request's instance, with its idempotency key's claim held until it is dropped (after
/// the answer is made).
pub struct Request {
    counter: Lease,
    _claim: Option<KeyClaim>,
}

impl Request {
    /// An instance whose writes carry `key` (when there is one) to the store, which then
    /// applies them once per key. While another request of this process holds the key:
    /// [`Failure::KeyInUse`].
    pub async fn new(runtime: &Runtime, key: Option<&IdempotencyKey>) -> Result<Self, Failure> {
        let claim = runtime
            .claim_idempotency_key(key)
            .map_err(Failure::KeyInUse)?;
        let counter = runtime
            .lease(runtime.write_context(key))
            .await
            .map_err(Failure::Trap)?;
        Ok(Self {
            counter,
            _claim: claim,
        })
    }

    /// An instance for a request without a key (reads).
    pub async fn unkeyed(runtime: &Runtime) -> Result<Self, Failure> {
        Self::new(runtime, None).await
    }
}

impl Deref for Request {
    type Target = Counter;

    fn deref(&self) -> &Counter {
        &self.counter
    }
}

impl DerefMut for Request {
    fn deref_mut(&mut self) -> &mut Counter {
        &mut self.counter
    }
}

/// The instance the commands of one pipelined read share: made on the first command that needs
/// it, with `context` on every write, and dropped after a call that trapped.
pub struct Pipeline<'a> {
    runtime: &'a Runtime,
    context: WriteContext,
    /// The store its instance uses instead of the runtime's (a transaction).
    store: Option<Arc<dyn Storage>>,
    counter: Option<Lease>,
}

impl<'a> Pipeline<'a> {
    /// No instance yet; its writes will carry `context`.
    pub fn new(runtime: &'a Runtime, context: WriteContext) -> Self {
        Self {
            runtime,
            context,
            store: None,
            counter: None,
        }
    }

    /// No instance yet; it will read and write through `store` (a transaction over the
    /// runtime's store) instead of the runtime's store.
    pub fn over(runtime: &'a Runtime, context: WriteContext, store: Arc<dyn Storage>) -> Self {
        Self {
            store: Some(store),
            ..Self::new(runtime, context)
        }
    }

    /// The instance, made now if there is none.
    pub async fn counter(&mut self) -> Result<&mut Counter, Failure> {
        if self.counter.is_none() {
            let counter = self
                .runtime
                .lease_over(self.store.clone(), self.context.clone())
                .await
                .map_err(Failure::Trap)?;
            self.counter = Some(counter);
        }
        self.counter
            .as_deref_mut()
            .ok_or_else(|| Failure::Trap(anyhow::anyhow!("no component instance")))
    }

    /// `outcome` as it is, the instance dropped when the call trapped (it may be broken).
    pub fn settle<T>(&mut self, outcome: Result<T, Failure>) -> Result<T, Failure> {
        if matches!(
            outcome,
            Err(Failure::Trap(_) | Failure::AppliedThenFailed(_))
        ) {
            self.counter = None;
        }
        outcome
    }
}
