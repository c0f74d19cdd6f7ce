//! Access control: with `--auth-token`, every route that changes counters (POST, PUT, DELETE)
//! needs `Authorization: Bearer TOKEN` (the scheme in any case), sent once; reads stay open
//! (put a proxy in front to restrict them).
//!
//! Tokens are compared by [`crate::token::tokens_match`], as RESP's `AUTH` compares them.

use super::AppState;
use super::error::ApiError;
use crate::token::{bearer_token, tokens_match};
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    let mut sent = request.headers().get_all(header::AUTHORIZATION).iter();
    let first = sent.next();
    if sent.next().is_some() {
        return ApiError::AuthorizationTwice.into_response();
    }
    let presented = first
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    match presented {
        Some(token) if tokens_match(token, expected) => next.run(request).await,
        Some(_) => ApiError::Unauthorized { presented: true }.into_response(),
        None => ApiError::Unauthorized { presented: false }.into_response(),
    }
}
