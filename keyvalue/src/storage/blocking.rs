//! Blocking calls (rusqlite, the synchronous Redis client) behind async store methods.
//!
//! On a multi-threaded tokio runtime (a server) the call runs on tokio's blocking pool, so a slow
//! read or a network wait never stalls the other requests on a worker thread. On a
//! current-thread runtime (a one-shot command, whose executor has nothing else to run
//! meanwhile) or outside any runtime it runs right here: the hop to a pool thread (its creation,
//! two wake-ups) would cost more than the call.

use super::StorageError;
use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `call` off the async executor where that matters (see the module documentation).
pub(crate) async fn run<T, F>(call: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() != RuntimeFlavor::CurrentThread => {
            tokio::task::spawn_blocking(call).await.map_err(|failure| {
                StorageError::Other(format!("a storage task failed: {failure}").into())
            })?
        }
        _ => call(),
    }
}
