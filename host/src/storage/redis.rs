//! The Redis backend: the same `wasi:keyvalue` import on a Redis database, so tally processes on
//! several machines can share one store, and plain Redis clients see the same counters.
//!
//! Mapping: the default bucket `""` is the Redis database named in the URL (`redis://host/N`),
//! keys unprefixed, values the same ASCII decimal bytes, so `redis-cli INCR visits` and
//! `tally incr visits` move the same counter. Other buckets are refused (use another database
//! number instead). `list_keys` is `SCAN` (its cursor is the page cursor; SCAN may return a key
//! twice, and the component removes duplicates).
//!
//! Increments run as one Lua script (atomic on the server): it refuses a value that is not ASCII
//! digits and then `INCRBY`s. Redis counters are signed 64-bit, so on this backend a counter
//! ranges over 0..=9223372036854775807 and an increment past that is the overflow error, never a
//! wrapped value.
//!
//! Redis can evict keys on its own under memory pressure, which for counters is silent data loss.
//! [`RedisStorage::open`] therefore reads `maxmemory-policy` and refuses the evicting `allkeys-*`
//! policies unless the caller explicitly accepts them.

use super::{KeyPage, Storage, StorageError};
use redis::{Client, Connection, RedisError};
use std::sync::Mutex;
use std::time::Duration;

/// How long a connect, read or write may take before the operation fails.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 32;

/// Keys asked for per `SCAN` call.
const SCAN_COUNT: usize = 1000;

/// Adds to an ASCII-decimal counter; refuses anything else. One atomic server-side step.
///
/// It returns the new value as the stored string, not INCRBY's reply: Lua numbers in Redis are
/// doubles, so an integer reply above 2^53 would come back rounded.
const INCREMENT_SCRIPT: &str = r"
local value = redis.call('GET', KEYS[1])
if value and not string.match(value, '^%d+$') then
  return redis.error_reply('TALLY_NOT_A_NUMBER')
end
redis.call('INCRBY', KEYS[1], ARGV[1])
return redis.call('GET', KEYS[1])
";

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
        if reusable
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
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

    /// Why an increment the script refused failed: read the value to tell "not a number" from
    /// "past the Redis range". Nothing was written.
    fn refused_increment(&self, key: &str, delta: u64, error: &RedisError) -> StorageError {
        // Redis prefixes a script's error reply with its own code ("ERR TALLY_NOT_A_NUMBER").
        if error.to_string().contains("TALLY_NOT_A_NUMBER") {
            return StorageError::NotANumber {
                key: key.to_string(),
            };
        }
        let current = match self.get("", key) {
            Ok(Some(bytes)) => tally_guest::value::decode(&bytes),
            Ok(None) => Some(0),
            Err(failure) => return failure,
        };
        match current {
            // Digits that INCRBY could not take: beyond i64 (or leading zeros, which Redis
            // refuses and tally's own backends accept).
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
            Some(_) | None => StorageError::Backend(format!("Redis: {error}")),
        }
    }
}

fn backend(error: RedisError) -> StorageError {
    StorageError::Backend(format!("Redis: {error}"))
}

impl Storage for RedisStorage {
    fn check_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        Self::only_default_bucket(bucket)
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

    /// One `SCAN` step. Keys that are not UTF-8 cannot be counter names and are skipped.
    fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> Result<KeyPage, StorageError> {
        Self::only_default_bucket(bucket)?;
        let (next, keys): (u64, Vec<Vec<u8>>) = self
            .with(|conn| {
                redis::cmd("SCAN")
                    .arg(cursor.unwrap_or(0))
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query(conn)
            })
            .map_err(backend)?;
        Ok(KeyPage {
            keys: keys
                .into_iter()
                .filter_map(|key| String::from_utf8(key).ok())
                .collect(),
            cursor: (next != 0).then_some(next),
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
        let outcome: redis::RedisResult<Vec<u8>> =
            self.with(|conn| self.script.key(key).arg(signed_delta).invoke(conn));
        match outcome {
            Ok(new) => tally_guest::value::decode(&new).ok_or_else(|| {
                StorageError::Backend(format!(
                    "Redis stored {:?} for {key:?} after an increment",
                    String::from_utf8_lossy(&new)
                ))
            }),
            Err(error) if error.code().is_some() => Err(self.refused_increment(key, delta, &error)),
            Err(error) => Err(backend(error)),
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
