//! Numbers in commands, read as strictly as Redis reads them (its `string2ll`): an optional `-`,
//! decimal digits, no leading zeros, no `+`, no spaces. `INCRBY visits 05` is refused by Redis,
//! so it is refused here too, and a value means the same to both servers.

/// A signed 64-bit integer in Redis's strict form.
pub fn strict_i64(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    (canonical_digits(digits) && !(negative && digits == "0"))
        .then(|| text.parse().ok())
        .flatten()
}

/// An unsigned 64-bit integer in the same strict form (no sign at all): a counter value.
pub fn strict_u64(text: &str) -> Option<u64> {
    canonical_digits(text).then(|| text.parse().ok()).flatten()
}

/// Non-empty ASCII digits without a leading zero (`0` itself excepted).
fn canonical_digits(digits: &str) -> bool {
    !digits.is_empty()
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's form is accepted, anything looser is not.
    #[test]
    fn only_the_strict_form() {
        assert_eq!(strict_i64("0"), Some(0));
        assert_eq!(strict_i64("-5"), Some(-5));
        assert_eq!(strict_i64("9223372036854775807"), Some(i64::MAX));
        assert_eq!(strict_i64("-9223372036854775808"), Some(i64::MIN));
        for loose in [
            "",
            "-",
            "-0",
            "+5",
            "05",
            "-0x",
            " 5",
            "5 ",
            "1e3",
            "9223372036854775808",
        ] {
            assert_eq!(strict_i64(loose), None, "{loose:?}");
        }
        assert_eq!(strict_u64("18446744073709551615"), Some(u64::MAX));
        for loose in ["-1", "", "007", "18446744073709551616", "1.0"] {
            assert_eq!(strict_u64(loose), None, "{loose:?}");
        }
    }
}
