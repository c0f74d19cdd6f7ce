//! The value encoding: a counter's stored bytes are the ASCII decimal text of a `u64`.
//!
//! This is what Redis `INCR` and `wasmtime-wasi-keyvalue`'s `atomics.increment` read and write, so
//! values written by this component, by the host's `increment` and by other clients of the same
//! store agree.

/// The stored form of `value`: ASCII decimal digits, no sign, no padding.
pub fn encode(value: u64) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// Appends `value` in decimal to `out`, without the formatting machinery (which costs more
/// than the rest of a hit's key in wasm).
pub fn push_decimal(out: &mut String, mut value: u64) {
    let mut digits = [0_u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

/// Reads stored bytes as a counter value; `None` when they are not ASCII decimal digits of a `u64`
/// (empty, signed, spaced, fractional, non-ASCII or larger than `u64::MAX`).
pub fn decode(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // All ASCII digits, so valid UTF-8; `parse` then only fails on values past u64::MAX.
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value survives an encode/decode round trip, including the extremes.
    #[test]
    fn round_trips() {
        for value in [0, 1, 10, 15, 4_294_967_296, i64::MAX as u64, u64::MAX] {
            assert_eq!(decode(&encode(value)), Some(value));
        }
        assert_eq!(encode(u64::MAX), b"18446744073709551615");
    }

    #[test]
    fn decimals_are_appended() {
        for value in [0, 7, 10, 60_000, u64::MAX] {
            let mut text = String::from("x");
            push_decimal(&mut text, value);
            assert_eq!(text, format!("x{value}"));
        }
    }

    /// Bytes that are not a decimal u64 are refused rather than guessed at.
    #[test]
    fn refuses_non_decimal_bytes() {
        for bytes in [
            &b""[..],
            b"abc",
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"1.5",
            b"1e3",
            b"18446744073709551616",
            "٣".as_bytes(),
        ] {
            assert_eq!(decode(bytes), None, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    /// Leading zeros are unambiguous and accepted, as Rust's and wasmtime's parsers do.
    #[test]
    fn accepts_leading_zeros() {
        assert_eq!(decode(b"007"), Some(7));
    }
}
