//! A refused counter operation as people read it: one sentence per case of the WIT `error`
//! variant that says what to do (its stable code is [`crate::error_code::ErrorCode::of`]). It
//! lives below the command line and the server, which both report refusals.
//!
//! A refusal carries the counter limit of the store it came from, because "overflow" means
//! something else on each: past `u64::MAX` on SQLite, past `i64::MAX` on Redis.

use crate::CounterError;

/// A refusal of the component, with the counter limit of the store in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What the component answered.
    pub error: CounterError,
    /// The largest value the store holds (`tally_keyvalue::storage::Storage::counter_limit`).
    pub counter_limit: u64,
}

impl Refusal {
    /// `error` from a store whose counters go up to `counter_limit`.
    pub fn new(error: CounterError, counter_limit: u64) -> Self {
        Self {
            error,
            counter_limit,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            CounterError::InvalidName(reason) => write!(f, "invalid counter name: {reason}"),
            CounterError::Overflow(name) => write!(
                f,
                "counter {name:?} would overflow past {} ({}); its value is unchanged",
                self.counter_limit,
                limit_name(self.counter_limit)
            ),
            CounterError::CorruptValue(name) => write!(
                f,
                "counter {name:?} holds a stored value that is not a decimal u64 (something \
                 other than tally wrote it); `tally set {name} N` or `tally reset {name}` \
                 replaces it"
            ),
            CounterError::StoreFailure(message) => {
                write!(f, "the counter store failed: {message}")
            }
            CounterError::InvalidPage(reason) => write!(f, "invalid listing page: {reason}"),
        }
    }
}

/// What a store outage says, the same over HTTP, RESP and the command line: which store (its
/// password redacted by the caller), that it cannot be reached, why, and to retry. `detail` is
/// the store's error as it came through the component.
pub fn store_unreachable(store: &str, detail: &str) -> String {
    let detail = detail
        .strip_prefix("the store cannot be reached: ")
        .unwrap_or(detail);
    format!("the counter store {store} cannot be reached ({detail}); retry in a moment")
}

/// What a counter limit is, in words.
fn limit_name(limit: u64) -> &'static str {
    match limit {
        u64::MAX => "the u64 maximum",
        // Redis keeps counters as signed 64-bit integers.
        limit if limit == i64::MAX as u64 => "the largest counter this store holds, i64's maximum",
        _ => "the largest counter this store holds",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outage names the store and the cause once, and says to retry.
    #[test]
    fn store_outages_name_the_store() {
        assert_eq!(
            store_unreachable(
                "redis://h:6379/0",
                "the store cannot be reached: Redis: Connection refused (os error 111)"
            ),
            "the counter store redis://h:6379/0 cannot be reached (Redis: Connection refused \
             (os error 111)); retry in a moment"
        );
    }

    /// An overflow names the limit of the store it happened on.
    #[test]
    fn overflow_names_the_store_limit() {
        let overflow =
            |limit| Refusal::new(CounterError::Overflow("top".into()), limit).to_string();
        assert_eq!(
            overflow(u64::MAX),
            "counter \"top\" would overflow past 18446744073709551615 (the u64 maximum); its \
             value is unchanged"
        );
        assert_eq!(
            overflow(i64::MAX as u64),
            "counter \"top\" would overflow past 9223372036854775807 (the largest counter this \
             store holds, i64's maximum); its value is unchanged"
        );
        assert_eq!(
            overflow(99),
            "counter \"top\" would overflow past 99 (the largest counter this store holds); its \
             value is unchanged"
        );
    }
}
