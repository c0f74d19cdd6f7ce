//! Turns for `EXEC`s of this process over the same counters, so two transactions that share a
//! counter run one after the other instead of making each other run again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// Turns for transactions over the same counters: one lock per stripe of key hashes, taken in
/// order, so two transactions of this process that share a counter run one after the other.
pub struct KeyLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

/// How many stripes: enough that unrelated transactions rarely wait for each other.
const STRIPES: usize = 256;

impl Default for KeyLocks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

impl KeyLocks {
    /// Waits for the turn of every counter in `keys`.
    pub async fn lock<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = keys
            .into_iter()
            .map(|key| {
                let mut hasher = DefaultHasher::new();
                key.hash(&mut hasher);
                (hasher.finish() % STRIPES as u64) as usize
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.stripes[stripe].lock().await);
        }
        guards
    }
}
