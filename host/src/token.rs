//! The server's token (`--auth-token`), checked the same way by HTTP (`Authorization: Bearer`)
//! and RESP (`AUTH`): through SHA-256 digests with a constant-time comparison, so neither the
//! time taken nor an early exit tells an attacker how much of a guess was right, or how long
//! the token is.

use sha2::{Digest, Sha256};

/// Constant-time equality of two tokens (of any lengths).
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(presented), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0_u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

/// Reads a `--auth-token` value: refuses one that is empty (which would look like a token and
/// lock nothing) or that HTTP cannot carry in an `Authorization` header.
pub fn parse_token(token: &str) -> Result<String, String> {
    if token.is_empty() {
        return Err(
            "the token is empty; give a real one (any visible characters), or leave \
                    --auth-token and TALLY_AUTH_TOKEN unset to serve without one"
                .into(),
        );
    }
    if token
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(
            "a token is visible ASCII characters without spaces (HTTP sends it in \
                    `Authorization: Bearer TOKEN`)"
                .into(),
        );
    }
    Ok(token.to_string())
}

/// What an `Authorization` header value presents: the token after the `Bearer` scheme, which
/// RFC 9110 makes case-insensitive, followed by one or more spaces. `None` without that scheme.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, parse_token, tokens_match};

    /// Any case of the scheme, one or more spaces; other schemes and no token are not bearer
    /// credentials.
    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_token("bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_token("BEARER   s3cret"), Some("s3cret"));
        assert_eq!(bearer_token("Basic czNjcmV0"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearers3cret"), None);
    }

    /// Empty tokens and tokens HTTP cannot carry are refused with the reason.
    #[test]
    fn tokens_are_visible_ascii() {
        assert_eq!(parse_token("s3cret-T0ken!").unwrap(), "s3cret-T0ken!");
        assert!(parse_token("").unwrap_err().contains("empty"));
        assert!(parse_token("a b").unwrap_err().contains("without spaces"));
        assert!(parse_token("caf\u{e9}").unwrap_err().contains("ASCII"));
    }

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
