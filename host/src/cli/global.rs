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
use tally_keyvalue::Observer;
use tally_keyvalue::storage::{
    Durability, MemoryStorage, PostgresOptions, PostgresStorage, RedisStorage, SqliteOptions,
    SqliteStorage, Storage, StorageError,
};

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
    store: Option<StoreSpec>,

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

    /// Print results as JSON: {"name": ..., "value": ...}, a list of those for `list`, an object
    /// describing what `backup`, `import` and `component` did; errors as {"error", "code"} on
    /// standard error.
    #[arg(long, global = true, env = "TALLY_JSON", value_parser = BoolishValueParser::new())]
    pub(crate) json: bool,
}

/// The longest `--idempotency-retention-secs`: ten years (records keep their expiry in
/// milliseconds).
const MAX_RETENTION_SECS: u64 = 10 * 365 * 86_400;

/// A `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StoreSpec {
    Sqlite(PathBuf),
    Memory,
    Redis(String),
    Postgres(String),
}

/// How messages and logs name a store (passwords redacted).
impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Memory => f.write_str("memory"),
            Self::Redis(url) | Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl std::str::FromStr for StoreSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        if spec == "memory" {
            Ok(Self::Memory)
        } else if let Some(path) = spec.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if spec.starts_with("redis://") || spec.starts_with("rediss://") {
            Ok(Self::Redis(spec.to_string()))
        } else if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            Ok(Self::Postgres(spec.to_string()))
        } else {
            Err(
                "expected sqlite:PATH, memory, redis://HOST[:PORT][/DB] or postgres://USER@HOST/DB"
                    .to_string(),
            )
        }
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
    fn store_spec(&self) -> StoreSpec {
        self.store
            .clone()
            .unwrap_or_else(|| StoreSpec::Sqlite(self.db.clone()))
    }

    /// Opens the store named by `--store` (or the SQLite file named by `--db`) for commands that
    /// write, and says which. A new SQLite file is created. `observer` hears about group
    /// commits (SQLite's and PostgreSQL's).
    pub(crate) fn open_storage(
        &self,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<(Arc<dyn Storage>, String)> {
        let spec = self.store_spec();
        let shown = spec.to_string();
        let storage: Arc<dyn Storage> = match spec {
            StoreSpec::Memory => Arc::new(MemoryStorage::new()),
            StoreSpec::Redis(url) => Arc::new(
                RedisStorage::open(&url, self.allow_redis_eviction)
                    .map_err(|error| unusable_store(error, "Redis", &shown))?,
            ),
            StoreSpec::Postgres(url) => {
                let options = PostgresOptions {
                    schema: self.postgres_schema.clone(),
                    pool_size: usize::from(self.pool_size),
                    commit_timeout: std::time::Duration::from_millis(self.commit_timeout_ms),
                    observer,
                };
                Arc::new(
                    PostgresStorage::open(&url, options)
                        .map_err(|error| unusable_store(error, "PostgreSQL", &shown))?,
                )
            }
            StoreSpec::Sqlite(path) => Arc::new(self.open_sqlite(&path, observer)?),
        };
        Ok((storage, shown))
    }

    /// Opens the store for commands that only read (`get`, `list`, `export`), and says which. A
    /// SQLite file is neither created nor converted nor upgraded: where none exists yet the
    /// store reads as empty, and standard error says so.
    pub(crate) fn open_storage_for_reading(&self) -> Result<(Arc<dyn Storage>, String)> {
        let spec = self.store_spec();
        let shown = spec.to_string();
        let StoreSpec::Sqlite(path) = spec else {
            return self.open_storage(None);
        };
        let storage: Arc<dyn Storage> = match self.read_sqlite(&path)? {
            Some(storage) => Arc::new(storage),
            None => {
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
        };
        Ok((storage, shown))
    }

    /// Settles the store options against each other once they are parsed: `--db` against
    /// `--store` (the command line beats the environment, and the same level twice is an error
    /// rather than a guess), then options that only one kind of store takes, which are refused
    /// with any other store rather than silently ignored.
    pub(crate) fn settle_store_options(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.settle_store_choice(matches)?;
        let spec = self.store_spec();
        let sqlite = matches!(spec, StoreSpec::Sqlite(_));
        let redis = matches!(spec, StoreSpec::Redis(_));
        let postgres = matches!(spec, StoreSpec::Postgres(_));
        let store_only = [
            ("durability", !sqlite, "SQLite"),
            ("busy_timeout_ms", !sqlite, "SQLite"),
            (
                "allow_redis_eviction",
                !redis && self.allow_redis_eviction,
                "Redis",
            ),
            ("postgres_schema", !postgres, "PostgreSQL"),
            ("pool_size", !postgres, "PostgreSQL"),
            ("commit_timeout_ms", !postgres, "PostgreSQL"),
        ];
        for (id, misplaced, kind) in store_only {
            if !misplaced {
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
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "{given} applies to {kind} stores only, and the store is {spec}; \
                     leave it out{}\n",
                    match (kind, &spec) {
                        ("SQLite", StoreSpec::Redis(_)) => {
                            " (a Redis store's durability is its own appendfsync setting)"
                        }
                        ("SQLite", StoreSpec::Postgres(_)) => {
                            " (a PostgreSQL store's durability is the server's synchronous_commit \
                             and synchronous standbys)"
                        }
                        _ => "",
                    }
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
        match self.store_spec() {
            StoreSpec::Sqlite(path) => Some(path),
            StoreSpec::Memory | StoreSpec::Redis(_) | StoreSpec::Postgres(_) => None,
        }
    }

    /// The PostgreSQL schema in use, when the store is PostgreSQL.
    pub(crate) fn postgres_schema(&self) -> Option<&str> {
        matches!(self.store_spec(), StoreSpec::Postgres(_)).then_some(self.postgres_schema.as_str())
    }

    /// Opens (creating if needed) the SQLite database at `path` with the durability and busy
    /// timeout asked for. The default database's directory is created too.
    fn open_sqlite(
        &self,
        path: &Path,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<SqliteStorage> {
        self.check_directory(path, true)?;
        if !path.exists()
            && let Some(dir) = SqliteStorage::uncreatable_in(path)
        {
            anyhow::bail!(
                "cannot create the counter database {}: this user may not write in its \
                 directory {}; give it write permission, or choose another --db",
                path.display(),
                dir.display()
            );
        }
        let options = SqliteOptions {
            observer,
            ..self.sqlite_options()
        };
        SqliteStorage::open_with(path, options)
            .map_err(|error| anyhow::anyhow!(crate::refusal::store_error(&error)))
            .with_context(|| format!("cannot open the counter database {}", path.display()))
    }

    /// Opens the SQLite database at `path` for reading only (see
    /// [`SqliteStorage::open_for_reading`]); `None` when there is none there yet.
    pub(crate) fn read_sqlite(&self, path: &Path) -> Result<Option<SqliteStorage>> {
        self.check_directory(path, false)?;
        SqliteStorage::open_for_reading(path, self.sqlite_options())
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
        match (self.store_spec(), self.durability) {
            (StoreSpec::Sqlite(_), DurabilityArg::Full) => "full (fsync per commit)",
            (StoreSpec::Sqlite(_), DurabilityArg::Relaxed) => "relaxed (synchronous=NORMAL)",
            (StoreSpec::Redis(_), _) => "the Redis server's appendfsync setting",
            (StoreSpec::Postgres(_), _) => {
                "after COMMIT returns: the server's synchronous_commit and synchronous standbys"
            }
            (StoreSpec::Memory, _) => "none (memory)",
        }
    }

    fn sqlite_options(&self) -> SqliteOptions {
        SqliteOptions {
            durability: match self.durability {
                DurabilityArg::Full => Durability::Full,
                DurabilityArg::Relaxed => Durability::Relaxed,
            },
            busy_timeout: std::time::Duration::from_millis(self.busy_timeout_ms),
            observer: None,
        }
    }

    pub(crate) fn component_source(&self) -> ComponentSource {
        self.component
            .clone()
            .map_or(ComponentSource::Embedded, ComponentSource::File)
    }

    pub(crate) fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or_else(default_cache_dir)
            },
            idempotency_retention: std::time::Duration::from_secs(self.idempotency_retention_secs),
            store_name: std::sync::Arc::from(self.store_spec().to_string()),
            ..RuntimeOptions::default()
        }
    }
}

/// Why a shared store (`kind`, named `shown` with its password redacted) could not be opened: an
/// outage (the command exits as one, and a server does not start) or its refusal, with no password
/// in either.
fn unusable_store(error: StorageError, kind: &str, shown: &str) -> anyhow::Error {
    let detail = redact_password(&crate::refusal::store_error(&error));
    match error {
        StorageError::Unavailable(_) => anyhow::Error::new(StoreProblem::Unreachable(
            crate::refusal::store_unreachable(shown, &detail),
        )),
        StorageError::Misconfigured(_) => anyhow::Error::new(StoreProblem::Misconfigured(format!(
            "cannot use the {kind} store {shown}: {detail}"
        ))),
        _ => anyhow::anyhow!(detail).context(format!("cannot use the {kind} store {shown}")),
    }
}

/// `redis://user:secret@host` as `redis://user:***@host` (and a `password=` URL option as
/// `password=***`), for messages and logs.
fn redact_password(text: &str) -> String {
    let mut redacted = text.to_string();
    // Every URL in the text, not only the first.
    let mut from = 0;
    while let Some(scheme_end) = redacted[from..].find("://").map(|i| from + i + 3) {
        let rest = &redacted[scheme_end..];
        // The user information ends at the first '@' before the host part ends.
        let authority_end = rest.find(['/', '?', ' ']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        from = scheme_end;
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            redacted.replace_range(scheme_end + colon + 1..scheme_end + at, "***");
        }
    }
    let mut from = 0;
    while let Some(found) = redacted[from..].find("password=").map(|i| from + i + 9) {
        let end = redacted[found..]
            .find(['&', ' ', '\'', '"'])
            .map_or(redacted.len(), |i| found + i);
        redacted.replace_range(found..end, "***");
        from = found + 3;
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    /// Passwords in store URLs never reach a message or a log line.
    #[test]
    fn store_passwords_are_redacted() {
        assert_eq!(
            redact_password("redis://app:s3cret@10.0.0.1:6379/0"),
            "redis://app:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_password("redis://:s3cret@host/1"),
            "redis://:***@host/1"
        );
        assert_eq!(
            redact_password("redis://host:6379/0"),
            "redis://host:6379/0"
        );
        assert_eq!(
            redact_password("at redis://u:p@h/0: refused"),
            "at redis://u:***@h/0: refused"
        );
        assert_eq!(
            redact_password(
                "postgresql://app:p@ss@h1:5432,h2:5433/db?target_session_attrs=read-write"
            ),
            "postgresql://app:***@h1:5432,h2:5433/db?target_session_attrs=read-write"
        );
        assert_eq!(
            redact_password("postgres://app@h/db?sslmode=require&password=s3cret&x=1 failed"),
            "postgres://app@h/db?sslmode=require&password=***&x=1 failed"
        );
    }
}
