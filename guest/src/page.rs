//! Paged listing's pure parts: the page cursor the component hands out, and where a listing
//! resumes inside a page of the store.
//!
//! `wasi:keyvalue`'s `list-keys` returns pages of the host's own size behind a `u64` cursor, with
//! no way to ask for fewer keys or to start after a given key. `list-page` serves pages of any
//! size from 1 to [`MAX_LIMIT`] on top of it, so its cursor says two things: which store page to
//! fetch again (its `list-keys` cursor, none for the first) and the last counter already
//! returned from it. The component sorts every store page it reads (SQLite's and memory's come
//! sorted; a Redis `SCAN` page or a hash map's does not), so resuming after that *key*, rather
//! than after an offset, keeps a listing exact when counters are added or removed between pages,
//! as long as the store page read again holds the same keys: always for stores that page by key
//! (SQLite, memory); for `SCAN` only while no counters are added or removed, since its step then
//! covers other buckets (the contract says so).

/// The most counters one `list-page` call returns (the host's `list-keys` page size too).
pub const MAX_LIMIT: u32 = 1000;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageCursor {
    /// The `list-keys` cursor of the store page to read (none: the store's first page).
    pub store_cursor: Option<u64>,
    /// The last key already returned from that store page (none: start at its first key).
    pub after: Option<String>,
}

impl PageCursor {
    /// The cursor as text: `N` or `N:KEY` (`N` empty for the store's first page). Keys may hold
    /// any character, and the first `:` always ends the number.
    pub fn encode(&self) -> String {
        let number = self.store_cursor.map(|n| n.to_string()).unwrap_or_default();
        match &self.after {
            None => number,
            Some(key) => format!("{number}:{key}"),
        }
    }

    /// Reads a cursor made by [`PageCursor::encode`]; the error says why `text` is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (number, after) = match text.split_once(':') {
            Some((number, key)) => (number, Some(key.to_string())),
            None => (text, None),
        };
        let store_cursor = match number {
            "" => None,
            digits => Some(digits.parse::<u64>().map_err(|_| {
                format!("{text:?} is not a cursor that list-page made; list from the start")
            })?),
        };
        if store_cursor.is_none() && after.is_none() {
            return Err("an empty cursor is not a cursor; omit it to list from the start".into());
        }
        Ok(Self {
            store_cursor,
            after,
        })
    }
}

/// Checks a `list-page` limit.
pub fn check_limit(limit: u32) -> Result<usize, String> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit as usize)
    } else {
        Err(format!("limit must be 1 to {MAX_LIMIT}; got {limit}"))
    }
}

/// Where a listing resumes in `keys`, one store page fetched again and sorted: at the first key
/// after `after`. By key, not by position, so a key removed or added meanwhile shifts nothing,
/// whether `after` itself still exists or not.
pub fn resume_at(sorted_keys: &[String], after: &str) -> usize {
    sorted_keys.partition_point(|key| key.as_str() <= after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    /// Every cursor reads back as itself, keys with colons included.
    #[test]
    fn cursors_round_trip() {
        for cursor in [
            PageCursor {
                store_cursor: None,
                after: Some("a:b:c".into()),
            },
            PageCursor {
                store_cursor: Some(7),
                after: None,
            },
            PageCursor {
                store_cursor: Some(u64::MAX),
                after: Some("ünï".into()),
            },
        ] {
            assert_eq!(PageCursor::parse(&cursor.encode()), Ok(cursor.clone()));
        }
        assert_eq!(PageCursor::parse(":x").unwrap().encode(), ":x");
    }

    /// Text that no listing made is refused with a reason.
    #[test]
    fn refuses_foreign_cursors() {
        assert_eq!(
            PageCursor::parse("abc"),
            Err("\"abc\" is not a cursor that list-page made; list from the start".into())
        );
        assert!(PageCursor::parse("-1:x").is_err());
        assert!(PageCursor::parse("").is_err());
    }

    /// Limits are 1 to 1000.
    #[test]
    fn checks_limits() {
        assert_eq!(check_limit(1), Ok(1));
        assert_eq!(check_limit(1000), Ok(1000));
        assert_eq!(check_limit(0), Err("limit must be 1 to 1000; got 0".into()));
        assert!(check_limit(1001).is_err());
    }

    /// A listing resumes after its last key, or at the first greater key when it is gone.
    #[test]
    fn resumes_after_the_last_key() {
        let sorted = keys(&["a", "c", "e"]);
        assert_eq!(resume_at(&sorted, "a"), 1);
        assert_eq!(resume_at(&sorted, "e"), 3);
        assert_eq!(resume_at(&sorted, "b"), 1);
        assert_eq!(resume_at(&sorted, "z"), 3);
        assert_eq!(resume_at(&sorted, ""), 0);
    }
}
