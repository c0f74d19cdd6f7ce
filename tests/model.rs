//! Model-based restart testing: random sequences of get / increment / set / reset / list with
//! restarts interleaved (a new instance; the next request's instance, reused as a server reuses
//! them; a new engine; a reopened database), run through the real component on each backend and
//! checked after every step against a plain map. Writes may carry an idempotency key from a
//! small set (so keys get reused by other writes) and be retried exactly; the model keeps each
//! key's first write and answer, so it predicts every replay and every refused reuse. Each
//! keyed write takes its own request's instance, which later requests, keyed or not, reuse: no
//! key, replay or refusal passes from one to the next. proptest shrinks a failing sequence to a
//! minimal one.

use crate::common;

use common::Answer as _;
use common::block_on;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tally::idempotency::IdempotencyKey;
use tally::{ComponentSource, CounterError, Instance, RuntimeOptions, Service};
use tally_keyvalue::storage::{
    Durability, MemoryStorage, RedisStorage, SqliteOptions, SqliteStorage, Storage,
};

/// Names that collide often, plus two the component must refuse.
const NAMES: &[&str] = &["a", "b", "ünï/cödé", "", "bad\nname"];

#[derive(Debug, Clone)]
enum Op {
    Get(usize),
    Increment(usize, u64),
    Set(usize, u64),
    Reset(usize),
    List,
    /// Drop the instance and its Store; instantiate again.
    NewInstance,
    /// Hand the instance back and take the next request's, as a server does: the runtime
    /// reuses instances (up to 4 requests each), so it may be one a keyed write used.
    NextRequest,
    /// Drop the engine and everything compiled in it too.
    NewEngine,
    /// Also close and reopen the database (for the memory backend: same as `NewEngine`).
    Reopen,
    /// A write (`Increment`, `Set` or `Reset`) with idempotency key number `.0`.
    Keyed(usize, Box<Op>),
    /// The last keyed write again, exactly: a client's retry after a lost answer.
    Retry,
}

/// How many idempotency keys the sequences draw from: few, so keys are reused.
const KEYS: usize = 3;

/// What the model remembers of a key: its first write and that write's answer.
type Records = BTreeMap<usize, (Op, u64)>;

/// How a refused reuse of a key shows in the model's answers (the component reports it as a
/// store failure; the host's typed flag says which).
fn reused() -> CounterError {
    CounterError::StoreFailure("idempotency key reused".into())
}

/// Small values, and values near the top so overflows happen.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![0..20_u64, (u64::MAX - 20)..=u64::MAX, Just(i64::MAX as u64)]
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    prop_oneof![
        3 => name.clone().prop_map(Op::Get),
        4 => (name.clone(), value()).prop_map(|(n, v)| Op::Increment(n, v)),
        2 => (name.clone(), value()).prop_map(|(n, v)| Op::Set(n, v)),
        1 => name.prop_map(Op::Reset),
        1 => Just(Op::List),
        1 => Just(Op::NewInstance),
        2 => Just(Op::NextRequest),
        1 => Just(Op::NewEngine),
        1 => Just(Op::Reopen),
    ]
}

fn keyed_write() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let write = prop_oneof![
        4 => (name.clone(), value()).prop_map(|(n, v)| Op::Increment(n, v)),
        2 => (name.clone(), value()).prop_map(|(n, v)| Op::Set(n, v)),
        1 => name.prop_map(Op::Reset),
    ];
    (0..KEYS, write).prop_map(|(key, write)| Op::Keyed(key, Box::new(write)))
}

/// Operations with keyed writes and retries among them.
fn op_with_keys() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => op(),
        3 => keyed_write(),
        2 => Just(Op::Retry),
    ]
}

/// How to (re)open one backend.
enum Backend {
    Memory(Arc<MemoryStorage>),
    Sqlite(PathBuf),
    Redis(String),
}

impl Backend {
    fn open(&self) -> Arc<dyn Storage> {
        match self {
            Self::Memory(storage) => storage.clone(),
            // Relaxed durability: this test is about answers across reopenings (which NORMAL
            // keeps, like any process restart), and 500 cases of fsyncs would only add minutes.
            Self::Sqlite(path) => {
                let relaxed = SqliteOptions {
                    durability: Durability::Relaxed,
                    ..SqliteOptions::default()
                };
                Arc::new(SqliteStorage::open_with(path, relaxed).unwrap())
            }
            Self::Redis(url) => Arc::new(RedisStorage::open(url, false).unwrap()),
        }
    }
}

fn service(storage: Arc<dyn Storage>) -> Service {
    let options = RuntimeOptions {
        cache_dir: Some(common::cache_dir()),
        instance_reuse: 4,
        ..RuntimeOptions::default()
    };
    let retention = tally_keyvalue::storage::idempotency::DEFAULT_RETENTION;
    Service::new(&ComponentSource::Embedded, &options, storage, retention).unwrap()
}

