//! What a store can do beyond the required methods, declared once
//! ([`Storage::capabilities`]), and the refusal of what it did not declare.

#[cfg(doc)]
use super::{Note, Storage, WriteRequest, idempotency};

/// What a store can do beyond the required methods, declared once in
/// [`Storage::capabilities`]. Built from [`Capabilities::NONE`] with the `with_` methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Writes with an idempotency key are looked up, applied and recorded in one atomic step
    /// ([`idempotency`]).
    pub idempotency_records: bool,
    /// [`Storage::write_group`]: writes that commit together or not at all.
    pub write_groups: bool,
    /// Increments stop at a request's limit below [`Storage::counter_limit`], checked
    /// atomically with the write ([`WriteRequest::increment_limit`]).
    pub increment_limits: bool,
    /// [`Storage::keep_note`] and [`Storage::read_note`]: notes every process on the store
    /// shares ([`Note`]).
    pub notes: bool,
    /// [`Storage::list_keys`] lists a bucket in byte order of its keys, page after page (SQLite,
    /// PostgreSQL, memory; not Redis's `SCAN`): a host may stop a listing once it has passed
    /// the keys it wants. Nothing is refused without it.
    pub key_order: bool,
}

impl Capabilities {
    /// Nothing beyond the required methods.
    pub const NONE: Self = Self {
        idempotency_records: false,
        write_groups: false,
        increment_limits: false,
        notes: false,
        key_order: false,
    };

    /// The same, with idempotency records.
    pub const fn with_idempotency_records(mut self) -> Self {
        self.idempotency_records = true;
        self
    }

    /// The same, with write groups.
    pub const fn with_write_groups(mut self) -> Self {
        self.write_groups = true;
        self
    }

    /// The same, with increment limits.
    pub const fn with_increment_limits(mut self) -> Self {
        self.increment_limits = true;
        self
    }

    /// The same, with notes.
    pub const fn with_notes(mut self) -> Self {
        self.notes = true;
        self
    }

    /// The same, listing in key order.
    pub const fn with_key_order(mut self) -> Self {
        self.key_order = true;
        self
    }
}

/// One optional ability of a store ([`Capabilities`]), named in a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// [`Capabilities::idempotency_records`].
    IdempotencyRecords,
    /// [`Capabilities::write_groups`].
    WriteGroups,
    /// [`Capabilities::increment_limits`].
    IncrementLimits,
    /// [`Capabilities::notes`].
    Notes,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::IdempotencyRecords => "record idempotency keys",
            Self::WriteGroups => "commit several writes together (write groups)",
            Self::IncrementLimits => "stop an increment below its own counter limit",
            Self::Notes => "keep notes for the processes that share it",
        })
    }
}
