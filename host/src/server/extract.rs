//! Request parsing with JSON errors: the counter name from the path, the `Idempotency-Key`
//! header, and JSON bodies: `application/json` only (a web page cannot send that to another
//! site without asking first), at most [`BODY_LIMIT`] bytes, within the body timeout.
//!
//! axum's own extractors answer malformed input with plain-text bodies; these answer with the
//! API's JSON errors instead.

use super::error::ApiError;
use super::{AppState, BODY_LIMIT};
use crate::failure::Failure;
use crate::idempotency::IdempotencyKey;
use crate::{CounterError, Refusal};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
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
            Err(rejection) => Err(ApiError::Failed(Failure::Refused(Refusal::new(
                CounterError::InvalidName(format!(
                    "the name in the URL is not valid percent-encoded UTF-8 ({rejection})"
                )),
                u64::MAX,
            )))),
        }
    }
}

/// The `Idempotency-Key` request header, checked (1-255 visible ASCII characters); `None`
/// without one. Sent twice, it is refused: which one was meant is anyone's guess.
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

/// The header's name.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(ApiError::InvalidIdempotencyKey(
                "the header was sent more than once; send one key".into(),
            ));
        }
        let text = value.to_str().map_err(|_| {
            ApiError::InvalidIdempotencyKey(
                "an idempotency key is visible ASCII only (no spaces or control characters)".into(),
            )
        })?;
        IdempotencyKey::parse(text)
            .map(|key| Self(Some(key)))
            .map_err(ApiError::InvalidIdempotencyKey)
    }
}

/// A JSON object body of at most [`BODY_LIMIT`] bytes, sent as `application/json` and within
/// the server's body timeout; `None` when the body is empty (whatever its type).
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let reading = axum::body::to_bytes(request.into_body(), BODY_LIMIT);
        let bytes = tokio::time::timeout(state.body_timeout, reading)
            .await
            .map_err(|_| ApiError::RequestTimeout(state.body_timeout))?
            .map_err(|error| {
                if too_large(&error) {
                    ApiError::BodyTooLarge(BODY_LIMIT)
                } else {
                    ApiError::InvalidBody(format!("the body could not be read: {error}"))
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if !content_type.as_deref().is_some_and(is_json) {
            return Err(ApiError::UnsupportedMediaType(
                content_type.unwrap_or_else(|| "no Content-Type".into()),
            ));
        }
        parse_object(&bytes).map(|value| Self(Some(value)))
    }
}

/// Whether a `Content-Type` is JSON: `application/json` or `application/SOMETHING+json`, with
/// any parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Whether reading a body failed because it passed the size limit.
fn too_large(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Parses a body that must be a JSON object. serde reads a struct from an array too (`[1]` as
/// `{"by": 1}`), which the API document does not allow, so anything but an object is refused
/// before serde sees it.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::InvalidBody("expected a JSON object".into()));
    }
    serde_json::from_slice(bytes).map_err(|error| ApiError::InvalidBody(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct By {
        by: u64,
    }

    /// JSON types, with parameters and in any case, are JSON; what a form or a page sends is
    /// not.
    #[test]
    fn only_json_types_are_json() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(json), "{json}");
        }
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "application/jsonx",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }

    /// Only an object is a body: an array that serde would read as the struct is refused.
    #[test]
    fn bodies_must_be_objects() {
        assert!(parse_object::<By>(b" {\"by\": 1}").is_ok());
        for body in [&b"[1]"[..], b" [1]", b"1", b"\"x\"", b"null"] {
            assert!(
                matches!(parse_object::<By>(body), Err(ApiError::InvalidBody(ref m)) if m == "expected a JSON object"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
