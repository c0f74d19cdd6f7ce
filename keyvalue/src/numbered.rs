//! Numbers that stand for values a client cannot hold: `wasi:keyvalue` hands a guest a `u64`
//! list cursor where a store's cursor is bytes, and a Redis client treats a `SCAN` cursor as a
//! number. A [`NumberedTable`] hands out a new number per value and remembers the newest ones;
//! an older or unknown number recalls nothing, and the caller says to start again.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Values by number, the newest `capacity` of them, shared by every clone of the table's owner.
#[derive(Debug)]
pub struct NumberedTable<T> {
    capacity: usize,
    // A std mutex, held only to insert or look up, never across an await. Each change is one
    // insert or removal, which a panic elsewhere cannot leave half-made: a poisoned lock is
    // used anyway.
    table: Mutex<Table<T>>,
}

#[derive(Debug)]
struct Table<T> {
    last: u64,
    values: BTreeMap<u64, T>,
}

impl<T: Clone> NumberedTable<T> {
    /// An empty table keeping the newest `capacity` values, whose first number is `after + 1`
    /// (a server that starts its numbers at its start time never recalls a number handed out
    /// before a restart).
    pub fn new(capacity: usize, after: u64) -> Self {
        Self {
            capacity,
            table: Mutex::new(Table {
                last: after,
                values: BTreeMap::new(),
            }),
        }
    }

    /// The number that stands for `value` from now on (never 0).
    pub fn remember(&self, value: T) -> u64 {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.last = table.last.wrapping_add(1).max(1);
        let number = table.last;
        table.values.insert(number, value);
        while table.values.len() > self.capacity {
            table.values.pop_first();
        }
        number
    }

    /// The value `number` stands for, if it is still remembered.
    pub fn recall(&self, number: u64) -> Option<T> {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values
            .get(&number)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers are new each time (never 0), recall what they stand for, and the oldest are
    /// forgotten past the capacity.
    #[test]
    fn remembers_the_newest() {
        let table = NumberedTable::new(3, 100);
        let first = table.remember("a");
        assert_eq!(first, 101);
        assert_eq!(table.recall(first), Some("a"));
        for value in ["b", "c", "d"] {
            table.remember(value);
        }
        assert_eq!(table.recall(first), None);
        assert_eq!(table.recall(104), Some("d"));
        assert_eq!(table.recall(105), None);
        assert_eq!(NumberedTable::new(1, u64::MAX).remember(()), 1);
    }
}
