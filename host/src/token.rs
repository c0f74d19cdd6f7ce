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
