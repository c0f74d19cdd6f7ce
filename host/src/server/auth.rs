//! Access control: with `--auth-token`, every route that changes counters (POST, PUT, DELETE)
//! needs `Authorization: Bearer TOKEN`; reads stay open (put a proxy in front to restrict them).
//!
//! Tokens are compared through their SHA-256 digests with a constant-time comparison, so neither
//! the time taken nor an early exit tells an attacker how much of a guess was right, or how long
//! the token is.

use super::error::ApiError;
use super::routes::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Lets reads through; lets writes through only with the configured bearer token.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.auth_token.as_deref() else {
        return next.run(request).await;
    };
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if tokens_match(presented, expected) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Constant-time equality of two tokens (of any lengths); RESP's `AUTH` uses it too.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(presented), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0_u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::tokens_match;

    /// Only the exact token matches.
    #[test]
    fn only_the_exact_token_matches() {
        assert!(tokens_match("s3cret", "s3cret"));
        assert!(!tokens_match("s3cre", "s3cret"));
        assert!(!tokens_match("s3cret ", "s3cret"));
        assert!(!tokens_match("", "s3cret"));
        assert!(!tokens_match("S3CRET", "s3cret"));
    }
}
