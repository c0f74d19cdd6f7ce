//! The value encoding: a counter's stored bytes are the ASCII decimal text of a `u64`, no sign,
//! no padding (leading zeros are read, never written).
//!
//! It is the `wasi:keyvalue` convention for `atomics.increment`: wasmtime-wasi-keyvalue reads
//! and writes the same text, as Redis `INCR` does, so values written by a component, by a
//! store's atomic increment and by other clients of the same store agree. A component that
//! keeps counters must use the same rule; tally's host has a test proving its component and
//! this module accept and refuse the same bytes.

/// The stored form of `value`: ASCII decimal digits.
pub fn encode(value: u64) -> Vec<u8> {
    value.to_string().into_bytes()
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

    /// Every value survives an encode/decode round trip, the extremes included; bytes that are
    /// not a decimal u64 are refused rather than guessed at; leading zeros are read.
    #[test]
    fn decimal_u64_only() {
        for value in [0, 1, 10, 15, 4_294_967_296, i64::MAX as u64, u64::MAX] {
            assert_eq!(decode(&encode(value)), Some(value));
        }
        assert_eq!(encode(u64::MAX), b"18446744073709551615");
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
        assert_eq!(decode(b"007"), Some(7));
    }
}
