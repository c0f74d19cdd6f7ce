//! The exported `counter` interface: named counters, each one key of the default bucket.

use super::{Component, FailedIncrement, explain_failed_increment, open};
use crate::page::{self, PageCursor};
use crate::{name, value, window};
use std::collections::BTreeSet;

use super::exports::tally::counter::counter::{Error, Guest, Page};
use super::wasi::keyvalue::store::{self, Bucket};
use super::wasi::keyvalue::{atomics, batch};

impl Guest for Component {
    fn get(name: String) -> Result<u64, Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        read(&bucket()?, &name).map(|value| value.unwrap_or(0))
    }

    fn increment(name: String, by: u64) -> Result<u64, Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        let bucket = bucket()?;
        atomics::increment(&bucket, &name, by).map_err(|failure| {
            match explain_failed_increment(&bucket, &name, by, failure) {
                FailedIncrement::Overflow => Error::Overflow(name),
                FailedIncrement::CorruptValue => Error::CorruptValue(name),
                FailedIncrement::StoreFailure(message) => Error::StoreFailure(message),
            }
        })
    }

    fn set(name: String, value: u64) -> Result<(), Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        bucket()?
            .set(&name, &value::encode(value))
            .map_err(store_failure)
    }

    fn reset(name: String) -> Result<(), Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        bucket()?.delete(&name).map_err(store_failure)
    }

    fn find(name: String) -> Result<Option<u64>, Error> {
        name::validate(&name).map_err(Error::InvalidName)?;
        read(&bucket()?, &name)
    }

    fn find_many(names: Vec<String>) -> Result<Vec<Option<u64>>, Error> {
        for name in &names {
            name::validate(name).map_err(Error::InvalidName)?;
        }
        let values = read_many(&bucket()?, &names)?;
        Ok(values
            .into_iter()
            .map(|entry| entry.map(|(_, value)| value))
            .collect())
    }

    fn list() -> Result<Vec<(String, u64)>, Error> {
        let bucket = bucket()?;
        let mut counters = Vec::new();
        let mut cursor = PageCursor::default();
        loop {
            let (page, next) = read_page(&bucket, cursor, page::MAX_LIMIT as usize)?;
            counters.extend(page);
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        counters.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // Some stores' listings (Redis SCAN) may return a key twice.
        counters.dedup_by(|a, b| a.0 == b.0);
        Ok(counters)
    }

    fn list_page(cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        let limit = page::check_limit(limit).map_err(Error::InvalidPage)?;
        let cursor = match cursor {
            Some(text) => PageCursor::parse(&text).map_err(Error::InvalidPage)?,
            None => PageCursor::default(),
        };
        let (counters, next) = read_page(&bucket()?, cursor, limit)?;
        Ok(Page {
            counters,
            next: next.map(|cursor| cursor.encode()),
        })
    }
}

/// The stored value of `name`, `None` when absent.
fn read(bucket: &Bucket, name: &str) -> Result<Option<u64>, Error> {
    match bucket.get(name).map_err(store_failure)? {
        None => Ok(None),
        Some(bytes) => value::decode(&bytes)
            .map(Some)
            .ok_or_else(|| Error::CorruptValue(name.to_string())),
    }
}

/// The stored values of `names` in one `get-many` call, `None` where absent.
fn read_many(bucket: &Bucket, names: &[String]) -> Result<Vec<Option<(String, u64)>>, Error> {
    let entries = batch::get_many(bucket, names).map_err(store_failure)?;
    if entries.len() != names.len() {
        return Err(Error::StoreFailure(format!(
            "get-many answered {} values for {} keys",
            entries.len(),
            names.len()
        )));
    }
    entries
        .into_iter()
        .map(|entry| {
            entry
                .map(|(key, bytes)| match value::decode(&bytes) {
                    Some(value) => Ok((key, value)),
                    None => Err(Error::CorruptValue(key)),
                })
                .transpose()
        })
        .collect()
}

/// Counters and their values, as `list` and `list-page` answer them.
type Counters = Vec<(String, u64)>;

/// Up to `limit` counters from where `cursor` points, and the cursor after them (none when the
/// store has no more keys). Reads store pages until `limit` keys are collected or the store
/// ends, then their values in one `get-many`; a key removed in between is left out.
fn read_page(
    bucket: &Bucket,
    mut cursor: PageCursor,
    limit: usize,
) -> Result<(Counters, Option<PageCursor>), Error> {
    let mut names: Vec<String> = Vec::new();
    // A store's listing may repeat a key across its pages (Redis SCAN): once a call reads a
    // second store page, the names so far are remembered to leave repeats out.
    let mut seen: Option<BTreeSet<String>> = None;
    let next = loop {
        let store_page = bucket
            .list_keys(cursor.store_cursor)
            .map_err(store_failure)?;
        let mut keys = store_page.keys;
        if !keys.is_sorted() {
            keys.sort_unstable();
        }
        keys.dedup();
        let start = cursor
            .after
            .as_deref()
            .map_or(0, |after| page::resume_at(&keys, after));
        let mut rest = keys.into_iter().skip(start);
        for key in rest.by_ref() {
            // The `window` interface's keys share the bucket; they are not counters.
            if window::is_window_key(&key) {
                continue;
            }
            let repeated = seen.as_mut().is_some_and(|seen| !seen.insert(key.clone()));
            if !repeated {
                names.push(key);
            }
            if names.len() == limit {
                break;
            }
        }
        let full = names.len() == limit;
        let more_here = rest.next().is_some();
        if full && more_here {
            // The page ends inside this store page: resume after its last key.
            break Some(PageCursor {
                store_cursor: cursor.store_cursor,
                after: names.last().cloned(),
            });
        }
        match store_page.cursor {
            None => break None,
            // A store that hands back the cursor it was given would loop forever.
            Some(next) if Some(next) == cursor.store_cursor => {
                return Err(Error::StoreFailure(format!(
                    "the store returned list-keys cursor {next} twice; refusing to loop"
                )));
            }
            Some(next) => {
                cursor = PageCursor {
                    store_cursor: Some(next),
                    after: None,
                };
                if full {
                    break Some(cursor);
                }
                seen.get_or_insert_with(|| names.iter().cloned().collect());
            }
        }
    };
    let counters = read_many(bucket, &names)?.into_iter().flatten().collect();
    Ok((counters, next))
}

/// The default bucket.
fn bucket() -> Result<Bucket, Error> {
    open().map_err(Error::StoreFailure)
}

fn store_failure(error: store::Error) -> Error {
    Error::StoreFailure(super::store_failure(error))
}
