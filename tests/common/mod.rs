//! Helpers shared by the integration tests: temporary databases, "restarts" of the component
//! (a fresh engine, store and instance over the same file) and runs of the real `tally` binary.

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use tally::{ComponentSource, Lease, Runtime, RuntimeOptions};
use tally_keyvalue::storage::{SqliteStorage, Storage};

/// A temporary directory holding `counters.db`, removed when dropped.
pub struct TempDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempDb {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters.db");
        Self { dir, path }
    }

    /// The stored bytes of `key` in bucket `""`, read with a plain SQLite connection.
    pub fn raw_value(&self, key: &str) -> Option<Vec<u8>> {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        let mut statement = conn
            .prepare("SELECT CAST(value AS BLOB) FROM kv WHERE bucket = '' AND key = ?1")
            .unwrap();
        let mut rows = statement.query([key]).unwrap();
        rows.next().unwrap().map(|row| row.get(0).unwrap())
    }

    /// Writes `value` for `key` behind tally's back, as a user with `sqlite3` would.
    pub fn write_raw(&self, key: &str, value: &str) {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.execute(
            "INSERT INTO kv (bucket, key, value) VALUES ('', ?1, ?2)
             ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value",
            [key, value],
        )
        .unwrap();
    }
}

/// A cache directory shared by every test of this build, so each test binary compiles the
/// component once and every later "restart" loads it as a real restart would.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tally-cache")
}

/// Starts the component from nothing: a new engine, a new store, a new instance, and a new SQLite
/// connection to `db`. Nothing but the file connects it to earlier runs.
pub fn restart(db: &Path) -> (Runtime, Lease) {
    let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open(db).unwrap());
    start_with(storage)
}

/// A fresh engine and instance of the embedded component over `storage`.
pub fn start_with(storage: Arc<dyn Storage>) -> (Runtime, Lease) {
    let options = RuntimeOptions {
        cache_dir: Some(cache_dir()),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::new(&ComponentSource::Embedded, &options, storage).unwrap();
    let counter = block_on(runtime.instantiate()).unwrap();
    (runtime, counter)
}

/// Runs a future to completion on a current-thread runtime (each test thread has its own).
/// A call's outcome in the shape the tests compare: a trap or a host failure (busy, outage,
/// key reused...) as the outer error, the component's refusal as the inner one.
pub trait Answer<T> {
    /// The outcome in that shape.
    fn answer(self) -> anyhow::Result<Result<T, tally::CounterError>>;
}

impl<T> Answer<T> for Result<tally::Done<T>, tally::Failure> {
    fn answer(self) -> anyhow::Result<Result<T, tally::CounterError>> {
        match self {
            Ok(done) => Ok(Ok(done.value)),
            Err(tally::Failure::Refused(refusal)) => Ok(Err(refusal.error)),
            Err(failure) => Err(anyhow::anyhow!(failure.message())),
        }
    }
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// The real `tally` binary with the shared compiled-component cache, and an environment that
/// cannot change what it does (no `TALLY_*` variables; backtraces on, which it must not print).
pub fn tally_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command
        .arg("--cache-dir")
        .arg(cache_dir())
        .env("RUST_BACKTRACE", "1");
    without_tally_variables(&mut command);
    command
}

/// Removes every `TALLY_*` variable of the test's environment from `command`: every option reads
/// one, and none may leak in.
pub fn without_tally_variables(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TALLY_") {
            command.env_remove(name);
        }
    }
    command
}

/// The real `tally` binary as `nobody` (the tests run as root), on `db`, without the compiled
/// component cache (root's): `args` follow `--db DB --no-cache`.
pub fn as_nobody(db: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_tally"))
        .arg("--db")
        .arg(db)
        .arg("--no-cache");
    without_tally_variables(&mut command);
    command
}

/// Runs the real `tally` binary as a separate process with exactly these arguments.
pub fn run(args: &[&str]) -> Output {
    tally_command().args(args).output().unwrap()
}

/// Runs `tally` and returns its standard output, asserting that it succeeded.
pub fn run_ok(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "tally {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `tally`, asserting it failed with `code` and printed no result, and returns its
/// standard error.
pub fn run_fails(args: &[&str], code: i32) -> String {
    let output = run(args);
    assert_eq!(
        output.status.code(),
        Some(code),
        "tally {args:?}: stdout {:?}, stderr {:?}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout.is_empty(),
        "a failed command printed a result"
    );
    String::from_utf8(output.stderr).unwrap()
}

/// `--db DB` followed by `args`.
fn on_db<'a>(db: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--db", db.to_str().expect("test paths are UTF-8")];
    all.extend_from_slice(args);
    all
}

/// [`run`] against the database `db`.
pub fn tally(db: &Path, args: &[&str]) -> Output {
    run(&on_db(db, args))
}

/// [`run_ok`] against the database `db`.
pub fn tally_ok(db: &Path, args: &[&str]) -> String {
    run_ok(&on_db(db, args))
}

/// [`run_fails`] against the database `db`.
pub fn tally_fails(db: &Path, args: &[&str], code: i32) -> String {
    run_fails(&on_db(db, args), code)
}

/// A small filesystem of our own (tmpfs; the tests run as root), unmounted when dropped.
pub struct SmallDisk {
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A tmpfs of `size` mounted on a new directory; `None` (the calling test skipped, saying
    /// so on standard error) where this process may not mount one (it needs root; CI runs as
    /// root).
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        if !output.status.success() {
            eprintln!(
                "skipped: mounting a {size} tmpfs is not allowed here ({}); run as root",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return None;
        }
        Some(Self { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// A small xorshift generator for the crash loops' random kill moments, without a dependency.
pub struct Random(u64);

impl Random {
    /// Seeded from `CRASH_SEED` when set (to replay a failure), else from the clock; the seed is
    /// returned too, for the test to print.
    pub fn for_crash_loop() -> (Self, u64) {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Self(seed), seed)
    }

    /// A number below `bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}
