//! `wasi:keyvalue/store`, `wasi:keyvalue/atomics` and `wasi:keyvalue/batch` (`@0.2.0-draft`) for
//! wasmtime, on any [`Storage`](crate::storage::Storage) backend.
//!
//! The shape follows `wasmtime-wasi-keyvalue`: a context ([`KeyValueCtx`]) owned by the store's
//! data, a short-lived view ([`KeyValue`]) pairing it with the resource table, and
//! [`add_to_linker`]. This file only translates: reads await the [`Storage`](crate::storage::Storage) method, writes go
//! through [`dyn Storage::submit`](crate::storage::Storage) with the context of the request the instance serves
//! ([`WriteContext`](crate::storage::WriteContext), set per request by [`KeyValueCtx::for_request`]: its idempotency key,
//! which comes from the host beside the guest's write since `wasi:keyvalue` has no place for
//! it, and its increment limit).
//!
//! The guest sees a store failure only as `store.error` text; the context keeps the typed
//! [`StorageError`](crate::storage::StorageError) in the call's [`CallRecord`] (with the writes applied, a replay, and the
//! durability of writes answered early), which the host takes when the call ends
//! ([`KeyValueCtx::finish_call`]) and reads as one value instead of flags.
//!
//! A `get-many` whose keys all came in the call's last `list-keys` page (what a guest
//! listing values does) is answered from the values the store read with that page, when it read
//! them ([`crate::storage::KeyPage::values`]): one store read per page instead of two
//! (`listed`, and [`KeyValueCtx::start_call`] for when it applies).
//!
//! `list-keys` cursors are `u64` in the standard but opaque bytes in [`Storage`](crate::storage::Storage) (the last key
//! for SQLite): the context hands the guest a number per page and keeps the real cursor in a
//! table that every instance made from the same [`KeyValueCtx`] shares, so a listing can go on in
//! a later instance (a server's next request). The table keeps the newest [`MAX_CURSORS`]; an
//! older or unknown number is an error that says to list again from the start. A host that
//! hands listings to clients of several processes resumes them itself instead, at the store's
//! own cursor ([`KeyValueCtx::list_from`]), which any process on the store understands.
//!
//! The files: `context.rs` (the context and the call record), `host.rs` (the host traits, one
//! operation each), `resources.rs` (the bucket resource and the error the bindings map to).

mod context;
mod host;
pub(crate) mod resources;

pub use context::{CallRecord, KeyValueCtx, MAX_CURSORS};
pub use resources::{Bucket, KeyValueError};

use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

/// A view of a store's data that implements the keyvalue host traits.
pub struct KeyValue<'a> {
    ctx: &'a KeyValueCtx,
    table: &'a mut ResourceTable,
}

impl<'a> KeyValue<'a> {
    /// Pairs the keyvalue context with the resource table that holds the guest's buckets.
    pub fn new(ctx: &'a KeyValueCtx, table: &'a mut ResourceTable) -> Self {
        Self { ctx, table }
    }

    /// The opened bucket's name and the context, owned, so the operation's future borrows
    /// nothing from the (non-`Sync`) resource table.
    fn target(&self, bucket: &Resource<Bucket>) -> Result<(KeyValueCtx, String), KeyValueError> {
        let name = self.table.get(bucket)?.name.clone();
        Ok((self.ctx.clone(), name))
    }
}

