//! The `tally` command line: parse arguments, then run one counter command or the server.
//!
//! Exit codes: 0 success; 1 the counter operation was refused (invalid name, overflow, corrupt
//! value); 2 the command line is wrong; 3 tally could not do its work (database, component, a
//! store failure or a store locked past the busy timeout, network).
//!
//! # Layout
//! - [`counter`]: `get`, `incr`, `set`, `reset`, `list`: one operation in a fresh process.
//! - [`serve`]: `tally serve`, the HTTP service.
//! - [`bench`]: `tally bench`, the service against Redis.
//! - [`component`]: `tally component`, the embedded component as a file.

pub mod bench;
pub mod component;
pub mod counter;
pub mod serve;

use crate::CounterError;
use crate::compiled_cache::default_cache_dir;
use crate::runtime::{ComponentSource, RuntimeOptions};
use crate::storage::{
    Durability, MemoryStorage, RedisStorage, SqliteOptions, SqliteStorage, Storage,
};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Durable named counters, computed by a WebAssembly component over a SQLite file.
#[derive(Debug, Parser)]
#[command(name = "tally", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// The SQLite database file that holds the counters (created if missing).
    #[arg(long, global = true, env = "TALLY_DB", value_name = "PATH",
          default_value_os_t = default_db_path())]
    db: PathBuf,

    /// Where the counters live instead of --db: `sqlite:PATH`, `memory` (gone when the process
    /// exits), or `redis://HOST[:PORT][/DB]` (counters are then 0..=9223372036854775807).
    #[arg(
        long,
        global = true,
        env = "TALLY_STORE",
        value_name = "STORE",
        conflicts_with = "db"
    )]
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
    #[arg(long, global = true)]
    allow_redis_eviction: bool,

    /// When a write is acknowledged: `full` after it is fsynced to disk (SQLite
    /// synchronous=FULL); `relaxed` after it reaches the OS (synchronous=NORMAL: survives a crash
    /// of tally, may lose the last writes on power loss).
    #[arg(long, global = true, env = "TALLY_DURABILITY", value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,

    /// Run this counter component file instead of the one built into tally.
    #[arg(long, global = true, env = "TALLY_COMPONENT", value_name = "PATH")]
    component: Option<PathBuf>,

    /// Where compiled components are cached between runs [default: $XDG_CACHE_HOME/tally or
    /// ~/.cache/tally].
    #[arg(long, global = true, env = "TALLY_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile the component on every run instead of using the cache.
    #[arg(long, global = true)]
    no_cache: bool,

    /// Print results as JSON: {"name": ..., "value": ...}, or a list of those for `list`.
    #[arg(long, global = true)]
    json: bool,
}

/// A `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StoreSpec {
    Sqlite(PathBuf),
    Memory,
    Redis(String),
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
        } else {
            Err("expected sqlite:PATH, memory or redis://HOST[:PORT][/DB]".to_string())
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Full,
    Relaxed,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Counter(CounterCommand),
    /// Serve the counters over HTTP until SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// Measure `tally serve` (durability full and relaxed) against Redis on this machine.
    Bench(bench::BenchArgs),
    /// Write the embedded counter component to a file, to run it in another host.
    Component(component::ComponentArgs),
}

