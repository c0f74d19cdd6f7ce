//! The exported `window` interface: counters that reset, one key per window
//! ([`crate::window`]), each hit one atomic `increment`.

use super::{Component, FailedIncrement, explain_failed_increment, open};
use crate::{name, value, window};

use super::exports::tally::counter::window::{
    Error, Guest, HitOutcome, Policy, SweepPage, WindowSpec, Windowed, WindowsPage,
};
use super::wasi::keyvalue::store::{self, Bucket};
use super::wasi::keyvalue::{atomics, batch};

impl Guest for Component {
    fn hit(
        name: String,
        spec: WindowSpec,
        cost: u64,
        limit: u64,
        policy: Policy,
        now_ms: u64,
    ) -> Result<HitOutcome, Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        let length = window::check_length(spec.length_ms).map_err(Error::InvalidWindow)?;
        let keep = window::check_keep(spec.keep).map_err(Error::InvalidWindow)?;
        let slot = window::slot(length, now_ms);
        let bucket = bucket()?;
        let key = window::key(&name, length, slot.number);
        let count = if cost == 0 {
            read(&bucket, &key, &name)?
        } else {
            let count = atomics::increment(&bucket, &key, cost).map_err(|failure| {
                match explain_failed_increment(&bucket, &key, cost, failure) {
                    FailedIncrement::Overflow => Error::Overflow(name.clone()),
                    FailedIncrement::CorruptValue => Error::CorruptValue(name.clone()),
                    FailedIncrement::StoreFailure(message) => Error::StoreFailure(message),
                }
            })?;
            // The first hit of the window (no other hit's increment came before this one's)
            // retires the window `keep` back. A failure here is left to a sweep: the hit
            // itself stands and is answered.
            if count == cost
                && let Some(retired) = slot.number.checked_sub(keep)
            {
                let _ = bucket.delete(&window::key(&name, length, retired));
            }
            count
        };
        let used = match policy {
            Policy::Fixed => count,
            Policy::Sliding => {
                let previous = match slot.number.checked_sub(1) {
                    Some(previous) => read(&bucket, &window::key(&name, length, previous), &name)?,
                    None => 0,
                };
                window::sliding(count, previous, length, slot.elapsed)
            }
        };
        Ok(HitOutcome {
            count,
            used,
            allowed: used <= limit,
            remaining: limit.saturating_sub(used),
            window_start: slot.start,
            resets_at: slot.end,
        })
    }

    fn history(name: String, length_ms: u64, last: u32, now_ms: u64) -> Result<Vec<u64>, Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        let length = window::check_length(length_ms).map_err(Error::InvalidWindow)?;
        let last = window::check_last(last).map_err(Error::InvalidWindow)?;
        let current = window::slot(length, now_ms).number;
        // Windows before the epoch's first do not exist: they read 0.
        let first = current.saturating_sub(last - 1);
        let before_epoch = (last - 1).saturating_sub(current);
        let keys: Vec<String> = (first..=current)
            .map(|number| window::key(&name, length, number))
            .collect();
        let entries = batch::get_many(&bucket()?, &keys).map_err(store_failure)?;
        if entries.len() != keys.len() {
            return Err(Error::StoreFailure(format!(
                "get-many answered {} values for {} keys",
                entries.len(),
                keys.len()
            )));
        }
        let mut counts = vec![0; usize::try_from(before_epoch).unwrap_or(0)];
        for entry in entries {
            counts.push(match entry {
                None => 0,
                Some((_, bytes)) => {
                    value::decode(&bytes).ok_or_else(|| Error::CorruptValue(name.clone()))?
                }
            });
        }
        Ok(counts)
    }

    fn list_windows(cursor: Option<String>) -> Result<WindowsPage, Error> {
        let (keys, next) = store_page(&bucket()?, cursor)?;
        let mut windows: Vec<Windowed> = Vec::new();
        let mut other_keys = false;
        for key in &keys {
            match window::parse(key) {
                Some((name, length_ms, _)) => windows.push(Windowed {
                    name: name.to_string(),
                    length_ms,
                }),
                None => other_keys |= !window::is_window_key(key),
            }
        }
        windows.sort_unstable_by(|a, b| (&a.name, a.length_ms).cmp(&(&b.name, b.length_ms)));
        windows.dedup_by(|a, b| a.name == b.name && a.length_ms == b.length_ms);
        Ok(WindowsPage {
            windows,
            other_keys,
            next,
        })
    }

    fn sweep(cursor: Option<String>, keep: u32, now_ms: u64) -> Result<SweepPage, Error> {
        let keep = window::check_keep(keep).map_err(Error::InvalidWindow)?;
        let bucket = bucket()?;
        let (keys, next) = store_page(&bucket, cursor)?;
        let expired: Vec<String> = keys
            .into_iter()
            .filter(|key| {
                window::parse(key).is_some_and(|(_, length_ms, number)| {
                    window::expired(length_ms, number, keep, now_ms)
                })
            })
            .collect();
        if !expired.is_empty() {
            batch::delete_many(&bucket, &expired).map_err(store_failure)?;
        }
        Ok(SweepPage {
            removed: expired.len() as u64,
            next,
        })
    }
}

/// One page of the store's keys (one `list-keys` call) from `cursor` (the store's own, as
/// decimal text), and the cursor after it.
fn store_page(
    bucket: &Bucket,
    cursor: Option<String>,
) -> Result<(Vec<String>, Option<String>), Error> {
    let store_cursor = match cursor {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            Error::InvalidPage(format!(
                "{text:?} is not a cursor that list-windows or sweep made; start from the beginning"
            ))
        })?),
    };
    let page = bucket.list_keys(store_cursor).map_err(store_failure)?;
    if page.cursor.is_some() && page.cursor == store_cursor {
        return Err(Error::StoreFailure(format!(
            "the store returned list-keys cursor {} twice; refusing to loop",
            store_cursor.unwrap_or_default()
        )));
    }
    Ok((page.keys, page.cursor.map(|next| next.to_string())))
}

/// A window's count (0 when it has no key), `name` naming it when the stored value is corrupt.
fn read(bucket: &Bucket, key: &str, name: &str) -> Result<u64, Error> {
    match bucket.get(key).map_err(store_failure)? {
        None => Ok(0),
        Some(bytes) => value::decode(&bytes).ok_or_else(|| Error::CorruptValue(name.to_string())),
    }
}

/// The default bucket.
fn bucket() -> Result<Bucket, Error> {
    open().map_err(Error::StoreFailure)
}

fn store_failure(error: store::Error) -> Error {
    Error::StoreFailure(super::store_failure(error))
}
