//! Opening a store by its URL, as wasmtime's keyvalue picks a backend by URL scheme: one table
//! of backends ([`backends`]), each row its schemes, the options it owns, the words for its
//! durability and its open function. A host declares options once ([`OpenOptions`]), names the
//! store with a URL (`sqlite:PATH`, `memory`, `redis://...`, `postgres://...`) and calls
//! [`open`]; an option the chosen backend does not own is the host's to refuse
//! ([`Backend::owns`]). Adding a backend is its folder in `storage/` and its row here.

pub(crate) mod backend;

pub use backend::{Backend, OpenOptions, OpenStore, StoreOption};

use crate::storage::{Storage, StorageError};
use std::sync::Arc;

pub use crate::storage::memory::BACKEND as MEMORY;
#[cfg(feature = "postgres")]
pub use crate::storage::postgres::BACKEND as POSTGRES;
#[cfg(feature = "redis")]
pub use crate::storage::redis::BACKEND as REDIS;
#[cfg(feature = "sqlite")]
pub use crate::storage::sqlite::BACKEND as SQLITE;

/// Every backend this build has (by its features), in the order URLs are matched.
pub fn backends() -> Vec<&'static Backend> {
    let mut backends = vec![&MEMORY];
    #[cfg(feature = "sqlite")]
    backends.push(&SQLITE);
    #[cfg(feature = "redis")]
    backends.push(&REDIS);
    #[cfg(feature = "postgres")]
    backends.push(&POSTGRES);
    backends
}

/// The backend `url` names, or why none does (the forms this build takes, in words).
pub fn backend(url: &str) -> Result<&'static Backend, String> {
    let backends = backends();
    match backends.iter().find(|backend| backend.names(url)) {
        Some(backend) => Ok(backend),
        None => Err(format!(
            "expected {}",
            backends
                .iter()
                .map(|backend| describe(backend))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The form of a backend's URLs, in words.
fn describe(backend: &Backend) -> &'static str {
    match backend.schemes.first().copied() {
        Some("sqlite:") => "sqlite:PATH",
        Some("memory") => "memory",
        Some("redis://") => "redis://HOST[:PORT][/DB]",
        Some("postgres://") => "postgres://USER@HOST/DB",
        _ => "a URL of another store",
    }
}

/// Opens the store `url` names with `options`. An unknown scheme is
/// [`StorageError::Misconfigured`].
pub fn open(url: &str, options: &OpenOptions) -> Result<Arc<dyn Storage>, StorageError> {
    let backend = backend(url).map_err(|expected| {
        StorageError::Misconfigured(
            format!("{:?} names no store: {expected}", redacted(url)).into(),
        )
    })?;
    (backend.open)(url, options)
}

/// `url` with its password shown as `***` (`redis://user:***@host`, and a `password=` option
/// as `password=***`), and so every URL in a text: for messages and logs.
pub fn redacted(text: &str) -> String {
    let mut redacted = text.to_string();
    // Every URL in the text, not only the first.
    let mut from = 0;
    while let Some(scheme_end) = redacted[from..].find("://").map(|i| from + i + 3) {
        let rest = &redacted[scheme_end..];
        // The user information ends at the first '@' before the host part ends.
        let authority_end = rest.find(['/', '?', ' ']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        from = scheme_end;
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            redacted.replace_range(scheme_end + colon + 1..scheme_end + at, "***");
        }
    }
    let mut from = 0;
    while let Some(found) = redacted[from..].find("password=").map(|i| from + i + 9) {
        let end = redacted[found..]
            .find(['&', ' ', '\'', '"'])
            .map_or(redacted.len(), |i| found + i);
        redacted.replace_range(found..end, "***");
        from = found + 3;
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords in store URLs never reach a message or a log line.
    #[test]
    fn store_passwords_are_redacted() {
        for (url, shown) in [
            (
                "redis://app:s3cret@10.0.0.1:6379/0",
                "redis://app:***@10.0.0.1:6379/0",
            ),
            ("redis://:s3cret@host/1", "redis://:***@host/1"),
            ("redis://host:6379/0", "redis://host:6379/0"),
            (
                "at redis://u:p@h/0: refused",
                "at redis://u:***@h/0: refused",
            ),
            (
                "postgresql://app:p@ss@h1:5432,h2:5433/db?target_session_attrs=read-write",
                "postgresql://app:***@h1:5432,h2:5433/db?target_session_attrs=read-write",
            ),
            (
                "postgres://app@h/db?sslmode=require&password=s3cret&x=1 failed",
                "postgres://app@h/db?sslmode=require&password=***&x=1 failed",
            ),
        ] {
            assert_eq!(redacted(url), shown);
        }
    }

    /// Each URL form names its backend, and an unknown one says which forms there are.
    #[test]
    fn urls_name_their_backends() {
        assert_eq!(backend("memory").unwrap().name, "memory");
        assert!(backend("memoryx").is_err());
        let unknown = open("ftp://h", &OpenOptions::default()).err().unwrap();
        assert!(
            unknown
                .to_string()
                .starts_with("\"ftp://h\" names no store: expected memory"),
            "{unknown}"
        );
    }
}
