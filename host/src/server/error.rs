//! Errors as HTTP responses: a status and a JSON body `{"error": "...", "code": "..."}`.
//!
//! The `code` is stable and meant for programs; the `error` text is for people and says what to do.

use crate::error_code::ErrorCode;
use crate::failure::Failure;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// A counter call failed (see [`Failure`]).
    Failed(Failure),
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
    Unauthorized {
        /// A bearer token came, and it was not the server's (`false`: none came).
        presented: bool,
    },
    /// The `Idempotency-Key` header is not 1-255 visible ASCII characters: why.
    InvalidIdempotencyKey(String),
    /// Two `Authorization` headers came (`--auth-token`): which one was meant is anyone's guess.
    AuthorizationTwice,
    /// A body that is not `application/json` where JSON is expected: the type it said.
    UnsupportedMediaType(String),
    /// The body did not arrive within the body timeout.
    RequestTimeout(std::time::Duration),
    /// A write from a web page of another origin: the origin.
    ForbiddenOrigin(String),
    /// A `Host` the server does not answer for: the host.
    ForbiddenHost(String),
}

/// The HTTP status of each code (the command line's own codes never reach HTTP: 500).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidName
        | ErrorCode::InvalidBody
        | ErrorCode::InvalidQuery
        | ErrorCode::InvalidWindow
        | ErrorCode::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Overflow | ErrorCode::IdempotencyKeyInUse => StatusCode::CONFLICT,
        // 422 and 409 as the IETF draft "The Idempotency-Key HTTP Header Field" says.
        ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Busy
        | ErrorCode::StoreUnavailable
        | ErrorCode::StoreReadOnly
        | ErrorCode::StoreMisconfigured => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::StoreFull => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::ForbiddenOrigin | ErrorCode::ForbiddenHost => StatusCode::FORBIDDEN,
        ErrorCode::CorruptValue
        | ErrorCode::StoreFailure
        | ErrorCode::GuestFailure
        | ErrorCode::WriteOutcomeUnknown
        | ErrorCode::AppliedThenFailed
        | ErrorCode::InvalidInput
        | ErrorCode::Failure => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// The stable code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Failed(failure) => ErrorCode::of(failure),
            Self::InvalidQuery(_) => ErrorCode::InvalidQuery,
            Self::InvalidBody(_) => ErrorCode::InvalidBody,
            Self::BodyTooLarge(_) => ErrorCode::BodyTooLarge,
            Self::NotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::Unauthorized { .. } => ErrorCode::Unauthorized,
            Self::InvalidIdempotencyKey(_) => ErrorCode::InvalidIdempotencyKey,
            Self::AuthorizationTwice => ErrorCode::Unauthorized,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::RequestTimeout(_) => ErrorCode::RequestTimeout,
            Self::ForbiddenOrigin(_) => ErrorCode::ForbiddenOrigin,
            Self::ForbiddenHost(_) => ErrorCode::ForbiddenHost,
        }
    }

    /// The HTTP status and the stable code for this error.
    pub fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        let code = self.code();
        (status_of(code), code)
    }

    fn message(&self) -> String {
        match self {
            Self::Failed(failure) => failure.message(),
            Self::InvalidBody(reason) => format!("invalid request body: {reason}"),
            Self::InvalidQuery(reason) => format!("invalid query: {reason}"),
            Self::BodyTooLarge(limit) => format!("request body larger than {limit} bytes"),
            Self::NotFound => "no such route; GET /openapi.json lists them all".to_string(),
            Self::MethodNotAllowed => "this route does not take that method".to_string(),
            Self::Unauthorized { presented: false } => {
                "changing counters needs the header `Authorization: Bearer TOKEN` with the \
                 server's --auth-token"
                    .to_string()
            }
            Self::Unauthorized { presented: true } => {
                "the bearer token in the Authorization header is not the server's \
                 --auth-token; nothing was changed"
                    .to_string()
            }
            Self::InvalidIdempotencyKey(reason) => {
                format!("invalid Idempotency-Key header: {reason}")
            }
            Self::AuthorizationTwice => "the Authorization header came more than once; send \
                                         one, with the server's --auth-token; nothing was changed"
                .to_string(),
            Self::UnsupportedMediaType(given) => format!(
                "the body must be JSON sent with Content-Type: application/json (it came as \
                 {given}; curl: --json '{{...}}'); nothing was changed"
            ),
            Self::RequestTimeout(limit) => format!(
                "the request body did not arrive within {} s; nothing was changed",
                limit.as_secs_f64()
            ),
            Self::ForbiddenOrigin(origin) => format!(
                "a write from a web page of another origin ({origin}) is refused: only this \
                 server's own pages, clients that are not browsers, and origins given with \
                 --allow-origin may change counters; nothing was changed"
            ),
            Self::ForbiddenHost(host) => format!(
                "this server does not answer for the host {host:?}: on a loopback address it \
                 answers for localhost, 127.0.0.1 and [::1] (and names given with \
                 --allow-host), so a web page that reached it through a name of its own is \
                 refused"
            ),
        }
    }
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        Self::Failed(failure)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Failed(failure @ (Failure::Trap(_) | Failure::AppliedThenFailed(_))) = &self {
            tracing::warn!("guest failure: {}", failure.message());
        }
        let body = serde_json::json!({ "error": self.message(), "code": code.as_str() });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized { presented } => {
                // RFC 6750: a token that came and is wrong is an invalid_token.
                let challenge = if *presented {
                    "Bearer error=\"invalid_token\""
                } else {
                    "Bearer"
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            Self::Failed(failure) if failure.retry_soon() => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The rest of the body may still come: the connection is not read again.
            Self::RequestTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CounterError, Refusal};

    /// Every counter failure maps to one status and code: the table of HTTP's mapping.
    #[test]
    fn failures_map_to_statuses() {
        let refused = |error| Failure::Refused(Refusal::new(error, u64::MAX));
        let table = [
            (
                refused(CounterError::InvalidName(String::new())),
                400,
                "invalid_name",
            ),
            (
                refused(CounterError::Overflow(String::new())),
                409,
                "overflow",
            ),
            (
                refused(CounterError::CorruptValue(String::new())),
                500,
                "corrupt_value",
            ),
            (
                refused(CounterError::StoreFailure(String::new())),
                500,
                "store_failure",
            ),
            (
                refused(CounterError::InvalidPage(String::new())),
                400,
                "invalid_query",
            ),
            (
                Failure::KeyInUse(String::new()),
                409,
                "idempotency_key_in_use",
            ),
            (
                Failure::KeyReused(String::new()),
                422,
                "idempotency_key_reused",
            ),
            (Failure::Busy(String::new()), 503, "busy"),
            (
                Failure::Unavailable(String::new()),
                503,
                "store_unavailable",
            ),
            (
                Failure::OutcomeUnknown(String::new()),
                500,
                "write_outcome_unknown",
            ),
            (
                Failure::AppliedThenFailed(String::new()),
                500,
                "applied_then_failed",
            ),
            (Failure::Trap(anyhow::anyhow!("trap")), 500, "guest_failure"),
        ];
        for (failure, status, code) in table {
            let retry = matches!(
                code,
                "busy" | "store_unavailable" | "idempotency_key_in_use"
            );
            let error = ApiError::Failed(failure);
            assert_eq!(error.code().as_str(), code);
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{code}");
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                retry,
                "{code}"
            );
        }
    }
}
