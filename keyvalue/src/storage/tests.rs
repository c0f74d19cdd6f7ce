//! Runs the public storage suite ([`super::suite`]) on every backend compiled in (memory and
//! SQLite always, Redis with the `redis` feature, PostgreSQL with `postgres`), plus what only
//! some backends can show: SQLite's files, pragmas and other processes' connections, Redis and
//! PostgreSQL outages, PostgreSQL's schemas and commit timeout, and the exact counts a purge
//! returns where the store purges itself.

use super::suite::{self, Blocking, Carrying};
use super::*;
use std::sync::{Arc, LazyLock};

/// A key the tests know to be valid.
fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).unwrap()
}

/// The runtime the tests below drive their stores on.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// `store`, driven from the test's thread.
fn drive(store: impl Storage) -> Blocking {
    Blocking::new(Arc::new(store), RUNTIME.handle().clone())
}

/// Every case of the suite on the memory store.
#[test]
fn memory_passes_the_suite() {
    suite::run(MemoryStorage::new);
}

/// Every case of the suite on SQLite, each on a new file.
#[cfg(feature = "sqlite")]
#[test]
fn sqlite_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = 0;
    suite::run(|| {
        files += 1;
        SqliteStorage::open(&dir.path().join(format!("{files}.db"))).unwrap()
    });
}

/// Every case of the suite on Redis, each on a server of its own.
#[cfg(feature = "redis")]
#[test]
fn redis_passes_the_suite() {
    let mut servers = Vec::new();
    suite::run(|| {
        let server = tally_test_support::redis_server::RedisServer::start(&[]).unwrap();
        let store = RedisStorage::open(&server.url(0), false).unwrap();
        servers.push(server);
        store
    });
}

/// Every backend this build has opens by its URL through [`crate::open`], takes the options it
/// owns, and keeps what is written through it: memory, a SQLite file (read back by a second
/// open), Redis and PostgreSQL (each read back through a second open of the same URL).
#[test]
fn every_backend_opens_by_url() {
    use crate::open::{self, OpenOptions, StoreOption};
    let count_to_15 = |url: &str, options: &OpenOptions| {
        let store = Blocking::new(open::open(url, options).unwrap(), RUNTIME.handle().clone());
        assert_eq!(store.increment("", "hits", 10).unwrap(), 10);
        assert_eq!(store.increment("", "hits", 5).unwrap(), 15);
    };
    let read = |url: &str, options: &OpenOptions| {
        let store = Blocking::new(open::open(url, options).unwrap(), RUNTIME.handle().clone());
        store.get("", "hits").unwrap()
    };
    let defaults = OpenOptions::default();
    let mut opened = vec!["memory"];

    assert_eq!(open::backend("memory").unwrap().name, "memory");
    count_to_15("memory", &defaults);
    // Each open of `memory` is a store of its own.
    assert_eq!(read("memory", &defaults), None);

    #[cfg(feature = "sqlite")]
    {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("counters.db").display());
        let reading = OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        };
        // Read-only, a file not there yet is no database, and stays not there.
        let missing = open::open(&url, &reading).err().unwrap();
        assert_eq!(
            missing
                .cause::<FileRefusal>()
                .map(|refusal| &refusal.problem),
            Some(&FileProblem::NoDatabase),
            "{missing}"
        );
        assert!(!dir.path().join("counters.db").exists());
        let relaxed = OpenOptions {
            relaxed_durability: true,
            ..OpenOptions::default()
        };
        count_to_15(&url, &relaxed);
        assert_eq!(read(&url, &reading).as_deref(), Some(&b"15"[..]));
        let store = Blocking::new(
            open::open(&url, &reading).unwrap(),
            RUNTIME.handle().clone(),
        );
        assert!(matches!(
            store.increment("", "hits", 1),
            Err(StorageError::ReadOnly(_))
        ));
        let sqlite = open::backend(&url).unwrap();
        assert!(sqlite.owns(StoreOption::Durability) && !sqlite.owns(StoreOption::Schema));
        assert_eq!(
            (sqlite.durability)(&relaxed),
            "relaxed (synchronous=NORMAL)"
        );
        assert_eq!((sqlite.durability)(&defaults), "full (fsync per commit)");
        opened.push("SQLite");
    }

    #[cfg(feature = "redis")]
    {
        let server = tally_test_support::redis_server::RedisServer::start(&[]).unwrap();
        count_to_15(&server.url(3), &defaults);
        assert_eq!(read(&server.url(3), &defaults).as_deref(), Some(&b"15"[..]));
        assert_eq!(read(&server.url(4), &defaults), None);
        // The option Redis owns reaches it: a server that may evict is refused without it.
        let evicting = tally_test_support::redis_server::RedisServer::start(&[
            "--maxmemory-policy",
            "allkeys-lru",
        ])
        .unwrap();
        let refused = open::open(&evicting.url(0), &defaults).err().unwrap();
        assert!(refused.cause::<EvictionPolicy>().is_some(), "{refused}");
        let allowing = OpenOptions {
            allow_eviction: true,
            ..OpenOptions::default()
        };
        count_to_15(&evicting.url(0), &allowing);
        opened.push("Redis");
    }

    #[cfg(feature = "postgres")]
    {
        let server = tally_test_support::postgres_server::PostgresServer::start(&[]).unwrap();
        let in_schema = OpenOptions {
            schema: Some("by_url".into()),
            ..OpenOptions::default()
        };
        count_to_15(&server.url(), &in_schema);
        assert_eq!(read(&server.url(), &in_schema).as_deref(), Some(&b"15"[..]));
        // The schema option reached the store: the default schema holds nothing.
        assert_eq!(read(&server.url(), &defaults), None);
        assert_eq!(
            server
                .psql("SELECT convert_from(value, 'UTF8') FROM by_url.counters WHERE key = 'hits'")
                .unwrap()
                .trim(),
            "15"
        );
        opened.push("PostgreSQL");
    }

    let names: Vec<_> = open::backends()
        .iter()
        .map(|backend| backend.name)
        .collect();
    assert_eq!(names, opened, "every backend in the table was opened above");
}

