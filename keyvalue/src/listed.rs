//! The values a guest call's last `list-keys` page brought with its keys, kept for the
//! `get-many` that follows it.
//!
//! A guest lists a page of keys and then reads their values: two store reads, and on SQLite two
//! trips through the blocking pool, for what the store can answer in one statement (the
//! counter component's `list-page` does exactly this). Stores that read values with the keys
//! ([`KeyPage::values`]) let the host answer that `get-many` from the page instead, which is
//! then one point in time for keys and values alike.
//!
//! Kept only inside one guest call ([`crate::KeyValueCtx::start_call`] to `finish_call`), only
//! the last page listed, only until the next `get-many` or write of that call, and only for a
//! `get-many` whose every key is on that page: anything else reads the store.

use crate::storage::KeyPage;

/// The entries of the page listed last in the current call, unless a `get-many` or write came
/// since: in key order, of one bucket.
#[derive(Debug, Default)]
pub(crate) struct ListedValues {
    bucket: String,
    entries: Vec<(String, Vec<u8>)>,
}

impl ListedValues {
    /// Keeps `page`'s entries in place of the page before, when its store read values with
    /// the keys; a page without values, or out of key order, or with a value count that does
    /// not match its keys (a store's mistake), leaves nothing kept. Only one page is kept, so a
    /// `get-many` answered from it is one point in time, as one from the store is.
    pub(crate) fn add(&mut self, bucket: &str, page: &KeyPage) {
        self.forget();
        let Some(values) = page
            .values
            .as_ref()
            .filter(|values| values.len() == page.keys.len() && page.keys.is_sorted())
        else {
            return;
        };
        bucket.clone_into(&mut self.bucket);
        self.entries
            .extend(page.keys.iter().cloned().zip(values.iter().cloned()));
    }

    /// The values of `keys` when every one of them is on the page kept (`None` otherwise: the
    /// store must be read), and forgets the page either way.
    pub(crate) fn take(&mut self, bucket: &str, keys: &[String]) -> Option<Vec<Option<Vec<u8>>>> {
        let mut entries = std::mem::take(&mut self.entries);
        if self.bucket != bucket || entries.is_empty() {
            return None;
        }
        let find = |entries: &[(String, Vec<u8>)], key: &str| {
            entries
                .binary_search_by(|(listed, _)| listed.as_str().cmp(key))
                .ok()
        };
        // What a listing guest asks for: a run of the page's keys, in order. Its values move
        // out with one comparison per key.
        let start = find(&entries, keys.first()?)?;
        if let Some(run) = entries.get_mut(start..start + keys.len())
            && run.iter().zip(keys).all(|((listed, _), key)| listed == key)
        {
            return Some(
                run.iter_mut()
                    .map(|(_, value)| Some(std::mem::take(value)))
                    .collect(),
            );
        }
        keys.iter()
            .map(|key| find(&entries, key).map(|at| Some(entries[at].1.clone())))
            .collect()
    }

    /// Forgets the page kept (a write may have changed its values).
    pub(crate) fn forget(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(entries: &[(&str, &str)], more: bool) -> KeyPage {
        KeyPage::entries_by_key(
            entries
                .iter()
                .map(|(key, value)| (key.to_string(), value.as_bytes().to_vec()))
                .collect(),
            more,
        )
    }

    fn keys(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|key| key.to_string()).collect()
    }

    fn values(values: &[&str]) -> Option<Vec<Option<Vec<u8>>>> {
        Some(values.iter().map(|v| Some(v.as_bytes().to_vec())).collect())
    }

    #[test]
    fn answers_keys_of_the_page_listed_once() {
        let mut listed = ListedValues::default();
        listed.add("b", &page(&[("a", "1"), ("c", "3"), ("d", "4")], true));
        assert_eq!(
            listed.take("b", &keys(&["c", "d", "c"])),
            values(&["3", "4", "3"])
        );
        assert_eq!(listed.take("b", &keys(&["c"])), None, "taken once");
    }

    #[test]
    fn answers_a_run_of_the_page() {
        let mut listed = ListedValues::default();
        listed.add(
            "b",
            &page(&[("a", "1"), ("c", "3"), ("d", "4"), ("e", "5")], true),
        );
        assert_eq!(listed.take("b", &keys(&["c", "d"])), values(&["3", "4"]));
        listed.add("b", &page(&[("a", "1"), ("c", "3")], true));
        assert_eq!(listed.take("b", &keys(&["a", "c"])), values(&["1", "3"]));
        listed.add("b", &page(&[("a", "1"), ("c", "3")], true));
        assert_eq!(
            listed.take("b", &keys(&["c", "d"])),
            None,
            "d is past the page"
        );
    }

    #[test]
    fn reads_the_store_for_anything_else() {
        let mut listed = ListedValues::default();
        listed.add("b", &page(&[("a", "1"), ("c", "3")], false));
        assert_eq!(
            listed.take("b", &keys(&["a", "b"])),
            None,
            "b was not listed"
        );
        listed.add("b", &page(&[("a", "1")], false));
        assert_eq!(listed.take("other", &keys(&["a"])), None, "another bucket");
        listed.add("b", &page(&[("a", "1")], false));
        listed.forget();
        assert_eq!(
            listed.take("b", &keys(&["a"])),
            None,
            "forgotten after a write"
        );
        listed.add("b", &page(&[("a", "1")], false));
        listed.add("b", &KeyPage::by_key(keys(&["x"]), false));
        assert_eq!(
            listed.take("b", &keys(&["a"])),
            None,
            "a page without values"
        );
    }

    /// Keys of two pages are read from the store, in one read: one point in time.
    #[test]
    fn only_the_last_page_is_kept() {
        let mut listed = ListedValues::default();
        listed.add("b", &page(&[("a", "1"), ("c", "3")], true));
        listed.add("b", &page(&[("d", "4")], false));
        assert_eq!(listed.take("b", &keys(&["c", "d"])), None);
        listed.add("b", &page(&[("a", "1")], false));
        listed.add("other", &page(&[("z", "9")], false));
        assert_eq!(listed.take("b", &keys(&["a"])), None);
    }

    #[test]
    fn a_store_page_that_does_not_add_up_is_not_kept() {
        let mut listed = ListedValues::default();
        let mut short = page(&[("a", "1"), ("c", "3")], false);
        short.values = Some(vec![b"1".to_vec()]);
        listed.add("b", &short);
        assert_eq!(listed.take("b", &keys(&["a"])), None);
        let unsorted = page(&[("c", "3"), ("a", "1")], false);
        listed.add("b", &unsorted);
        assert_eq!(listed.take("b", &keys(&["a"])), None);
    }
}
