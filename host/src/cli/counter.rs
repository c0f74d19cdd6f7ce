//! The one-shot counter commands. Every invocation is a process start, so every invocation is
//! also a restart: the value printed comes from the database file, through the component, every
//! time.

use super::{CounterCommand as Command, Failure, GlobalArgs};
use crate::Refusal;
use crate::runtime::{Counter, Runtime};
use anyhow::Context;
use std::io::Write;

/// Runs one counter command (not `serve`) and prints its result.
pub(super) fn run(global: &GlobalArgs, command: Command) -> Result<(), Failure> {
    block_on(run_async(global, command))
}

/// Runs one command's future on a single-threaded runtime (a command is one call or a few).
fn block_on<T>(command: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the async runtime")?
        .block_on(command)
}

/// A fresh component instance over the store the options name; for a command that only reads,
/// over the store opened for reading (nothing created or converted).
async fn instantiate(global: &GlobalArgs, only_reads: bool) -> Result<Counter, Failure> {
    let (storage, _) = if only_reads {
        global.open_storage_for_reading()?
    } else {
        global.open_storage(None)?
    };
    let runtime = Runtime::new(
        &global.component_source(),
        &global.runtime_options(),
        storage,
    )?;
    Ok(runtime.instantiate().await?)
}

async fn run_async(global: &GlobalArgs, command: Command) -> Result<(), Failure> {
    let only_reads = matches!(command, Command::Get { .. } | Command::List);
    let mut counter = instantiate(global, only_reads).await?;
    let limit = counter.counter_limit();
    let refused = |error| Failure::Refused(Refusal::new(error, limit));

    let output = match command {
        Command::Get { name } => {
            let value = counter.get(&name).await?.map_err(refused)?;
            Output::One(name, value)
        }
        Command::Incr { name, by } => {
            let value = counter.increment(&name, by).await?.map_err(refused)?;
            Output::One(name, value)
        }
        Command::Set { name, value } => {
            counter.set(&name, value).await?.map_err(refused)?;
            Output::One(name, value)
        }
        Command::Reset { name } => {
            counter.reset(&name).await?.map_err(refused)?;
            Output::One(name, 0)
        }
        Command::List => Output::All(counter.list().await?.map_err(refused)?),
    };
    output
        .print(global.json)
        .context("writing to standard output")?;
    Ok(())
}

/// What a command prints.
enum Output {
    One(String, u64),
    All(Vec<(String, u64)>),
}

impl Output {
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