/// A purge by a store that purges itself counts exactly what it deleted: nothing while every
/// record is live, every expired one (and only those) once they expired, nothing after that.
fn purges_count_exactly(store: &Blocking) {
    let keyed = |name: &str, retention_ms| {
        let request = WriteRequest::new(
            "",
            Write::Increment {
                key: "p".into(),
                delta: 1,
            },
        )
        .with_idempotency_key(key(name))
        .with_idempotency_retention(std::time::Duration::from_millis(retention_ms));
        store.write(request).unwrap()
    };
    keyed("live", 86_400_000);
    assert_eq!(store.purge_expired().unwrap(), 0);
    for name in ["a", "b", "c"] {
        keyed(name, 1);
    }
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert_eq!(store.purge_expired().unwrap(), 3);
    assert_eq!(store.purge_expired().unwrap(), 0);
    assert_eq!(keyed("live", 86_400_000), Written::replayed(1));
}

#[test]
fn memory_purges_count_exactly() {
    purges_count_exactly(&drive(MemoryStorage::new()));
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_purges_count_exactly() {
    let dir = tempfile::tempdir().unwrap();
    purges_count_exactly(&drive(
        SqliteStorage::open(&dir.path().join("counters.db")).unwrap(),
    ));
}

/// A Redis server that cannot be reached is an outage (`Unavailable`: retry later), told apart
/// from a failure of the operation, and nothing is written.
#[cfg(feature = "redis")]
#[test]
fn unreachable_redis_is_unavailable() {
    let server = tally_test_support::redis_server::RedisServer::start(&[]).unwrap();
    let store = drive(RedisStorage::open(&server.url(0), false).unwrap());
    store.set("", "k", b"1").unwrap();
    drop(server);
    for outcome in [
        store.get("", "k").map(|_| ()),
        store.increment("", "k", 1).map(|_| ()),
        store.list_keys("", None, 10).map(|_| ()),
    ] {
        assert!(
            matches!(outcome, Err(StorageError::Unavailable(ref why)) if why.message().starts_with("Redis: ")),
            "{outcome:?}"
        );
    }
    // A refusal is not an outage.
    let server = tally_test_support::redis_server::RedisServer::start(&[]).unwrap();
    let store = drive(RedisStorage::open(&server.url(0), false).unwrap());
    store.set("", "word", b"abc").unwrap();
    assert!(matches!(
        store.increment("", "word", 1),
        Err(StorageError::NotANumber { .. })
    ));
}

/// The observer hears about every group commit, with the number of writes in it; reads are
/// not commits.
#[cfg(feature = "sqlite")]
#[test]
fn the_observer_hears_commits() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    #[derive(Default)]
    struct Counting {
        batches: AtomicUsize,
        writes: AtomicUsize,
    }
    impl crate::Observer for Counting {
        fn commit_batch(&self, writes: usize) {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.writes.fetch_add(writes, Ordering::SeqCst);
        }
    }
    let observer = Arc::new(Counting::default());
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        observer: Some(observer.clone()),
        ..SqliteOptions::default()
    };
    let store = drive(SqliteStorage::open_with(&dir.path().join("counters.db"), options).unwrap());
    store.increment("", "a", 1).unwrap();
    store.set("", "b", b"2").unwrap();
    store.delete("", "b").unwrap();
    assert_eq!(observer.writes.load(Ordering::SeqCst), 3);
    assert!((1..=3).contains(&observer.batches.load(Ordering::SeqCst)));
    store.get("", "a").unwrap();
    assert_eq!(observer.writes.load(Ordering::SeqCst), 3);
}