/// The expected answer of one operation, applied to the model.
fn expect(
    model: &mut BTreeMap<String, u64>,
    limit: u64,
    op: &Op,
) -> Option<Result<Vec<(String, u64)>, CounterError>> {
    let invalid = |n: usize| {
        tally_guest::name::validate(NAMES[n])
            .err()
            .map(CounterError::InvalidName)
    };
    let one = |value: u64| Ok(vec![(String::new(), value)]);
    Some(match *op {
        Op::Get(n) => match invalid(n) {
            Some(error) => Err(error),
            None => one(model.get(NAMES[n]).copied().unwrap_or(0)),
        },
        Op::Increment(n, by) => match invalid(n) {
            Some(error) => Err(error),
            None => {
                let current = model.get(NAMES[n]).copied().unwrap_or(0);
                match current.checked_add(by).filter(|sum| *sum <= limit) {
                    Some(sum) => {
                        model.insert(NAMES[n].to_string(), sum);
                        one(sum)
                    }
                    None => Err(CounterError::Overflow(NAMES[n].to_string())),
                }
            }
        },
        Op::Set(n, value) => match invalid(n) {
            Some(error) => Err(error),
            // A store holds nothing past its own limit (Redis: i64::MAX).
            None if value > limit => Err(CounterError::Overflow(NAMES[n].to_string())),
            None => {
                model.insert(NAMES[n].to_string(), value);
                one(value)
            }
        },
        Op::Reset(n) => match invalid(n) {
            Some(error) => Err(error),
            None => {
                model.remove(NAMES[n]);
                one(0)
            }
        },
        Op::List => Ok(model.iter().map(|(k, v)| (k.clone(), *v)).collect()),
        Op::NewInstance
        | Op::NextRequest
        | Op::NewEngine
        | Op::Reopen
        | Op::Keyed(..)
        | Op::Retry => return None,
    })
}

/// The expected answer of a write with key number `key`: refused before the store (an invalid
/// name, a value past the store), a replay of the key's first write (marked `replayed`), a
/// refused reuse, or applied and recorded; a refusal by the store records nothing.
fn expect_keyed(
    model: &mut BTreeMap<String, u64>,
    records: &mut Records,
    limit: u64,
    key: usize,
    write: &Op,
) -> Result<Vec<(String, u64)>, CounterError> {
    let (name, set_past_limit) = match *write {
        Op::Increment(n, _) | Op::Reset(n) => (n, false),
        Op::Set(n, value) => (n, value > limit),
        _ => unreachable!("only writes are keyed"),
    };
    if let Err(invalid) = tally_guest::name::validate(NAMES[name]) {
        return Err(CounterError::InvalidName(invalid));
    }
    if set_past_limit {
        return Err(CounterError::Overflow(NAMES[name].to_string()));
    }
    match records.get(&key) {
        Some((first, answer)) if same_write(first, write) => {
            return Ok(vec![("replayed".to_string(), *answer)]);
        }
        Some(_) => return Err(reused()),
        None => {}
    }
    let answer = expect(model, limit, write).expect("a write has an answer")?;
    records.insert(key, (write.clone(), answer[0].1));
    Ok(answer)
}

/// Whether two writes are the same request (what the store's fingerprint tells).
fn same_write(a: &Op, b: &Op) -> bool {
    match (a, b) {
        (Op::Increment(n, by), Op::Increment(m, other)) => n == m && by == other,
        (Op::Set(n, value), Op::Set(m, other)) => n == m && value == other,
        (Op::Reset(n), Op::Reset(m)) => n == m,
        _ => false,
    }
}

/// What the instance of a request with key number `key` (reused when one is idle) answered for
/// `write`, in the model's shape.
fn actual_keyed(
    service: &Service,
    key: usize,
    write: &Op,
) -> Result<Vec<(String, u64)>, CounterError> {
    let key = IdempotencyKey::parse(&format!("key-{key}")).unwrap();
    let mut counter = block_on(service.request(Some(&key))).unwrap();
    match call(&mut counter, write) {
        Err(tally::Failure::KeyReused(_)) => Err(reused()),
        Ok(done) if done.replayed => Ok(vec![("replayed".to_string(), done.value[0].1)]),
        outcome => outcome.answer().unwrap(),
    }
}

/// What the component answered, in the model's shape.
fn actual(counter: &mut Instance, op: &Op) -> Result<Vec<(String, u64)>, CounterError> {
    call(counter, op).answer().unwrap()
}

