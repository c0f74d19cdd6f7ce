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

/// A regular expression (ECMA-262, for the OpenAPI document) that matches exactly the lengths
/// [`parse`] accepts written without leading zeros: each unit's number from 1 to the most that
/// unit allows ([`tally_guest::window::MAX_LENGTH_MS`]).
pub fn pattern() -> String {
    let units: Vec<String> = UNITS
        .iter()
        .map(|(name, ms)| {
            format!(
                "(?:{}){name}",
                at_most(tally_guest::window::MAX_LENGTH_MS / ms)
            )
        })
        .collect();
    format!("^(?:{})$", units.join("|"))
}

/// A regular expression for the whole numbers 1 to `max` (at least 1), without leading zeros:
/// every shorter number, then each number as long as `max` that first falls below it at one
/// digit, then `max` itself.
fn at_most(max: u64) -> String {
    let digits: Vec<u8> = max.to_string().bytes().map(|digit| digit - b'0').collect();
    let length = digits.len();
    let mut alternatives = Vec::new();
    if length > 1 {
        alternatives.push(match length - 2 {
            0 => "[1-9]".to_string(),
            more => format!("[1-9][0-9]{{0,{more}}}"),
        });
    }
    for (place, &digit) in digits.iter().enumerate() {
        let lowest = u8::from(place == 0);
        if digit > lowest {
            let prefix: String = digits[..place]
                .iter()
                .map(|d| char::from(b'0' + d))
                .collect();
            let below = if digit - 1 == lowest {
                lowest.to_string()
            } else {
                format!("[{lowest}-{}]", digit - 1)
            };
            let rest = match length - place - 1 {
                0 => String::new(),
                1 => "[0-9]".to_string(),
                more => format!("[0-9]{{{more}}}"),
            };
            alternatives.push(format!("{prefix}{below}{rest}"));
        }
    }
    alternatives.push(max.to_string());
    alternatives.join("|")
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
        assert!(parse("3650d").is_ok() && parse("87600h").is_ok() && parse("87601h").is_err());
        assert!(
            parse("99999999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
    }

    /// The numbers up to a bound, as the OpenAPI pattern spells them: every shorter number,
    /// each same-length number below the bound, the bound.
    #[test]
    fn patterns_bound_every_unit() {
        assert_eq!(at_most(7), "[1-6]|7");
        assert_eq!(at_most(10), "[1-9]|10");
        assert_eq!(
            at_most(3650),
            "[1-9][0-9]{0,2}|[1-2][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650"
        );
        assert_eq!(
            pattern(),
            format!(
                "^(?:(?:{})d|(?:{})h|(?:{})m|(?:{})s|(?:{})ms)$",
                at_most(3650),
                at_most(87_600),
                at_most(5_256_000),
                at_most(315_360_000),
                at_most(315_360_000_000)
            )
        );
    }
}
