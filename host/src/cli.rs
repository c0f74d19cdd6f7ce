//! The `tally` command line: parse arguments, run one counter operation through a fresh component
//! instance, print the result.
//!
//! Every invocation is a process start, so every invocation is also a restart: the value printed
//! comes from the database file, through the component, every time.
//!
//! Exit codes: 0 success; 1 the counter operation was refused (invalid name, overflow, corrupt
//! value); 2 the command line is wrong; 3 tally could not do its work (database, component, store).

use crate::CounterError;
use crate::compiled_cache::default_cache_dir;
use crate::runtime::{ComponentSource, Runtime};
use crate::storage::SqliteStorage;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Durable named counters, computed by a WebAssembly component over a SQLite file.
#[derive(Debug, Parser)]
#[command(name = "tally", version, max_term_width = 100)]
pub struct Cli {
    /// The SQLite database file that holds the counters (created if missing).
    #[arg(long, global = true, env = "TALLY_DB", value_name = "PATH",
          default_value_os_t = default_db_path())]
    db: PathBuf,

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

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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

/// Why a command failed, which decides the exit code.
enum Failure {
    /// The component refused the operation.
    Refused(CounterError),
    /// tally could not do its work.
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
    let outcome = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(error)) => {
            eprintln!("tally: {}", describe(&error));
            ExitCode::from(1)
        }
        Err(Failure::Broken(error)) => {
            // `{:#}` prints the context chain on one line and never a backtrace.
            eprintln!("tally: error: {error:#}");
            ExitCode::from(3)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if cli.db == default_db_path()
        && let Some(dir) = cli.db.parent().filter(|dir| !dir.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let storage = SqliteStorage::open(&cli.db)
        .with_context(|| format!("cannot open the counter database {}", cli.db.display()))?;
    let source = cli
        .component
        .clone()
        .map_or(ComponentSource::Embedded, ComponentSource::File);
    let cache_dir = if cli.no_cache {
        None
    } else {
        cli.cache_dir.clone().or_else(default_cache_dir)
    };
    let runtime = Runtime::new(&source, cache_dir.as_deref(), Arc::new(storage))?;
    let mut counter = runtime.instantiate().await?;

    let output = match &cli.command {
        Command::Get { name } => {
            let value = counter.get(name).await?.map_err(Failure::Refused)?;
            Output::One(name, value)
        }
        Command::Incr { name, by } => {
            let value = counter.increment(name, *by).await?;
            Output::One(name, value.map_err(Failure::Refused)?)
        }
        Command::Set { name, value } => {
            counter.set(name, *value).await?.map_err(Failure::Refused)?;
            Output::One(name, *value)
        }
        Command::Reset { name } => {
            counter.reset(name).await?.map_err(Failure::Refused)?;
            Output::One(name, 0)
        }
        Command::List => Output::All(counter.list().await?.map_err(Failure::Refused)?),
    };
    output
        .print(cli.json)
        .context("writing to standard output")?;
    Ok(())
}

/// What a command prints.
enum Output<'a> {
    One(&'a str, u64),
    All(Vec<(String, u64)>),
}

impl Output<'_> {
    fn print(&self, json: bool) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        match (self, json) {
            (Self::One(_, value), false) => writeln!(out, "{value}"),
            (Self::One(name, value), true) => writeln!(out, "{}", entry(name, *value)),
            (Self::All(counters), false) => {
                // Names contain no control characters, so a tab always separates name and value.
                for (name, value) in counters {
                    writeln!(out, "{name}\t{value}")?;
                }
                Ok(())
            }
            (Self::All(counters), true) => {
                let entries: Vec<_> = counters.iter().map(|(n, v)| entry(n, *v)).collect();
                writeln!(out, "{}", serde_json::Value::Array(entries))
            }
        }
    }
}

fn entry(name: &str, value: u64) -> serde_json::Value {
    serde_json::json!({ "name": name, "value": value })
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