/// One call of `op`, its answer in the model's shape.
fn call(
    counter: &mut Instance,
    op: &Op,
) -> Result<tally::Done<Vec<(String, u64)>>, tally::Failure> {
    let one = |value: u64| vec![(String::new(), value)];
    fn shaped<T>(
        done: tally::Done<T>,
        shape: impl FnOnce(T) -> Vec<(String, u64)>,
    ) -> tally::Done<Vec<(String, u64)>> {
        tally::Done {
            value: shape(done.value),
            replayed: done.replayed,
            durable: done.durable,
        }
    }
    block_on(async {
        match *op {
            Op::Get(n) => counter.get(NAMES[n]).await.map(|d| shaped(d, one)),
            Op::Increment(n, by) => counter
                .increment(NAMES[n], by)
                .await
                .map(|d| shaped(d, one)),
            Op::Set(n, value) => counter
                .set(NAMES[n], value)
                .await
                .map(|d| shaped(d, |()| one(value))),
            Op::Reset(n) => counter
                .reset(NAMES[n])
                .await
                .map(|d| shaped(d, |()| one(0))),
            Op::List => counter.list().await,
            Op::NewInstance
            | Op::NextRequest
            | Op::NewEngine
            | Op::Reopen
            | Op::Keyed(..)
            | Op::Retry => {
                unreachable!("restarts are not calls; keyed writes have their own instance")
            }
        }
    })
}

/// Runs `ops` on `backend` (which starts empty), comparing every answer with the model.
fn check(backend: &Backend, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut storage = backend.open();
    let limit = storage.counter_limit();
    let mut service = service(storage.clone());
    let mut counter = block_on(service.runtime().instantiate()).unwrap();
    let mut model = BTreeMap::new();
    let mut records = Records::new();
    let mut last_keyed: Option<(usize, Op)> = None;
    for (step, op) in ops.iter().enumerate() {
        let keyed = match op {
            Op::Keyed(key, write) => Some((*key, (**write).clone())),
            Op::Retry => last_keyed.clone(),
            _ => None,
        };
        if let Some((key, write)) = keyed {
            let expected = expect_keyed(&mut model, &mut records, limit, key, &write);
            prop_assert_eq!(
                actual_keyed(&service, key, &write),
                expected,
                "step {}: {:?} (key-{} {:?})",
                step,
                op,
                key,
                write
            );
            last_keyed = Some((key, write));
            continue;
        }
        match op {
            Op::NewInstance => counter = block_on(service.runtime().instantiate()).unwrap(),
            Op::NextRequest => {
                drop(counter);
                counter = block_on(service.read()).unwrap();
            }
            Op::NewEngine | Op::Reopen => {
                drop(counter);
                drop(service);
                if matches!(op, Op::Reopen) {
                    drop(storage);
                    storage = backend.open();
                }
                service = self::service(storage.clone());
                counter = block_on(service.runtime().instantiate()).unwrap();
            }
            // A retry before any keyed write has nothing to retry.
            Op::Retry | Op::Keyed(..) => {}
            _ => {
                let expected = expect(&mut model, limit, op);
                prop_assert_eq!(
                    Some(actual(&mut counter, op)),
                    expected,
                    "step {}: {:?}",
                    step,
                    op
                );
            }
        }
    }
    // Whatever happened, a final restart reads exactly the model.
    drop(counter);
    drop(service);
    drop(storage);
    let service = self::service(backend.open());
    let mut counter = block_on(service.runtime().instantiate()).unwrap();
    prop_assert_eq!(
        actual(&mut counter, &Op::List),
        Ok(model.into_iter().collect::<Vec<_>>())
    );
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrunk failures are reported in the test output; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// SQLite: every answer matches the model, across instance, engine and database restarts.
    #[test]
    fn sqlite_matches_the_model(ops in prop::collection::vec(op_with_keys(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        check(&Backend::Sqlite(dir.path().join("model.db")), &ops)?;
    }

    /// Memory: the same, with instance and engine restarts (the store itself lives on).
    #[test]
    fn memory_matches_the_model(ops in prop::collection::vec(op_with_keys(), 1..25)) {
        check(&Backend::Memory(Arc::new(MemoryStorage::new())), &ops)?;
    }
}

/// Redis (one throwaway server for the whole run, flushed between cases): the same, with
/// reconnects; its counter limit is i64::MAX.
#[test]
fn redis_matches_the_model() {
    let redis = tally_test_support::redis_server::RedisServer::start(&[]).unwrap();
    let url = redis.url(0);
    let flush = std::sync::Mutex::new(
        redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap(),
    );
    let mut runner = proptest::test_runner::TestRunner::new(config(500));
    let outcome = runner.run(&prop::collection::vec(op_with_keys(), 1..25), |ops| {
        redis::cmd("FLUSHDB")
            .query::<()>(&mut *flush.lock().unwrap())
            .unwrap();
        check(&Backend::Redis(url.clone()), &ops)
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
