//! The write rules, written once: how a write, a write with an idempotency key, and a write
//! group are applied. A store hands these functions a [`WorkingCopy`] of its data (a map under
//! its lock, the rows its transaction read, its connection inside a transaction) and writes back
//! what they leave there; it writes reads and puts, not the rules.
//!
//! - [`apply_write`]: one write, an increment by [`incremented`]'s rule.
//! - [`apply_request`]: a [`WriteRequest`], once per idempotency key when it has one (on a
//!   [`RecordingCopy`], which holds the records too): the key's
//!   live record answers a retry of the same write ([`idempotency::replay_or_apply`]), refuses
//!   another, and a write applied now is recorded in the same copy.
//! - [`apply_group`]: a [`WriteGroup`]'s expectations checked, then its writes in order, all or
//!   nothing: on a refusal the keys it wrote are put back as they were. A store that undoes by
//!   itself (SQLite's savepoint) checks with [`check_expectations`] and applies with
//!   [`apply_writes`] instead.
//!
//! Each function answers `Ok(Ok(..))` when applied, `Ok(Err(refusal))` when the rules refused
//! (nothing of it stays in the copy), and `Err(..)` when the copy itself failed (a driver's
//! error; [`std::convert::Infallible`] for a copy in memory).

use super::idempotency::{self, Written};
use super::{StorageError, Write, WriteGroup, WriteRequest, value};

/// A store's working copy of the keys a write touches.
pub trait WorkingCopy {
    /// What reading or writing the copy can fail with ([`std::convert::Infallible`] for a copy in
    /// memory).
    type Error;

    /// The value of `key` in `bucket`, `None` when absent.
    fn get(&mut self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Stores `value` under `key` in `bucket`; `None` removes the key.
    fn put(&mut self, bucket: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), Self::Error>;
}

/// A working copy that also holds idempotency records: a store that declares them
/// ([`super::Capabilities::idempotency_records`]) applies keyed writes through one
/// ([`apply_request`]).
pub trait RecordingCopy: WorkingCopy {
    /// The record of idempotency key `key`, if the copy holds one (live or expired: the rules
    /// look at its expiry).
    fn record(&mut self, key: &str) -> Result<Option<Record>, Self::Error>;

    /// Keeps `record` as the record of idempotency key `key`, replacing any.
    fn put_record(&mut self, key: &str, record: Record) -> Result<(), Self::Error>;
}

/// What a store keeps of a write made with an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The write's [`idempotency::fingerprint`].
    pub fingerprint: String,
    /// What it came to, in decimal (the increment's new value, 0 otherwise).
    pub outcome: String,
    /// When the record expires, in milliseconds since the Unix epoch.
    pub expires_at: i64,
}

/// What applying came to: applied (`Ok(Ok)`), refused by the rules (`Ok(Err)`, nothing stays),
/// or the copy failed (`Err`).
pub type Applied<T, E> = Result<Result<T, StorageError>, E>;

/// One write of `bucket`, an increment stopping at `limit`: the increment's new value, 0 for
/// a set or a delete.
pub fn apply_write<C: WorkingCopy>(
    copy: &mut C,
    bucket: &str,
    write: &Write,
    limit: u64,
) -> Applied<u64, C::Error> {
    match write {
        Write::Set { key, value } => copy.put(bucket, key, Some(value.clone())).map(|()| Ok(0)),
        Write::Delete { key } => copy.put(bucket, key, None).map(|()| Ok(0)),
        Write::Increment { key, delta } => {
            let current = copy.get(bucket, key)?;
            Ok(match incremented(key, current.as_deref(), *delta, limit) {
                Ok((new, stored)) => {
                    copy.put(bucket, key, Some(stored))?;
                    Ok(new)
                }
                Err(refused) => Err(refused),
            })
        }
    }
}

