//! Counter values written as JSON numbers, read exactly.
//!
//! JSON (and JSON Schema's `integer`) counts `5`, `5.0` and `5e0` as the same number, so the HTTP
//! API and `tally import` accept every spelling of a whole number from 0 to `u64::MAX`. The value
//! is read from the number's text, never through a float, so no value is rounded
//! (`9007199254740993.0` stays exact).

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use serde_json::value::RawValue;

/// Deserializes a counter value from any JSON number that is exactly a whole number from 0 to
/// `u64::MAX`: `5`, but also `5.0` or `5e0`, which JSON (and JSON Schema's `integer`) count as
/// the same number. Read from the number's text, never through a float, so no value is rounded.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    exact_u64(raw.get()).ok_or_else(|| {
        D::Error::custom(format!(
            "{} is not a whole number from 0 to 18446744073709551615",
            raw.get()
        ))
    })
}

/// [`deserialize`] for an optional field (`#[serde(default, deserialize_with = ...)]`): absent is
/// `None`, present is read as [`deserialize`] reads it.
pub fn deserialize_optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    deserialize(deserializer).map(Some)
}

/// The value of a JSON number's text when it is a whole number that fits a `u64`.
pub fn exact_u64(text: &str) -> Option<u64> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    // digits × 10^scale, with the fraction's trailing zeros (which change nothing) dropped.
    let fraction = fraction.trim_end_matches('0');
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let scale = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    if digits.is_empty() {
        return Some(0);
    }
    if negative {
        return None;
    }
    let (digits, scale) = if scale < 0 {
        // Only zeros may be cut: anything else is a fraction.
        let keep = digits
            .len()
            .checked_sub(usize::try_from(scale.unsigned_abs()).ok()?)?;
        let (kept, cut) = digits.split_at(keep);
        if !cut.bytes().all(|byte| byte == b'0') || kept.is_empty() {
            return None;
        }
        (kept.to_string(), 0)
    } else {
        (digits.to_string(), scale)
    };
    // u64::MAX has 20 digits; more than that cannot fit.
    // (Checked: the exponent may be anything up to i64::MAX.)
    if i64::try_from(digits.len())
        .ok()?
        .checked_add(scale)
        .is_none_or(|length| length > 20)
    {
        return None;
    }
    let mut value: u64 = digits.parse().ok()?;
    for _ in 0..scale {
        value = value.checked_mul(10)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::exact_u64;

    /// Every spelling of a whole number is read exactly; fractions, negatives and values past
    /// u64::MAX are refused.
    #[test]
    fn whole_numbers_are_read_exactly() {
        for (text, value) in [
            ("0", Some(0)),
            ("-0", Some(0)),
            ("0.0e5", Some(0)),
            ("7", Some(7)),
            ("1149.0", Some(1149)),
            ("1149.000", Some(1149)),
            ("1.5e3", Some(1500)),
            ("15e2", Some(1500)),
            ("1500e-3", None),
            ("1500000e-3", Some(1500)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551615.0", Some(u64::MAX)),
            ("1.8446744073709551615e19", Some(u64::MAX)),
            ("9007199254740993.0", Some(9_007_199_254_740_993)),
            ("18446744073709551616", None),
            ("1e20", None),
            ("1.5", None),
            ("-1", None),
            ("-1.0", None),
            ("1e999999999999", None),
            ("1e-999999999999", None),
            // Exponents at the ends of i64 are refused, not overflowed.
            ("1e9223372036854775807", None),
            ("1.5e9223372036854775807", None),
            ("1e-9223372036854775808", None),
            ("0e9223372036854775807", Some(0)),
            ("1e9223372036854775808", None),
        ] {
            assert_eq!(exact_u64(text), value, "{text}");
        }
    }
}
