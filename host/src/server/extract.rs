//! Request parsing with JSON errors: the counter name from the path, and size-limited JSON bodies.
//!
//! axum's own extractors answer malformed input with plain-text bodies; these answer with the
//! API's JSON errors instead.

use super::BODY_LIMIT;
use super::error::ApiError;
use crate::{CounterError, Refusal};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The `{name}` path segment, percent-decoded. Whether it is a valid counter name is the
/// component's decision, not the server's.
pub struct CounterName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CounterName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(name)) => Ok(Self(name)),
            // No store was reached, so no store limit applies.
            Err(rejection) => Err(ApiError::Counter(Refusal::new(
                CounterError::InvalidName(format!(
                    "the name in the URL is not valid percent-encoded UTF-8 ({rejection})"
                )),
                u64::MAX,
            ))),
        }
    }
}

/// A JSON body of at most [`BODY_LIMIT`] bytes; `None` when the body is empty.
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::to_bytes(request.into_body(), BODY_LIMIT)
            .await
            .map_err(|_| ApiError::BodyTooLarge(BODY_LIMIT))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        serde_json::from_slice(&bytes)
            .map(|value| Self(Some(value)))
            .map_err(|error| ApiError::InvalidBody(error.to_string()))
    }
}