/// Adds `wasi:keyvalue/store`, `wasi:keyvalue/atomics` and `wasi:keyvalue/batch` to `linker`
/// (what `wasmtime-wasi-keyvalue` adds); `view` projects the store's data onto a [`KeyValue`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValue<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, HasKeyValue>(linker, view)?;
    batch::add_to_linker::<_, HasKeyValue>(linker, view)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValue<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::Observer;
    use crate::storage::{
        Answer, Cursor, Storage, StorageError, Write, WriteContext, WriteRequest,
    };
    use std::sync::Arc;

    fn ctx() -> KeyValueCtx {
        KeyValueCtx::new(Arc::new(crate::storage::MemoryStorage::new()))
    }

    /// `wasi:keyvalue/batch` through the host traits, as a guest calls them: `set-many` and
    /// `delete-many` apply in order, `get-many` answers in the order asked with absent keys as
    /// `none`.
    #[test]
    fn batch_operations() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let storage = Arc::new(crate::storage::MemoryStorage::new());
        let ctx = KeyValueCtx::new(storage.clone());
        let mut table = ResourceTable::new();
        let mut view = KeyValue::new(&ctx, &mut table);
        runtime.block_on(async {
            let bucket = store::Host::open(&mut view, String::new()).await.unwrap();
            let borrow = || Resource::<Bucket>::new_borrow(bucket.rep());
            let pairs = |pairs: &[(&str, &str)]| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect::<Vec<_>>()
            };
            batch::Host::set_many(
                &mut view,
                borrow(),
                pairs(&[("a", "1"), ("b", "2"), ("a", "3")]),
            )
            .await
            .unwrap();
            batch::Host::delete_many(&mut view, borrow(), vec!["b".into(), "zz".into()])
                .await
                .unwrap();
            let got = batch::Host::get_many(&mut view, borrow(), vec!["a".into(), "b".into()])
                .await
                .unwrap();
            assert_eq!(got, vec![Some(("a".to_string(), b"3".to_vec())), None]);
        });
        assert_eq!(
            runtime.block_on(storage.get("", "a")).unwrap(),
            Some(b"3".to_vec())
        );
    }

    /// A request with an idempotency key applies each of its writes once: its first write under
    /// the key, each later one under a key of its own place, so a retry of the whole request
    /// (the same writes, in order, under the same key) is answered from the records, applying
    /// nothing, where one record for all the writes would refuse the second as another write.
    #[test]
    fn a_keyed_request_applies_each_of_its_writes_once() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let storage = Arc::new(crate::storage::MemoryStorage::new());
        let ctx = KeyValueCtx::new(storage.clone());
        let key = crate::storage::IdempotencyKey::parse("hit-1").unwrap();
        let keyed = || WriteContext::default().with_idempotency_key(key.clone());
        let request = |delta: u64| {
            let request = ctx.for_request(keyed());
            request.start_call(Answer::WhenDurable);
            let applied = runtime.block_on(async {
                let count = request
                    .write(
                        String::new(),
                        Write::Increment {
                            key: "count".into(),
                            delta,
                        },
                    )
                    .await
                    .map_err(|error| format!("{error:?}"))?;
                request
                    .write(
                        String::new(),
                        Write::Increment {
                            key: "other".into(),
                            delta: 10,
                        },
                    )
                    .await
                    .map_err(|error| format!("{error:?}"))?;
                Ok::<_, String>(count)
            });
            (applied, request.finish_call())
        };
        let (first, record) = request(1);
        assert_eq!(first, Ok(1));
        assert_eq!((record.writes_applied, record.replayed), (2, false));
        let (retry, record) = request(1);
        assert_eq!(retry, Ok(1));
        assert_eq!((record.writes_applied, record.replayed), (0, true));
        for (name, value) in [("count", &b"1"[..]), ("other", &b"10"[..])] {
            assert_eq!(
                runtime.block_on(storage.get("", name)).unwrap().as_deref(),
                Some(value),
                "{name}"
            );
        }
        // The same key for another first write is refused, as for a request of one write.
        let (other, _) = request(2);
        let refused = other.unwrap_err();
        assert!(refused.contains("was first used"), "{refused}");
    }

    /// Counts the store operations a context makes.
    #[derive(Default)]
    struct Operations(std::sync::atomic::AtomicUsize);

    impl Observer for Operations {
        fn store_operation(&self, _: std::time::Duration) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Inside a started call, `get-many` of the keys the last `list-keys` page brought is
    /// answered from that page (one store operation for both); a write between them, a second
    /// `get-many`, keys off the page, or no started call read the store, and see its values.
    #[test]
    fn get_many_after_list_keys_answers_from_the_page() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let storage = Arc::new(crate::storage::MemoryStorage::new());
        let operations = Arc::new(Operations::default());
        let ctx = KeyValueCtx::new(storage.clone()).with_observer(operations.clone());
        let mut table = ResourceTable::new();
        let mut view = KeyValue::new(&ctx, &mut table);
        let counted = || operations.0.load(std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(async {
            for (key, value) in [("a", "1"), ("b", "2")] {
                storage
                    .write(WriteRequest::new(
                        String::new(),
                        Write::Set {
                            key: key.into(),
                            value: value.into(),
                        },
                    ))
                    .await
                    .unwrap();
            }
            let bucket = store::Host::open(&mut view, String::new()).await.unwrap();
            let borrow = || Resource::<Bucket>::new_borrow(bucket.rep());
            let entry = |key: &str, value: &str| Some((key.to_string(), value.as_bytes().to_vec()));
            let ab = || vec!["a".to_string(), "b".to_string()];

            ctx.start_call(Answer::WhenDurable);
            let page = store::HostBucket::list_keys(&mut view, borrow(), None)
                .await
                .unwrap();
            assert_eq!(page.keys, ab());
            let got = batch::Host::get_many(&mut view, borrow(), ab())
                .await
                .unwrap();
            assert_eq!(got, vec![entry("a", "1"), entry("b", "2")]);
            assert_eq!(
                counted(),
                1,
                "list-keys only: get-many answered from its page"
            );
            let again = batch::Host::get_many(&mut view, borrow(), ab())
                .await
                .unwrap();
            assert_eq!(again, got);
            assert_eq!(counted(), 2, "a second get-many reads the store");

            store::HostBucket::list_keys(&mut view, borrow(), None)
                .await
                .unwrap();
            atomics::Host::increment(&mut view, borrow(), "a".into(), 5)
                .await
                .unwrap();
            let after_write = batch::Host::get_many(&mut view, borrow(), ab())
                .await
                .unwrap();
            assert_eq!(after_write, vec![entry("a", "6"), entry("b", "2")]);
            assert_eq!(counted(), 5, "list, increment, and get-many from the store");

            store::HostBucket::list_keys(&mut view, borrow(), None)
                .await
                .unwrap();
            let off_page = vec!["a".to_string(), "zz".to_string()];
            let got = batch::Host::get_many(&mut view, borrow(), off_page)
                .await
                .unwrap();
            assert_eq!(got, vec![entry("a", "6"), None]);
            assert_eq!(counted(), 7, "a key off the page: the store is read");
            ctx.finish_call();

            store::HostBucket::list_keys(&mut view, borrow(), None)
                .await
                .unwrap();
            batch::Host::get_many(&mut view, borrow(), ab())
                .await
                .unwrap();
            assert_eq!(
                counted(),
                9,
                "outside a started call every get-many reads the store"
            );
        });
    }

    /// A cursor handed out to one instance goes on in another made from the same context, for
    /// the bucket it pages only; the oldest are forgotten past the limit, with an error that
    /// says what to do.
    #[test]
    fn cursors_outlive_instances_within_their_bucket() {
        let shared = ctx();
        let first = shared.for_request(WriteContext::default());
        let later = shared.for_request(WriteContext::default());
        let number = first.remember("", Cursor::from_bytes("k0999"));
        assert_eq!(
            later.recall("", number).unwrap(),
            Cursor::from_bytes("k0999")
        );
        assert!(later.recall("other", number).is_err());
        assert!(
            ctx().recall("", number).is_err(),
            "another context shares nothing"
        );
        for i in 0..MAX_CURSORS {
            first.remember("", Cursor::from_bytes(format!("c{i}")));
        }
        let KeyValueError::Other(error) = later.recall("", number).unwrap_err() else {
            panic!("an expired cursor is a storage error, not a trap");
        };
        assert!(matches!(
            later.finish_call().failures.as_slice(),
            [
                StorageError::InvalidCursor(_),
                StorageError::InvalidCursor(_)
            ]
        ));
        assert!(
            error.to_string().contains("list again from the start"),
            "{error}"
        );
    }
}