/// `request` on a store whose counters go up to `store_limit`: with an idempotency key, a
/// replay of its live record, a refusal (the key was used for another write, or its record is
/// damaged), or the write applied and recorded; without one, the write applied.
pub fn apply_request<C: RecordingCopy>(
    copy: &mut C,
    request: &WriteRequest,
    store_limit: u64,
) -> Applied<Written, C::Error> {
    let limit = request.limit_within(store_limit);
    let Some(key) = &request.idempotency_key else {
        return Ok(apply_write(copy, &request.bucket, &request.write, limit)?.map(Written::applied));
    };
    let fingerprint = idempotency::fingerprint(&request.bucket, &request.write);
    let now = idempotency::now_millis();
    let recorded = match copy.record(key.as_str())? {
        Some(record) if idempotency::is_live(record.expires_at, now) => {
            match record.outcome.parse::<u64>() {
                Ok(outcome) => Some((record.fingerprint, outcome)),
                Err(_) => {
                    return Ok(Err(StorageError::Other(
                        format!(
                            "the record of idempotency key {:?} is damaged (its outcome is not a \
                             number); use another key",
                            key.as_str()
                        )
                        .into(),
                    )));
                }
            }
        }
        _ => None,
    };
    let recorded = recorded
        .as_ref()
        .map(|(print, outcome)| (print.as_str(), *outcome));
    match idempotency::replay_or_apply(key, recorded, &fingerprint) {
        Err(reused) => return Ok(Err(reused)),
        Ok(Some(outcome)) => return Ok(Ok(Written::replayed(outcome))),
        Ok(None) => {}
    }
    let value = match apply_write(copy, &request.bucket, &request.write, limit)? {
        Ok(value) => value,
        Err(refused) => return Ok(Err(refused)),
    };
    let record = Record {
        fingerprint,
        outcome: value.to_string(),
        expires_at: idempotency::expires_at(request.idempotency_retention),
    };
    copy.put_record(key.as_str(), record)?;
    Ok(Ok(Written::applied(value)))
}

/// Whether every key `group` expects holds what it expects ([`WriteGroup::expected`]); the
/// conflict if one does not.
pub fn check_expectations<C: WorkingCopy>(
    copy: &mut C,
    group: &WriteGroup,
) -> Applied<(), C::Error> {
    for expected in &group.expected {
        let current = copy.get(&group.bucket, &expected.key)?;
        if let Err(conflict) = expected.check(current.as_deref()) {
            return Ok(Err(conflict));
        }
    }
    Ok(Ok(()))
}

/// `writes` of `bucket` in order, each seeing the ones before it, up to the first refusal
/// (which leaves the writes before it in the copy: undoing is the caller's).
pub fn apply_writes<C: WorkingCopy>(
    copy: &mut C,
    bucket: &str,
    writes: &[Write],
    limit: u64,
) -> Applied<Vec<u64>, C::Error> {
    let mut outcomes = Vec::with_capacity(writes.len());
    for write in writes {
        match apply_write(copy, bucket, write, limit)? {
            Ok(outcome) => outcomes.push(outcome),
            Err(refused) => return Ok(Err(refused)),
        }
    }
    Ok(Ok(outcomes))
}

/// `group` on a store whose counters go up to `store_limit`, all or nothing: its expectations
/// checked, then its writes in order; on a refusal every key it wrote is put back as it was.
/// Each write's outcome, in order.
pub fn apply_group<C: WorkingCopy>(
    copy: &mut C,
    group: &WriteGroup,
    store_limit: u64,
) -> Applied<Vec<u64>, C::Error> {
    if let Err(conflict) = check_expectations(copy, group)? {
        return Ok(Err(conflict));
    }
    let mut before: Vec<(&str, Option<Vec<u8>>)> = Vec::new();
    for write in &group.writes {
        let key = write.key();
        if before.iter().all(|(seen, _)| *seen != key) {
            before.push((key, copy.get(&group.bucket, key)?));
        }
    }
    let limit = group
        .increment_limit
        .map_or(store_limit, |limit| limit.min(store_limit));
    match apply_writes(copy, &group.bucket, &group.writes, limit)? {
        Ok(outcomes) => Ok(Ok(outcomes)),
        Err(refused) => {
            for (key, value) in before {
                copy.put(&group.bucket, key, value)?;
            }
            Ok(Err(refused))
        }
    }
}

