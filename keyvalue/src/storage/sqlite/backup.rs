//! `tally backup`: a consistent copy of a live database through SQLite's online backup API.
//!
//! The copy is taken on a read-only connection in a single backup step, that is inside one read
//! transaction, so it is one point in time: every commit before the step began is in it, none
//! after. In WAL mode readers do not block writers, so a running `tally serve` keeps acknowledging
//! increments while the copy is made. (Copying a few pages per step would restart from scratch
//! whenever another process commits in between, which under steady load may never finish.)
//!
//! The copy goes to a temporary file beside the destination, is checked (SQLite's
//! `quick_check`, tally's schema), fsynced, and only then renamed into place: the destination is
//! either the complete backup or untouched.

use super::refusal::{FileProblem, FileRefusal};
use super::{SqliteStorage, retry_while_busy, schema};
use crate::storage::StorageError;
use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};
use std::path::Path;

/// What [`SqliteStorage::backup_to`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// How many counters the copy holds.
    pub counters: u64,
    /// The copy's size in bytes.
    pub bytes: u64,
}

impl SqliteStorage {
    /// Writes a consistent copy of this database to `destination`, a self-contained SQLite file
    /// (rollback-journal mode, no `-wal` beside it) that opens like any other database of this store.
    ///
    /// An existing `destination` is replaced only with `overwrite`; the live database itself is
    /// never a valid destination.
    pub fn backup_to(
        &self,
        destination: &Path,
        overwrite: bool,
    ) -> Result<BackupReport, StorageError> {
        let refuse = |problem| Err(FileRefusal::error(destination, problem));
        if destination.exists() {
            if same_file(destination, &self.path) {
                return refuse(FileProblem::IsSource);
            }
            if !overwrite {
                return refuse(FileProblem::Exists);
            }
        }
        let dir = destination
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let io_failure = |what: &str, error: std::io::Error| {
            StorageError::Other(format!("backup: cannot {what}: {error}").into())
        };
        let temporary = tempfile::Builder::new()
            .prefix(".tally-backup-")
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|error| io_failure(&format!("create a file in {}", dir.display()), error))?;

        let mut copy = Connection::open(temporary.path())?;
        // A busy step (another connection is recovering the WAL, say) is retried like every
        // other busy open here, up to the busy timeout; a step of -1 pages copies everything or
        // nothing, so a retry starts clean.
        retry_while_busy(self.readers.busy_timeout, || {
            self.readers
                .read(|source| {
                    // -1: every page in one step, so in one read transaction of the source.
                    Backup::new(source, &mut copy)?.step(-1)
                })
                .and_then(|step| match step {
                    StepResult::Done => Ok(()),
                    _ => Err(StorageError::Busy(
                        format!(
                            "{} stayed locked for the whole busy timeout; nothing was written",
                            self.path.display()
                        )
                        .into(),
                    )),
                })
        })?;
        let counters = verify(&copy, destination)?;
        copy.close().map_err(|(_, error)| error)?;

        temporary
            .as_file()
            .sync_all()
            .map_err(|error| io_failure("flush the copy to disk", error))?;
        let persisted = if overwrite {
            temporary.persist(destination)
        } else {
            // Refuses atomically if the file appeared since the check above.
            temporary.persist_noclobber(destination)
        };
        persisted.map_err(|error| {
            io_failure(&format!("write {}", destination.display()), error.error)
        })?;
        // The rename is durable once the directory entry is.
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|error| io_failure(&format!("sync the directory {}", dir.display()), error))?;
        let bytes = std::fs::metadata(destination)
            .map_err(|error| io_failure(&format!("read {}", destination.display()), error))?
            .len();
        Ok(BackupReport { counters, bytes })
    }
}

/// Makes the copy self-contained and checks it; returns how many counters it holds.
fn verify(copy: &Connection, destination: &Path) -> Result<u64, StorageError> {
    // The pages came from a WAL database; a backup is easier to move around as one file.
    let mode: String = copy.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))?;
    let check: String = copy.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if check != "ok" || !mode.eq_ignore_ascii_case("delete") {
        return Err(StorageError::Other(format!(
            "backup: the copy failed its check ({check}, journal mode {mode}); nothing was written \
             to {}",
            destination.display()
        ).into()));
    }
    schema::require_tally(schema::inspect(copy)?, destination)?;
    let counters: i64 = copy.query_row("SELECT count(*) FROM kv", [], |row| row.get(0))?;
    Ok(u64::try_from(counters).unwrap_or(0))
}

/// Whether two existing paths name the same file (also through links).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
