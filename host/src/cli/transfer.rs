//! `tally export` and `tally import FILE`: counters as JSON lines, to move them between stores
//! (`tally export > counters.jsonl`, then `tally --store redis://... import counters.jsonl`).
//! The format and the all-or-nothing rule are in [`crate::transfer`].

use super::{Failure, GlobalArgs};
use crate::transfer::{self, ExportError, ImportError};
use crate::{CounterError, Refusal};
use anyhow::{Context, anyhow};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;

/// `tally import` options.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The JSON-lines file to read (`-` for standard input).
    file: PathBuf,
}

/// Prints every counter as a JSON line. Stops quietly when the reader goes away
/// (`tally export | head`).
pub(super) fn export(global: &GlobalArgs) -> Result<(), Failure> {
    let (storage, store) = global.open_storage_for_reading()?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    match super::block_on(async { Ok(transfer::export(&*storage, &mut out).await) })? {
        Ok(_) => Ok(()),
        Err(ExportError::Write(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(ExportError::CorruptValue(name)) => Err(Failure::Call(crate::Failure::Refused(
            Refusal::new(CounterError::CorruptValue(name), storage.counter_limit()),
        ))),
        Err(error) => Err(Failure::Broken(
            anyhow!(error).context(format!("cannot export the counters of {store}")),
        )),
    }
}

/// Checks the whole file, then writes all its counters in one atomic step.
pub(super) fn import(global: &GlobalArgs, args: &ImportArgs) -> Result<(), Failure> {
    let shown = args.file.display();
    let (reader, size): (Box<dyn BufRead>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open the import file {shown}"))?;
        let size = file.metadata().ok().map(|metadata| metadata.len());
        (Box::new(BufReader::new(file)), size)
    };
    let (storage, store) = global.open_storage(None)?;

    let progress = Progress::new(size);
    let lines = transfer::read_lines(reader, storage.counter_limit(), &mut |bytes| {
        progress.bar.set_position(bytes);
    })
    .map_err(|error| {
        progress.bar.finish_and_clear();
        let failure = anyhow!(error).context(format!("cannot import {shown}; nothing changed"));
        match failure.downcast_ref::<ImportError>() {
            Some(ImportError::InvalidLine { .. }) => Failure::Invalid(failure),
            _ => Failure::Broken(failure),
        }
    })?;
    let count = lines.len();
    progress.start_writing(count);
    let written = super::block_on(async { Ok(transfer::import(&*storage, lines).await) })?;
    progress.bar.finish_and_clear();
    written.with_context(|| format!("cannot import {shown} into {store}; nothing changed"))?;

    if global.json {
        println!(
            "{}",
            serde_json::json!({ "imported": count, "store": store })
        );
    } else {
        println!(
            "imported {} into {store}",
            super::plural(count as u64, "counter")
        );
    }
    Ok(())
}

/// The import's progress bar on standard error: bytes read while checking the file, then
/// the counters being written (one step: the store writes them as one group). Drawn only on a terminal; plain characters, so there is no color to turn
/// off for `NO_COLOR`.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(size: Option<u64>) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(size, target);
        bar.set_style(style(
            "checking [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ));
        Self { bar }
    }

    fn start_writing(&self, counters: usize) {
        self.bar
            .set_style(style("writing  {len} counters in one step {spinner}"));
        self.bar.set_length(counters as u64);
        self.bar.set_position(0);
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(100));
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}
