//! The documents compiled into the binary and served as they are: the dashboard (plain HTML, CSS
//! and JavaScript in `dashboard/`, no build step, nothing fetched from elsewhere) and the
//! OpenAPI description of the HTTP API (`openapi.json`, checked in, with its error codes filled in
//! from [`crate::error_code`]; `tests/openapi.rs` keeps it and the router in step).

use crate::error_code::ErrorCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;

/// The OpenAPI 3.1 document of the API as checked in, without the enum of error codes, which
/// [`openapi_document`] fills in from the one list of codes.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// The OpenAPI document served at `/openapi.json`: [`OPENAPI_JSON`] with `Error.code`'s enum
/// listing every code the HTTP API answers with ([`ErrorCode::over_http`]), and `WindowLength`'s
/// pattern bounding each unit as the window rule does ([`crate::window_length::pattern`]).
pub fn openapi_document() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let Ok(mut document) = serde_json::from_str::<serde_json::Value>(OPENAPI_JSON) else {
            return OPENAPI_JSON.to_string();
        };
        let codes: Vec<&str> = ErrorCode::ALL
            .iter()
            .filter(|code| code.over_http())
            .map(|code| code.as_str())
            .collect();
        if let Some(code) = document.pointer_mut("/components/schemas/Error/properties/code") {
            code["enum"] = serde_json::json!(codes);
        }
        if let Some(length) = document.pointer_mut("/components/schemas/WindowLength") {
            length["pattern"] = serde_json::json!(crate::window_length::pattern());
        }
        serde_json::to_string_pretty(&document).unwrap_or_else(|_| OPENAPI_JSON.to_string())
    });
    &DOCUMENT
}

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard/dashboard.css");

/// The page only loads its own script and style sheet and only talks to this server; saying so
/// keeps an injected script (a counter name is user input) from doing anything.
const DASHBOARD_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `GET /`: the dashboard.
pub async fn dashboard() -> Response {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    response.headers_mut().insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DASHBOARD_POLICY),
    );
    response
}

/// `GET /dashboard.js`.
pub async fn dashboard_script() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

/// `GET /dashboard.css`.
pub async fn dashboard_style() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    asset("application/json", openapi_document())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidate every time, so an upgraded server never runs an old script.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}
