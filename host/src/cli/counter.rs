//! The one-shot counter commands. Every invocation is a process start, so every invocation is
//! also a restart: the value printed comes from the database file, through the component, every
//! time.

use super::{CounterCommand as Command, Failure, GlobalArgs};
use crate::service::Service;
use anyhow::Context;
use std::io::Write;

/// Runs one counter command (not `serve`) and prints its result.
pub(super) fn run(global: &GlobalArgs, command: Command) -> Result<(), Failure> {
    super::block_on(run_async(global, command))
}

/// The service over the store the options name; for a command that only reads, over the store
/// opened for reading (nothing created or converted). Failures name the store as
/// `GlobalArgs::runtime_options` says.
pub(super) fn service(global: &GlobalArgs, only_reads: bool) -> Result<Service, Failure> {
    let (storage, _) = if only_reads {
        global.open_storage_for_reading()?
    } else {
        global.open_storage(None)?
    };
    // One command at a time on this thread (a current-thread runtime, see `super::block_on`):
    // the store runs its reads right here, with no blocking pool thread.
    Ok(Service::new(
        &global.component_source(),
        &global.runtime_options(),
        storage,
        global.idempotency_retention(),
    )?)
}

/// The call one counter command makes, and what it prints: the value afterwards.
enum Call {
    Get,
    Increment(u64),
    Set(u64),
    Reset,
}

async fn run_async(global: &GlobalArgs, command: Command) -> Result<(), Failure> {
    let only_reads = matches!(command, Command::Get { .. } | Command::List);
    let service = service(global, only_reads)?;
    let (name, call, key) = match command {
        // Page after page, each from an instance of its own.
        Command::List => return list(&service, global.json).await,
        Command::Get { name } => (name, Call::Get, None),
        Command::Incr { name, by, once } => (name, Call::Increment(by), once.idempotency_key),
        Command::Set { name, value, once } => (name, Call::Set(value), once.idempotency_key),
        Command::Reset { name, once } => (name, Call::Reset, once.idempotency_key),
    };
    // The key's claim never waits here (one command per process has no other request in
    // flight); the store serializes it with other processes' writes (a retry there is a replay).
    let mut request = service.request(key.as_ref()).await?;
    let (value, replayed) = match call {
        Call::Get => request
            .get(&name)
            .await
            .map(|done| (done.value, done.replayed)),
        Call::Increment(by) => request
            .increment(&name, by)
            .await
            .map(|done| (done.value, done.replayed)),
        Call::Set(value) => request
            .set(&name, value)
            .await
            .map(|done| (value, done.replayed)),
        Call::Reset => request.reset(&name).await.map(|done| (0, done.replayed)),
    }?;
    if replayed && !global.json {
        // Standard output stays the first answer, byte for byte; this note is for people.
        eprintln!(
            "tally: the idempotency key {} was used for this write before: printing its first \
             answer, nothing applied now",
            key.as_ref().map_or("", |key| key.as_str())
        );
    }
    let mut out = std::io::stdout().lock();
    let printed = if global.json {
        writeln!(out, "{}", entry(&name, value))
    } else {
        writeln!(out, "{value}")
    };
    printed.context("writing to standard output")?;
    Ok(())
}

/// Prints every counter, page after page as the component reads them, each page from a fresh
/// instance: the listing's memory and each call's time stay those of one page, however many
/// counters there are. Text: one `name<TAB>value` line each. JSON: one array, written as it
/// goes. A failure after the first page leaves the pages before it printed.
async fn list(service: &Service, json: bool) -> Result<(), Failure> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut from = None;
    let mut first = true;
    if json {
        write!(out, "[").context("writing to standard output")?;
    }
    loop {
        let page = service
            .read()
            .await?
            // The contract's largest page: the fewest calls.
            .list_from(from, tally_guest::page::MAX_LIMIT)
            .await?
            .value;
        for (name, value) in &page.counters {
            if json {
                let separator = if first { "" } else { "," };
                write!(out, "{separator}{}", entry(name, *value))
            } else {
                // Names contain no control characters, so a tab always separates name and value.
                writeln!(out, "{name}\t{value}")
            }
            .context("writing to standard output")?;
            first = false;
        }
        out.flush().context("writing to standard output")?;
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    if json {
        writeln!(out, "]").context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")?;
    Ok(())
}

fn entry(name: &str, value: u64) -> serde_json::Value {
    serde_json::json!({ "name": name, "value": value })
}
