//! Requests web pages make: a browser sends a page's requests wherever the page says, so a page
//! from anywhere could change a tally on the user's machine or network, with no token to stop
//! it when there is none. Three checks close that:
//!
//! - **Origin.** A write (`POST`, `PUT`, `DELETE`) that a browser sent for a page of another
//!   origin (its `Origin` header, or `Sec-Fetch-Site: cross-site` without one) is refused with
//!   403 `forbidden_origin`, unless the origin is given with `--allow-origin`. The dashboard is
//!   this server's own origin; clients that are not browsers send no `Origin`.
//! - **Host.** A server on a loopback address answers only for loopback names (`localhost`,
//!   `*.localhost`, `127.x.x.x`, `[::1]`) and those given with `--allow-host`: a page whose
//!   own name resolves to 127.0.0.1 (DNS rebinding) is its own origin and could read and write
//!   otherwise; it gets 403 `forbidden_host`. With `--allow-host` the check applies on any
//!   address.
//! - **JSON only.** A body where JSON is expected must say `Content-Type: application/json`
//!   (`super::extract`), which no cross-site page can send without the browser asking first
//!   (a CORS preflight, which tally never grants).

use super::AppState;
use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which hosts and origins a server answers for.
#[derive(Debug, Clone, Default)]
pub struct SitePolicy {
    /// Check `Host` (a server on loopback, or names were given).
    check_host: bool,
    /// Host names (lowercase, no port) answered besides the loopback ones.
    hosts: Vec<String>,
    /// Origins (lowercase `scheme://host[:port]`) whose pages may write.
    origins: Vec<String>,
}

impl SitePolicy {
    /// The policy of a server listening on a loopback address (`loopback`) or not, answering for
    /// `hosts` besides loopback names and taking writes from pages of `origins` besides its own.
    pub fn new(loopback: bool, hosts: &[String], origins: &[String]) -> Self {
        Self {
            check_host: loopback || !hosts.is_empty(),
            hosts: hosts.iter().map(|host| host.to_ascii_lowercase()).collect(),
            origins: origins
                .iter()
                .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether a request with `method` and `headers` may go on; the refusal if not.
    fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok());
        if self.check_host
            && let Some(host) = host
            && !self.answers_for(host)
        {
            return Err(ApiError::ForbiddenHost(host.to_ascii_lowercase()));
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        match headers.get(header::ORIGIN) {
            Some(origin) => {
                let origin = origin.to_str().unwrap_or("");
                if self.writes_from(origin, host) {
                    Ok(())
                } else {
                    Err(ApiError::ForbiddenOrigin(origin.to_ascii_lowercase()))
                }
            }
            None if headers
                .get("sec-fetch-site")
                .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site")) =>
            {
                Err(ApiError::ForbiddenOrigin("a cross-site page".into()))
            }
            None => Ok(()),
        }
    }

    /// Whether `host` (a `Host` header) names this server.
    fn answers_for(&self, host: &str) -> bool {
        let name = host_name(host);
        is_loopback_name(name)
            || self
                .hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }

    /// Whether a page of `origin` may write to the server `host` names: its own origin, or an
    /// allowed one.
    fn writes_from(&self, origin: &str, host: Option<&str>) -> bool {
        let own = host.is_some_and(|host| {
            let bare = strip_prefix_ignoring_case(origin, "http://")
                .or_else(|| strip_prefix_ignoring_case(origin, "https://"));
            bare.is_some_and(|bare| bare.eq_ignore_ascii_case(host))
        });
        own || self
            .origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }
}

/// `text` without `prefix`, compared ignoring ASCII case.
fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The name in a `Host` header (without its port; an IPv6 literal keeps its brackets).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|byte| byte.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

/// `localhost`, a `.localhost` name (RFC 6761: always loopback), 127.0.0.0/8 or `[::1]`, in
/// any case.
fn is_loopback_name(name: &str) -> bool {
    let ends_with_localhost = name.len() > 10
        && name
            .get(name.len() - 10..)
            .is_some_and(|end| end.eq_ignore_ascii_case(".localhost"));
    name.eq_ignore_ascii_case("localhost")
        || ends_with_localhost
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Refuses what [`SitePolicy`] refuses before any route runs.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.sites.check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn code(result: Result<(), ApiError>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(refused) => refused.code().as_str(),
        }
    }

    /// On loopback: loopback names and allowed ones pass, any other Host is refused, reads
    /// included; writes from another origin are refused, from the server's own or an allowed
    /// one pass, and so do clients that send no Origin.
    #[test]
    fn loopback_servers_answer_for_their_names_and_pages() {
        let policy = SitePolicy::new(
            true,
            &["tally.internal".into()],
            &["https://ops.example".into()],
        );
        let post = Method::POST;
        for (method, pairs, expected) in [
            (&Method::GET, &[("host", "localhost:8080")][..], "ok"),
            (&Method::GET, &[("host", "127.0.0.1:8080")], "ok"),
            (&Method::GET, &[("host", "[::1]:8080")], "ok"),
            (&Method::GET, &[("host", "app.localhost")], "ok"),
            (&Method::GET, &[("host", "tally.internal:8080")], "ok"),
            (
                &Method::GET,
                &[("host", "evil.example:8080")],
                "forbidden_host",
            ),
            (
                &Method::GET,
                &[("host", "127.0.0.1.nip.io")],
                "forbidden_host",
            ),
            (&post, &[("host", "localhost:8080")], "ok"),
            (
                &post,
                &[
                    ("host", "localhost:8080"),
                    ("origin", "http://localhost:8080"),
                ],
                "ok",
            ),
            (
                &post,
                &[
                    ("host", "localhost:8080"),
                    ("origin", "https://ops.example"),
                ],
                "ok",
            ),
            (
                &post,
                &[
                    ("host", "localhost:8080"),
                    ("origin", "https://evil.example"),
                ],
                "forbidden_origin",
            ),
            (
                &post,
                &[("host", "localhost:8080"), ("origin", "null")],
                "forbidden_origin",
            ),
            (
                &post,
                &[
                    ("host", "localhost:8080"),
                    ("origin", "http://localhost:9090"),
                ],
                "forbidden_origin",
            ),
            (
                &post,
                &[("host", "localhost:8080"), ("sec-fetch-site", "cross-site")],
                "forbidden_origin",
            ),
            (
                &post,
                &[
                    ("host", "localhost:8080"),
                    ("sec-fetch-site", "same-origin"),
                ],
                "ok",
            ),
        ] {
            assert_eq!(
                code(policy.check(method, &headers(pairs))),
                expected,
                "{method} {pairs:?}"
            );
        }
    }

    /// Off loopback with no names given, any Host is answered (a proxy names the server);
    /// cross-site writes are still refused.
    #[test]
    fn other_servers_check_only_origins() {
        let policy = SitePolicy::new(false, &[], &[]);
        assert_eq!(
            code(policy.check(&Method::GET, &headers(&[("host", "counters.example")]))),
            "ok"
        );
        assert_eq!(
            code(policy.check(
                &Method::DELETE,
                &headers(&[
                    ("host", "counters.example"),
                    ("origin", "https://counters.example")
                ])
            )),
            "ok"
        );
        assert_eq!(
            code(policy.check(
                &Method::PUT,
                &headers(&[
                    ("host", "counters.example"),
                    ("origin", "https://evil.example")
                ])
            )),
            "forbidden_origin"
        );
    }
}
