//! The Redis backend: the same `wasi:keyvalue` import on a Redis database, so tally processes on
//! several machines can share one store, and plain Redis clients see the same counters.
//!
//! Mapping: the default bucket `""` is the Redis database named in the URL (`redis://host/N`),
//! keys unprefixed, values the same ASCII decimal bytes, so `redis-cli INCR visits` and
//! `tally incr visits` move the same counter. Other buckets are refused (use another database
//! number instead). `list_keys` is `SCAN`: a page holds at most the keys asked for, so its
//! cursor is `SCAN`'s and the keys of the last step that did not fit (see [`ScanPosition`]).
//! A key present during a whole listing is listed at least once; `SCAN` may list one twice.
//!
//! Increments run as one Lua script (atomic on the server): it refuses a value that is not ASCII
//! digits and then `INCRBY`s, and answers with a status code, so the host tells "not a number"
//! from "out of Redis's range" without reading error text. Redis counters are signed 64-bit, so
//! on this backend a counter ranges over 0..=9223372036854775807 and an increment past that is
//! the overflow error, never a wrapped value.
//!
//! A write with an idempotency key runs the same script with a record ([`WRITE_SCRIPT`]): it
//! looks the record up, applies the write and records it atomically on the server, so every tally
//! process sharing the database shares the records. A record is the hash
//! `\x1ftally-idempotency:KEY` (fields `fingerprint` and `outcome`) that Redis itself expires
//! after the retention; the `\x1f` (a control character, which no counter name may contain) keeps
//! records and counters apart, and listing skips them.
//! `redis-cli --scan --pattern $'\x1ftally-idempotency:*'` shows them.
//!
//! A write group (import) is one `MULTI`/`EXEC`: sets and deletes need nothing more, and a group
//! with increments first `WATCH`es and reads their counters, computes the sums in Rust (the same
//! rule as every backend) and retries if another client changed one before `EXEC`.
//!
//! The client is synchronous: every operation runs off the async executor (see
//! `storage::blocking`).
//!
//! A server that cannot be reached (refused, dropped, timed out) is
//! [`StorageError::Unavailable`], not a failure of the operation: a host can answer "retry".
//! A write is [`StorageError::OutcomeUnknown`] only when its connection broke after the write
//! left; a pooled connection that sat idle is checked before it carries one, so a server that
//! had already closed it (shut down, restarted) gives the outage, with nothing sent.
//!
//! Redis can evict keys on its own under memory pressure, which for counters is silent data loss,
//! and for idempotency records (which carry a TTL, so `volatile-*` policies evict them too) a
//! retried write counted twice. [`RedisStorage::open`] therefore reads `maxmemory-policy` and
//! refuses every evicting policy unless the caller explicitly accepts it.

