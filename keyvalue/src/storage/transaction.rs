//! A transaction built call by call: a [`Storage`] that reads through to another store and
//! keeps its writes to itself until [`Transaction::commit`] applies them as one write group.
//!
//! A guest's calls need each write's outcome before the next call (an increment's new value),
//! so a transaction cannot be handed to the store as a finished [`WriteGroup`] up front. Run the
//! guest on a `Transaction` instead: every write is checked and applied to the transaction's own
//! view at once (the guest sees its value, or the refusal a store would give), later reads see
//! it, and the store is not touched. `commit` then sends the writes as one group that expects
//! every key the transaction read to hold what it read ([`WriteGroup::expected`]): the group
//! applies exactly what the guest saw, or, when another write came in between, nothing
//! ([`StorageError::Conflict`]) and the caller runs the transaction again on fresh reads.
//! Transactions are thus serializable on the keys they touch, without locking the store.
//!
//! A transaction lives in one bucket and cannot list keys; idempotency keys are not taken (it
//! declares no records).

use super::apply::{self, WorkingCopy};
use super::{
    Applied, Capabilities, KeyPage, Storage, StorageError, StoreFuture, Write, WriteGroup,
    WriteRequest, Written,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A transaction over a store that declares write groups ([`Capabilities::write_groups`]).
pub struct Transaction {
    store: Arc<dyn Storage>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The one bucket this transaction touches, once it touched one.
    bucket: Option<String>,
    /// What each key read from the store held then (`None`: absent).
    read: BTreeMap<String, Option<Vec<u8>>>,
    /// What each key written holds in the transaction's view.
    written: BTreeMap<String, Option<Vec<u8>>>,
    /// The writes, in order.
    writes: Vec<Write>,
}

impl State {
    /// Claims `bucket` for the transaction, or refuses a second one.
    fn enter(&mut self, bucket: &str) -> Result<(), StorageError> {
        match &self.bucket {
            Some(own) if own != bucket => Err(StorageError::Other(
                format!("a transaction writes one bucket; it is in {own:?}, not {bucket:?}").into(),
            )),
            Some(_) => Ok(()),
            None => {
                self.bucket = Some(bucket.to_string());
                Ok(())
            }
        }
    }

    /// The key's value in the transaction's view, if it has one yet.
    fn known(&self, key: &str) -> Option<Option<Vec<u8>>> {
        self.written
            .get(key)
            .or_else(|| self.read.get(key))
            .cloned()
    }
}

impl Transaction {
    /// An empty transaction over `store`.
    pub fn new(store: Arc<dyn Storage>) -> Self {
        Self {
            store,
            state: Mutex::default(),
        }
    }

    /// The state; every change to it is made whole under the lock, never across an await.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key's value in the transaction's view: its own write, or what the store held when
    /// the transaction first read it (read now, and remembered).
    async fn current(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        {
            let mut state = self.state();
            state.enter(bucket)?;
            if let Some(known) = state.known(key) {
                return Ok(known);
            }
        }
        let stored = self.store.get(bucket, key).await?;
        // Another call of the same guest cannot run meanwhile; keep the first read regardless.
        Ok(self
            .state()
            .read
            .entry(key.to_string())
            .or_insert(stored)
            .clone())
    }

    /// Applies the transaction's writes as one group that expects every key it read to hold
    /// what it read: each write's outcome, in order, once durable. On
    /// [`StorageError::Conflict`] nothing was applied. A transaction that only read is checked
    /// the same way, so its reads were one consistent view. The transaction is empty
    /// afterwards.
    pub async fn commit(&self) -> Result<Vec<u64>, StorageError> {
        let state = std::mem::take(&mut *self.state());
        let Some(bucket) = state.bucket else {
            return Ok(Vec::new());
        };
        let group = state.read.into_iter().fold(
            WriteGroup::new(bucket, state.writes),
            |group, (key, value)| group.expecting(key, value),
        );
        self.store.submit_group(group).await
    }
}

impl Storage for Transaction {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.with_increment_limits()
    }

    fn counter_limit(&self) -> u64 {
        self.store.counter_limit()
    }

    fn check_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        self.store.check_bucket(bucket)
    }

    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(self.current(bucket, key))
    }

    fn list_keys<'a>(
        &'a self,
        _bucket: &'a str,
        _cursor: Option<&'a super::Cursor>,
        _limit: usize,
    ) -> StoreFuture<'a, KeyPage> {
        Box::pin(std::future::ready(Err(StorageError::Other(
            "keys cannot be listed inside a transaction".into(),
        ))))
    }

    fn write(&self, request: WriteRequest) -> StoreFuture<'_, Applied> {
        Box::pin(async move {
            let limit = request.limit_within(self.store.counter_limit());
            // An increment reads its key: from the store the first time, then the view.
            if let Write::Increment { key, .. } = &request.write {
                self.current(&request.bucket, key).await?;
            }
            let mut state = self.state();
            state.enter(&request.bucket)?;
            let outcome = apply::apply_write(&mut *state, &request.bucket, &request.write, limit)??;
            state.writes.push(request.write);
            Ok(Applied::durable_now(Written::applied(outcome)))
        })
    }
}

/// The transaction's view is the working copy its writes apply to: a key it knows (read from
/// the store, or written) reads as it knows it, and a write lands in the view only.
impl WorkingCopy for State {
    type Error = StorageError;

    fn get(&mut self, _bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.known(key).ok_or_else(|| {
            StorageError::Other(format!("the transaction did not read {key:?} before").into())
        })
    }

    fn put(
        &mut self,
        _bucket: &str,
        key: &str,
        value: Option<Vec<u8>>,
    ) -> Result<(), StorageError> {
        self.written.insert(key.to_string(), value);
        Ok(())
    }
}
