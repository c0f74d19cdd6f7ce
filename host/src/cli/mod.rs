//! The `tally` command line: parse arguments, then run one counter command or the server.
//!
//! Exit codes: 0 success (a replayed `--idempotency-key` write included); 1 the input was
//! refused (invalid name, overflow, corrupt value, an import file with a bad line, an
//! idempotency key reused for another write); 2 the command line is wrong; 3 tally could not do
//! its work (database, component, a store failure, unreachable or locked past the busy timeout,
//! network); 4 a write was applied, or may have been, and then the command failed; 5 `tally
//! hit` was over its window's limit (the hit is counted). [`exit_code`] maps each error code
//! ([`crate::error_code`]) to one.
//!
//! Every option can also be set through an environment variable (`TALLY_DB`, `TALLY_LISTEN`,
//! ...; `--help` names each one); a flag given on the command line wins. Colors follow the
//! terminal and `NO_COLOR` (<https://no-color.org>).
//!
//! # Layout
//! - [`global`]: the options every command takes, and the store and runtime they open.
//! - [`counter`]: `get`, `incr`, `set`, `reset`, `list`: one operation in a fresh process.
//! - [`window`]: `hit`, `history`, `sweep`: counters that reset.
//! - [`serve`]: `tally serve`, the HTTP service.
//! - [`backup`]: `tally backup`, a consistent copy of a live SQLite database.
//! - [`transfer`]: `tally export` and `tally import`, counters as JSON lines.
//! - [`component`]: `tally component`, the embedded component as a file.
//! - [`completions`]: `tally completions SHELL`.

pub mod backup;
pub mod completions;
pub mod component;
pub mod counter;
pub mod global;
pub mod serve;
pub mod transfer;
pub mod window;

use crate::error_code::ErrorCode;
use crate::idempotency::IdempotencyKey;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use global::GlobalArgs;
pub use global::default_db_path;
use std::process::ExitCode;

/// Runs one command's future on a single-threaded runtime (a command is one call or a few, or
/// an export's one pass): the stores then run their blocking calls on this thread, which has
/// nothing else to do, instead of handing each to a pool thread.
fn block_on<T>(command: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    use anyhow::Context;
    tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the async runtime")?
        .block_on(command)
}

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
    /// Count a hit in a window of time and check it against a limit (exit 5 over it).
    Hit(window::HitArgs),
    /// Print the counts of a name's last windows, oldest first.
    History(window::HistoryArgs),
    /// Delete the windows that ended, keeping the last --keep of every name.
    Sweep(window::SweepArgs),
    /// Serve the counters over HTTP (and the dashboard at /) until SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// Copy the SQLite database to FILE while it is in use (SQLite's online backup).
    Backup(backup::BackupArgs),
    /// Print every counter as a JSON line {"name": ..., "value": ...}, sorted by name.
    Export,
    /// Set the counters listed in a file of JSON lines (as `export` writes): all or none.
    Import(transfer::ImportArgs),
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
        /// How much to add, 0 to 18446744073709551615.
        #[arg(
            long,
            env = "TALLY_INCR_BY",
            default_value_t = 1,
            value_name = "N",
            allow_negative_numbers = true,
            value_parser = whole_number
        )]
        by: u64,
        #[command(flatten)]
        once: OnceArg,
    },
    /// Set a counter to a value.
    Set {
        /// The counter's name: 1-256 bytes, no control characters.
        name: String,
        /// The new value, 0 to 18446744073709551615.
        #[arg(allow_negative_numbers = true, value_parser = whole_number)]
        value: u64,
        #[command(flatten)]
        once: OnceArg,
    },
    /// Remove a counter (it then reads 0).
    Reset {
        /// The counter's name: 1-256 bytes, no control characters.
        name: String,
        #[command(flatten)]
        once: OnceArg,
    },
    /// Print every counter and its value, one per line, tab-separated, sorted by name.
    List,
}

