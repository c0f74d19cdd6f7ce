//! The options every command takes (`--db`, `--store`, `--durability`, ...) and what they open:
//! the store and the component runtime.

use super::StoreProblem;
use crate::compiled_cache::default_cache_dir;
use crate::runtime::{ComponentSource, RuntimeOptions};
use anyhow::{Context, Result};
use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, ValueEnum};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tally_keyvalue::open::Backend;
use tally_keyvalue::storage::{
    FileProblem, FileRefusal, MemoryStorage, SqliteStorage, Storage, StorageError,
};
use tally_keyvalue::{Observer, OpenOptions, StoreOption};

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The SQLite database file that holds the counters (created by the first write; commands
    /// that only read never create or convert it).
    #[arg(long, global = true, env = "TALLY_DB", value_name = "PATH",
          default_value_os_t = default_db_path())]
    db: PathBuf,

    /// Where the counters live instead of --db: `sqlite:PATH`, `memory` (gone when the process
    /// exits), `redis://HOST[:PORT][/DB]` (counters are then 0..=9223372036854775807), or
    /// `postgres://USER@HOST[:PORT][,HOST2[:PORT2]]/DB[?sslmode=...&target_session_attrs=read-write]`.
    #[arg(long, global = true, env = "TALLY_STORE", value_name = "STORE")]
    store: Option<StoreUrl>,

    /// How long a write to the SQLite file waits for another process's lock before failing as
    /// busy (the server then answers 503 with Retry-After), in milliseconds.
    #[arg(
        long,
        global = true,
        env = "TALLY_BUSY_TIMEOUT_MS",
        default_value_t = 5000,
        value_name = "MS"
    )]
    busy_timeout_ms: u64,

    /// Use a Redis server even when its maxmemory-policy may evict keys (and so lose counters).
    #[arg(long, global = true, env = "TALLY_ALLOW_REDIS_EVICTION", value_parser = BoolishValueParser::new())]
    allow_redis_eviction: bool,

    /// The PostgreSQL schema that holds tally's tables (created by the first write; a schema of
    /// that name with other tables is refused untouched).
    #[arg(
        long,
        global = true,
        env = "TALLY_POSTGRES_SCHEMA",
        default_value = "tally",
        value_name = "NAME"
    )]
    postgres_schema: String,

    /// The most connections tally opens to a PostgreSQL store: keep the fleet's total under the
    /// server's max_connections.
    #[arg(
        long,
        global = true,
        env = "TALLY_POOL_SIZE",
        default_value_t = 16,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pool_size: u16,

    /// How long a PostgreSQL COMMIT may take, in milliseconds, before the write's outcome is
    /// reported unknown (a synchronous standby that is down makes it wait forever); readiness
    /// fails while commits time out.
    #[arg(
        long,
        global = true,
        env = "TALLY_COMMIT_TIMEOUT_MS",
        default_value_t = 10_000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    commit_timeout_ms: u64,

    /// When a write is acknowledged: `full` after it is fsynced to disk (SQLite
    /// synchronous=FULL); `relaxed` after it reaches the OS (synchronous=NORMAL: survives a crash
    /// of tally, may lose the last writes on power loss).
    #[arg(long, global = true, env = "TALLY_DURABILITY", value_enum, default_value_t = DurabilityArg::Full)]
    pub(crate) durability: DurabilityArg,

    /// Run this counter component file instead of the one built into tally.
    #[arg(long, global = true, env = "TALLY_COMPONENT", value_name = "PATH")]
    component: Option<PathBuf>,

    /// Where compiled components are cached between runs [default: $XDG_CACHE_HOME/tally or
    /// ~/.cache/tally].
    #[arg(long, global = true, env = "TALLY_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile the component on every run instead of using the cache.
    #[arg(long, global = true, env = "TALLY_NO_CACHE", value_parser = BoolishValueParser::new())]
    no_cache: bool,

    /// How long a write made with an idempotency key is remembered, in seconds: its retries
    /// within that time answer the first answer instead of applying it again. `tally serve`
    /// purges expired records in the background.
    #[arg(
        long,
        global = true,
        env = "TALLY_IDEMPOTENCY_RETENTION_SECS",
        default_value_t = 86_400,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=MAX_RETENTION_SECS)
    )]
    idempotency_retention_secs: u64,

    /// Take windows' time from this file (milliseconds since the Unix epoch, as text, read at
    /// every call) instead of the system clock: for tests, and for replaying a log of hits.
    #[arg(long, global = true, env = "TALLY_CLOCK_FILE", value_name = "PATH")]
    clock_file: Option<PathBuf>,

    /// Print results as JSON: {"name": ..., "value": ...}, a list of those for `list`, an object
    /// describing what `backup`, `import` and `component` did; errors as {"error", "code"} on
    /// standard error.
    #[arg(long, global = true, env = "TALLY_JSON", value_parser = BoolishValueParser::new())]
    pub(crate) json: bool,
}

