//! The window routes: counters that reset, for rate limits and quotas.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /windows/{name}/hit` (body `{"window": "1m", "limit": N, "cost"?, "policy"?, "keep"?}`) | the outcome; 429 with `Retry-After` over the limit |
//! | `GET /windows/{name}?window=1m&last=N` | the counts of the last `N` windows, oldest first |
//! | `GET /windows?limit=N&cursor=C` | the names with windows and their lengths, one page, a `Link` to the next |
//!
//! A hit's answer carries the `RateLimit-Policy` and `RateLimit` headers of the IETF httpapi
//! draft "RateLimit header fields for HTTP" (`"1m";q=100;w=60` and `"1m";r=42;t=17`). A hit over
//! its limit is counted, as Redis limiters count it, and answered 429 with the outcome, the code
//! `rate_limited` and `Retry-After` (seconds until the window ends).

use super::AppState;
use super::error::ApiError;
use super::extract::{CounterName, IdempotencyKeyHeader, OptionalJson};
use super::listing::PageQuery;
use crate::bindings::{HitOutcome, Policy, WindowSpec};
use crate::error_code::ErrorCode;
use crate::failure::Failure;
use crate::service::Hit;
use crate::window_length;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header::{LINK, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// How many windows a hit keeps when it does not say: an hour of minutes, enough for the
/// dashboard's sparkline and for a sliding limit.
pub const DEFAULT_KEEP: u32 = 60;

/// `POST /windows/{name}/hit` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HitBody {
    /// The window's length: `500ms`, `30s`, `1m`, `1h`, `1d`.
    window: String,
    /// The most the window allows.
    #[serde(deserialize_with = "crate::whole_number::deserialize")]
    limit: u64,
    /// What the hit counts for (default 1; 0 reads without counting).
    #[serde(
        default,
        deserialize_with = "crate::whole_number::deserialize_optional"
    )]
    cost: Option<u64>,
    /// `fixed` (the default) or `sliding`; `null` is no policy.
    #[serde(default, deserialize_with = "present")]
    policy: Option<PolicyName>,
    /// How many windows to keep (default [`DEFAULT_KEEP`]), any spelling of a whole number.
    #[serde(
        default,
        deserialize_with = "crate::whole_number::deserialize_optional"
    )]
    keep: Option<u64>,
}

/// An optional field that, when present, must be a value (`null` is refused, not taken for
/// absent).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A policy as the API names it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyName {
    /// [`Policy::Fixed`].
    Fixed,
    /// [`Policy::Sliding`].
    Sliding,
}

impl From<PolicyName> for Policy {
    fn from(name: PolicyName) -> Self {
        match name {
            PolicyName::Fixed => Self::Fixed,
            PolicyName::Sliding => Self::Sliding,
        }
    }
}

/// What a hit came to, as the API answers it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HitAnswer {
    /// The name.
    pub name: String,
    /// The window's length, in the largest unit that divides it.
    pub window: String,
    /// Hits counted in the current window, this one included.
    pub count: u64,
    /// What the limit was checked against (`count`, or the sliding policy's weighed count).
    pub used: u64,
    /// The limit.
    pub limit: u64,
    /// `used <= limit`.
    pub allowed: bool,
    /// How much more the limit allows in this window.
    pub remaining: u64,
    /// When the current window began, ms since the Unix epoch.
    pub window_start: u64,
    /// When it ends, ms since the Unix epoch.
    pub resets_at: u64,
}

/// Answers a hit: 200 within the limit, 429 over it, with the rate-limit headers either way.
pub async fn hit(
    State(state): State<AppState>,
    CounterName(name): CounterName,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    OptionalJson(body): OptionalJson<HitBody>,
) -> Result<Response, ApiError> {
    let body = body.ok_or_else(|| {
        ApiError::InvalidBody("expected {\"window\": \"1m\", \"limit\": N}".into())
    })?;
    let length_ms = window_length::parse(&body.window)
        .map_err(|reason| ApiError::Failed(Failure::InvalidWindow(reason)))?;
    let hit = Hit {
        name,
        spec: WindowSpec {
            length_ms,
            // Past u32, the component's own range check (2 to 1000) refuses it alike.
            keep: body
                .keep
                .map_or(DEFAULT_KEEP, |keep| u32::try_from(keep).unwrap_or(u32::MAX)),
        },
        cost: body.cost.unwrap_or(1),
        limit: body.limit,
        policy: body.policy.map_or(Policy::Fixed, Policy::from),
    };
    let done = state.service.hit(key.as_ref(), &hit).await?;
    let answer = HitAnswer::of(&hit, &done.value);
    let retry_after = seconds_until(answer.resets_at, state.service.now_ms()?);
    let headers = rate_limit_headers(&answer, retry_after)?;
    let mut response = if answer.allowed {
        Json(&answer).into_response()
    } else {
        let mut body = serde_json::to_value(&answer).map_err(trap)?;
        body["error"] = serde_json::Value::from(format!(
            "{:?} is over its limit of {} per {}: {} used; it resets in {retry_after} s (the \
             hit was counted)",
            answer.name, answer.limit, answer.window, answer.used
        ));
        body["code"] = ErrorCode::RateLimited.as_str().into();
        let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after));
        response
    };
    response.headers_mut().extend(headers);
    if done.replayed {
        super::routes::mark_replayed(&state, &mut response);
    }
    Ok(response)
}

