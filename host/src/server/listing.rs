//! Paged listing over HTTP: `GET /counters?limit=N&cursor=C` reads its query here, and a page that
//! has a successor links to it in a `Link: <...>; rel="next"` header (RFC 8288, as GitHub's API
//! pages), whose URL carries the component's opaque cursor.

use super::error::ApiError;
use crate::list_cursors::{CursorRefused, ListCursors};
use tally_keyvalue::storage::Cursor;

/// The most counters on one page (the component's own limit for `list-page`), and the page size
/// when the client names none.
pub use tally_guest::page::MAX_LIMIT;

/// The query of `GET /counters`.
#[derive(Debug, PartialEq, Eq)]
pub struct PageQuery {
    /// How many counters the page holds at most (1 to [`MAX_LIMIT`]).
    pub limit: u32,
    /// Where the page starts, as a previous page's `Link` said; `None` for the first page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// Where the page starts: the store position its cursor stands for (one this store's
    /// servers handed out), or `None` for the first page. A cursor no server handed out is the
    /// client's mistake (400).
    pub async fn start(&self, cursors: &ListCursors) -> Result<Option<Cursor>, ApiError> {
        let Some(cursor) = self.cursor.as_deref() else {
            return Ok(None);
        };
        cursors
            .open(cursor)
            .await
            .map(Some)
            .map_err(|refused| match refused {
                CursorRefused::Unknown(reason) => ApiError::InvalidQuery(reason),
                CursorRefused::Failed(failure) => ApiError::Failed(failure),
            })
    }

    /// Reads `limit` and `cursor` from a query string (form-encoded). Other parameters are
    /// ignored, as caches and browsers add their own; a repeated or malformed one is refused.
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut limit = None;
        let mut cursor = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match key.as_ref() {
                "limit" => &mut limit,
                "cursor" => &mut cursor,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(ApiError::InvalidQuery(format!("{key} is given twice")));
            }
        }
        let limit = match limit {
            None => MAX_LIMIT,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                .ok_or_else(|| {
                    ApiError::InvalidQuery(format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT}; got {text:?}"
                    ))
                })?,
        };
        Ok(Self { limit, cursor })
    }

    /// The `Link` header value pointing at the page of `path` after this one, which starts at
    /// `next`.
    pub fn next_link(&self, path: &str, next: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("limit", &self.limit.to_string())
            .append_pair("cursor", next)
            .finish();
        format!("<{path}?{query}>; rel=\"next\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(query: &str) -> String {
        match PageQuery::parse(Some(query)) {
            Err(ApiError::InvalidQuery(reason)) => reason,
            other => panic!("{query:?} was not refused: {other:?}"),
        }
    }

    /// No query is the first page of 1000; limit and cursor are read, others ignored.
    #[test]
    fn reads_limit_and_cursor() {
        let first = PageQuery::parse(None).unwrap();
        assert_eq!(
            first,
            PageQuery {
                limit: 1000,
                cursor: None
            }
        );
        let query = PageQuery::parse(Some("limit=2&cursor=3%3Aa%20b&_=17")).unwrap();
        assert_eq!(
            query,
            PageQuery {
                limit: 2,
                cursor: Some("3:a b".into())
            }
        );
    }

    /// Out-of-range, malformed and repeated parameters are refused with the reason.
    #[test]
    fn refuses_bad_queries() {
        assert_eq!(
            refusal("limit=0"),
            "limit must be a whole number from 1 to 1000; got \"0\""
        );
        assert!(refusal("limit=1001").contains("got \"1001\""));
        assert!(refusal("limit=-1").contains("got \"-1\""));
        assert!(refusal("limit=ten").contains("got \"ten\""));
        assert_eq!(refusal("limit=1&limit=2"), "limit is given twice");
    }

    /// The link carries the cursor encoded, and reads back as the same query.
    #[test]
    fn links_to_the_next_page() {
        let query = PageQuery {
            limit: 5,
            cursor: None,
        };
        let link = query.next_link("/counters", "12:ünï &=x");
        assert_eq!(
            link,
            "</counters?limit=5&cursor=12%3A%C3%BCn%C3%AF+%26%3Dx>; rel=\"next\""
        );
        let url = link
            .trim_start_matches("</counters?")
            .split('>')
            .next()
            .unwrap();
        assert_eq!(
            PageQuery::parse(Some(url)).unwrap().cursor.as_deref(),
            Some("12:ünï &=x")
        );
    }
}
