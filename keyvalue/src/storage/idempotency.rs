//! Writes that count once: the record a store keeps of a write made with an idempotency key.
//!
//! A client that never got its answer (a timeout, a reset connection, a server killed between the
//! commit and the reply) cannot tell whether its write was applied. With a key it can simply send
//! the write again: a store that records keys ([`Capabilities::idempotency_records`]) applies
//! the first write with a key and, **in the same atomic step**, records the key, a fingerprint of the write
//! and its outcome. A later write with the same key and fingerprint is not applied again: the
//! store answers the recorded outcome ([`Written::replayed`]). The same key with another
//! fingerprint is refused ([`StorageError::IdempotencyKeyReused`]). A refused write (overflow,
//! not a number) records nothing, so its retry runs again.
//!
//! Records expire after [`WriteRequest::idempotency_retention`]: a record is live until the
//! instant it expires, not at it ([`is_live`]), and an expired record counts as absent (so the
//! key is free again) whether or not it has been purged yet
//! ([`Storage::purge_expired`]).
//!
//! The key travels beside the write ([`WriteRequest`]), not through `wasi:keyvalue`, whose
//! interfaces have no place for it: the host that got the request hands it to the store.
//!
//! [`Capabilities::idempotency_records`]: super::Capabilities::idempotency_records
//! [`Storage::purge_expired`]: super::Storage::purge_expired
//! [`StorageError::IdempotencyKeyReused`]: super::StorageError::IdempotencyKeyReused
//! [`WriteRequest`]: super::WriteRequest
//! [`WriteRequest::idempotency_retention`]: super::WriteRequest::idempotency_retention

use super::{StorageError, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a record is kept unless the host says otherwise: one day, what Stripe keeps.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(86_400);

/// The longest key, in bytes (the IETF draft sets no limit; Stripe's is 255).
pub(crate) const MAX_KEY_LENGTH: usize = 255;

/// What a write with an idempotency key came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The write's outcome: the new value for an increment, 0 otherwise. For a replay, the
    /// outcome recorded when the write was first applied.
    pub value: u64,
    /// The key had been used for this very write before: nothing was applied now.
    pub replayed: bool,
}

impl Written {
    /// A write applied now.
    pub fn applied(value: u64) -> Self {
        Self {
            value,
            replayed: false,
        }
    }

    /// A write answered from its record.
    pub fn replayed(value: u64) -> Self {
        Self {
            value,
            replayed: true,
        }
    }
}

/// A client's idempotency key: 1 to 255 visible ASCII characters (`!` to `~`,
/// no spaces or control characters), so it fits any header, log line or Redis key unescaped.
/// Checked when made, so a store never sees one that breaks the rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key, or why `text` cannot be one.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an idempotency key cannot be empty".into());
        }
        if text.len() > MAX_KEY_LENGTH {
            return Err(format!(
                "an idempotency key is at most {MAX_KEY_LENGTH} characters; this one has {}",
                text.len()
            ));
        }
        match text.bytes().position(|byte| !byte.is_ascii_graphic()) {
            Some(at) => Err(format!(
                "an idempotency key is visible ASCII only (no spaces or control characters); \
                 character {} is not",
                text[..at].chars().count() + 1
            )),
            None => Ok(Self(text.to_string())),
        }
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of the request's write number `ordinal` (from 0): the key itself for the first
    /// write, and for a later one the key followed by ` #N` (N counting from 1), which no
    /// client's key can be (a client's has no space). So a request that makes several writes
    /// applies each once: a retry makes the same writes in the same order, and each is answered
    /// from its own record.
    pub fn for_write(&self, ordinal: usize) -> Self {
        match ordinal {
            0 => self.clone(),
            n => Self(format!("{} #{}", self.0, n + 1)),
        }
    }
}

impl std::str::FromStr for IdempotencyKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The write a record stands for, in words: what the record keeps to tell a retry of the same
/// write (same words) from a new write that reuses the key. Unambiguous, since names are quoted
/// with escapes, and readable where people see it (`redis-cli`, `sqlite3`, error messages).
pub fn fingerprint(bucket: &str, write: &Write) -> String {
    let operation = match write {
        Write::Increment { key, delta } => format!("increment {key:?} by {delta}"),
        Write::Set { key, value } => format!("set {key:?} to \"{}\"", value.escape_ascii()),
        Write::Delete { key } => format!("delete {key:?}"),
    };
    if bucket.is_empty() {
        operation
    } else {
        format!("{operation} in bucket {bucket:?}")
    }
}

/// What a store holding `recorded` (the unexpired record of `key`, if any: its fingerprint and
/// outcome) does with a write whose fingerprint is `requested`: `Ok(None)` apply it (and record
/// it), `Ok(Some(outcome))` answer the recorded outcome and apply nothing, `Err` refuse a reused
/// key. The rule every recording store shares (Redis runs the same rule in its script).
pub fn replay_or_apply(
    key: &IdempotencyKey,
    recorded: Option<(&str, u64)>,
    requested: &str,
) -> Result<Option<u64>, StorageError> {
    match recorded {
        None => Ok(None),
        Some((fingerprint, outcome)) if fingerprint == requested => Ok(Some(outcome)),
        Some((fingerprint, _)) => Err(StorageError::IdempotencyKeyReused {
            key: key.as_str().to_string(),
            recorded: fingerprint.to_string(),
            requested: requested.to_string(),
        }),
    }
}

/// Whether a record that expires at `expires_at` still counts at `now` (both in milliseconds
/// since the Unix epoch): until that instant, not at it. A record kept for no time at all is
/// never replayed.
pub fn is_live(expires_at: i64, now: i64) -> bool {
    expires_at > now
}

/// When a record made now with `retention` expires, in milliseconds since the Unix epoch.
pub fn expires_at(retention: Duration) -> i64 {
    now_millis().saturating_add(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        let check = |key: &str| IdempotencyKey::parse(key).map(|key| key.as_str().to_string());
        assert_eq!(check("a"), Ok("a".into()));
        assert_eq!(check(&"k".repeat(255)), Ok("k".repeat(255)));
        assert_eq!(check("9f1c-4e7a_!~"), Ok("9f1c-4e7a_!~".into()));
        for bad in ["", "a b", "tab\there", "nl\n", "é", &"k".repeat(256)] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            check("ab\u{7}c").unwrap_err(),
            "an idempotency key is visible ASCII only (no spaces or control characters); \
             character 3 is not"
        );
    }

    /// A record counts until the instant it expires, not at it.
    #[test]
    fn records_expire_at_their_instant() {
        assert!(is_live(1_000, 999));
        assert!(!is_live(1_000, 1_000));
        assert!(!is_live(1_000, 1_001));
    }

    #[test]
    fn fingerprints_tell_writes_apart() {
        let increment = |key: &str, delta| Write::Increment {
            key: key.into(),
            delta,
        };
        assert_eq!(
            fingerprint("", &increment("visits", 5)),
            "increment \"visits\" by 5"
        );
        assert_eq!(
            fingerprint(
                "b",
                &Write::Set {
                    key: "a\"b".into(),
                    value: b"7".to_vec()
                }
            ),
            "set \"a\\\"b\" to \"7\" in bucket \"b\""
        );
        let all = [
            fingerprint("", &increment("a", 1)),
            fingerprint("", &increment("a", 2)),
            fingerprint("", &increment("b", 1)),
            fingerprint("x", &increment("a", 1)),
            fingerprint("", &Write::Delete { key: "a".into() }),
        ];
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
    }
}
