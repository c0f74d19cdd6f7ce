//! The instance the commands of one pipelined read from one RESP connection share: made when
//! the first of them needs it, dropped after a call that trapped.

use crate::failure::Failure;
use crate::runtime::{Instance, Lease, Runtime};
use std::sync::Arc;
use tally_keyvalue::storage::{Storage, WriteContext};

/// The instance the commands of one pipelined read share: made on the first command that needs
/// it, with `context` on every write, and dropped after a call that trapped.
pub struct Pipeline<'a> {
    runtime: &'a Runtime,
    context: WriteContext,
    /// The store its instance uses instead of the runtime's (a transaction).
    store: Option<Arc<dyn Storage>>,
    instance: Option<Lease>,
}

impl<'a> Pipeline<'a> {
    /// No instance yet; its writes will carry `context`, through `store` (a transaction over
    /// the runtime's store) when one is given.
    pub(super) fn new(
        runtime: &'a Runtime,
        context: WriteContext,
        store: Option<Arc<dyn Storage>>,
    ) -> Self {
        Self {
            runtime,
            context,
            store,
            instance: None,
        }
    }

    /// The instance, made now if there is none.
    pub async fn instance(&mut self) -> Result<&mut Instance, Failure> {
        if self.instance.is_none() {
            let instance = self
                .runtime
                .lease_for(self.context.clone(), self.store.clone(), None)
                .await
                .map_err(Failure::Trap)?;
            self.instance = Some(instance);
        }
        self.instance
            .as_deref_mut()
            .ok_or_else(|| Failure::Trap(anyhow::anyhow!("no component instance")))
    }

    /// `outcome` as it is, the instance dropped when the call trapped (it may be broken).
    pub fn settle<T>(&mut self, outcome: Result<T, Failure>) -> Result<T, Failure> {
        if matches!(
            outcome,
            Err(Failure::Trap(_) | Failure::AppliedThenFailed(_))
        ) {
            self.instance = None;
        }
        outcome
    }
}
