//! `SCAN` cursors. Redis clients treat a cursor as a number (redis-py and the Rust `redis` crate
//! parse it as one, and stop at 0), while the component's page cursor is text (`N:LASTKEY`). The
//! listener hands out numbers and keeps the text they stand for: the newest
//! [`MAX_SCAN_CURSORS`], shared by every connection, so a scan may go on over another connection.
//!
//! Numbers start at the microseconds since the Unix epoch when the server started and count up,
//! so after a restart no old number means a new listing's cursor: it is unknown, and the client
//! is told to scan again from 0.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many `SCAN` cursors are remembered.
pub const MAX_SCAN_CURSORS: usize = 4096;

/// Numbers for component cursors, newest [`MAX_SCAN_CURSORS`].
pub struct ScanCursors {
    // A std mutex: held only to insert or look up, never across an await.
    table: Mutex<Table>,
}

struct Table {
    last: u64,
    cursors: BTreeMap<u64, String>,
}

impl Default for ScanCursors {
    fn default() -> Self {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |since| since.as_micros() as u64);
        Self {
            table: Mutex::new(Table {
                last: start,
                cursors: BTreeMap::new(),
            }),
        }
    }
}

impl ScanCursors {
    /// The number that stands for `cursor` from now on (never 0: that ends a scan).
    pub fn remember(&self, cursor: String) -> u64 {
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        table.last += 1;
        let number = table.last;
        table.cursors.insert(number, cursor);
        while table.cursors.len() > MAX_SCAN_CURSORS {
            table.cursors.pop_first();
        }
        number
    }

    /// The cursor `number` stands for, if it is still remembered.
    pub fn recall(&self, number: u64) -> Option<String> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .cursors
            .get(&number)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers are new each time, recall what they stand for, and the oldest are forgotten.
    #[test]
    fn remembers_the_newest() {
        let cursors = ScanCursors::default();
        let first = cursors.remember("1:a".into());
        assert_ne!(first, 0);
        assert_eq!(cursors.recall(first).as_deref(), Some("1:a"));
        for i in 0..MAX_SCAN_CURSORS {
            cursors.remember(format!("{i}"));
        }
        assert_eq!(cursors.recall(first), None);
        let last = cursors.remember("x".into());
        assert_eq!(cursors.recall(last).as_deref(), Some("x"));
        assert_eq!(cursors.recall(last - 1).as_deref(), Some("4095"));
        assert_eq!(cursors.recall(last + 1), None);
    }
}