/// `--idempotency-key`, on the commands that write one counter.
#[derive(Debug, Clone, clap::Args)]
pub struct OnceArg {
    /// Apply this write once: run again with the same KEY (a retry after a failure), it prints
    /// the first answer instead of applying the write again; with another write, it is refused.
    /// KEY is 1-255 visible ASCII characters, remembered --idempotency-retention-secs. Shared
    /// with the HTTP API's Idempotency-Key on the same store. (No TALLY_ variable: an exported
    /// key would turn every later write into a replay.)
    // The one flag without a TALLY_* variable; tests/conventions.rs names it as the exception.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// Why a command failed, which decides the exit code.
pub enum Failure {
    /// A counter call failed ([`crate::Failure`]): its code decides ([`exit_code`]).
    Call(crate::Failure),
    /// The user's input (an import file, say) was refused, and nothing changed: exit 1.
    Invalid(anyhow::Error),
    /// tally could not do its work: exit 3.
    Broken(anyhow::Error),
    /// `tally hit` was over its limit (and said so on standard output): exit 5.
    Limited,
}

/// A store that could not be opened for a reason a counter call would give too, in its words,
/// so that wherever it is raised the command exits (and `--json` says its code) as that call
/// would.
#[derive(Debug, thiserror::Error)]
pub enum StoreProblem {
    /// It cannot be reached ([`crate::refusal::store_unreachable`]'s words):
    /// [`crate::Failure::Unavailable`].
    #[error("{0}")]
    Unreachable(String),
    /// It refuses this process until its operator fixes a setting:
    /// [`crate::Failure::Misconfigured`].
    #[error("{0}")]
    Misconfigured(String),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        match error.downcast::<StoreProblem>() {
            Ok(StoreProblem::Unreachable(words)) => Self::Call(crate::Failure::Unavailable(words)),
            Ok(StoreProblem::Misconfigured(words)) => {
                Self::Call(crate::Failure::Misconfigured(words))
            }
            Err(error) => Self::Broken(error),
        }
    }
}

impl From<crate::Failure> for Failure {
    fn from(failure: crate::Failure) -> Self {
        Self::Call(failure)
    }
}

/// The exit code of each error code: 1 when the input was refused (nothing changed), 3 when
/// tally could not do its work (the store, the component, the environment).
pub fn exit_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::InvalidName
        | ErrorCode::Overflow
        | ErrorCode::CorruptValue
        | ErrorCode::InvalidBody
        | ErrorCode::InvalidQuery
        | ErrorCode::InvalidIdempotencyKey
        | ErrorCode::IdempotencyKeyReused
        | ErrorCode::InvalidWindow
        | ErrorCode::InvalidInput => 1,
        ErrorCode::StoreFailure
        | ErrorCode::BodyTooLarge
        | ErrorCode::NotFound
        | ErrorCode::MethodNotAllowed
        | ErrorCode::Unauthorized
        | ErrorCode::Busy
        | ErrorCode::GuestFailure
        | ErrorCode::StoreUnavailable
        | ErrorCode::IdempotencyKeyInUse
        | ErrorCode::StoreReadOnly
        | ErrorCode::StoreFull
        | ErrorCode::StoreMisconfigured
        | ErrorCode::TooManyConnections
        | ErrorCode::RequestTimeout
        | ErrorCode::UnsupportedMediaType
        | ErrorCode::ForbiddenOrigin
        | ErrorCode::ForbiddenHost
        | ErrorCode::Failure => 3,
        // Not "nothing changed": the write was, or may have been, applied.
        ErrorCode::WriteOutcomeUnknown | ErrorCode::AppliedThenFailed => 4,
        // Counted, and over the limit.
        ErrorCode::RateLimited => 5,
    }
}

/// A count or value on the command line: a whole number from 0 to the u64 maximum. A negative
/// one is read (not taken for an option) so the refusal can say why.
fn whole_number(text: &str) -> Result<u64, String> {
    if text.starts_with('-') {
        return Err(
            "tally counters only count up: give a whole number from 0 to \
                    18446744073709551615"
                .into(),
        );
    }
    text.parse().map_err(|_| {
        "not a whole number from 0 to 18446744073709551615 (decimal digits only)".to_string()
    })
}

/// How every error line starts, whoever found the error (the argument parser, the component,
/// the store): one prefix to search logs for.
const ERROR_PREFIX: &str = "tally: error: ";