/// The longest `--idempotency-retention-secs`: ten years (records keep their expiry in
/// milliseconds).
const MAX_RETENTION_SECS: u64 = 10 * 365 * 86_400;

/// A `--store` value: a store URL whose scheme this build has a backend for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoreUrl(String);

/// How messages and logs name a store (passwords redacted).
impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&tally_keyvalue::open::redacted(&self.0))
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        tally_keyvalue::open::backend(url)?;
        Ok(Self(url.to_string()))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DurabilityArg {
    Full,
    Relaxed,
}

/// The default database: `$XDG_DATA_HOME/tally/counters.db`, else
/// `~/.local/share/tally/counters.db`, else `tally.db` in the current directory.
pub fn default_db_path() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .map_or_else(
            || PathBuf::from("tally.db"),
            |dir| dir.join("tally/counters.db"),
        )
}

impl GlobalArgs {
    /// Where the counters live: `--store`, else the SQLite file `--db`.
    fn store_url(&self) -> Result<StoreUrl> {
        match &self.store {
            Some(url) => Ok(url.clone()),
            None => match self.db.to_str() {
                Some(path) => Ok(StoreUrl(format!("sqlite:{path}"))),
                None => anyhow::bail!(
                    "the counter database path {} is not UTF-8; choose a --db whose name is",
                    self.db.display()
                ),
            },
        }
    }

