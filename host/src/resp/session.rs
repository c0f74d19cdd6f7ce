//! One connection's state, as mini-redis's `Handler` keeps it apart from the connection: whether
//! it authenticated, its protocol version and name, and the transaction it is queueing. The
//! commands read and change it ([`super::cmd::Context::session`]); running them is
//! [`super::dispatch`]'s.

use super::Shared;
use super::reply::Protocol;

/// One client connection's state.
pub struct Session {
    pub(in crate::resp) id: u64,
    pub(in crate::resp) authenticated: bool,
    pub(in crate::resp) protocol: Protocol,
    pub(in crate::resp) name: Option<String>,
    /// The transaction being queued, between `MULTI` and `EXEC`.
    pub(in crate::resp) transaction: Option<Queue>,
}

impl Session {
    /// A new connection: authenticated already when the server has no token.
    pub fn new(id: u64, shared: &Shared) -> Self {
        Self {
            id,
            authenticated: shared.options.auth_token.is_none(),
            protocol: Protocol::Resp2,
            name: None,
            transaction: None,
        }
    }

    /// The protocol version answers are written in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
}

/// A transaction being queued on a connection (between `MULTI` and `EXEC`).
#[derive(Debug, Default)]
pub struct Queue {
    /// The queued commands, each its arguments with the name first.
    pub(in crate::resp) commands: Vec<Vec<Vec<u8>>>,
    /// A command was refused while queueing: `EXEC` runs nothing.
    pub(in crate::resp) aborted: bool,
}

impl Queue {
    /// Queues a checked command.
    pub fn push(&mut self, args: &[Vec<u8>]) {
        self.commands.push(args.to_vec());
    }

    /// Marks the transaction as discarded at `EXEC`.
    pub fn abort(&mut self) {
        self.aborted = true;
    }
}
