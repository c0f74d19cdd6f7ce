//! Errors as HTTP responses: a status and a JSON body `{"error": "...", "code": "..."}`.
//!
//! The `code` is stable and meant for programs; the `error` text is for people and says what to do.

use crate::{CounterError, Refusal};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// The component refused the operation.
    Counter(Refusal),
    /// The body is not the JSON the route takes (or could not be read).
    InvalidBody(String),
    /// The query string is not what the route takes (a listing's `limit` or `cursor`).
    InvalidQuery(String),
    /// The body is larger than the limit (in bytes).
    BodyTooLarge(usize),
    /// No route has this path.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// A write without the right bearer token (`--auth-token`).
    Unauthorized,
    /// The store was locked by another process past the busy timeout; nothing changed.
    Busy(String),
    /// The store cannot be reached (Redis down, refusing connections, not answering): the
    /// message names the store (password redacted) and what happened.
    Unavailable(String),
    /// The guest trapped (panic, deadline, memory limit) or could not be instantiated.
    Guest(anyhow::Error),
    /// The `Idempotency-Key` header is not 1-255 visible ASCII characters: why.
    InvalidIdempotencyKey(String),
    /// The idempotency key was first used for another request: the store's words for both.
    IdempotencyKeyReused(String),
    /// A request with this idempotency key is still running in this server.
    IdempotencyKeyInUse(String),
}

/// The stable `code` of an error body, one per kind of failure.
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
    /// `invalid_idempotency_key`
    InvalidIdempotencyKey,
    /// `idempotency_key_reused`
    IdempotencyKeyReused,
    /// `idempotency_key_in_use`
    IdempotencyKeyInUse,
}

impl ErrorCode {
    /// Every code, each once: what the API document's `Error.code` enum must list.
    pub const ALL: [Self; 16] = [
        Self::InvalidName,
        Self::Overflow,
        Self::CorruptValue,
        Self::StoreFailure,
        Self::InvalidBody,
        Self::BodyTooLarge,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Unauthorized,
        Self::Busy,
        Self::GuestFailure,
        Self::InvalidQuery,
        Self::StoreUnavailable,
        Self::InvalidIdempotencyKey,
        Self::IdempotencyKeyReused,
        Self::IdempotencyKeyInUse,
    ];

    /// The code as it appears in error bodies.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidName => "invalid_name",
            Self::Overflow => "overflow",
            Self::CorruptValue => "corrupt_value",
            Self::StoreFailure => "store_failure",
            Self::InvalidBody => "invalid_body",
            Self::BodyTooLarge => "body_too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Busy => "busy",
            Self::GuestFailure => "guest_failure",
            Self::InvalidQuery => "invalid_query",
            Self::StoreUnavailable => "store_unavailable",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
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
            Self::BodyTooLarge => 5,
            Self::NotFound => 6,
            Self::MethodNotAllowed => 7,
            Self::Unauthorized => 8,
            Self::Busy => 9,
            Self::GuestFailure => 10,
            Self::InvalidQuery => 11,
            Self::StoreUnavailable => 12,
            Self::InvalidIdempotencyKey => 13,
            Self::IdempotencyKeyReused => 14,
            Self::IdempotencyKeyInUse => 15,
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

impl ApiError {
    /// The HTTP status and the stable code for this error.
    pub fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            Self::Counter(refusal) => match refusal.error {
                CounterError::InvalidName(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidName),
                CounterError::Overflow(_) => (StatusCode::CONFLICT, ErrorCode::Overflow),
                CounterError::CorruptValue(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::CorruptValue)
                }
                CounterError::StoreFailure(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StoreFailure)
                }
                CounterError::InvalidPage(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery),
            },
            Self::InvalidQuery(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery),
            Self::InvalidBody(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidBody),
            Self::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::BodyTooLarge),
            Self::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Self::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Busy),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::StoreUnavailable),
            Self::Guest(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::GuestFailure),
            Self::InvalidIdempotencyKey(_) => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidIdempotencyKey)
            }
            // 422 and 409 as the IETF draft "The Idempotency-Key HTTP Header Field" says.
            Self::IdempotencyKeyReused(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
            ),
            Self::IdempotencyKeyInUse(_) => (StatusCode::CONFLICT, ErrorCode::IdempotencyKeyInUse),
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Counter(refusal) => refusal.to_string(),
            Self::InvalidBody(reason) => format!("invalid request body: {reason}"),
            Self::InvalidQuery(reason) => format!("invalid query: {reason}"),
            Self::BodyTooLarge(limit) => format!("request body larger than {limit} bytes"),
            Self::NotFound => "no such route; GET /openapi.json lists them all".to_string(),
            Self::MethodNotAllowed => "this route does not take that method".to_string(),
            Self::Unauthorized => {
                "changing counters needs the header `Authorization: Bearer TOKEN` with the \
                 server's --auth-token"
                    .to_string()
            }
            // Says "the counter component ..." itself (see `runtime::Limits::explain`).
            Self::Guest(error) => format!("{error:#}"),
            Self::Busy(message) => format!("{message}; nothing was changed, retry shortly"),
            Self::Unavailable(message)
            | Self::IdempotencyKeyReused(message)
            | Self::IdempotencyKeyInUse(message) => message.clone(),
            Self::InvalidIdempotencyKey(reason) => {
                format!("invalid Idempotency-Key header: {reason}")
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        Self::Counter(refusal)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Guest(error) = &self {
            tracing::warn!("guest failure: {error:#}");
        }
        let body = serde_json::json!({ "error": self.message(), "code": code.as_str() });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Busy(_) | Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal's code is the same word in an HTTP body as in the CLI's `--json` errors.
    #[test]
    fn refusal_codes_agree_with_the_cli() {
        for error in [
            CounterError::InvalidName(String::new()),
            CounterError::Overflow(String::new()),
            CounterError::CorruptValue(String::new()),
            CounterError::StoreFailure(String::new()),
            CounterError::InvalidPage(String::new()),
        ] {
            let refusal = Refusal::new(error, u64::MAX);
            let cli = refusal.code();
            let (_, http) = ApiError::Counter(refusal).status_and_code();
            assert_eq!(http.as_str(), cli);
        }
    }
}
