//! Notes: small values a host keeps in a store for every process on it ([`Storage::keep_note`]).

#[cfg(doc)]
use super::Storage;
use super::idempotency;
use std::time::Duration;

/// A small value a host keeps in a store beside the data ([`Storage::keep_note`]), shared by
/// every process on that store: never a key, never listed, untouched by writes. tally keeps
/// the key that signs its list cursors in one (so every replica takes every other's cursors),
/// and the listing position each `SCAN` cursor stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its name: short visible ASCII, chosen by the host (`cursor-key`, `scan:17`).
    pub name: String,
    /// Its value: bytes, a few hundred at most in tally's use.
    pub value: Vec<u8>,
    /// How long it is kept; `None`: for good. An expired note reads as absent, may be kept
    /// anew, and is deleted by [`Storage::purge_expired`].
    pub ttl: Option<Duration>,
}

impl Note {
    /// A note kept for good.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            ttl: None,
        }
    }

    /// The same note, kept for `ttl`.
    pub fn expiring_after(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// When it expires, in milliseconds since the Unix epoch; `None` for good.
    pub fn expires_at(&self) -> Option<i64> {
        self.ttl.map(idempotency::expires_at)
    }
}
