//! A refused counter operation as people read it: one sentence per case of the WIT `error`
//! variant that says what to do (its stable code is [`crate::error_code::ErrorCode::of`]). It
//! lives below the command line and the server, which both report refusals.
//!
//! A refusal carries the counter limit of the store it came from, because "overflow" means
//! something else on each: past `u64::MAX` on SQLite, past `i64::MAX` on Redis.

use crate::CounterError;
use tally_keyvalue::storage::{
    APPLICATION_ID, EvictionPolicy, FileProblem, FileRefusal, ReadOnlyFile, SchemaProblem,
    SchemaRefusal, StorageError,
};

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

/// A store's error in tally's words: the store crate names the file, the policy or the problem,
/// and tally adds what to do about it in its own terms (its flags, its commands). Every other
/// error is the store's own words.
pub fn store_error(error: &StorageError) -> String {
    if let Some(file) = error.cause::<ReadOnlyFile>()
        && !file.opened_for_reading
    {
        return format!(
            "the database {} is read-only for this user: reads work, writes are refused (give it \
             write permission, or use another --db)",
            file.path.display()
        );
    }
    if let Some(FileRefusal { path, problem }) = error.cause::<FileRefusal>() {
        let path = path.display();
        return match problem {
            FileProblem::Foreign { application_id } => format!(
                "{path} belongs to another application (a SQLite database with {}), so tally \
                 leaves it untouched; choose a tally database or a new file",
                if *application_id == 0 {
                    "tables of its own and no application_id".to_string()
                } else {
                    format!("application_id {application_id:#x}, not tally's {APPLICATION_ID:#x}")
                }
            ),
            FileProblem::NewerSchema { version, supported } => format!(
                "{path} has tally schema version {version}, newer than this tally understands \
                 ({supported}); upgrade tally"
            ),
            FileProblem::NoDatabase => {
                format!("{path} holds no tally database (it has no tables yet)")
            }
            FileProblem::Exists => {
                format!("{path} already exists; choose a new file or pass --force to replace it")
            }
            FileProblem::IsSource => {
                format!("{path} is the database being backed up; choose another file")
            }
            FileProblem::NoWal { mode } => format!(
                "{path} cannot use write-ahead logging (journal mode stays {mode:?}); tally \
                 needs WAL for durable, concurrent writes"
            ),
            problem => format!("{path}: {problem}"),
        };
    }
    if let Some(EvictionPolicy {
        server,
        policy,
        evicts_counters,
    }) = error.cause::<EvictionPolicy>()
    {
        return format!(
            "the Redis server at {server} runs with maxmemory-policy {policy}, so it may evict {} \
             on its own; set it to noeviction (CONFIG SET maxmemory-policy noeviction) or pass \
             --allow-redis-eviction to accept that",
            if *evicts_counters {
                "counters"
            } else {
                "idempotency records before they expire (a retried write could then count twice)"
            }
        );
    }
    if let Some(SchemaRefusal { schema, problem }) = error.cause::<SchemaRefusal>() {
        return match problem {
            SchemaProblem::Foreign => format!(
                "the PostgreSQL schema {schema:?} belongs to another application (tables of its \
                 own and no tally version row), so tally leaves it untouched; choose another \
                 --postgres-schema"
            ),
            SchemaProblem::NewerVersion { version, supported } => format!(
                "the PostgreSQL schema {schema:?} has tally schema version {version}, newer than \
                 this tally understands ({supported}); upgrade tally"
            ),
            problem => format!("the PostgreSQL schema {schema:?}: {problem}"),
        };
    }
    error.to_string()
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
