//! PostgreSQL's errors in the store's terms: what is an outage (retry later), what is a
//! transaction to run again at once, what may have committed, and what is a failure.
//!
//! The rule that matters most: once `COMMIT` was sent, a lost connection or a timeout says
//! nothing about whether the write committed (a server may have committed locally and then
//! died, or be waiting for a synchronous standby), so it is [`StorageError::OutcomeUnknown`],
//! never "nothing changed". Before `COMMIT`, nothing committed, and an unreachable,
//! restarting, promoting or read-only server is [`StorageError::Unavailable`].

use crate::storage::StorageError;
use std::time::Duration;
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
    /// Nothing committed; the server has no room (`53100`, a full disk).
    NoSpace(String),
    /// Nothing committed; the server refuses this role or login for a reason an operator must
    /// fix (a password, a right): the words say which.
    Misconfigured(String),
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
            Self::Unavailable(detail) => StorageError::Unavailable(detail.clone().into()),
            Self::OutcomeUnknown(detail) => StorageError::OutcomeUnknown(detail.clone().into()),
            Self::NoSpace(detail) => StorageError::NoSpace(detail.clone().into()),
            Self::Misconfigured(detail) => StorageError::Misconfigured(detail.clone().into()),
            Self::Backend(detail) => StorageError::Other(detail.clone().into()),
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
        Some(code) if *code == SqlState::DISK_FULL => Failed::NoSpace(describe(error)),
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            Failed::Misconfigured(format!(
                "{}; check the user and password in the store's URL (and the server's \
                 pg_hba.conf)",
                describe(error)
            ))
        }
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => Failed::Misconfigured(format!(
            "{}: the role lacks a right tally needs (CREATE on the database to make its \
                 schema, or CREATE on a schema made for it; SELECT, INSERT, UPDATE and DELETE \
                 on its tables)",
            describe(error)
        )),
        Some(_) => Failed::Backend(describe(error)),
        None if is_configuration(error) => Failed::Misconfigured(configuration_words(error)),
        // A certificate that does not verify is the configuration's problem, not an outage.
        None if is_tls_failure(error) => Failed::Misconfigured(format!(
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
        Failed::Retry => StorageError::Busy(describe(error).into()),
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

/// A pool that could not hand out a connection; `connect_timeout` is how long opening one may
/// take.
pub(super) fn of_pool(error: deadpool_postgres::PoolError, connect_timeout: Duration) -> Failed {
    use deadpool_postgres::{PoolError, TimeoutType};
    match error {
        PoolError::Backend(error) => before_commit(&error),
        PoolError::Timeout(TimeoutType::Create) => Failed::Unavailable(format!(
            "PostgreSQL: no connection within connect_timeout ({} s): the server took the \
             connection but did not finish it (a server that hangs, or a port that is not \
             PostgreSQL's)",
            connect_timeout.as_secs_f64()
        )),
        PoolError::Timeout(TimeoutType::Wait) => Failed::Unavailable(
            "PostgreSQL: every pooled connection stayed busy for 30 s; raise --pool-size or \
             lower the load"
                .into(),
        ),
        other => Failed::Unavailable(format!("PostgreSQL: no connection ({other})")),
    }
}

/// A client-side configuration error (tokio-postgres tells its kinds apart only in words).
fn is_configuration(error: &tokio_postgres::Error) -> bool {
    error.to_string().starts_with("invalid configuration")
}

/// A configuration error in words that say what to change.
fn configuration_words(error: &tokio_postgres::Error) -> String {
    if describe(error).contains("password missing") {
        "PostgreSQL asks for a password and the store's URL has none: put it in the URL, after \
         the user name and a colon (tally never shows it)"
            .into()
    } else {
        format!("{}; fix the store's URL", describe(error))
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
