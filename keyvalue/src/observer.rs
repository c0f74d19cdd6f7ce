//! What a host may want to know about its store, handed in rather than recorded globally: an
//! embedder that sets no [`Observer`] records nothing, and one process may run several stores
//! that report to different places.
//!
//! Every method has an empty default, so an observer implements only what it records, and a
//! new event added here later breaks no existing observer.

use std::time::Duration;

/// Receives events from [`crate::KeyValueCtx`] and the storage backends. Called on the hot path
/// (every operation), so an implementation should only bump counters.
pub trait Observer: Send + Sync + 'static {
    /// One storage operation of a guest (get, set, delete, exists, list-keys, increment)
    /// finished after `elapsed`, successfully or not.
    fn store_operation(&self, elapsed: Duration) {
        let _ = elapsed;
    }

    /// The SQLite writer committed `writes` queued writes in one transaction (group commit).
    fn commit_batch(&self, writes: usize) {
        let _ = writes;
    }
}
