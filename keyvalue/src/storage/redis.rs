//! The Redis backend: the same `wasi:keyvalue` import on a Redis database, so tally processes on
//! several machines can share one store, and plain Redis clients see the same counters.
//!
//! Mapping: the default bucket `""` is the Redis database named in the URL (`redis://host/N`),
//! keys unprefixed, values the same ASCII decimal bytes, so `redis-cli INCR visits` and
//! `tally incr visits` move the same counter. Other buckets are refused (use another database
//! number instead). `list_keys` is `SCAN` (its cursor, in decimal, is the page cursor; SCAN may
//! return a key twice).
//!
//! Increments run as one Lua script (atomic on the server): it refuses a value that is not ASCII
//! digits and then `INCRBY`s, and answers with a status code, so the host tells "not a number"
//! from "out of Redis's range" without reading error text. Redis counters are signed 64-bit, so
//! on this backend a counter ranges over 0..=9223372036854775807 and an increment past that is
//! the overflow error, never a wrapped value.
//!
//! A server that cannot be reached (refused, dropped, timed out) is
//! [`StorageError::Unavailable`], not a failure of the operation: a host can answer "retry".
//!
//! Redis can evict keys on its own under memory pressure, which for counters is silent data loss.
//! [`RedisStorage::open`] therefore reads `maxmemory-policy` and refuses the evicting `allkeys-*`
//! policies unless the caller explicitly accepts them.

use super::{Cursor, KeyPage, MAX_PAGE_SIZE, Storage, StorageError};
use redis::{Client, Connection, RedisError, Value};
use std::sync::Mutex;
use std::time::Duration;

/// How long a connect, read or write may take before the operation fails.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 32;

/// Adds to an ASCII-decimal counter; refuses anything else. One atomic server-side step that
/// answers `{0, new value}`, or `{1}` when the stored value is not ASCII digits, or `{2}` when
/// `INCRBY` refused it (past the i64 range, or digits Redis does not read as an integer, such
/// as leading zeros). Nothing is written unless it answers 0.
///
/// The new value is the stored string, not INCRBY's reply: Lua numbers in Redis are doubles, so
/// an integer reply above 2^53 would come back rounded.
const INCREMENT_SCRIPT: &str = r"
local value = redis.call('GET', KEYS[1])
if value and not string.match(value, '^%d+$') then
  return {1}
end
local added = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(added) == 'table' and added.err then
  return {2}
end
return {0, redis.call('GET', KEYS[1])}
";

/// The status codes of [`INCREMENT_SCRIPT`].
const INCREMENTED: i64 = 0;
const NOT_A_NUMBER: i64 = 1;
const OUT_OF_RANGE: i64 = 2;

/// [`Storage`] on one Redis database.
pub struct RedisStorage {
    client: Client,
    // A std mutex held only to take or return a connection, never across a command.
    idle: Mutex<Vec<Connection>>,
    script: redis::Script,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("server", &self.client.get_connection_info().addr())
            .finish_non_exhaustive()
    }
}

