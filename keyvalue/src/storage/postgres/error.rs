//! PostgreSQL's errors in the store's terms: what is an outage (retry later), what is a
//! transaction to run again at once, what may have committed, and what is a failure.
//!
//! The rule that matters most: once `COMMIT` was sent, a lost connection or a timeout says
//! nothing about whether the write committed (a server may have committed locally and then
//! died, or be waiting for a synchronous standby), so it is [`StorageError::OutcomeUnknown`],
//! never "nothing changed". Before `COMMIT`, nothing committed, and an unreachable,
//! restarting, promoting or read-only server is [`StorageError::Unavailable`].

use crate::storage::StorageError;
use tokio_postgres::error::SqlState;

/// How one failed attempt of a transaction ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failed {
    /// Nothing committed, and the same transaction run again on fresh reads may succeed now: a
    /// serialization failure, a deadlock, or another process inserting a key first.
    Retry,
    /// Nothing committed; the server cannot take the transaction now.
    Unavailable(String),
    /// `COMMIT` was sent and its answer lost.
    OutcomeUnknown(String),
    /// Nothing committed; the transaction failed.
    Backend(String),
}

impl Failed {
    /// The error to answer one caller with.
    pub(super) fn to_error(&self) -> StorageError {
        match self {
            // Only reached once retries ran out.
            Self::Retry => StorageError::Busy(
                "other writers kept conflicting with this transaction; nothing was applied".into(),
            ),
            Self::Unavailable(detail) => StorageError::Unavailable(detail.clone()),
            Self::OutcomeUnknown(detail) => StorageError::OutcomeUnknown(detail.clone()),
            Self::Backend(detail) => StorageError::Backend(detail.clone()),
        }
    }

    /// Whether the connection it came from should be dropped rather than reused.
    pub(super) fn breaks_connection(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::OutcomeUnknown(_))
    }
}

/// An error before `COMMIT` was sent.
pub(super) fn before_commit(error: &tokio_postgres::Error) -> Failed {
    match error.code() {
        Some(code) if is_retry(code) => Failed::Retry,
        Some(code) if is_outage(code) => Failed::Unavailable(describe(error)),
        Some(_) => Failed::Backend(describe(error)),
        // A certificate that does not verify is the configuration's problem, not an outage.
        None if is_tls_failure(error) => Failed::Backend(format!(
            "{}; check sslmode and sslrootcert",
            describe(error)
        )),
        // No SQLSTATE: the connection failed (refused, reset, closed).
        None => Failed::Unavailable(describe(error)),
    }
}

/// An error of `COMMIT` itself. A conflict the server found at commit (a serialization failure)
/// rolled back; anything else may have committed.
pub(super) fn at_commit(error: &tokio_postgres::Error) -> Failed {
    match error.code() {
        Some(code) if is_retry(code) => Failed::Retry,
        _ => Failed::OutcomeUnknown(format!(
            "PostgreSQL: the connection failed while COMMIT was in flight ({})",
            describe(error)
        )),
    }
}

/// A read's error (nothing is written by a read).
pub(super) fn of_read(error: &tokio_postgres::Error) -> StorageError {
    match before_commit(error) {
        Failed::Retry => StorageError::Busy(describe(error)),
        failed => failed.to_error(),
    }
}

/// Whether a read failed only because the tables do not exist yet (nothing was written yet).
pub(super) fn is_missing_table(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME
    )
}

/// A pool that could not hand out a connection.
pub(super) fn of_pool(error: deadpool_postgres::PoolError) -> Failed {
    match error {
        deadpool_postgres::PoolError::Backend(error) => before_commit(&error),
        other => Failed::Unavailable(format!("PostgreSQL: no connection ({other})")),
    }
}

/// A TLS handshake that failed (tokio-postgres tells its kinds apart only in words).
fn is_tls_failure(error: &tokio_postgres::Error) -> bool {
    error
        .to_string()
        .starts_with("error performing TLS handshake")
}

/// Conflicts with another transaction: run it again.
fn is_retry(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::UNIQUE_VIOLATION
}

/// The server cannot serve now but will (or another will, after a failover): shutting down,
/// starting up or promoting, too many connections, a standby or demoted primary that only reads,
/// a connection exception.
fn is_outage(code: &SqlState) -> bool {
    *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        || *code == SqlState::IDLE_SESSION_TIMEOUT
        || code.code().starts_with("08")
}

/// The error in one line, with the server's message and SQLSTATE when it sent one.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "PostgreSQL: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        ),
        None => {
            let mut text = format!("PostgreSQL: {error}");
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                let shown = cause.to_string();
                if !text.contains(&shown) {
                    text.push_str(": ");
                    text.push_str(&shown);
                }
                source = cause.source();
            }
            text
        }
    }
}
