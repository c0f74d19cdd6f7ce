//! `tally backup FILE`: a consistent copy of the SQLite database, safe while `tally serve` (or
//! anything else) is writing it. See `storage::sqlite::backup` for how.

use super::{Failure, GlobalArgs};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// `tally backup` options.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write; it must not exist yet (see --force).
    file: PathBuf,

    /// Replace FILE if it exists.
    #[arg(long, env = "TALLY_BACKUP_FORCE", value_parser = clap::builder::BoolishValueParser::new())]
    force: bool,
}

/// Backs up the database named by `--db` (or `--store sqlite:PATH`) to the file given.
pub(super) fn run(global: &GlobalArgs, args: &BackupArgs) -> Result<(), Failure> {
    if let Some(schema) = global.postgres_schema() {
        return Err(Failure::Invalid(anyhow::anyhow!(
            "backup copies a SQLite database; back a PostgreSQL store up with the server's own \
             tools (pg_dump --schema={schema}, or a base backup), or use `tally export > FILE` \
             (and `tally import FILE` to restore)"
        )));
    }
    let Some(path) = global.sqlite_path() else {
        return Err(Failure::Invalid(anyhow::anyhow!(
            "backup copies a SQLite database; for another --store, use `tally export > FILE` \
             (and `tally import FILE` to restore)"
        )));
    };
    // Opened for reading: the source keeps its journal mode, and a missing one is not created
    // (a backup of nothing is a mistake).
    let Some(storage) = global.read_sqlite(&path)? else {
        return Err(Failure::Broken(anyhow::anyhow!(
            "there is no counter database at {} to back up; check --db",
            path.display()
        )));
    };
    let report = storage
        .backup_to(&args.file, args.force)
        .map_err(|error| anyhow::anyhow!(crate::refusal::store_error(&error)))
        .with_context(|| {
            format!(
                "cannot back up {} to {}",
                path.display(),
                args.file.display()
            )
        })?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({
                "source": path,
                "backup": args.file,
                "counters": report.counters,
                "bytes": report.bytes,
            })
        );
    } else {
        println!(
            "backed up {} ({} bytes) from {} to {}",
            super::plural(report.counters, "counter"),
            report.bytes,
            path.display(),
            args.file.display()
        );
    }
    Ok(())
}
