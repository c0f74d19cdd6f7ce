//! The one list of stable error codes: what an HTTP error body's `code` says, what `--json`
//! errors of the command line say, and what the served OpenAPI document's `Error.code` enum
//! lists ([`crate::server::assets`] fills it in from here). Each surface maps a code to its own
//! terms (an HTTP status in [`crate::server::error`], an exit code in [`crate::cli`]).

use crate::CounterError;
use crate::failure::Failure;

/// A stable code, one per kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// `invalid_name`
    InvalidName,
    /// `overflow`
    Overflow,
    /// `corrupt_value`
    CorruptValue,
    /// `store_failure`
    StoreFailure,
    /// `invalid_body`
    InvalidBody,
    /// `invalid_query`
    InvalidQuery,
    /// `body_too_large`
    BodyTooLarge,
    /// `not_found`
    NotFound,
    /// `method_not_allowed`
    MethodNotAllowed,
    /// `unauthorized`
    Unauthorized,
    /// `busy`
    Busy,
    /// `guest_failure`
    GuestFailure,
    /// `store_unavailable`
    StoreUnavailable,
    /// `store_read_only`: the store can be read but not written.
    StoreReadOnly,
    /// `invalid_idempotency_key`
    InvalidIdempotencyKey,
    /// `idempotency_key_reused`
    IdempotencyKeyReused,
    /// `idempotency_key_in_use`
    IdempotencyKeyInUse,
    /// `write_outcome_unknown`: a write was sent and its answer lost.
    WriteOutcomeUnknown,
    /// `applied_then_failed`: a write was applied, then the request failed.
    AppliedThenFailed,
    /// `invalid_input`: the command line's input (an import file) was refused.
    InvalidInput,
    /// `failure`: the command line could not do its work (database, component, network).
    Failure,
    /// `store_full`: the store has no room for the write (a full disk).
    StoreFull,
    /// `store_misconfigured`: the store refuses this process until its operator fixes a
    /// setting (a password, a right).
    StoreMisconfigured,
    /// `too_many_connections`: `--max-connections` are open, every one running a request.
    TooManyConnections,
    /// `request_timeout`: a request's body did not arrive within the body timeout.
    RequestTimeout,
    /// `unsupported_media_type`: a body that is not `application/json` where JSON is expected.
    UnsupportedMediaType,
    /// `forbidden_origin`: a write from a web page of another origin.
    ForbiddenOrigin,
    /// `forbidden_host`: a `Host` this server does not answer for (DNS rebinding).
    ForbiddenHost,
    /// `invalid_window`: a window's length, `keep` or `last` out of range.
    InvalidWindow,
    /// `rate_limited`: a hit over its window's limit (HTTP 429, the command line's exit 5); the
    /// hit is counted.
    RateLimited,
}

impl ErrorCode {
    /// Every code, each once.
    pub const ALL: [Self; 30] = [
        Self::InvalidName,
        Self::Overflow,
        Self::CorruptValue,
        Self::StoreFailure,
        Self::InvalidBody,
        Self::InvalidQuery,
        Self::BodyTooLarge,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Unauthorized,
        Self::Busy,
        Self::GuestFailure,
        Self::StoreUnavailable,
        Self::InvalidIdempotencyKey,
        Self::IdempotencyKeyReused,
        Self::IdempotencyKeyInUse,
        Self::WriteOutcomeUnknown,
        Self::AppliedThenFailed,
        Self::InvalidInput,
        Self::Failure,
        Self::StoreReadOnly,
        Self::StoreFull,
        Self::StoreMisconfigured,
        Self::TooManyConnections,
        Self::RequestTimeout,
        Self::UnsupportedMediaType,
        Self::ForbiddenOrigin,
        Self::ForbiddenHost,
        Self::InvalidWindow,
        Self::RateLimited,
    ];

