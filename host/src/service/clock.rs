//! Where "now" comes from for windows: the system's wall clock, or a file a test (or a replay of
//! a log) writes the time into. The component reads no clock; the host passes it the time.

use crate::failure::Failure;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The time a hit is counted at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system's wall clock: every process on a store agrees on the windows up to the skew
    /// of their machines' clocks (NTP keeps it to milliseconds).
    #[default]
    System,
    /// The time written in a file, milliseconds since the Unix epoch as decimal text, read at
    /// every call (`--clock-file`): tests move it across a window's end at will.
    File(PathBuf),
}

impl Clock {
    /// Milliseconds since the Unix epoch, now.
    pub fn now_ms(&self) -> Result<u64, Failure> {
        match self {
            Self::System => {
                let since = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| {
                    Failure::Misconfigured(
                        "the system clock is set before 1970; set it right, windows count from \
                         the Unix epoch"
                            .into(),
                    )
                })?;
                Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
            }
            Self::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    Failure::Misconfigured(format!(
                        "cannot read the clock file {}: {error}; write the time there in \
                         milliseconds since the Unix epoch, or leave out --clock-file",
                        path.display()
                    ))
                })?;
                text.trim().parse().map_err(|_| {
                    Failure::Misconfigured(format!(
                        "the clock file {} holds {:?}, not a time in milliseconds since the Unix \
                         epoch",
                        path.display(),
                        text.trim()
                    ))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_file_is_read_at_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        let clock = Clock::File(path.clone());
        assert!(matches!(clock.now_ms(), Err(Failure::Misconfigured(_))));
        std::fs::write(&path, "120000\n").unwrap();
        assert_eq!(clock.now_ms().unwrap(), 120_000);
        std::fs::write(&path, "179999").unwrap();
        assert_eq!(clock.now_ms().unwrap(), 179_999);
        std::fs::write(&path, "soon").unwrap();
        let Err(Failure::Misconfigured(message)) = clock.now_ms() else {
            panic!("a clock file without a time is misconfigured");
        };
        assert!(message.contains("holds \"soon\""), "{message}");
        assert!(Clock::System.now_ms().unwrap() > 1_700_000_000_000);
    }
}