/// The increment rule every store shares: parse `current` as ASCII decimal ([`value::decode`];
/// absent is 0), add `delta` without passing `limit`, return the new value and its stored form.
/// Errors are the ones an increment must report.
pub fn incremented(
    key: &str,
    current: Option<&[u8]>,
    delta: u64,
    limit: u64,
) -> Result<(u64, Vec<u8>), StorageError> {
    let current = match current {
        None => 0,
        Some(bytes) => value::decode(bytes).ok_or_else(|| StorageError::NotANumber {
            key: key.to_string(),
        })?,
    };
    let new = current
        .checked_add(delta)
        .filter(|sum| *sum <= limit)
        .ok_or_else(|| StorageError::Overflow {
            key: key.to_string(),
            current,
            delta,
        })?;
    Ok((new, value::encode(new)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::IdempotencyKey;
    use crate::storage::suite::Carrying;
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    /// A copy in a map: what every store's copy must behave like.
    #[derive(Default)]
    struct Map {
        keys: BTreeMap<(String, String), Vec<u8>>,
        records: BTreeMap<String, Record>,
    }

    impl WorkingCopy for Map {
        type Error = Infallible;

        fn get(&mut self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Infallible> {
            Ok(self.keys.get(&(bucket.into(), key.into())).cloned())
        }

        fn put(
            &mut self,
            bucket: &str,
            key: &str,
            value: Option<Vec<u8>>,
        ) -> Result<(), Infallible> {
            let id = (bucket.to_string(), key.to_string());
            match value {
                Some(value) => self.keys.insert(id, value),
                None => self.keys.remove(&id),
            };
            Ok(())
        }
    }

    impl RecordingCopy for Map {
        fn record(&mut self, key: &str) -> Result<Option<Record>, Infallible> {
            Ok(self.records.get(key).cloned())
        }

        fn put_record(&mut self, key: &str, record: Record) -> Result<(), Infallible> {
            self.records.insert(key.to_string(), record);
            Ok(())
        }
    }

    fn increment(key: &str, delta: u64) -> Write {
        Write::Increment {
            key: key.into(),
            delta,
        }
    }

    fn applied<T>(outcome: Applied<T, Infallible>) -> Result<T, StorageError> {
        match outcome {
            Ok(outcome) => outcome,
            Err(never) => match never {},
        }
    }

    /// A refused write in a group puts back every key the group wrote, sets and deletes too.
    #[test]
    fn a_refused_group_leaves_nothing() {
        let mut copy = Map::default();
        copy.put("", "a", Some(b"5".to_vec())).unwrap();
        copy.put("", "top", Some(u64::MAX.to_string().into_bytes()))
            .unwrap();
        let group = WriteGroup::new(
            "",
            vec![
                increment("a", 1),
                Write::Delete { key: "a".into() },
                Write::Set {
                    key: "b".into(),
                    value: b"1".to_vec(),
                },
                increment("top", 1),
            ],
        );
        assert!(matches!(
            applied(apply_group(&mut copy, &group, u64::MAX)),
            Err(StorageError::Overflow { .. })
        ));
        assert_eq!(copy.get("", "a").unwrap(), Some(b"5".to_vec()));
        assert_eq!(copy.get("", "b").unwrap(), None);
    }

    /// A keyed write is applied and recorded once, replayed after, refused for another write;
    /// a damaged record is refused with its words.
    #[test]
    fn keyed_writes_apply_once() {
        let mut copy = Map::default();
        let key = IdempotencyKey::parse("k").unwrap();
        let request = WriteRequest::new("", increment("a", 2)).with_idempotency_key(key.clone());
        assert_eq!(
            applied(apply_request(&mut copy, &request, u64::MAX)).unwrap(),
            Written::applied(2)
        );
        assert_eq!(
            applied(apply_request(&mut copy, &request, u64::MAX)).unwrap(),
            Written::replayed(2)
        );
        let other = WriteRequest::new("", increment("a", 3)).with_idempotency_key(key);
        assert!(matches!(
            applied(apply_request(&mut copy, &other, u64::MAX)),
            Err(StorageError::IdempotencyKeyReused { .. })
        ));
        copy.records.get_mut("k").unwrap().outcome = "x".into();
        let damaged = applied(apply_request(&mut copy, &request, u64::MAX)).unwrap_err();
        assert_eq!(
            damaged.to_string(),
            "the record of idempotency key \"k\" is damaged (its outcome is not a number); use \
             another key"
        );
        assert_eq!(copy.get("", "a").unwrap(), Some(b"2".to_vec()));
    }
}