    /// The code as it appears in error bodies.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidName => "invalid_name",
            Self::Overflow => "overflow",
            Self::CorruptValue => "corrupt_value",
            Self::StoreFailure => "store_failure",
            Self::InvalidBody => "invalid_body",
            Self::InvalidQuery => "invalid_query",
            Self::BodyTooLarge => "body_too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Busy => "busy",
            Self::GuestFailure => "guest_failure",
            Self::StoreUnavailable => "store_unavailable",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
            Self::WriteOutcomeUnknown => "write_outcome_unknown",
            Self::AppliedThenFailed => "applied_then_failed",
            Self::InvalidInput => "invalid_input",
            Self::Failure => "failure",
            Self::StoreReadOnly => "store_read_only",
            Self::StoreFull => "store_full",
            Self::StoreMisconfigured => "store_misconfigured",
            Self::TooManyConnections => "too_many_connections",
            Self::RequestTimeout => "request_timeout",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ForbiddenOrigin => "forbidden_origin",
            Self::ForbiddenHost => "forbidden_host",
            Self::InvalidWindow => "invalid_window",
            Self::RateLimited => "rate_limited",
        }
    }

    /// Whether the HTTP API can answer with this code (the command line's own two cannot).
    pub const fn over_http(self) -> bool {
        !matches!(self, Self::InvalidInput | Self::Failure)
    }

    /// The code of a counter call's failure, the same on every surface that uses codes.
    pub fn of(failure: &Failure) -> Self {
        match failure {
            Failure::Refused(refusal) => match refusal.error {
                CounterError::InvalidName(_) => Self::InvalidName,
                CounterError::Overflow(_) => Self::Overflow,
                CounterError::CorruptValue(_) => Self::CorruptValue,
                CounterError::StoreFailure(_) => Self::StoreFailure,
                CounterError::InvalidPage(_) => Self::InvalidQuery,
            },
            Failure::InvalidWindow(_) => Self::InvalidWindow,
            Failure::KeyInUse(_) => Self::IdempotencyKeyInUse,
            Failure::KeyReused(_) => Self::IdempotencyKeyReused,
            Failure::Busy(_) => Self::Busy,
            Failure::Unavailable(_) => Self::StoreUnavailable,
            Failure::ReadOnly(_) => Self::StoreReadOnly,
            Failure::NoSpace(_) => Self::StoreFull,
            Failure::Misconfigured(_) => Self::StoreMisconfigured,
            Failure::OutcomeUnknown(_) => Self::WriteOutcomeUnknown,
            Failure::AppliedThenFailed(_) => Self::AppliedThenFailed,
            Failure::Trap(_) => Self::GuestFailure,
        }
    }

    /// The code's place in [`ErrorCode::ALL`]. Exhaustive, so a new code does not compile until
    /// it has a place, and the check below fails the build until `ALL` holds it there.
    const fn position(self) -> usize {
        match self {
            Self::InvalidName => 0,
            Self::Overflow => 1,
            Self::CorruptValue => 2,
            Self::StoreFailure => 3,
            Self::InvalidBody => 4,
            Self::InvalidQuery => 5,
            Self::BodyTooLarge => 6,
            Self::NotFound => 7,
            Self::MethodNotAllowed => 8,
            Self::Unauthorized => 9,
            Self::Busy => 10,
            Self::GuestFailure => 11,
            Self::StoreUnavailable => 12,
            Self::InvalidIdempotencyKey => 13,
            Self::IdempotencyKeyReused => 14,
            Self::IdempotencyKeyInUse => 15,
            Self::WriteOutcomeUnknown => 16,
            Self::AppliedThenFailed => 17,
            Self::InvalidInput => 18,
            Self::Failure => 19,
            Self::StoreReadOnly => 20,
            Self::StoreFull => 21,
            Self::StoreMisconfigured => 22,
            Self::TooManyConnections => 23,
            Self::RequestTimeout => 24,
            Self::UnsupportedMediaType => 25,
            Self::ForbiddenOrigin => 26,
            Self::ForbiddenHost => 27,
            Self::InvalidWindow => 28,
            Self::RateLimited => 29,
        }
    }
}

// Every entry of `ALL` sits at its own position: `ALL` lists every code exactly once.
const _: () = {
    let mut index = 0;
    while index < ErrorCode::ALL.len() {
        assert!(ErrorCode::ALL[index].position() == index);
        index += 1;
    }
};
