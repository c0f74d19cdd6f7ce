//! Window lengths as people write them (`500ms`, `30s`, `1m`, `1h`, `1d`), read the same by the
//! command line and the HTTP API, checked by the component's own rule
//! ([`tally_guest::window::check_length`]) before a call, and written back in the largest unit
//! that divides them.

/// The units, largest first, and their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// The length `text` names, in milliseconds, or why it names none.
pub fn parse(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let unit_ms = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, ms)| *ms)
        .ok_or_else(|| {
            format!(
                "{text:?} is not a window length: a whole number and a unit, ms, s, m, h or d \
                 (500ms, 30s, 1m, 1h, 1d)"
            )
        })?;
    let number: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a window length: the number is missing or too large")
    })?;
    let length = number
        .checked_mul(unit_ms)
        .ok_or_else(|| format!("{text:?} is longer than any window can be"))?;
    tally_guest::window::check_length(length)
}

/// `length_ms` in the largest unit that divides it (`60000` is `1m`, `90000` is `90s`).
pub fn format(length_ms: u64) -> String {
    UNITS
        .iter()
        .find(|(_, ms)| length_ms > 0 && length_ms.is_multiple_of(*ms))
        .map_or_else(
            || format!("{length_ms}ms"),
            |(name, ms)| format!("{}{name}", length_ms / ms),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_read_and_write_back() {
        for (text, ms, canonical) in [
            ("500ms", 500, "500ms"),
            ("30s", 30_000, "30s"),
            ("60s", 60_000, "1m"),
            ("1m", 60_000, "1m"),
            ("90s", 90_000, "90s"),
            ("1h", 3_600_000, "1h"),
            ("24h", 86_400_000, "1d"),
            ("7d", 604_800_000, "7d"),
            ("3650d", 315_360_000_000, "3650d"),
        ] {
            assert_eq!(parse(text), Ok(ms), "{text}");
            assert_eq!(format(ms), canonical, "{ms}");
        }
        for bad in [
            "", "60", "m", "1.5m", "-1m", "1 m", "1M", "0s", "3651d", "1w",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse("99999999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
    }
}
