//! Model-based restart testing: random sequences of get / increment / set / reset / list with
//! restarts interleaved (a new instance; a new engine; a reopened database), run through the real
//! component on each backend and checked after every step against a plain map. proptest shrinks
//! a failing sequence to a minimal one.

use crate::common;

use common::block_on;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tally::{ComponentSource, Counter, CounterError, Runtime, RuntimeOptions};
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
    /// Drop the engine and everything compiled in it too.
    NewEngine,
    /// Also close and reopen the database (for the memory backend: same as `NewEngine`).
    Reopen,
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
        1 => Just(Op::NewEngine),
        1 => Just(Op::Reopen),
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

fn runtime(storage: Arc<dyn Storage>) -> Runtime {
    let options = RuntimeOptions {
        cache_dir: Some(common::cache_dir()),
        ..RuntimeOptions::default()
    };
    Runtime::new(&ComponentSource::Embedded, &options, storage).unwrap()
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
        Op::NewInstance | Op::NewEngine | Op::Reopen => return None,
    })
}

/// What the component answered, in the model's shape.
fn actual(counter: &mut Counter, op: &Op) -> Result<Vec<(String, u64)>, CounterError> {
    let one = |value: u64| vec![(String::new(), value)];
    block_on(async {
        match *op {
            Op::Get(n) => counter.get(NAMES[n]).await.unwrap().map(one),
            Op::Increment(n, by) => counter.increment(NAMES[n], by).await.unwrap().map(one),
            Op::Set(n, value) => counter
                .set(NAMES[n], value)
                .await
                .unwrap()
                .map(|()| one(value)),
            Op::Reset(n) => counter.reset(NAMES[n]).await.unwrap().map(|()| one(0)),
            Op::List => counter.list().await.unwrap(),
            Op::NewInstance | Op::NewEngine | Op::Reopen => unreachable!("restarts are not calls"),
        }
    })
}

/// Runs `ops` on `backend` (which starts empty), comparing every answer with the model.
fn check(backend: &Backend, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut storage = backend.open();
    let limit = storage.counter_limit();
    let mut runtime = runtime(storage.clone());
    let mut counter = block_on(runtime.instantiate()).unwrap();
    let mut model = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::NewInstance => counter = block_on(runtime.instantiate()).unwrap(),
            Op::NewEngine | Op::Reopen => {
                drop(counter);
                drop(runtime);
                if matches!(op, Op::Reopen) {
                    drop(storage);
                    storage = backend.open();
                }
                runtime = self::runtime(storage.clone());
                counter = block_on(runtime.instantiate()).unwrap();
            }
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
    drop(runtime);
    drop(storage);
    let runtime = self::runtime(backend.open());
    let mut counter = block_on(runtime.instantiate()).unwrap();
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
    fn sqlite_matches_the_model(ops in prop::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        check(&Backend::Sqlite(dir.path().join("model.db")), &ops)?;
    }

    /// Memory: the same, with instance and engine restarts (the store itself lives on).
    #[test]
    fn memory_matches_the_model(ops in prop::collection::vec(op(), 1..25)) {
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
    let outcome = runner.run(&prop::collection::vec(op(), 1..25), |ops| {
        redis::cmd("FLUSHDB")
            .query::<()>(&mut *flush.lock().unwrap())
            .unwrap();
        check(&Backend::Redis(url.clone()), &ops)
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
