//! The HTTP API:
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /counters/{name}/increment` (body `{"by": N}`, optional, default 1) | `{"name", "value"}` (the new value) |
//! | `GET /counters/{name}` | `{"name", "value"}` (0 if never written) |
//! | `PUT /counters/{name}` (body `{"value": N}`) | `{"name", "value"}` |
//! | `DELETE /counters/{name}` | `{"name", "value": 0}` |
//! | `GET /counters?limit=N&cursor=C` | `[{"name", "value"}, ...]`: one page, and a `Link` to the next |
//! | `/windows...` | counters that reset: [`super::windows`] |
//! | `GET /healthz` | `{"status": "ok"}`: the process answers |
//! | `GET /readyz` | `{"status": "ok"}` when the store can be reached, 503 `store_unavailable` when not |
//! | `GET /metrics` | Prometheus text |
//! | `GET /` (and `/dashboard.js`, `/dashboard.css`) | the dashboard |
//! | `GET /openapi.json` | the OpenAPI document of all of the above |
//!
//! The three writes take an `Idempotency-Key` header (see [`crate::idempotency`]): the first
//! request with a key is applied once and its answer recorded by the store with the write; a
//! retry with the same key and request gets that answer again, with `Idempotent-Replayed: true`,
//! and applies nothing.

use super::error::ApiError;
use super::extract::{CounterName, IdempotencyKeyHeader, OptionalJson};
use super::listing::PageQuery;
use super::{AppState, assets};
use crate::failure::Failure;
use axum::extract::{MatchedPath, RawQuery, Request, State};
use axum::http::header::{CONTENT_TYPE, LINK};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The answer to a write: its counter and value, marked `Idempotent-Replayed: true` (and
/// counted) when the store answered it from its idempotency key's record (the header Stripe's
/// API sends).
fn written(state: &AppState, replayed: bool, value: CounterValue) -> Response {
    let mut response = Json(value).into_response();
    if replayed {
        mark_replayed(state, &mut response);
    }
    response
}

/// Marks `response` as the answer of a write its idempotency key's record gave (and counts it).
pub(super) fn mark_replayed(state: &AppState, response: &mut Response) {
    state
        .metrics
        .idempotent_replays
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    response.headers_mut().insert(
        HeaderName::from_static(IDEMPOTENT_REPLAYED),
        HeaderValue::from_static("true"),
    );
}

/// The response header of a replayed answer.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The router with every route, JSON fallbacks for unknown routes and methods, and the
/// request log and metrics around it all.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/counters", get(list_counters))
        .route(
            "/counters/{name}",
            get(get_counter).put(set_counter).delete(reset_counter),
        )
        .route("/counters/{name}/increment", post(increment_counter))
        .route("/windows", get(super::windows::list_windows))
        .route("/windows/{name}", get(super::windows::history))
        .route("/windows/{name}/hit", post(super::windows::hit))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(assets::openapi))
        .route("/", get(assets::dashboard))
        .route("/dashboard.js", get(assets::dashboard_script))
        .route("/dashboard.css", get(assets::dashboard_style))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            super::auth::require_token,
        ))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            super::cross_site::guard,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// One counter and its value: the body of every single-counter answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CounterValue {
    /// The counter's name.
    pub name: String,
    /// Its value after the request.
    pub value: u64,
}

/// `POST /counters/{name}/increment` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncrementBody {
    #[serde(deserialize_with = "crate::whole_number::deserialize")]
    by: u64,
}

/// `PUT /counters/{name}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    #[serde(deserialize_with = "crate::whole_number::deserialize")]
    value: u64,
}

async fn increment_counter(
    State(state): State<AppState>,
    CounterName(name): CounterName,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    OptionalJson(body): OptionalJson<IncrementBody>,
) -> Result<Response, ApiError> {
    let by = body.map_or(1, |body| body.by);
    let mut request = state.service.request(key.as_ref()).await?;
    let done = request.increment(&name, by).await?;
    let value = done.value;
    Ok(written(&state, done.replayed, CounterValue { name, value }))
}

async fn get_counter(
    State(state): State<AppState>,
    CounterName(name): CounterName,
) -> Result<Json<CounterValue>, ApiError> {
    let value = state.service.read().await?.get(&name).await?.value;
    Ok(Json(CounterValue { name, value }))
}

async fn set_counter(
    State(state): State<AppState>,
    CounterName(name): CounterName,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    OptionalJson(body): OptionalJson<SetBody>,
) -> Result<Response, ApiError> {
    let value = body
        .ok_or_else(|| ApiError::InvalidBody("expected {\"value\": N}".into()))?
        .value;
    let mut request = state.service.request(key.as_ref()).await?;
    let done = request.set(&name, value).await?;
    Ok(written(&state, done.replayed, CounterValue { name, value }))
}

async fn reset_counter(
    State(state): State<AppState>,
    CounterName(name): CounterName,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
) -> Result<Response, ApiError> {
    let mut request = state.service.request(key.as_ref()).await?;
    let done = request.reset(&name).await?;
    Ok(written(
        &state,
        done.replayed,
        CounterValue { name, value: 0 },
    ))
}

/// How many store pages without a counter one `GET /counters` passes over before it answers an
/// empty page with a `Link` (the client then goes on where it stopped).
const MAX_PAGES_PASSED: usize = 200;

/// One page of counters (in the store's listing order: by name on SQLite and memory), with a
/// `Link` to the next page when there is one.
async fn list_counters(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = PageQuery::parse(query.as_deref())?;
    let from = query.start(&state.cursors).await?;
    // A page of the store that holds only windows' keys (they sort before every counter on
    // stores that list by key) is passed over here rather than answered empty with a Link.
    let mut from = from;
    let mut skipped = 0;
    let page = loop {
        let page = state
            .service
            .read()
            .await?
            .list_from(from, query.limit)
            .await?
            .value;
        if !page.counters.is_empty() || page.next.is_none() || skipped == MAX_PAGES_PASSED {
            break page;
        }
        from = page.next;
        skipped += 1;
    };
    let counters: Vec<_> = page
        .counters
        .into_iter()
        .map(|(name, value)| CounterValue { name, value })
        .collect();
    let mut response = Json(counters).into_response();
    if let Some(next) = page.next {
        let cursor = state.cursors.sign(&next).await?;
        // Form encoding leaves only visible ASCII, which a header value always accepts.
        let link =
            HeaderValue::from_str(&query.next_link("/counters", &cursor)).map_err(|error| {
                ApiError::Failed(Failure::Trap(anyhow::anyhow!("cursor header: {error}")))
            })?;
        response.headers_mut().insert(LINK, link);
    }
    Ok(response)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store can be reached and written (a `PING` on Redis; on SQLite after a full
/// disk, a write that commits); otherwise 503 with the code that says why (`store_unavailable`,
/// `store_read_only`, `store_full`, `store_misconfigured`): a readiness probe is ready or not.
/// `/healthz` stays the liveness check: the process answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.service.check_store_ready().await {
        Ok(()) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(failure) => {
            let mut response = ApiError::Failed(failure).into_response();
            *response.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts every request by route template and status, and logs it at debug level.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || "unmatched".to_string(),
        |route| route.as_str().to_string(),
    );
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state
        .metrics
        .record_request(method.as_str(), &route, status);
    tracing::debug!(
        %method, path, route, status, micros = started.elapsed().as_micros() as u64, "request"
    );
    response
}