    /// The backend of the store in use.
    fn backend(&self) -> &'static Backend {
        let url = self.store.as_ref().map_or("sqlite:", |url| url.0.as_str());
        // `--store` was parsed by naming its backend, and `--db` is SQLite's, always built in.
        tally_keyvalue::open::backend(url).unwrap_or(&tally_keyvalue::open::SQLITE)
    }

    /// What opening the store takes, from the flags.
    fn open_options(&self, observer: Option<Arc<dyn Observer>>, read_only: bool) -> OpenOptions {
        let mut options = OpenOptions::default();
        options.read_only = read_only;
        options.relaxed_durability = matches!(self.durability, DurabilityArg::Relaxed);
        options.busy_timeout = Some(Duration::from_millis(self.busy_timeout_ms));
        options.allow_eviction = self.allow_redis_eviction;
        options.schema = Some(self.postgres_schema.clone());
        options.pool_size = Some(usize::from(self.pool_size));
        options.commit_timeout = Some(Duration::from_millis(self.commit_timeout_ms));
        options.observer = observer;
        options
    }

    /// Opens the store named by `--store` (or the SQLite file named by `--db`) for commands that
    /// write, and says which. A new SQLite file is created. `observer` hears about group
    /// commits (SQLite's and PostgreSQL's).
    pub(crate) fn open_storage(
        &self,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<(Arc<dyn Storage>, String)> {
        let url = self.store_url()?;
        if let Some(path) = self.sqlite_path() {
            self.check_directory(&path, true)?;
            if !path.exists()
                && let Some(dir) = SqliteStorage::uncreatable_in(&path)
            {
                anyhow::bail!(
                    "cannot create the counter database {}: this user may not write in its \
                     directory {}; give it write permission, or choose another --db",
                    path.display(),
                    dir.display()
                );
            }
        }
        let storage = tally_keyvalue::open(&url.0, &self.open_options(observer, false))
            .map_err(|error| self.unusable_store(error, &url))?;
        Ok((storage, url.to_string()))
    }

    /// Opens the store for commands that only read (`get`, `list`, `export`), and says which. A
    /// SQLite file is neither created nor converted nor upgraded: where none exists yet the
    /// store reads as empty, and standard error says so.
    pub(crate) fn open_storage_for_reading(&self) -> Result<(Arc<dyn Storage>, String)> {
        let Some(path) = self.sqlite_path() else {
            return self.open_storage(None);
        };
        self.check_directory(&path, false)?;
        let url = self.store_url()?;
        let storage = match tally_keyvalue::open(&url.0, &self.open_options(None, true)) {
            Ok(storage) => storage,
            Err(error) if is_no_database(&error) => {
                let creates = match SqliteStorage::uncreatable_in(&path) {
                    None => "the first write creates it".to_string(),
                    Some(dir) => format!(
                        "and this user may not create it: its directory {} is not writable for \
                         it",
                        dir.display()
                    ),
                };
                eprintln!(
                    "tally: no counter database exists at {} yet, so it holds no counters \
                     ({creates})",
                    path.display()
                );
                // Nothing there is exactly an empty store; nothing is written to it.
                Arc::new(MemoryStorage::new())
            }
            Err(error) => return Err(self.unusable_store(error, &url)),
        };
        Ok((storage, url.to_string()))
    }

    /// Settles the store options against each other once they are parsed: `--db` against
    /// `--store` (the command line beats the environment, and the same level twice is an error
    /// rather than a guess), then options that only some backends take, which are refused
    /// with any other store rather than silently ignored.
    pub(crate) fn settle_store_options(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.settle_store_choice(matches)?;
        let backend = self.backend();
        let shown = self
            .store_url()
            .map_or_else(|_| self.db.display().to_string(), |url| url.to_string());
        let store_only = [
            ("durability", StoreOption::Durability),
            ("busy_timeout_ms", StoreOption::BusyTimeout),
            ("allow_redis_eviction", StoreOption::AllowEviction),
            ("postgres_schema", StoreOption::Schema),
            ("pool_size", StoreOption::PoolSize),
            ("commit_timeout_ms", StoreOption::CommitTimeout),
        ];
        for (id, option) in store_only {
            // A switch left off is not given, even when its variable says "false".
            if backend.owns(option) || (id == "allow_redis_eviction" && !self.allow_redis_eviction)
            {
                continue;
            }
            let flag = format!("--{}", id.replace('_', "-"));
            let given = match matches.value_source(id) {
                Some(ValueSource::CommandLine) => flag,
                // The variable as clap knows it, not a name guessed from the flag's.
                Some(ValueSource::EnvVariable) => {
                    super::variable_of(&super::Cli::command(), &flag[2..]).unwrap_or(flag)
                }
                _ => continue,
            };
            let owners = tally_keyvalue::open::backends()
                .into_iter()
                .filter(|other| other.owns(option))
                .map(|other| other.name)
                .collect::<Vec<_>>()
                .join(" and ");
            let why = if option == StoreOption::Durability {
                format!(
                    " (a {} store's durability is {})",
                    backend.name,
                    (backend.durability)(&self.open_options(None, false))
                )
            } else {
                String::new()
            };
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "{given} applies to {owners} stores only, and the store is {shown}; leave it \
                     out{why}\n"
                ),
            ));
        }
        Ok(())
    }

    fn settle_store_choice(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let conflict = |what: &str| {
            Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                format!("{what}; choose one place for the counters\n"),
            ))
        };
        match (matches.value_source("db"), matches.value_source("store")) {
            (Some(ValueSource::CommandLine), Some(ValueSource::CommandLine)) => {
                conflict("--db and --store both say where the counters live")
            }
            (Some(ValueSource::EnvVariable), Some(ValueSource::EnvVariable)) => conflict(&format!(
                "TALLY_DB ({}) and TALLY_STORE ({store}) are both set",
                self.db.display(),
            )),
            (Some(ValueSource::CommandLine), _) => {
                self.store = None;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The SQLite file that `--store sqlite:PATH` or `--db` names; `None` for another store.
    pub(crate) fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.store {
            None => Some(self.db.clone()),
            Some(url) => url.0.strip_prefix("sqlite:").map(PathBuf::from),
        }
    }

    /// The PostgreSQL schema in use, when the store is PostgreSQL.
    pub(crate) fn postgres_schema(&self) -> Option<&str> {
        self.backend()
            .owns(StoreOption::Schema)
            .then_some(self.postgres_schema.as_str())
    }

    /// Opens the SQLite database at `path` for reading only (see
    /// [`SqliteStorage::open_for_reading`]), as the SQLite store itself, for what only it does
    /// (`backup`); `None` when there is none there yet.
    pub(crate) fn read_sqlite(&self, path: &Path) -> Result<Option<SqliteStorage>> {
        self.check_directory(path, false)?;
        SqliteStorage::open_for_reading(path, (&self.open_options(None, true)).into())
            .map_err(|error| anyhow::anyhow!(crate::refusal::store_error(&error)))
            .with_context(|| format!("cannot open the counter database {}", path.display()))
    }

    /// A database outside the default location must be in a directory that exists: a missing
    /// one is a mistyped `--db`, not a place to create. The default database's directory is
    /// created when `create_default` (by commands that write).
    fn check_directory(&self, path: &Path, create_default: bool) -> Result<()> {
        let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
            return Ok(());
        };
        if path == default_db_path() {
            if create_default {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the data directory {}", dir.display())
                })?;
            }
        } else if !dir.is_dir() {
            anyhow::bail!(
                "cannot open the counter database {}: the directory {} does not exist; create \
                 it or choose another --db",
                path.display(),
                dir.display()
            );
        }
        Ok(())
    }

    /// When the store acknowledges a write, for the server's log.
    pub(crate) fn durability_label(&self) -> &'static str {
        (self.backend().durability)(&self.open_options(None, false))
    }

    /// Why the store (`url`) could not be opened: an outage (the command exits as one, and a
    /// server does not start), a misconfiguration, or its refusal, with no password in any.
    fn unusable_store(&self, error: StorageError, url: &StoreUrl) -> anyhow::Error {
        let detail = tally_keyvalue::open::redacted(&crate::refusal::store_error(&error));
        let what = match self.sqlite_path() {
            Some(path) => format!("cannot open the counter database {}", path.display()),
            None => format!("cannot use the {} store {url}", self.backend().name),
        };
        match error {
            StorageError::Unavailable(_) => anyhow::Error::new(StoreProblem::Unreachable(
                crate::refusal::store_unreachable(&url.to_string(), &detail),
            )),
            StorageError::Misconfigured(_) => {
                anyhow::Error::new(StoreProblem::Misconfigured(format!("{what}: {detail}")))
            }
            _ => anyhow::anyhow!(detail).context(what),
        }
    }

    pub(crate) fn component_source(&self) -> ComponentSource {
        self.component
            .clone()
            .map_or(ComponentSource::Embedded, ComponentSource::File)
    }

    /// Where windows' time comes from (`--clock-file`, else the system clock).
    pub(crate) fn clock(&self) -> crate::service::Clock {
        self.clock_file
            .clone()
            .map_or(crate::service::Clock::System, crate::service::Clock::File)
    }

    /// How long a keyed write is remembered (`--idempotency-retention-secs`).
    pub(crate) fn idempotency_retention(&self) -> Duration {
        Duration::from_secs(self.idempotency_retention_secs)
    }

    pub(crate) fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or_else(default_cache_dir)
            },
            store_name: std::sync::Arc::from(
                self.store_url()
                    .map_or_else(|_| self.db.display().to_string(), |url| url.to_string()),
            ),
            ..RuntimeOptions::default()
        }
    }
}

/// A SQLite store refused for having no database yet: opened to read, it holds no counters.
fn is_no_database(error: &StorageError) -> bool {
    matches!(error, StorageError::Refused(_))
        && error
            .cause::<FileRefusal>()
            .is_some_and(|refusal| refusal.problem == FileProblem::NoDatabase)
}
