//! Idempotency keys on the host's side: the key a client sends with a write (HTTP's
//! `Idempotency-Key` header, the CLI's `--idempotency-key`), checked, and claimed while its
//! request runs.
//!
//! The store does the real work: it applies a keyed write once and records its outcome in the
//! same atomic step (`tally_keyvalue::storage::idempotency`), so a retry after a lost answer,
//! a crash or a restart, or on another server sharing the store, counts once. The key travels
//! from the request through the runtime to the store beside the component's write
//! (`WriteContext`), not through the component: `wasi:keyvalue` has no place for it, and the
//! component stays the only counter logic.
//!
//! What the store cannot see is a request still running: a second request with the same key
//! while the first is in flight in this process would wait for nothing and could only race it.
//! [`KeysInFlight`] refuses it instead (HTTP 409 `idempotency_key_in_use`); the client retries
//! once the first has answered, and then gets its replay.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// A client's idempotency key, checked when parsed (1 to 255 visible ASCII characters): the
/// type the store takes, so what the host accepted is what the store records.
pub use tally_keyvalue::storage::IdempotencyKey;

/// The keys of the requests running now in this process.
#[derive(Debug, Default, Clone)]
pub struct KeysInFlight {
    // A std mutex, held only to insert or remove one key, never across an await.
    keys: Arc<Mutex<HashSet<IdempotencyKey>>>,
}

impl KeysInFlight {
    /// Claims `key` for one request until the claim is dropped; while another request holds
    /// it, the refusal in words (what HTTP answers with 409).
    pub fn claim(&self, key: &IdempotencyKey) -> Result<KeyClaim, String> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if !keys.insert(key.clone()) {
            return Err(format!(
                "a request with idempotency key {:?} is still in flight; retry once it has \
                 answered (the retry then gets its answer)",
                key.as_str()
            ));
        }
        Ok(KeyClaim {
            keys: self.keys.clone(),
            key: key.clone(),
        })
    }
}

/// A key claimed by a running request; dropping it (the request answered, failed or was
/// abandoned) frees the key.
#[derive(Debug)]
pub struct KeyClaim {
    keys: Arc<Mutex<HashSet<IdempotencyKey>>>,
    key: IdempotencyKey,
}

impl Drop for KeyClaim {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_claimed_once_at_a_time() {
        let keys = KeysInFlight::default();
        let key = IdempotencyKey::parse("order-17").unwrap();
        let claim = keys.claim(&key);
        assert!(claim.is_ok());
        let refused = keys.claim(&key).unwrap_err();
        assert!(
            refused.contains("\"order-17\" is still in flight"),
            "{refused}"
        );
        assert!(
            keys.claim(&IdempotencyKey::parse("order-18").unwrap())
                .is_ok()
        );
        drop(claim);
        assert!(keys.claim(&key).is_ok());
    }

    #[test]
    fn keys_are_checked() {
        assert!(IdempotencyKey::parse("a b").is_err());
        assert_eq!(IdempotencyKey::parse("k-1").unwrap().as_str(), "k-1");
    }
}
