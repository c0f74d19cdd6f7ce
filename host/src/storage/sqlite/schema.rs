//! The database schema: created in a new file, checked in an existing one.

use crate::storage::StorageError;
use rusqlite::Connection;
use std::path::Path;

/// `PRAGMA application_id` of a tally database ("taly"): marks the file as ours, so tally refuses
/// another application's SQLite database instead of adding a table to it.
const APPLICATION_ID: i32 = 0x7461_6c79;

/// `PRAGMA user_version` of the current schema; a newer file is refused, not guessed at.
const SCHEMA_VERSION: i32 = 1;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS kv (
        bucket TEXT NOT NULL,
        key    TEXT NOT NULL,
        value  BLOB NOT NULL,
        PRIMARY KEY (bucket, key)
    );";

/// Checks, without writing, that the file is a tally database of a schema this build understands
/// (for databases opened read-only).
pub(super) fn check(conn: &Connection, path: &Path) -> rusqlite::Result<Result<(), StorageError>> {
    let read = |pragma: &str| -> rusqlite::Result<i32> {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))
    };
    let (application_id, version) = (read("application_id")?, read("user_version")?);
    Ok(
        if application_id == APPLICATION_ID && version == SCHEMA_VERSION {
            Ok(())
        } else {
            Err(StorageError::Backend(format!(
                "{} is not a tally database of schema {SCHEMA_VERSION} \
             (application_id {application_id:#x}, user_version {version})",
                path.display()
            )))
        },
    )
}

/// Creates the schema in a new file, or checks that an existing file is a tally database of a
/// schema this build understands.
pub(super) fn prepare(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let read = |pragma: &str| -> rusqlite::Result<i32> {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))
    };
    let (application_id, version) = (read("application_id")?, read("user_version")?);
    if application_id == APPLICATION_ID && version == SCHEMA_VERSION {
        return Ok(());
    }
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(StorageError::Backend(format!(
            "{} belongs to another application (SQLite application_id {application_id:#x}); \
             point --db at a tally database or a new file",
            path.display()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StorageError::Backend(format!(
            "{} has schema version {version}, newer than this tally understands \
             ({SCHEMA_VERSION}); upgrade tally",
            path.display()
        )));
    }
    // A new (or pre-versioning) file: create the table. IMMEDIATE so two processes creating the
    // same file at once serialise here.
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         {SCHEMA}
         PRAGMA application_id = {APPLICATION_ID};
         PRAGMA user_version = {SCHEMA_VERSION};
         COMMIT;"
    ))?;
    Ok(())
}