use super::apply::{self, WorkingCopy};
use super::{
    Applied, Capabilities, Cursor, Detail, KeyPage, MAX_PAGE_SIZE, Note, Storage, StorageError,
    StoreFuture, Write, WriteGroup, WriteRequest, Written, blocking, idempotency, value,
};
use redis::{Client, Connection, RedisError, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a connect, read or write may take before the operation fails.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 32;

/// How long a pooled connection may sit unused and still carry a write without a `PING`
/// first ([`Server::with_checked`]): under load connections come back within microseconds and
/// skip it; after a pause, the check costs one round trip.
const CHECK_IDLE_AFTER: Duration = Duration::from_millis(1);

/// How often a write group with increments is tried again after another client changed one
/// of its counters between the read and `EXEC`.
const GROUP_ATTEMPTS: usize = 32;

/// Redis counters are signed 64-bit integers.
const COUNTER_LIMIT: u64 = i64::MAX as u64;

/// What every idempotency record's Redis key starts with: a control character first, so it is
/// never a counter's name ([`RedisStorage::list_keys`] skips such keys).
const IDEMPOTENCY_PREFIX: &str = "\x1ftally-idempotency:";

/// What every note's Redis key starts with (`Storage::keep_note`), apart from counters as
/// [`IDEMPOTENCY_PREFIX`] is.
const NOTE_PREFIX: &str = "\x1ftally-note:";

/// The first byte of tally's own keys (records, notes): a control character, which no counter
/// name contains.
const OWN_KEY_MARK: char = '\x1f';

/// Keeps a note unless one of its name exists, and answers the value kept: `KEYS[1]` the
/// note, `ARGV[1]` its value, `ARGV[2]` its time to live in milliseconds (empty: for good).
/// Redis expires it itself.
const KEEP_NOTE_SCRIPT: &str = r"
local kept = redis.call('GET', KEYS[1])
if kept then
  return kept
end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return ARGV[1]
";

/// One write as one atomic server-side step, recorded under an idempotency key when it has one.
/// `KEYS[1]` is the counter; `ARGV` the operation (`increment`, `set`, `delete`) and its operand
/// (the delta, in decimal; the value). With a record, `KEYS[2]` is the record and `ARGV[3]`,
/// `ARGV[4]` the write's fingerprint and the retention in milliseconds (a record kept for no
/// time is not made at all: it would have expired the instant it was made).
///
/// Answers `{0, outcome}` once applied (and recorded); `{1}` when the counter to increment is
/// not ASCII digits; `{2}` when `INCRBY` refused the increment (past the i64 range, a delta
/// past it included, or digits Redis does not read as an integer, such as leading zeros);
/// `{3, outcome}` for a replay of the recorded write; `{4, recorded fingerprint}` for a key
/// first used by another write; `{5, type}` when the key holds another type than a string (a
/// list, a hash...), which no write of tally replaces. Nothing is written or recorded unless it
/// answers 0.
///
/// The outcome is the stored string, not INCRBY's reply: Lua numbers in Redis are doubles, so
/// an integer reply above 2^53 would come back rounded.
const WRITE_SCRIPT: &str = r"
if KEYS[2] then
  local recorded = redis.call('HMGET', KEYS[2], 'fingerprint', 'outcome')
  if recorded[1] then
    if recorded[1] == ARGV[3] then
      return {3, recorded[2]}
    end
    return {4, recorded[1]}
  end
end
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'none' and kind ~= 'string' then
  return {5, kind}
end
local outcome = '0'
if ARGV[1] == 'increment' then
  local value = redis.call('GET', KEYS[1])
  if value and not string.match(value, '^%d+$') then
    return {1}
  end
  local added = redis.pcall('INCRBY', KEYS[1], ARGV[2])
  if type(added) == 'table' and added.err then
    return {2}
  end
  outcome = redis.call('GET', KEYS[1])
elseif ARGV[1] == 'set' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
if KEYS[2] and ARGV[4] ~= '0' then
  redis.call('HSET', KEYS[2], 'fingerprint', ARGV[3], 'outcome', outcome)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {0, outcome}
";

/// The status codes of [`WRITE_SCRIPT`].
const APPLIED: i64 = 0;
const NOT_A_NUMBER: i64 = 1;
const OUT_OF_RANGE: i64 = 2;
const REPLAYED: i64 = 3;
const KEY_REUSED: i64 = 4;
const FOREIGN: i64 = 5;

/// The first of `keys` that holds another type than a string, with its type (one pipelined
/// `TYPE` per key; nothing for no keys).
fn first_foreign<'k>(
    conn: &mut Connection,
    keys: &[&'k str],
) -> redis::RedisResult<Option<(&'k str, String)>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let mut types = redis::pipe();
    for key in keys {
        types.cmd("TYPE").arg(*key);
    }
    let types: Vec<String> = types.query(conn)?;
    Ok(keys
        .iter()
        .zip(types)
        .find(|(_, kind)| !matches!(kind.as_str(), "none" | "string"))
        .map(|(key, kind)| (*key, kind)))
}

/// A key that holds another Redis type than a string: not a counter, and never overwritten.
fn foreign_key(key: &str, kind: &str) -> StorageError {
    StorageError::Refused(
        format!(
            "the Redis key {key:?} holds a {kind}, not a counter: give tally a database of its own \
         (another number in the URL), or remove the key"
        )
        .into(),
    )
}

/// The idempotency record a write of [`WRITE_SCRIPT`] makes: the client's key, the write's
/// fingerprint, how long Redis keeps it.
struct Record<'a> {
    key: &'a str,
    fingerprint: &'a str,
    retention_ms: u128,
}