/// The one-shot commands on counters.
#[derive(Debug, Subcommand)]
enum CounterCommand {
    /// Print a counter's value (0 if it was never set).
    Get {
        /// The counter's name: 1-256 bytes, no control characters.
        name: String,
    },
    /// Add to a counter and print its new value.
    Incr {
        /// The counter's name: 1-256 bytes, no control characters.
        name: String,
        /// How much to add.
        #[arg(long, default_value_t = 1, value_name = "N")]
        by: u64,
    },
    /// Set a counter to a value.
    Set {
        /// The counter's name: 1-256 bytes, no control characters.
        name: String,
        /// The new value, 0 to 18446744073709551615.
        value: u64,
    },
    /// Remove a counter (it then reads 0).
    Reset {
        /// The counter's name: 1-256 bytes, no control characters.
        name: String,
    },
    /// Print every counter and its value, one per line, tab-separated, sorted by name.
    List,
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
    /// Opens the store named by `--store` (or the SQLite file named by `--db`) and says which.
    fn open_storage(&self) -> Result<(Arc<dyn Storage>, String)> {
        let spec = self
            .store
            .clone()
            .unwrap_or_else(|| StoreSpec::Sqlite(self.db.clone()));
        match spec {
            StoreSpec::Memory => Ok((Arc::new(MemoryStorage::new()), "memory".into())),
            StoreSpec::Redis(url) => {
                let shown = redact_password(&url);
                let storage = RedisStorage::open(&url, self.allow_redis_eviction)
                    .map_err(|error| anyhow::anyhow!(redact_password(&error.to_string())))
                    .with_context(|| format!("cannot use the Redis store {shown}"))?;
                Ok((Arc::new(storage), shown))
            }
            StoreSpec::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    if path == default_db_path() {
                        std::fs::create_dir_all(dir).with_context(|| {
                            format!("cannot create the data directory {}", dir.display())
                        })?;
                    } else if !dir.is_dir() {
                        anyhow::bail!(
                            "cannot open the counter database {}: the directory {} does not \
                             exist; create it or choose another --db",
                            path.display(),
                            dir.display()
                        );
                    }
                }
                let durability = match self.durability {
                    DurabilityArg::Full => Durability::Full,
                    DurabilityArg::Relaxed => Durability::Relaxed,
                };
                let options = SqliteOptions {
                    durability,
                    busy_timeout: std::time::Duration::from_millis(self.busy_timeout_ms),
                };
                let storage = SqliteStorage::open_with(&path, options).with_context(|| {
                    format!("cannot open the counter database {}", path.display())
                })?;
                Ok((Arc::new(storage), format!("sqlite:{}", path.display())))
            }
        }
    }

    fn component_source(&self) -> ComponentSource {
        self.component
            .clone()
            .map_or(ComponentSource::Embedded, ComponentSource::File)
    }

    fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or_else(default_cache_dir)
            },
            ..RuntimeOptions::default()
        }
    }
}

/// `redis://user:secret@host` as `redis://user:***@host`, for messages and logs.
fn redact_password(text: &str) -> String {
    let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
        return text.to_string();
    };
    let rest = &text[scheme_end..];
    match (rest.find('@'), rest.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!(
                "{}{}:***{}",
                &text[..scheme_end],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => text.to_string(),
    }
}

/// Why a command failed, which decides the exit code.
pub enum Failure {
    /// The component refused the operation: exit 1.
    Refused(CounterError),
    /// tally could not do its work: exit 3.
    Broken(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Broken(error)
    }
}

/// Runs the command line; the binary's `main` is just this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(&cli.global, &args).map_err(Failure::Broken),
        Command::Bench(args) => bench::run(&args).map_err(Failure::Broken),
        Command::Component(args) => component::run(&args).map_err(Failure::Broken),
        Command::Counter(command) => counter::run(&cli.global, command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(error)) => {
            eprintln!("tally: {}", describe(&error));
            // A store failure is the environment's, not the request's.
            match error {
                CounterError::StoreFailure(_) => ExitCode::from(3),
                _ => ExitCode::from(1),
            }
        }
        Err(Failure::Broken(error)) => {
            // `{:#}` prints the context chain on one line and never a backtrace.
            eprintln!("tally: error: {error:#}");
            ExitCode::from(3)
        }
    }
}

/// A one-line explanation of a refused operation that says what to do about it.
pub fn describe(error: &CounterError) -> String {
    match error {
        CounterError::InvalidName(reason) => format!("invalid counter name: {reason}"),
        CounterError::Overflow(name) => format!(
            "counter {name:?} would overflow past 18446744073709551615 (the u64 maximum); \
             its value is unchanged"
        ),
        CounterError::CorruptValue(name) => format!(
            "counter {name:?} holds a stored value that is not a decimal u64 (something other \
             than tally wrote it); `tally set {name} N` or `tally reset {name}` replaces it"
        ),
        CounterError::StoreFailure(message) => format!("the counter store failed: {message}"),
    }
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
    }
}
