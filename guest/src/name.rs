//! The counter naming rule (stated in `wit/counter.wit`): non-empty, at most
//! [`MAX_NAME_BYTES`] bytes, no control characters.
//!
//! Names become store keys verbatim, so the rule keeps keys printable in logs, terminals and
//! `redis-cli`, and bounded in size for every backend.

/// The longest name accepted, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 256;

/// Checks `name` against the naming rule; the error says which part of the rule it breaks.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a counter name must not be empty".to_string());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a counter name is at most {MAX_NAME_BYTES} bytes; this one is {} bytes",
            name.len()
        ));
    }
    if let Some((index, c)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "a counter name must not contain control characters; found U+{:04X} at byte {index}",
            u32::from(c)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ordinary names, Unicode and the exact byte limit are accepted.
    #[test]
    fn accepts_valid_names() {
        for name in [
            "visits",
            "user:42/likes",
            "ünïcødé ✓",
            "a b",
            &"x".repeat(256),
        ] {
            assert_eq!(validate(name), Ok(()), "{name:?}");
        }
    }

    /// Empty, over-long and control-character names are refused with the reason.
    #[test]
    fn refuses_invalid_names() {
        assert_eq!(
            validate(""),
            Err("a counter name must not be empty".to_string())
        );
        assert_eq!(
            validate(&"x".repeat(257)),
            Err("a counter name is at most 256 bytes; this one is 257 bytes".to_string())
        );
        // 129 two-byte characters: 258 bytes although only 129 characters.
        assert!(validate(&"é".repeat(129)).is_err());
        assert_eq!(
            validate("a\nb"),
            Err(
                "a counter name must not contain control characters; found U+000A at byte 1"
                    .to_string()
            )
        );
        assert!(validate("tab\there").is_err());
        assert!(validate("del\u{7f}").is_err());
        assert!(validate("c1\u{85}").is_err());
        assert!(validate("nul\0").is_err());
    }
}