impl RedisStorage {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`) and checks the eviction
    /// policy: an `allkeys-*` policy is refused unless `allow_eviction`.
    pub fn open(url: &str, allow_eviction: bool) -> Result<Self, StorageError> {
        let client = Client::open(url).map_err(backend)?;
        let storage = Self {
            client,
            idle: Mutex::new(Vec::new()),
            script: redis::Script::new(INCREMENT_SCRIPT),
        };
        let policy: Vec<String> = storage
            .with(|conn| {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query(conn)
            })
            .map_err(backend)?;
        let policy = policy.get(1).cloned().unwrap_or_default();
        if policy.starts_with("allkeys-") && !allow_eviction {
            return Err(StorageError::Backend(format!(
                "the Redis server at {url} runs with maxmemory-policy {policy}, so it may evict \
                 counters on its own; set it to noeviction (CONFIG SET maxmemory-policy \
                 noeviction) or pass --allow-redis-eviction to accept losing counters"
            )));
        }
        Ok(storage)
    }

    /// Runs `command` on an idle connection (or a new one). A connection whose error leaves it
    /// unusable is dropped; one that merely carried a server's error reply is kept.
    fn with<T>(
        &self,
        command: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = self.client.get_connection_with_timeout(TIMEOUT)?;
                conn.set_read_timeout(Some(TIMEOUT))?;
                conn.set_write_timeout(Some(TIMEOUT))?;
                conn
            }
        };
        let result = command(&mut conn);
        let reusable = result
            .as_ref()
            .map_or_else(|error| !error.is_unrecoverable_error(), |_| true);
        if let Ok(mut idle) = self.idle.lock() {
            if reusable && idle.len() < MAX_IDLE {
                idle.push(conn);
            } else if !reusable {
                // The server went away (or restarted): the idle connections are as dead as
                // this one. Forget them all, so the next command connects afresh and the store
                // serves again as soon as the server is back.
                idle.clear();
            }
        }
        result
    }

    fn only_default_bucket(bucket: &str) -> Result<(), StorageError> {
        if bucket.is_empty() {
            Ok(())
        } else {
            Err(StorageError::NoSuchBucket(bucket.to_string()))
        }
    }

    /// Why `INCRBY` refused an increment of `key`: past the Redis range (the overflow error),
    /// or digits Redis does not take as an integer (leading zeros, which tally's other backends
    /// accept). Nothing was written.
    fn out_of_range(&self, key: &str, delta: u64) -> StorageError {
        let current = match self.get("", key) {
            Ok(Some(bytes)) => tally_guest::value::decode(&bytes),
            Ok(None) => Some(0),
            Err(failure) => return failure,
        };
        match current {
            Some(current)
                if current
                    .checked_add(delta)
                    .is_none_or(|sum| sum > self.counter_limit()) =>
            {
                StorageError::Overflow {
                    key: key.to_string(),
                    current,
                    delta,
                }
            }
            _ => StorageError::Backend(format!(
                "Redis cannot increment {key:?}: its stored digits are not an integer in Redis's \
                 own form (leading zeros?); `tally set` rewrites it"
            )),
        }
    }
}

/// A Redis error as a storage error: an outage when the server could not be reached, a failure
/// otherwise.
fn backend(error: RedisError) -> StorageError {
    if error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
    {
        StorageError::Unavailable(format!("Redis: {error}"))
    } else {
        StorageError::Backend(format!("Redis: {error}"))
    }
}

impl Storage for RedisStorage {
    fn check_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        Self::only_default_bucket(bucket)
    }

    /// A `PING`.
    fn check_ready(&self) -> Result<(), StorageError> {
        self.with(|conn| redis::cmd("PING").query::<String>(conn))
            .map(|_| ())
            .map_err(backend)
    }

    /// Redis counters are signed 64-bit integers.
    fn counter_limit(&self) -> u64 {
        i64::MAX as u64
    }

    fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Self::only_default_bucket(bucket)?;
        self.with(|conn| redis::cmd("GET").arg(key).query(conn))
            .map_err(backend)
    }

    /// One `MGET`: one round trip, and Redis answers it at one point in time.
    fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        Self::only_default_bucket(bucket)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|conn| redis::cmd("MGET").arg(keys).query(conn))
            .map_err(backend)
    }

    fn set(&self, bucket: &str, key: &str, value: &[u8]) -> Result<(), StorageError> {
        Self::only_default_bucket(bucket)?;
        self.with(|conn| redis::cmd("SET").arg(key).arg(value).query(conn))
            .map_err(backend)
    }

    fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        Self::only_default_bucket(bucket)?;
        self.with(|conn| redis::cmd("DEL").arg(key).query(conn))
            .map_err(backend)
    }

    fn exists(&self, bucket: &str, key: &str) -> Result<bool, StorageError> {
        Self::only_default_bucket(bucket)?;
        self.with(|conn| redis::cmd("EXISTS").arg(key).query(conn))
            .map_err(backend)
    }

    /// One `SCAN` step (asking for `limit` keys; Redis may return a few more or fewer). Keys
    /// that are not UTF-8 cannot be counter names and are skipped.
    fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<KeyPage, StorageError> {
        Self::only_default_bucket(bucket)?;
        let start: u64 = match cursor {
            None => 0,
            Some(cursor) => std::str::from_utf8(cursor.as_bytes())
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| StorageError::Backend("not a list cursor of Redis".into()))?,
        };
        let (next, keys): (u64, Vec<Vec<u8>>) = self
            .with(|conn| {
                redis::cmd("SCAN")
                    .arg(start)
                    .arg("COUNT")
                    .arg(limit.clamp(1, MAX_PAGE_SIZE))
                    .query(conn)
            })
            .map_err(backend)?;
        Ok(KeyPage {
            keys: keys
                .into_iter()
                .filter_map(|key| String::from_utf8(key).ok())
                .collect(),
            cursor: (next != 0).then(|| Cursor::from_bytes(next.to_string())),
        })
    }

    fn increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64, StorageError> {
        Self::only_default_bucket(bucket)?;
        let Ok(signed_delta) = i64::try_from(delta) else {
            let current = match self.get(bucket, key)? {
                None => 0,
                Some(bytes) => {
                    tally_guest::value::decode(&bytes).ok_or_else(|| StorageError::NotANumber {
                        key: key.to_string(),
                    })?
                }
            };
            return Err(StorageError::Overflow {
                key: key.to_string(),
                current,
                delta,
            });
        };
        let reply: Vec<Value> = self
            .with(|conn| self.script.key(key).arg(signed_delta).invoke(conn))
            .map_err(backend)?;
        match reply.as_slice() {
            [Value::Int(INCREMENTED), Value::BulkString(new)] => tally_guest::value::decode(new)
                .ok_or_else(|| {
                    StorageError::Backend(format!(
                        "Redis stored {:?} for {key:?} after an increment",
                        String::from_utf8_lossy(new)
                    ))
                }),
            [Value::Int(NOT_A_NUMBER)] => Err(StorageError::NotANumber {
                key: key.to_string(),
            }),
            [Value::Int(OUT_OF_RANGE)] => Err(self.out_of_range(key, delta)),
            other => Err(StorageError::Backend(format!(
                "Redis answered the increment script with {other:?}"
            ))),
        }
    }

    /// One `MSET`, which Redis applies atomically: other clients see all of the keys or none.
    fn set_many(
        &self,
        bucket: &str,
        entries: &[(String, Vec<u8>)],
        progress: &mut dyn FnMut(usize),
    ) -> Result<(), StorageError> {
        Self::only_default_bucket(bucket)?;
        if entries.is_empty() {
            return Ok(());
        }
        let mut mset = redis::cmd("MSET");
        for (key, value) in entries {
            mset.arg(key).arg(value);
        }
        self.with(|conn| mset.query::<()>(conn)).map_err(backend)?;
        progress(entries.len());
        Ok(())
    }
}