/// SQLite-only behaviour: durability settings, restarts, other connections and foreign files.
#[cfg(feature = "sqlite")]
mod sqlite_file {
    use super::*;
    use rusqlite::Connection;

    fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters.db");
        (dir, path)
    }

    /// Closed cleanly while another connection still has the file open (so SQLite does not
    /// delete the WAL itself), the store leaves the WAL empty: its commits are in the database.
    #[test]
    fn a_clean_close_truncates_the_wal() {
        let (_dir, path) = temp_db();
        let store = drive(SqliteStorage::open(&path).unwrap());
        for n in 0..300 {
            store.set("", &format!("k{n}"), b"1").unwrap();
        }
        let wal = path.with_extension("db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 100_000);
        let other = Connection::open(&path).unwrap();
        let count: i64 = other
            .query_row("SELECT count(*) FROM kv", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 300);
        drop(store);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        let count: i64 = other
            .query_row("SELECT count(*) FROM kv", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 300);
    }

    /// The store's own writer connection is in WAL mode and commits with `synchronous=FULL`, or
    /// `NORMAL` when durability is relaxed (read from that connection, not from a new one); a
    /// store that only reads has no writer.
    #[test]
    fn the_writer_uses_wal_and_the_chosen_sync() {
        for (durability, expected) in [(Durability::Full, 2), (Durability::Relaxed, 1)] {
            let (_dir, path) = temp_db();
            let options = SqliteOptions {
                durability,
                ..SqliteOptions::default()
            };
            let store = SqliteStorage::open_with(&path, options.clone()).unwrap();
            assert_eq!(store.path(), path);
            let settings = store.writer_settings().unwrap();
            assert_eq!(
                (settings.journal_mode.as_str(), settings.synchronous),
                ("wal", expected),
                "{durability:?}"
            );
            drop(store);
            let reader = SqliteStorage::open_for_reading(&path, options)
                .unwrap()
                .unwrap();
            assert!(reader.writer_settings().is_none());
        }
    }

    /// Many threads queueing increments on one writer (so they share commits) add up exactly.
    #[test]
    fn group_committed_increments_add_up() {
        let (_dir, path) = temp_db();
        let store = drive(SqliteStorage::open(&path).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        store.increment("", "k", 1).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(store.get("", "k").unwrap(), Some(b"800".to_vec()));
    }

    /// Writes of one counter queued together (so they share a batch, one transaction) each
    /// answer as if applied alone, in order: increments add up, a set and a delete in between
    /// count, a refused increment changes nothing, a write group sees everything before it and
    /// what follows sees the group.
    #[test]
    fn writes_of_one_counter_in_one_batch_answer_in_order() {
        let (_dir, path) = temp_db();
        let store: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&path).unwrap());
        let increment = |delta| Write::Increment {
            key: "k".into(),
            delta,
        };
        let writes = [
            increment(1),
            increment(2),
            Write::Set {
                key: "k".into(),
                value: b"10".to_vec(),
            },
            increment(5),
            increment(u64::MAX),
            Write::Delete { key: "k".into() },
            increment(4),
        ];
        let outcomes = RUNTIME.block_on(async {
            // Every write is queued before any is awaited, so they share batches.
            let pending: Vec<_> = writes
                .iter()
                .map(|write| store.submit(WriteRequest::new("", write.clone())))
                .collect();
            let group = store.submit_group(WriteGroup::new("", vec![increment(3)]));
            let after = store.submit(WriteRequest::new("", increment(1)));
            let mut outcomes = Vec::new();
            for write in pending {
                outcomes.push(write.await.map(|applied| applied.written.value).ok());
            }
            let group = group.await.unwrap();
            let after = after.await.unwrap().written.value;
            (outcomes, group, after)
        });
        assert_eq!(
            outcomes,
            (
                vec![Some(1), Some(3), Some(0), Some(15), None, Some(0), Some(4)],
                vec![7],
                8
            )
        );
        let store = drive(SqliteStorage::open(&path).unwrap());
        assert_eq!(store.get("", "k").unwrap(), Some(b"8".to_vec()));
    }

    /// Pipelines: 8 clients at once each stage 100 increments of their own counter and of a
    /// shared one, announcing more until the last, with a refused increment in the middle (the
    /// writes a caller applies itself into the open transaction, and those that go through the
    /// writer thread, mixed). Every answer is that client's next value, the refused one changes
    /// nothing, every write is durable once its durability completes, and the file holds the
    /// exact sums when opened again.
    #[test]
    fn pipelined_staged_writes_from_many_clients_add_up() {
        let (_dir, path) = temp_db();
        let store: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&path).unwrap());
        RUNTIME
            .block_on(store.submit(WriteRequest::new(
                "",
                Write::Set {
                    key: "word".into(),
                    value: b"abc".to_vec(),
                },
            )))
            .unwrap();
        let clients: Vec<_> = (0..8)
            .map(|client| {
                let store = store.clone();
                RUNTIME.spawn(async move {
                    let own = format!("own-{client}");
                    let mut answers = Vec::new();
                    let mut durable = Vec::new();
                    for step in 0..100 {
                        let more_follow = step < 99;
                        let stage = |key: &str| {
                            WriteRequest::new(
                                "",
                                Write::Increment {
                                    key: key.into(),
                                    delta: 1,
                                },
                            )
                            .with_answer(Answer::WhenApplied { more_follow: true })
                        };
                        let applied = store.submit(stage(&own)).await.unwrap();
                        answers.push(applied.written.value);
                        durable.extend(applied.durable);
                        if step == 50 {
                            let refused = store.submit(stage("word")).await;
                            assert!(matches!(refused, Err(StorageError::NotANumber { .. })));
                        }
                        let shared = store
                            .submit(
                                stage("shared").with_answer(Answer::WhenApplied { more_follow }),
                            )
                            .await
                            .unwrap();
                        durable.extend(shared.durable);
                    }
                    for commit in durable {
                        commit.await.unwrap();
                    }
                    answers
                })
            })
            .collect();
        for client in clients {
            let answers = RUNTIME.block_on(client).unwrap();
            assert_eq!(answers, (1..=100).collect::<Vec<u64>>());
        }
        drop(store);
        let store = drive(SqliteStorage::open(&path).unwrap());
        assert_eq!(store.get("", "shared").unwrap(), Some(b"800".to_vec()));
        assert_eq!(store.get("", "own-7").unwrap(), Some(b"100".to_vec()));
        assert_eq!(store.get("", "word").unwrap(), Some(b"abc".to_vec()));
    }

    /// Values written through one store are there when the file is opened again.
    #[test]
    fn values_survive_reopening() {
        let (_dir, path) = temp_db();
        {
            let store = drive(SqliteStorage::open(&path).unwrap());
            store.set("", "visits", b"10").unwrap();
            assert_eq!(store.increment("", "visits", 5).unwrap(), 15);
        }
        let store = drive(SqliteStorage::open(&path).unwrap());
        assert_eq!(store.get("", "visits").unwrap(), Some(b"15".to_vec()));
    }

    /// Separate connections on one file (as separate processes have) never lose an increment.
    #[test]
    fn separate_connections_increment_exactly() {
        let (_dir, path) = temp_db();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let store = drive(SqliteStorage::open(&path).unwrap());
                    for _ in 0..100 {
                        store.increment("", "shared", 1).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let store = drive(SqliteStorage::open(&path).unwrap());
        assert_eq!(store.get("", "shared").unwrap(), Some(b"400".to_vec()));
    }

    /// Values written by hand as TEXT or INTEGER read as their decimal text.
    #[test]
    fn reads_hand_written_text_and_integers() {
        let (_dir, path) = temp_db();
        let store = drive(SqliteStorage::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO kv VALUES ('', 'text', '41'), ('', 'int', 7), ('', 'word', 'abc');",
        )
        .unwrap();
        assert_eq!(store.increment("", "text", 1).unwrap(), 42);
        assert_eq!(store.increment("", "int", 1).unwrap(), 8);
        assert!(matches!(
            store.increment("", "word", 1),
            Err(StorageError::NotANumber { .. })
        ));
        assert_eq!(store.get("", "word").unwrap(), Some(b"abc".to_vec()));
    }

    /// Another application's SQLite file is refused and left untouched.
    #[test]
    fn refuses_foreign_database() {
        let (_dir, path) = temp_db();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA application_id = 1234; CREATE TABLE mine (x);")
            .unwrap();
        let error = SqliteStorage::open(&path).map(|_| ()).unwrap_err();
        assert!(matches!(error, StorageError::Refused(_)), "{error:?}");
        assert_eq!(
            error.cause::<FileRefusal>(),
            Some(&FileRefusal {
                path: path.clone(),
                problem: FileProblem::Foreign {
                    application_id: 1234
                },
            }),
            "{error}"
        );
        assert!(
            error.to_string().ends_with(
                "another application's SQLite database (application_id 0x4d2), left untouched"
            ),
            "{error}"
        );
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }

    /// A database written by a newer schema is refused rather than misread.
    /// A database of schema version 1 (before idempotency keys), as earlier tally builds wrote
    /// it: opened for writing it is upgraded in place (counters untouched, `user_version` 3, the
    /// idempotency and notes tables there and working); opened for reading it is served as it
    /// is and left at version 1. (A file read-only for this user: `tests/idempotency.rs`, which can run tally
    /// as another user.)
    #[test]
    fn upgrades_a_version_1_database() {
        let version_1 = |path: &std::path::Path| {
            let conn = Connection::open(path).unwrap();
            conn.execute_batch(
                "CREATE TABLE kv (bucket TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                                  PRIMARY KEY (bucket, key));
                 PRAGMA application_id = 1952541817;
                 PRAGMA user_version = 1;
                 INSERT INTO kv VALUES ('', 'visits', CAST('10' AS BLOB));",
            )
            .unwrap();
        };
        let version_of = |path: &std::path::Path| -> (i64, i64) {
            let conn = Connection::open(path).unwrap();
            let version = conn
                .query_row("PRAGMA user_version", [], |row| row.get(0))
                .unwrap();
            let tables = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name IN ('idempotency', 'notes')",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            (version, tables)
        };
        let (_dir, path) = temp_db();
        version_1(&path);
        let reader = SqliteStorage::open_for_reading(&path, SqliteOptions::default())
            .unwrap()
            .unwrap();
        let reader = drive(reader);
        assert_eq!(reader.get("", "visits").unwrap(), Some(b"10".to_vec()));
        drop(reader);
        assert_eq!(version_of(&path), (1, 0), "reading upgraded the file");

        let store = drive(SqliteStorage::open(&path).unwrap());
        assert_eq!(store.get("", "visits").unwrap(), Some(b"10".to_vec()));
        let keyed = || {
            let write = Write::Increment {
                key: "visits".into(),
                delta: 1,
            };
            store.write(WriteRequest::new("", write).with_idempotency_key(key("after-upgrade")))
        };
        assert_eq!(keyed().unwrap(), Written::applied(11));
        assert_eq!(keyed().unwrap(), Written::replayed(11));
        drop(store);
        assert_eq!(version_of(&path), (3, 2));
    }

    #[test]
    fn refuses_newer_schema() {
        let (_dir, path) = temp_db();
        drop(SqliteStorage::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        let error = SqliteStorage::open(&path)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(error.contains("schema version 99"), "{error}");
    }

    /// A file that is not a database at all gives SQLite's own diagnosis and stays as it was.
    #[test]
    fn refuses_non_database_file() {
        let (_dir, path) = temp_db();
        let junk =
            b"this is not a database, but it is long enough to look like a header".repeat(20);
        std::fs::write(&path, &junk).unwrap();
        let error = SqliteStorage::open(&path)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a database"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), junk);
    }
}

/// What the PostgreSQL store is tested on: a throwaway server from Debian's binaries.
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use tally_test_support::postgres_server::PostgresServer;

    fn open(server: &PostgresServer, schema: &str) -> Result<PostgresStorage, StorageError> {
        PostgresStorage::open(
            &server.url(),
            PostgresOptions {
                schema: schema.into(),
                ..PostgresOptions::default()
            },
        )
    }

    /// Every case of the suite on PostgreSQL, each in a schema of its own on one server.
    #[test]
    fn postgres_passes_the_suite() {
        let server = PostgresServer::start(&[]).unwrap();
        let mut schemas = 0;
        suite::run(|| {
            schemas += 1;
            open(&server, &format!("suite_{schemas}")).unwrap()
        });
    }

    #[test]
    fn postgres_purges_count_exactly() {
        let server = PostgresServer::start(&[]).unwrap();
        purges_count_exactly(&drive(open(&server, "tally").unwrap()));
    }

    /// A schema of version 1 (before notes), as earlier builds made it, is read as it is and
    /// upgraded to version 2 under the schema lock by the first write (a note here), the
    /// counters untouched.
    #[test]
    fn upgrades_a_version_1_schema() {
        let server = PostgresServer::start(&[]).unwrap();
        server
            .psql(
                "CREATE SCHEMA tally;
                 CREATE TABLE tally.tally_schema (application text NOT NULL, version integer NOT NULL);
                 INSERT INTO tally.tally_schema VALUES ('tally', 1);
                 CREATE TABLE tally.counters (bucket text COLLATE \"C\" NOT NULL,
                     key text COLLATE \"C\" NOT NULL, value bytea NOT NULL,
                     PRIMARY KEY (bucket, key));
                 CREATE TABLE tally.idempotency_records (key text COLLATE \"C\" PRIMARY KEY,
                     fingerprint text NOT NULL, outcome text NOT NULL, expires_at bigint NOT NULL);
                 INSERT INTO tally.counters VALUES ('', 'visits', '10');",
            )
            .unwrap();
        let store = drive(open(&server, "tally").unwrap());
        assert_eq!(store.get("", "visits").unwrap(), Some(b"10".to_vec()));
        assert_eq!(store.read_note("cursor-key").unwrap(), None);
        assert_eq!(
            server
                .psql("SELECT version FROM tally.tally_schema")
                .unwrap(),
            "1"
        );
        assert_eq!(store.keep_note(Note::new("cursor-key", "k")).unwrap(), b"k");
        assert_eq!(
            server
                .psql("SELECT version FROM tally.tally_schema")
                .unwrap(),
            "2"
        );
        assert_eq!(store.increment("", "visits", 1).unwrap(), 11);
        assert_eq!(
            server
                .psql("SELECT name, encode(value, 'escape') FROM tally.notes")
                .unwrap(),
            "cursor-key|k"
        );
    }

    /// Reads of a store whose tables do not exist yet answer "empty" and create nothing; the
    /// first write creates the schema with its version row.
    #[test]
    fn reads_create_nothing() {
        let server = PostgresServer::start(&[]).unwrap();
        let store = drive(open(&server, "tally").unwrap());
        assert_eq!(store.get("", "k").unwrap(), None);
        assert_eq!(store.get_many("", &["k".into()]).unwrap(), vec![None]);
        assert_eq!(
            store.list_keys("", None, 10).unwrap(),
            KeyPage::by_key(Vec::new(), false)
        );
        let mut seen = 0;
        store
            .scan("", &mut |_, _| {
                seen += 1;
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(seen, 0);
        assert_eq!(store.purge_expired().unwrap(), 0);
        store.check_ready().unwrap();
        let schemas = "SELECT count(*) FROM pg_namespace WHERE nspname = 'tally'";
        assert_eq!(server.psql(schemas).unwrap(), "0");
        assert_eq!(store.increment("", "k", 7).unwrap(), 7);
        assert_eq!(server.psql(schemas).unwrap(), "1");
        assert_eq!(
            server
                .psql("SELECT application, version FROM tally.tally_schema")
                .unwrap(),
            "tally|2"
        );
        assert_eq!(
            server
                .psql("SELECT bucket, key, encode(value, 'escape') FROM tally.counters")
                .unwrap(),
            "|k|7"
        );
    }

    /// A schema of that name with another application's tables is refused, and left exactly
    /// as it was; a newer tally's is refused with its version.
    #[test]
    fn foreign_and_newer_schemas_are_refused_untouched() {
        let server = PostgresServer::start(&[]).unwrap();
        server
            .psql("CREATE SCHEMA tally; CREATE TABLE tally.orders (id int); INSERT INTO tally.orders VALUES (42)")
            .unwrap();
        let refused = open(&server, "tally").unwrap_err();
        assert!(matches!(refused, StorageError::Refused(_)), "{refused:?}");
        assert_eq!(
            refused.cause::<SchemaRefusal>(),
            Some(&SchemaRefusal {
                schema: "tally".into(),
                problem: SchemaProblem::Foreign
            }),
            "{refused:?}"
        );
        assert_eq!(
            server
                .psql("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'tally'")
                .unwrap(),
            "orders"
        );
        assert_eq!(server.psql("SELECT id FROM tally.orders").unwrap(), "42");

        let store = drive(open(&server, "mine").unwrap());
        store.set("", "k", b"1").unwrap();
        server
            .psql("UPDATE mine.tally_schema SET version = 9")
            .unwrap();
        let refused = open(&server, "mine").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the PostgreSQL schema \"mine\": tally schema version 9, newer than this build \
             understands (2)"
        );
    }

    /// Keys page in byte order whatever the database's collation (`COLLATE "C"`): upper case
    /// before lower case, multi-byte characters last, each key exactly once across pages.
    #[test]
    fn keys_page_in_byte_order() {
        let server = PostgresServer::start(&[]).unwrap();
        let store = drive(open(&server, "tally").unwrap());
        for key in ["b", "é", "B", "a", "z", "Z", "ab"] {
            store.set("", key, b"1").unwrap();
        }
        let mut listed = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list_keys("", cursor.as_ref(), 2).unwrap();
            listed.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(listed, ["B", "Z", "a", "ab", "b", "z", "é"]);
    }

    /// Two stores (two processes' worth) whose first writes race create the tables once, and
    /// count every increment.
    #[test]
    fn stores_starting_together_create_the_schema_once() {
        let server = PostgresServer::start(&[]).unwrap();
        let stores: Vec<Blocking> = (0..4)
            .map(|_| drive(open(&server, "tally").unwrap()))
            .collect();
        std::thread::scope(|scope| {
            for store in &stores {
                scope.spawn(|| {
                    for _ in 0..50 {
                        store.increment("", "shared", 1).unwrap();
                    }
                });
            }
        });
        assert_eq!(stores[0].get("", "shared").unwrap(), Some(b"200".to_vec()));
    }

    /// A server that is down is an outage (nothing written), and the same store serves again
    /// once it is back, without being reopened.
    #[test]
    fn a_stopped_server_is_unavailable_then_serves_again() {
        let server = PostgresServer::start(&[]).unwrap();
        let store = drive(open(&server, "tally").unwrap());
        assert_eq!(store.increment("", "k", 1).unwrap(), 1);
        server.stop().unwrap();
        for outcome in [
            store.get("", "k").map(|_| ()),
            store.increment("", "k", 1).map(|_| ()),
            store.list_keys("", None, 10).map(|_| ()),
            store.check_ready(),
        ] {
            assert!(
                matches!(outcome, Err(StorageError::Unavailable(ref why)) if why.message().starts_with("PostgreSQL")),
                "{outcome:?}"
            );
        }
        server.start_again().unwrap();
        assert_eq!(store.increment("", "k", 1).unwrap(), 2);
        store.check_ready().unwrap();
    }

    /// A commit that waits for a synchronous standby that is not there answers "outcome
    /// unknown" at the commit timeout (it did commit locally), and the store is not ready.
    #[test]
    fn a_commit_past_its_timeout_has_an_unknown_outcome() {
        let server = PostgresServer::start(&["synchronous_standby_names = 'nobody'"]).unwrap();
        let store = drive(
            PostgresStorage::open(
                &server.url(),
                PostgresOptions {
                    commit_timeout: std::time::Duration::from_millis(500),
                    ..PostgresOptions::default()
                },
            )
            .unwrap(),
        );
        let outcome = store.increment("", "k", 1);
        assert!(
            matches!(outcome, Err(StorageError::OutcomeUnknown(ref why)) if why.message().contains("commit timeout")),
            "{outcome:?}"
        );
        assert!(
            matches!(store.check_ready(), Err(StorageError::Unavailable(_))),
            "ready while commits time out"
        );
    }
}
