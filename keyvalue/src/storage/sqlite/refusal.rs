//! What the SQLite store says when it will not use a file as asked ([`FileRefusal`], the cause
//! of a [`StorageError::Refused`](crate::storage::StorageError::Refused)) or may only read it
//! ([`ReadOnlyFile`], of a [`StorageError::ReadOnly`](crate::storage::StorageError::ReadOnly)):
//! typed, so a host can word them in its own terms (its flags, its commands).

use crate::storage::{Detail, StorageError};
use std::path::{Path, PathBuf};

/// A file the store will not use as it was asked to, left as it was: which, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct FileRefusal {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: FileProblem,
}

impl FileRefusal {
    /// The refusal of `path` for `problem`, as a [`StorageError::Refused`].
    pub(crate) fn error(path: &Path, problem: FileProblem) -> StorageError {
        StorageError::Refused(Detail::of(Self {
            path: path.to_path_buf(),
            problem,
        }))
    }
}

/// What is wrong with a file ([`FileRefusal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileProblem {
    /// Another application's SQLite database: tables of its own, or another `application_id`
    /// (0 when it has none).
    Foreign {
        /// Its `PRAGMA application_id`.
        application_id: i32,
    },
    /// A database of this store with a schema newer than this build understands.
    NewerSchema {
        /// Its schema version.
        version: i32,
        /// The newest this build understands.
        supported: i32,
    },
    /// No database of this store where one must be (no tables yet).
    NoDatabase,
    /// A destination that exists already.
    Exists,
    /// A copy's destination that is the database being copied.
    IsSource,
    /// A database that cannot use write-ahead logging.
    NoWal {
        /// The journal mode it stays in.
        mode: String,
    },
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Foreign { application_id: 0 } => f.write_str(
                "another application's SQLite database (tables of its own), left untouched",
            ),
            Self::Foreign { application_id } => write!(
                f,
                "another application's SQLite database (application_id {application_id:#x}), \
                 left untouched"
            ),
            Self::NewerSchema { version, supported } => write!(
                f,
                "schema version {version}, newer than this build understands ({supported})"
            ),
            Self::NoDatabase => f.write_str("no database of this store (it has no tables yet)"),
            Self::Exists => f.write_str("already exists"),
            Self::IsSource => f.write_str("is the database being copied"),
            Self::NoWal { mode } => write!(
                f,
                "cannot use write-ahead logging (journal mode stays {mode:?}), which the store \
                 needs for durable, concurrent writes"
            ),
        }
    }
}

/// A database this process may read but not write: the file is read-only for it, or the store
/// was opened for reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the database {} {}",
    path.display(),
    if *opened_for_reading {
        "was opened for reading only"
    } else {
        "is read-only for this user: reads work, writes are refused"
    }
)]
pub struct ReadOnlyFile {
    /// The database file.
    pub path: PathBuf,
    /// The store was opened for reading (rather than the file being read-only).
    pub opened_for_reading: bool,
}

impl ReadOnlyFile {
    /// The store's refusal to write `path`, as a [`StorageError::ReadOnly`].
    pub(crate) fn error(path: &Path, opened_for_reading: bool) -> StorageError {
        StorageError::ReadOnly(Detail::of(Self {
            path: path.to_path_buf(),
            opened_for_reading,
        }))
    }
}