impl HitAnswer {
    fn of(hit: &Hit, outcome: &HitOutcome) -> Self {
        Self {
            name: hit.name.clone(),
            window: window_length::format(hit.spec.length_ms),
            count: outcome.count,
            used: outcome.used,
            limit: hit.limit,
            allowed: outcome.allowed,
            remaining: outcome.remaining,
            window_start: outcome.window_start,
            resets_at: outcome.resets_at,
        }
    }
}

/// The draft's `RateLimit-Policy` (quota `q` per window of `w` seconds) and `RateLimit`
/// (`r` remaining, `t` seconds until the window resets), the policy named after the window.
fn rate_limit_headers(
    answer: &HitAnswer,
    reset_in: u64,
) -> Result<[(Option<HeaderName>, HeaderValue); 2], ApiError> {
    let window_seconds = (answer.resets_at - answer.window_start).div_ceil(1000);
    // Built by hand: these two headers are on every hit's answer.
    let item = |first: (&str, u64), second: (&str, u64)| {
        let mut text = String::with_capacity(answer.window.len() + 48);
        text.push('"');
        text.push_str(&answer.window);
        text.push('"');
        for (key, value) in [first, second] {
            text.push(';');
            text.push_str(key);
            text.push('=');
            text.push_str(&value.to_string());
        }
        HeaderValue::try_from(text).map_err(trap)
    };
    Ok([
        (
            Some(HeaderName::from_static("ratelimit-policy")),
            item(("q", answer.limit), ("w", window_seconds))?,
        ),
        (
            Some(HeaderName::from_static("ratelimit")),
            item(("r", answer.remaining), ("t", reset_in))?,
        ),
    ])
}

/// Whole seconds from `now_ms` until `at_ms`, at least 1 (a client told 0 would retry at once).
fn seconds_until(at_ms: u64, now_ms: u64) -> u64 {
    at_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

fn trap(error: impl std::fmt::Display) -> ApiError {
    ApiError::Failed(Failure::Trap(anyhow::anyhow!("answering a hit: {error}")))
}

/// `GET /windows/{name}` answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryAnswer {
    /// The name.
    pub name: String,
    /// The window's length.
    pub window: String,
    /// The counts of the last windows, oldest first; the last is the current window's.
    pub counts: Vec<u64>,
}

/// The query of `GET /windows/{name}`.
struct HistoryQuery {
    length_ms: u64,
    last: u32,
}

impl HistoryQuery {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let (mut window, mut last) = (None, None);
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match key.as_ref() {
                "window" => &mut window,
                "last" => &mut last,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(ApiError::InvalidQuery(format!("{key} is given twice")));
            }
        }
        let window = window.ok_or_else(|| {
            ApiError::InvalidQuery("window is missing: ?window=1m&last=60".into())
        })?;
        let length_ms = window_length::parse(&window)
            .map_err(|reason| ApiError::Failed(Failure::InvalidWindow(reason)))?;
        let last = match last {
            None => DEFAULT_KEEP,
            Some(text) => text.parse().map_err(|_| {
                ApiError::InvalidQuery(format!("last must be a whole number; got {text:?}"))
            })?,
        };
        Ok(Self { length_ms, last })
    }
}

/// The counts of a name's last windows, oldest first.
pub async fn history(
    State(state): State<AppState>,
    CounterName(name): CounterName,
    RawQuery(query): RawQuery,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let query = HistoryQuery::parse(query.as_deref())?;
    let counts = state
        .service
        .history(&name, query.length_ms, query.last)
        .await?
        .value;
    Ok(Json(HistoryAnswer {
        name,
        window: window_length::format(query.length_ms),
        counts,
    }))
}

/// One name with windows in `GET /windows`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WindowedName {
    /// The name.
    pub name: String,
    /// The windows' length.
    pub window: String,
}

/// One page of the names with windows, and a `Link` to the next page when there is one.
pub async fn list_windows(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = PageQuery::parse(query.as_deref())?;
    let from = query.start(&state.cursors).await?;
    let page = state.service.list_windows(from, query.limit).await?.value;
    let names: Vec<_> = page
        .windows
        .into_iter()
        .map(|(name, length_ms)| WindowedName {
            name,
            window: window_length::format(length_ms),
        })
        .collect();
    let mut response = Json(names).into_response();
    if let Some(next) = page.next {
        let cursor = state.cursors.sign(&next).await?;
        let link = HeaderValue::from_str(&query.next_link("/windows", &cursor)).map_err(trap)?;
        response.headers_mut().insert(LINK, link);
    }
    Ok(response)
}
