//! Windows' pure parts: which window holds an instant, the key that holds a window's count, the
//! sliding policy's weighing, and the checks of the `window` interface's arguments.
//!
//! A window is one key (`wit/counter.wit`, interface `window`): U+001F `w` U+001F, the name,
//! U+001F, the length in milliseconds, U+001F, the window's number, all in one bucket with the
//! counters. A counter name cannot contain U+001F, so the key never collides with a counter's
//! and the name ends at the last two separators. Keys of one name and length are contiguous in
//! byte order (the separator sorts below every character a name or a number holds), and every
//! window key sorts before every counter.

/// What every window key starts with.
pub const PREFIX: &str = "\u{1f}w\u{1f}";

/// The longest window: ten years, in milliseconds.
pub const MAX_LENGTH_MS: u64 = 10 * 365 * 24 * 60 * 60 * 1000;

/// The most windows a hit keeps, and the most `history` reads at once.
pub const MAX_WINDOWS: u32 = 1000;

/// The key of window `number` of `name`'s windows of `length_ms`.
pub fn key(name: &str, length_ms: u64, number: u64) -> String {
    let mut key = String::with_capacity(PREFIX.len() + name.len() + 42);
    key.push_str(PREFIX);
    key.push_str(name);
    key.push('\u{1f}');
    crate::value::push_decimal(&mut key, length_ms);
    key.push('\u{1f}');
    crate::value::push_decimal(&mut key, number);
    key
}

/// Whether `key` is a window's (it starts with the separator no name holds).
pub fn is_window_key(key: &str) -> bool {
    key.starts_with('\u{1f}')
}

/// A window key read back: its name, length and number; `None` for a key this module did not
/// make.
pub fn parse(key: &str) -> Option<(&str, u64, u64)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (rest, number) = rest.rsplit_once('\u{1f}')?;
    let (name, length) = rest.rsplit_once('\u{1f}')?;
    let number = decimal(number)?;
    let length = decimal(length)?;
    (!name.is_empty() && length > 0).then_some((name, length, number))
}

/// Digits only, as [`key`] writes them.
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Checks a window length; the error says why it is not one.
pub fn check_length(length_ms: u64) -> Result<u64, String> {
    if length_ms == 0 {
        return Err("a window's length must be at least 1 ms".into());
    }
    if length_ms > MAX_LENGTH_MS {
        return Err(format!(
            "a window's length must be at most {MAX_LENGTH_MS} ms (ten years), not {length_ms}"
        ));
    }
    Ok(length_ms)
}

/// Checks how many windows a hit or a sweep keeps (2 to [`MAX_WINDOWS`]).
pub fn check_keep(keep: u32) -> Result<u64, String> {
    if (2..=MAX_WINDOWS).contains(&keep) {
        Ok(u64::from(keep))
    } else {
        Err(format!(
            "keep must be 2 to {MAX_WINDOWS} windows (the current one and the one before it at \
             least), not {keep}"
        ))
    }
}

/// Checks how many windows `history` reads (1 to [`MAX_WINDOWS`]).
pub fn check_last(last: u32) -> Result<u64, String> {
    if (1..=MAX_WINDOWS).contains(&last) {
        Ok(u64::from(last))
    } else {
        Err(format!(
            "last must be 1 to {MAX_WINDOWS} windows, not {last}"
        ))
    }
}

/// Where an instant falls: its window's number, when that window began and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The window's number: `now / length`.
    pub number: u64,
    /// When it began (ms since the Unix epoch).
    pub start: u64,
    /// When it ends (ms since the Unix epoch; saturating at the end of time).
    pub end: u64,
    /// How far into it the instant is, in ms.
    pub elapsed: u64,
}

/// The window of `length_ms` (checked) that holds `now_ms`.
pub fn slot(length_ms: u64, now_ms: u64) -> Slot {
    let number = now_ms / length_ms;
    let start = number * length_ms;
    Slot {
        number,
        start,
        end: start.saturating_add(length_ms),
        elapsed: now_ms - start,
    }
}

