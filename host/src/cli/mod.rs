//! The `tally` command line: parse arguments, then run one counter command or the server.
//!
//! Exit codes: 0 success; 1 the input was refused (invalid name, overflow, corrupt value, an
//! import file with a bad line); 2 the command line is wrong; 3 tally could not do its work
//! (database, component, a store failure or a store locked past the busy timeout, network).
//!
//! Every option can also be set through an environment variable (`TALLY_DB`, `TALLY_LISTEN`,
//! ...; `--help` names each one); a flag given on the command line wins. Colors follow the
//! terminal and `NO_COLOR` (<https://no-color.org>).
//!
//! # Layout
//! - [`global`]: the options every command takes, and the store and runtime they open.
//! - [`counter`]: `get`, `incr`, `set`, `reset`, `list`: one operation in a fresh process.
//! - [`serve`]: `tally serve`, the HTTP service.
//! - [`backup`]: `tally backup`, a consistent copy of a live SQLite database.
//! - [`transfer`]: `tally export` and `tally import`, counters as JSON lines.
//! - [`bench`]: `tally bench`, the service against Redis.
//! - [`component`]: `tally component`, the embedded component as a file.
//! - [`completions`]: `tally completions SHELL`.

pub mod backup;
pub mod bench;
pub mod completions;
pub mod component;
pub mod counter;
pub mod global;
pub mod serve;
pub mod transfer;

use crate::CounterError;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use global::GlobalArgs;
pub use global::default_db_path;
use std::process::ExitCode;

/// `tally --version`: tally's own version, the WIT contract its component implements (and the
/// standard interface it imports), and the wasmtime it runs components on. build.rs reads the
/// last three from `wit/` and `Cargo.lock`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncontract ",
    env!("TALLY_WIT_PACKAGE"),
    " (imports ",
    env!("TALLY_KEYVALUE_PACKAGE"),
    ")\nwasmtime ",
    env!("TALLY_WASMTIME_VERSION"),
);

/// Durable named counters, computed by a WebAssembly component over a SQLite file.
#[derive(Debug, Parser)]
#[command(name = "tally", version = VERSION, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Counter(CounterCommand),
    /// Serve the counters over HTTP (and the dashboard at /) until SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// Copy the SQLite database to FILE while it is in use (SQLite's online backup).
    Backup(backup::BackupArgs),
    /// Print every counter as a JSON line {"name": ..., "value": ...}, sorted by name.
    Export,
    /// Set the counters listed in a file of JSON lines (as `export` writes): all or none.
    Import(transfer::ImportArgs),
    /// Measure `tally serve` (durability full and relaxed) against Redis on this machine.
    Bench(bench::BenchArgs),
    /// Write the embedded counter component to a file, to run it in another host.
    Component(component::ComponentArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
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
        #[arg(long, env = "TALLY_INCR_BY", default_value_t = 1, value_name = "N")]
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

/// Why a command failed, which decides the exit code.
pub enum Failure {
    /// The component refused the operation: exit 1.
    Refused(CounterError),
    /// The user's input (an import file, say) was refused, and nothing changed: exit 1.
    Invalid(anyhow::Error),
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
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    if let Err(error) = cli.global.settle_store_choice(&matches) {
        error.exit();
    }
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(&cli.global, &args).map_err(Failure::Broken),
        Command::Backup(args) => backup::run(&cli.global, &args),
        Command::Export => transfer::export(&cli.global),
        Command::Import(args) => transfer::import(&cli.global, &args),
        Command::Completions(args) => completions::run(&args).map_err(Failure::Broken),
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
        Err(Failure::Invalid(error)) => {
            eprintln!("tally: {error:#}");
            ExitCode::from(1)
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

/// Whether to color output to a stream: only on a terminal, and never when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
pub fn use_color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// "1 counter", "2 counters".
fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