/// Runs the command line; the binary's `main` is just this.
pub fn main() -> ExitCode {
    let parsed = Cli::command().try_get_matches().and_then(|matches| {
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.global.settle_store_options(&matches)?;
        Ok(cli)
    });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let json = cli.global.json;
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(&cli.global, &args).map_err(Failure::Broken),
        Command::Backup(args) => backup::run(&cli.global, &args),
        Command::Export => transfer::export(&cli.global),
        Command::Import(args) => transfer::import(&cli.global, &args),
        Command::Completions(args) => completions::run(&args).map_err(Failure::Broken),
        Command::Component(args) => component::run(&args, json).map_err(Failure::Broken),
        Command::Counter(command) => counter::run(&cli.global, command),
        Command::Hit(args) => window::hit(&cli.global, args),
        Command::History(args) => window::history(&cli.global, args),
        Command::Sweep(args) => window::sweep(&cli.global, &args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of standard output stopped reading (`tally export | head`): what it took
        // was written; as with any Unix filter, that is no error worth a line.
        Err(Failure::Broken(error)) if closed_output(&error) => ExitCode::SUCCESS,
        Err(Failure::Limited) => ExitCode::from(exit_code(ErrorCode::RateLimited)),
        Err(failure) => report(failure, json),
    }
}

/// Whether `error` is a write to a pipe whose reader has gone.
fn closed_output(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints why a command failed, on one line (`{"error", "code"}` with `--json`), and returns its
/// exit code.
fn report(failure: Failure, json: bool) -> ExitCode {
    let (message, code) = match failure {
        Failure::Call(failure) => (failure.message(), ErrorCode::of(&failure)),
        // `{:#}` prints the context chain on one line and never a backtrace.
        Failure::Invalid(error) => (format!("{error:#}"), ErrorCode::InvalidInput),
        Failure::Broken(error) => (format!("{error:#}"), ErrorCode::Failure),
        Failure::Limited => return ExitCode::from(exit_code(ErrorCode::RateLimited)),
    };
    if json {
        eprintln!(
            "{}",
            serde_json::json!({ "error": message, "code": code.as_str() })
        );
    } else {
        eprintln!("{ERROR_PREFIX}{message}");
    }
    ExitCode::from(exit_code(code))
}

/// Help and version go to standard output as clap prints them; a malformed command line is a
/// usage error (exit 2) with tally's error prefix, naming the environment variable when the
/// bad value came from one.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        // `tally` alone: the help, on standard error.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    // Rendered without styles: the prefix is tally's, and clap's own `error: ` is dropped.
    let text = error.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    eprint!(
        "{ERROR_PREFIX}{}",
        plain_usage(&blame_variable(error, text))
    );
    ExitCode::from(2)
}

/// clap's usage line in an error lists the options that were given, those set through their
/// environment variables too (`TALLY_DB` shows as `--db <PATH>`), which reads as if they were
/// required: this puts the subcommand's own usage in its place.
fn plain_usage(text: &str) -> String {
    let Some(line) = text.lines().find(|line| line.starts_with("Usage: tally ")) else {
        return text.to_string();
    };
    let mut command = Cli::command();
    command.build();
    let name = line["Usage: tally ".len()..]
        .split(' ')
        .next()
        .unwrap_or("");
    match command.find_subcommand_mut(name) {
        Some(subcommand) => {
            let usage = subcommand.render_usage().to_string();
            text.replacen(line, usage.trim_end(), 1)
        }
        None => text.to_string(),
    }
}

/// clap names the option (`'--json'`) even when the value it refuses came from the option's
/// environment variable; this names the variable instead, which is what the user has to fix.
fn blame_variable(error: &clap::Error, text: &str) -> String {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return text.to_string();
    };
    let long = shown.split([' ', '=']).next().unwrap_or(shown);
    let Some(flag) = long.strip_prefix("--") else {
        return text.to_string();
    };
    let on_command_line = std::env::args_os().any(|arg| {
        let arg = arg.to_string_lossy();
        arg == long || arg.starts_with(&format!("{long}="))
    });
    match variable_of(&Cli::command(), flag) {
        Some(variable) if !on_command_line && std::env::var_os(&variable).is_some() => text
            .replace(
                &format!("'{shown}'"),
                &format!("{variable} (the variable of {long})"),
            ),
        _ => text.to_string(),
    }
}

/// The environment variable of the option `--flag`, in `command` or any subcommand.
fn variable_of(command: &clap::Command, flag: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(flag))
        .and_then(|arg| arg.get_env())
        .map(|variable| variable.to_string_lossy().into_owned())
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|sub| variable_of(sub, flag))
        })
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