/// The sliding policy's count: `current` plus `previous` weighed by the part of the previous
/// window still inside one length back from the instant (`(length - elapsed) / length`), rounded
/// down; saturating at the `u64` maximum.
pub fn sliding(current: u64, previous: u64, length_ms: u64, elapsed_ms: u64) -> u64 {
    let inside = u128::from(length_ms.saturating_sub(elapsed_ms));
    let weighed = u128::from(previous) * inside / u128::from(length_ms);
    current.saturating_add(u64::try_from(weighed).unwrap_or(u64::MAX))
}

/// Whether the window `number` of `length_ms` ended `keep` or more windows before the one that
/// holds `now_ms`: what a sweep deletes.
pub fn expired(length_ms: u64, number: u64, keep: u64, now_ms: u64) -> bool {
    let current = now_ms / length_ms;
    number.saturating_add(keep) <= current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_never_look_like_names() {
        let key = key("api:client-7", 60_000, 29_000_000);
        assert_eq!(key, "\u{1f}w\u{1f}api:client-7\u{1f}60000\u{1f}29000000");
        assert!(is_window_key(&key));
        assert!(crate::name::validate(&key).is_err());
        assert_eq!(parse(&key), Some(("api:client-7", 60_000, 29_000_000)));
        // A name with spaces and colons, and one ending in digits.
        assert_eq!(parse(&super::key("a b:1", 1, 0)), Some(("a b:1", 1, 0)));
        for other in [
            "visits",
            "\u{1f}w\u{1f}",
            "\u{1f}w\u{1f}name\u{1f}60000",
            "\u{1f}w\u{1f}name\u{1f}0\u{1f}1",
            "\u{1f}w\u{1f}name\u{1f}6x\u{1f}1",
            "\u{1f}w\u{1f}name\u{1f}60\u{1f}-1",
            "\u{1f}w\u{1f}\u{1f}60\u{1f}1",
            "\u{1f}tally-note:cursor-key",
        ] {
            assert_eq!(parse(other), None, "{other:?}");
        }
    }

    /// The keys of one name and length sort together, and every window key before every name.
    #[test]
    fn keys_of_a_window_sort_together() {
        let mut keys = vec![
            key("a", 60_000, 10),
            key("a b", 60_000, 1),
            key("a", 600_000, 1),
            key("a", 60_000, 9),
            key("b", 1_000, 5),
            "a".to_string(),
            "!".to_string(),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                key("a", 60_000, 10),
                key("a", 60_000, 9),
                key("a", 600_000, 1),
                key("a b", 60_000, 1),
                key("b", 1_000, 5),
                "!".to_string(),
                "a".to_string(),
            ]
        );
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        assert_eq!(
            slot(60_000, 125_000),
            Slot {
                number: 2,
                start: 120_000,
                end: 180_000,
                elapsed: 5_000
            }
        );
        assert_eq!(slot(60_000, 120_000).number, 2);
        assert_eq!(slot(60_000, 119_999).number, 1);
        assert_eq!(slot(1, u64::MAX).end, u64::MAX);
    }

    #[test]
    fn sliding_weighs_the_previous_window() {
        // 25% into the window: three quarters of the previous one still count.
        assert_eq!(sliding(10, 100, 60_000, 15_000), 85);
        assert_eq!(sliding(10, 100, 60_000, 0), 110);
        assert_eq!(sliding(10, 100, 60_000, 59_999), 10);
        assert_eq!(sliding(u64::MAX, u64::MAX, 2, 0), u64::MAX);
    }

    #[test]
    fn sweeps_delete_what_hits_would_have() {
        // keep 2 at window 10: 9 and 10 stay, 8 goes, as the first hit of 10 deletes 8.
        let now = 10 * 60_000 + 1;
        assert!(!expired(60_000, 10, 2, now));
        assert!(!expired(60_000, 9, 2, now));
        assert!(expired(60_000, 8, 2, now));
        assert!(expired(60_000, 0, 2, now));
        assert!(!expired(60_000, 11, 2, now));
    }

    #[test]
    fn arguments_are_checked() {
        assert!(check_length(0).is_err());
        assert_eq!(check_length(1), Ok(1));
        assert!(check_length(MAX_LENGTH_MS + 1).is_err());
        assert!(check_keep(1).is_err());
        assert_eq!(check_keep(2), Ok(2));
        assert!(check_keep(1001).is_err());
        assert!(check_last(0).is_err());
        assert_eq!(check_last(1000), Ok(1000));
    }
}
