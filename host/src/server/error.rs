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
    /// The guest trapped (panic, deadline, memory limit) or could not be instantiated.
    Guest(anyhow::Error),
}

impl ApiError {
    /// The HTTP status and the stable code for this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Counter(refusal) => (
                match refusal.error {
                    CounterError::InvalidName(_) => StatusCode::BAD_REQUEST,
                    CounterError::Overflow(_) => StatusCode::CONFLICT,
                    CounterError::CorruptValue(_) | CounterError::StoreFailure(_) => {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                },
                refusal.code(),
            ),
            Self::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            Self::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::Guest(_) => (StatusCode::INTERNAL_SERVER_ERROR, "guest_failure"),
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Counter(refusal) => refusal.to_string(),
            Self::InvalidBody(reason) => format!("invalid request body: {reason}"),
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
        let body = serde_json::json!({ "error": self.message(), "code": code });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Busy(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
