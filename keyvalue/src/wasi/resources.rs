//! The host side of the guest's resources and errors: what the bindings map `wasi:keyvalue`'s
//! `bucket` and `error` onto (`crate::bindings`), apart from the code that uses them so the
//! bindings depend on these types alone.

use wasmtime::component::ResourceTableError;

/// The host side of a guest's `bucket` resource: the bucket it opened.
#[derive(Debug)]
pub struct Bucket {
    pub(super) name: String,
}

/// A failed keyvalue operation: a storage error the guest sees as `store.error` (the typed
/// error stays in the call's record, [`CallRecord`](super::CallRecord)), or a host fault (a bad resource handle)
/// that traps the guest.
#[derive(Debug)]
pub enum KeyValueError {
    /// Reported to the guest as `error::no-such-store`: the store does not serve the bucket.
    NoSuchStore,
    /// Reported to the guest as `error::other(message)`.
    Other(String),
    /// The guest may not open this bucket: reported as `error::access-denied`.
    Denied(String),
    /// Aborts the guest's call.
    Trap(wasmtime::Error),
}

impl From<ResourceTableError> for KeyValueError {
    fn from(error: ResourceTableError) -> Self {
        Self::Trap(error.into())
    }
}