/// [`Storage`] on one Redis database.
pub struct RedisStorage {
    // Shared with the blocking tasks that run the commands.
    server: Arc<Server>,
}

/// The server's client, the idle connections and the scripts.
struct Server {
    client: Client,
    // A std mutex held only to take or return a connection, never across a command. Each
    // with the instant it was returned.
    idle: Mutex<Vec<(Connection, Instant)>>,
    script: redis::Script,
    keep_note: redis::Script,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("server", &self.server.client.get_connection_info().addr())
            .finish_non_exhaustive()
    }
}

/// The row of [`crate::open::backends`] table: `redis://` and `rediss://` (TLS).
pub static BACKEND: crate::open::backend::Backend = crate::open::backend::Backend {
    name: "Redis",
    schemes: &["redis://", "rediss://"],
    options: &[crate::open::backend::StoreOption::AllowEviction],
    durability: |_| "the Redis server's appendfsync setting",
    open: |url, options| Ok(Arc::new(RedisStorage::open(url, options.allow_eviction)?)),
};

impl RedisStorage {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`) and checks the eviction
    /// policy: an `allkeys-*` or `volatile-*` policy is refused
    /// ([`StorageError::Misconfigured`], caused by an [`EvictionPolicy`]) unless
    /// `allow_eviction`.
    pub fn open(url: &str, allow_eviction: bool) -> Result<Self, StorageError> {
        let server = Server {
            client: Client::open(url).map_err(backend)?,
            idle: Mutex::new(Vec::new()),
            script: redis::Script::new(WRITE_SCRIPT),
            keep_note: redis::Script::new(KEEP_NOTE_SCRIPT),
        };
        let policy: Vec<String> = server
            .with(|conn| {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query(conn)
            })
            .map_err(backend)?;
        let policy = policy.get(1).cloned().unwrap_or_default();
        let evicts_counters = policy.starts_with("allkeys-");
        if (evicts_counters || policy.starts_with("volatile-")) && !allow_eviction {
            return Err(StorageError::Misconfigured(Detail::of(EvictionPolicy {
                server: url.to_string(),
                policy,
                evicts_counters,
            })));
        }
        Ok(Self {
            server: Arc::new(server),
        })
    }

    /// Runs `operation` on the server off the async executor.
    fn run<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Server) -> Result<T, StorageError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let server = Arc::clone(&self.server);
        Box::pin(blocking::run(move || operation(&server)))
    }

    fn only_default_bucket(bucket: &str) -> Result<(), StorageError> {
        if bucket.is_empty() {
            Ok(())
        } else {
            Err(StorageError::NoSuchBucket(bucket.to_string()))
        }
    }

    /// `operation` when `bucket` is the default one, the refusal otherwise.
    fn in_bucket<T: Send + 'static>(
        &self,
        bucket: &str,
        operation: impl FnOnce(&Server) -> Result<T, StorageError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        match Self::only_default_bucket(bucket) {
            Ok(()) => self.run(operation),
            Err(refused) => Box::pin(std::future::ready(Err(refused))),
        }
    }
}

impl Server {
    /// Runs `command` on an idle connection (or a new one). A connection whose error leaves it
    /// unusable is dropped; one that merely carried a server's error reply is kept.
    fn with<T>(
        &self,
        command: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let conn = self.take(false)?;
        self.finish(conn, command)
    }

    /// [`Server::with`] for a command that writes: an idle connection is first asked for a
    /// `PING` when it has sat unused for [`CHECK_IDLE_AFTER`] or longer, so a write never goes
    /// out on a connection the server has already closed (it shut down, restarted, or dropped
    /// idle clients): such a write would break after it left, its outcome unknown, when the
    /// truth is that it never reached a server. A connection that fails its `PING` is dropped
    /// with every other idle one, and the write gets a new connection (or, with the server
    /// gone, the outage, before anything was sent).
    fn with_checked<T>(
        &self,
        command: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let conn = self.take(true)?;
        self.finish(conn, command)
    }

    /// An idle connection (checked first when `check` and it sat idle long enough), or a new
    /// one.
    fn take(&self, check: bool) -> redis::RedisResult<Connection> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some((mut conn, since)) = idle else {
                let conn = self.client.get_connection_with_timeout(TIMEOUT)?;
                conn.set_read_timeout(Some(TIMEOUT))?;
                conn.set_write_timeout(Some(TIMEOUT))?;
                return Ok(conn);
            };
            if !check || since.elapsed() < CHECK_IDLE_AFTER {
                return Ok(conn);
            }
            match redis::cmd("PING").query::<String>(&mut conn) {
                Ok(_) => return Ok(conn),
                // The server is gone or replaced: so are the other idle connections.
                Err(_) => {
                    if let Ok(mut idle) = self.idle.lock() {
                        idle.clear();
                    }
                }
            }
        }
    }

    /// Runs `command` on `conn`, then keeps the connection for reuse or drops it.
    fn finish<T>(
        &self,
        mut conn: Connection,
        command: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let result = command(&mut conn);
        let reusable = result
            .as_ref()
            .map_or_else(|error| !error.is_unrecoverable_error(), |_| true);
        if let Ok(mut idle) = self.idle.lock() {
            if reusable && idle.len() < MAX_IDLE {
                idle.push((conn, Instant::now()));
            } else if !reusable {
                // The server went away (or restarted): the idle connections are as dead as
                // this one. Forget them all, so the next command connects afresh and the store
                // serves again as soon as the server is back.
                idle.clear();
            }
        }
        result
    }

    /// One command, its error as a storage error.
    fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, StorageError> {
        self.with(|conn| command.query(conn)).map_err(backend)
    }

    /// Fails naming the first of `keys` that holds another type than a string (a list, a
    /// hash...): tally's database holds counters only.
    fn foreign_keys(&self, keys: &[&str]) -> Result<(), StorageError> {
        match self
            .with(|conn| first_foreign(conn, keys))
            .map_err(backend)?
        {
            Some((key, kind)) => Err(foreign_key(key, &kind)),
            None => Ok(()),
        }
    }

    /// Why `INCRBY` refused an increment of `key`: past the Redis range (the overflow error),
    /// or digits Redis does not take as an integer (leading zeros, which the other backends
    /// accept). Nothing was written.
    fn out_of_range(&self, key: &str, delta: u64) -> StorageError {
        let current = match self.query::<Option<Vec<u8>>>(redis::cmd("GET").arg(key)) {
            Ok(Some(bytes)) => value::decode(&bytes),
            Ok(None) => Some(0),
            Err(failure) => return failure,
        };
        match current {
            Some(current)
                if current
                    .checked_add(delta)
                    .is_none_or(|sum| sum > COUNTER_LIMIT) =>
            {
                StorageError::Overflow {
                    key: key.to_string(),
                    current,
                    delta,
                }
            }
            _ => StorageError::Other(format!(
                "Redis cannot increment {key:?}: its stored digits are not an integer in Redis's \
                 own form (leading zeros?); setting the counter again rewrites it"
            ).into()),
        }
    }

    /// `write` in one [`WRITE_SCRIPT`], recorded as `record` says when there is one: what it
    /// came to, or why it was refused.
    fn run_write(
        &self,
        write: &Write,
        record: Option<Record<'_>>,
    ) -> Result<Written, StorageError> {
        let (counter, operation, operand) = match write {
            Write::Increment { key, delta } => (key, "increment", delta.to_string().into_bytes()),
            Write::Set { key, value } => (key, "set", value.clone()),
            Write::Delete { key } => (key, "delete", Vec::new()),
        };
        let mut invocation = self.script.key(counter);
        invocation.arg(operation).arg(operand);
        if let Some(record) = &record {
            invocation
                .key(format!("{IDEMPOTENCY_PREFIX}{}", record.key))
                .arg(record.fingerprint)
                .arg(record.retention_ms.to_string());
        }
        let mut sent = false;
        let reply: Vec<Value> = self
            .with_checked(|conn| {
                sent = true;
                invocation.invoke(conn)
            })
            .map_err(|error| after_sending(error, sent))?;
        let number = |bytes: &[u8]| {
            value::decode(bytes).ok_or_else(|| {
                StorageError::Other(
                    format!(
                        "Redis answered {:?} for a {operation} of {counter:?}",
                        String::from_utf8_lossy(bytes)
                    )
                    .into(),
                )
            })
        };
        match (reply.as_slice(), write, record) {
            ([Value::Int(APPLIED), Value::BulkString(outcome)], _, _) => {
                Ok(Written::applied(number(outcome)?))
            }
            ([Value::Int(REPLAYED), Value::BulkString(outcome)], _, Some(_)) => {
                Ok(Written::replayed(number(outcome)?))
            }
            ([Value::Int(KEY_REUSED), Value::BulkString(recorded)], _, Some(record)) => {
                Err(StorageError::IdempotencyKeyReused {
                    key: record.key.to_string(),
                    recorded: String::from_utf8_lossy(recorded).into_owned(),
                    requested: record.fingerprint.to_string(),
                })
            }
            ([Value::Int(FOREIGN), Value::BulkString(kind)], _, _) => {
                Err(foreign_key(counter, &String::from_utf8_lossy(kind)))
            }
            ([Value::Int(NOT_A_NUMBER)], _, _) => Err(StorageError::NotANumber {
                key: counter.clone(),
            }),
            ([Value::Int(OUT_OF_RANGE)], Write::Increment { delta, .. }, _) => {
                Err(self.out_of_range(counter, *delta))
            }
            (other, _, _) => Err(StorageError::Other(
                format!("Redis answered the {operation} script with {other:?}").into(),
            )),
        }
    }

    /// `group` in one `MULTI`/`EXEC`: its keys `WATCH`ed and read, the write rules applied to
    /// what was read ([`apply::apply_group`]: expectations, increments, all or nothing), then
    /// each written key's final value sent, so the group is refused whole (nothing sent) when
    /// one write would not apply, and tried again when another client changed a watched key
    /// before `EXEC`.
    fn run_group(&self, group: &WriteGroup) -> Result<Vec<u64>, StorageError> {
        // Every key written is watched: its type is checked too (a write never replaces a
        // list or a hash), and that check must still hold at EXEC.
        let mut watched: Vec<&str> = group
            .writes
            .iter()
            .map(Write::key)
            .chain(group.expected.iter().map(|expected| expected.key.as_str()))
            .collect();
        watched.sort_unstable();
        watched.dedup();
        for _ in 0..GROUP_ATTEMPTS {
            let mut sent = false;
            let committed = self
                .with_checked(
                    |conn| -> redis::RedisResult<Result<Option<Vec<u64>>, StorageError>> {
                        if watched.is_empty() {
                            return Ok(Ok(Some(Vec::new())));
                        }
                        redis::cmd("WATCH").arg(&watched).query::<()>(conn)?;
                        let current: Vec<Option<Vec<u8>>> =
                            redis::cmd("MGET").arg(&watched).query(conn)?;
                        // MGET answers nil for another type as for an absent key.
                        let missing: Vec<&str> = watched
                            .iter()
                            .zip(&current)
                            .filter(|(_, value)| value.is_none())
                            .map(|(key, _)| *key)
                            .collect();
                        if let Some((key, kind)) = first_foreign(conn, &missing)? {
                            redis::cmd("UNWATCH").query::<()>(conn)?;
                            return Ok(Err(foreign_key(key, &kind)));
                        }
                        let mut copy = Watched {
                            values: watched.iter().copied().zip(current).collect(),
                            written: Vec::new(),
                        };
                        let outcomes = match apply::apply_group(&mut copy, group, COUNTER_LIMIT) {
                            Ok(Ok(outcomes)) if !copy.written.is_empty() => outcomes,
                            // Only expectations: one MGET read them all at one instant.
                            Ok(Ok(outcomes)) => {
                                redis::cmd("UNWATCH").query::<()>(conn)?;
                                return Ok(Ok(Some(outcomes)));
                            }
                            Ok(Err(refused)) | Err(refused) => {
                                redis::cmd("UNWATCH").query::<()>(conn)?;
                                return Ok(Err(refused));
                            }
                        };
                        let mut transaction = redis::pipe();
                        transaction.atomic();
                        for key in &copy.written {
                            match copy.values.get(key).cloned().flatten() {
                                Some(value) => transaction.set(*key, value).ignore(),
                                None => transaction.del(*key).ignore(),
                            };
                        }
                        // EXEC answers nil when a watched key changed: nothing was applied.
                        sent = true;
                        let applied: Option<()> = transaction.query(conn)?;
                        Ok(Ok(applied.map(|()| outcomes)))
                    },
                )
                .map_err(|error| after_sending(error, sent))??;
            if let Some(outcomes) = committed {
                return Ok(outcomes);
            }
        }
        Err(StorageError::Busy(
            format!(
                "other clients kept changing the counters of a write group; it was tried \
                 {GROUP_ATTEMPTS} times and nothing was applied"
            )
            .into(),
        ))
    }
}

/// What a write group read under `WATCH`, as its writes change it (the working copy the write
/// rules apply to), and which keys they wrote, in order.
struct Watched<'a> {
    values: std::collections::HashMap<&'a str, Option<Vec<u8>>>,
    written: Vec<&'a str>,
}

impl<'a> WorkingCopy for Watched<'a> {
    type Error = StorageError;

    fn get(&mut self, _bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.values.get(key).cloned().ok_or_else(|| unwatched(key))
    }

    fn put(
        &mut self,
        _bucket: &str,
        key: &str,
        value: Option<Vec<u8>>,
    ) -> Result<(), StorageError> {
        let (&watched, _) = self
            .values
            .get_key_value(key)
            .ok_or_else(|| unwatched(key))?;
        self.values.insert(watched, value);
        if !self.written.contains(&watched) {
            self.written.push(watched);
        }
        Ok(())
    }
}

/// A key a write group did not watch: the store's own mistake.
fn unwatched(key: &str) -> StorageError {
    StorageError::Other(format!("a write group wrote {key:?} without watching it").into())
}

/// A Redis error as a storage error: an outage when the server could not be reached or is not
/// serving yet, a failure otherwise.
/// A write's Redis error: once the write was handed to a connection, a connection that broke
/// or went silent before answering may have applied it ([`StorageError::OutcomeUnknown`]);
/// before that, [`backend`]'s reading.
fn after_sending(error: RedisError, sent: bool) -> StorageError {
    if sent && (error.is_io_error() || error.is_connection_dropped() || error.is_timeout()) {
        StorageError::OutcomeUnknown(
            format!("Redis: the connection broke after the write was sent ({error})").into(),
        )
    } else {
        backend(error)
    }
}

fn backend(error: RedisError) -> StorageError {
    use redis::{ErrorKind, ServerErrorKind};
    // Up but not serving yet (LOADING its data after a restart, a replica without its master)
    // is an outage too: the same request succeeds in a moment.
    let not_ready = matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
        )
    );
    match error.code() {
        // Out of memory at its maxmemory, or refusing writes it cannot persist (a full disk).
        Some("OOM" | "MISCONF") => return StorageError::NoSpace(format!("Redis: {error}").into()),
        Some("NOAUTH" | "WRONGPASS" | "NOPERM") => {
            return StorageError::Misconfigured(
                format!(
                    "Redis: {error}; check the user and password in the store's URL \
                 (redis://USER:PASSWORD@HOST) and the user's ACL"
                )
                .into(),
            );
        }
        _ => {}
    }
    if not_ready
        || error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
    {
        StorageError::Unavailable(format!("Redis: {error}").into())
    } else {
        StorageError::Other(format!("Redis: {error}").into())
    }
}

/// A Redis server that may evict keys on its own (its `maxmemory-policy`), when the store was
/// not opened allowing that: the cause of a [`StorageError::Misconfigured`], typed so a host
/// can word it in its own terms (its flag that allows eviction).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Redis server at {server} runs with maxmemory-policy {policy}, so it may evict {} on \
     its own; set it to noeviction (CONFIG SET maxmemory-policy noeviction) or open the \
     store allowing eviction",
    if *evicts_counters {
        "counters"
    } else {
        "idempotency records before they expire (a retried write could then count twice)"
    }
)]
pub struct EvictionPolicy {
    /// The server, as its URL was given.
    pub server: String,
    /// Its `maxmemory-policy`.
    pub policy: String,
    /// `allkeys-*`: counters themselves may go (`volatile-*`: only records, which expire).
    pub evicts_counters: bool,
}

/// Where a Redis listing goes on: the `SCAN` step to take next (`None`: the scan has ended) and
/// the keys an earlier step found past the page's limit, which come first. Encoded as the
/// page's [`Cursor`]: a version byte, a flag byte (1: the scan goes on), the step (8 bytes,
/// big-endian), then each held key as a 4-byte length and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScanPosition {
    next_step: Option<u64>,
    held: Vec<String>,
}

/// The first byte of an encoded [`ScanPosition`].
const SCAN_POSITION_VERSION: u8 = 1;

impl ScanPosition {
    fn encode(&self) -> Cursor {
        let mut bytes = vec![SCAN_POSITION_VERSION, u8::from(self.next_step.is_some())];
        bytes.extend(self.next_step.unwrap_or(0).to_be_bytes());
        for key in &self.held {
            // A Redis key is at most 512 MB, well inside 32 bits.
            bytes.extend(u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
            bytes.extend(key.as_bytes());
        }
        Cursor::from_bytes(bytes)
    }

    fn decode(cursor: &Cursor) -> Result<Self, StorageError> {
        let invalid = || StorageError::InvalidCursor("not a list cursor of Redis".into());
        let bytes = cursor.as_bytes();
        let (header, mut rest) = bytes.split_at_checked(10).ok_or_else(invalid)?;
        if header[0] != SCAN_POSITION_VERSION || header[1] > 1 {
            return Err(invalid());
        }
        let step = u64::from_be_bytes(header[2..10].try_into().map_err(|_| invalid())?);
        let mut held = Vec::new();
        while !rest.is_empty() {
            let (length, after) = rest.split_at_checked(4).ok_or_else(invalid)?;
            let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
            let length = usize::try_from(length).map_err(|_| invalid())?;
            let (key, after) = after.split_at_checked(length).ok_or_else(invalid)?;
            held.push(String::from_utf8(key.to_vec()).map_err(|_| invalid())?);
            rest = after;
        }
        Ok(Self {
            next_step: (header[1] == 1).then_some(step),
            held,
        })
    }
}

impl Storage for RedisStorage {
    /// Records in the write script; groups in `MULTI`/`EXEC`; notes as keys Redis expires.
    /// Increment limits below Redis's
    /// own would need a check of their own in the script, which no caller needs.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_idempotency_records()
            .with_write_groups()
            .with_notes()
    }

    fn check_bucket(&self, bucket: &str) -> Result<(), StorageError> {
        Self::only_default_bucket(bucket)
    }

    /// A `PING`.
    fn check_ready(&self) -> StoreFuture<'_, ()> {
        self.run(|server| server.query::<String>(&redis::cmd("PING")).map(|_| ()))
    }

    fn counter_limit(&self) -> u64 {
        COUNTER_LIMIT
    }

    /// A key of another type (a list, a hash...) is an error that names it.
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = key.to_string();
        self.in_bucket(bucket, move |server| {
            server
                .with(|conn| redis::cmd("GET").arg(&key).query(conn))
                .map_err(|failure| {
                    match failure.code() {
                        Some("WRONGTYPE") => server.foreign_keys(&[&key]).err(),
                        _ => None,
                    }
                    .unwrap_or_else(|| backend(failure))
                })
        })
    }

    /// One `MGET`: one round trip, and Redis answers it at one point in time. `MGET` answers
    /// nil for a key of another type too, so the missing keys' types are read (one more round
    /// trip, only when some are missing) and a foreign key is an error that names it.
    fn get_many<'a>(
        &'a self,
        bucket: &'a str,
        keys: &'a [String],
    ) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        let keys = keys.to_vec();
        self.in_bucket(bucket, move |server| {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let values: Vec<Option<Vec<u8>>> = server.query(redis::cmd("MGET").arg(&keys))?;
            let missing: Vec<&str> = keys
                .iter()
                .zip(&values)
                .filter(|(_, value)| value.is_none())
                .map(|(key, _)| key.as_str())
                .collect();
            server.foreign_keys(&missing)?;
            Ok(values)
        })
    }

    fn exists<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, bool> {
        let key = key.to_string();
        self.in_bucket(bucket, move |server| {
            server.query(redis::cmd("EXISTS").arg(key))
        })
    }

    /// `SCAN` steps (each asking for `limit` keys; Redis answers a few more or fewer) until
    /// `limit` keys are found or the scan ends; the keys past `limit` travel in the cursor to
    /// the next page. Keys that are not UTF-8 cannot be counter names and are skipped, as are
    /// tally's own (idempotency records and notes, `\x1ftally-...`).
    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, KeyPage> {
        let position = match cursor.map(ScanPosition::decode).transpose() {
            Ok(position) => position.unwrap_or(ScanPosition {
                next_step: Some(0),
                held: Vec::new(),
            }),
            Err(refused) => return Box::pin(std::future::ready(Err(refused))),
        };
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        self.in_bucket(bucket, move |server| {
            let ScanPosition {
                mut next_step,
                held: mut keys,
            } = position;
            while keys.len() < limit
                && let Some(step) = next_step
            {
                let (next, found): (u64, Vec<Vec<u8>>) =
                    server.query(redis::cmd("SCAN").arg(step).arg("COUNT").arg(limit))?;
                keys.extend(
                    found
                        .into_iter()
                        .filter_map(|key| String::from_utf8(key).ok())
                        .filter(|key| !key.starts_with(OWN_KEY_MARK)),
                );
                next_step = (next != 0).then_some(next);
            }
            let held = keys.split_off(keys.len().min(limit));
            let rest = ScanPosition { next_step, held };
            Ok(KeyPage {
                keys,
                cursor: (rest.next_step.is_some() || !rest.held.is_empty()).then(|| rest.encode()),
                values: None,
            })
        })
    }

    /// `GET` of the note's key.
    fn read_note<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let key = format!("{NOTE_PREFIX}{name}");
        self.run(move |server| server.query(redis::cmd("GET").arg(key)))
    }

    /// One script (`KEEP_NOTE_SCRIPT`): looked up, and set when absent, atomically.
    fn keep_note(&self, note: Note) -> StoreFuture<'_, Vec<u8>> {
        self.run(move |server| {
            let ttl = note
                .ttl
                .map(|ttl| ttl.as_millis().max(1).to_string())
                .unwrap_or_default();
            let mut invocation = server.keep_note.key(format!("{NOTE_PREFIX}{}", note.name));
            invocation.arg(note.value).arg(ttl);
            server
                .with_checked(|conn| invocation.invoke(conn))
                .map_err(backend)
        })
    }

    /// The write script (`WRITE_SCRIPT`), with a record when the request has a key: lookup,
    /// write and record in one atomic step.
    fn write(&self, request: WriteRequest) -> StoreFuture<'_, Applied> {
        if let Err(refused) = Self::only_default_bucket(&request.bucket) {
            return Box::pin(std::future::ready(Err(refused)));
        }
        self.run(move |server| {
            let fingerprint;
            let record = match &request.idempotency_key {
                Some(key) => {
                    fingerprint = idempotency::fingerprint(&request.bucket, &request.write);
                    Some(Record {
                        key: key.as_str(),
                        fingerprint: &fingerprint,
                        retention_ms: request.idempotency_retention.as_millis(),
                    })
                }
                None => None,
            };
            server
                .run_write(&request.write, record)
                .map(Applied::durable_now)
        })
    }

    /// One `MULTI`/`EXEC` (see the module documentation).
    fn write_group(&self, group: WriteGroup) -> StoreFuture<'_, Vec<u64>> {
        if let Err(refused) = Self::only_default_bucket(&group.bucket) {
            return Box::pin(std::future::ready(Err(refused)));
        }
        self.run(move |server| server.run_group(&group))
    }
}
