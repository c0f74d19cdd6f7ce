//! `tally hit`, `tally history` and `tally sweep`: counters that reset, from the command line.
//!
//! `hit` exits 0 within the limit and 5 over it (the hit is counted either way), so a shell
//! script can rate-limit a job: `tally hit backups --window 1d --limit 3 || exit 0`.

use super::{Failure, GlobalArgs, OnceArg};
use crate::bindings::{Policy, WindowSpec};
use crate::server::windows::DEFAULT_KEEP;
use crate::service::{Hit, Service};
use crate::window_length;
use anyhow::Context;
use clap::Args;
use std::io::Write;

/// `tally hit` options.
#[derive(Debug, Args)]
pub struct HitArgs {
    /// The name: 1-256 bytes, no control characters (windows and counters may share names).
    name: String,
    /// The window's length: 500ms, 30s, 1m, 1h, 1d (windows are aligned to the Unix epoch).
    #[arg(long, env = "TALLY_WINDOW", value_name = "LENGTH", value_parser = window_length::parse)]
    window: u64,
    /// The most the window allows, 0 to 18446744073709551615.
    #[arg(long, env = "TALLY_LIMIT", value_name = "N", allow_negative_numbers = true,
          value_parser = super::whole_number)]
    limit: u64,
    /// What this hit counts for (0: read the window without counting).
    #[arg(long, env = "TALLY_COST", default_value_t = 1, value_name = "N",
          allow_negative_numbers = true, value_parser = super::whole_number)]
    cost: u64,
    /// Check the limit against the current window plus the previous one weighed by how much of
    /// it is still within one window's length (the sliding window counter), not the current
    /// window alone.
    #[arg(long, env = "TALLY_SLIDING", value_parser = clap::builder::BoolishValueParser::new())]
    sliding: bool,
    /// How many windows to keep, the current one included (2-1000): the first hit of a window
    /// deletes the one this many windows before it. Give a name the same --keep everywhere.
    #[arg(long, env = "TALLY_KEEP", default_value_t = DEFAULT_KEEP, value_name = "N")]
    keep: u32,
    #[command(flatten)]
    once: OnceArg,
}

/// `tally history` options.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The name.
    name: String,
    /// The window's length: 500ms, 30s, 1m, 1h, 1d.
    #[arg(long, env = "TALLY_WINDOW", value_name = "LENGTH", value_parser = window_length::parse)]
    window: u64,
    /// How many windows, up to the current one (1-1000).
    #[arg(long, env = "TALLY_LAST", default_value_t = DEFAULT_KEEP, value_name = "N")]
    last: u32,
}

/// `tally sweep` options.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Keep this many windows of every name, the current one included (2-1000); delete the
    /// older ones.
    #[arg(long, env = "TALLY_KEEP", default_value_t = DEFAULT_KEEP, value_name = "N")]
    keep: u32,
}

/// The counter commands' service, on the clock the options name.
fn service(global: &GlobalArgs, only_reads: bool) -> Result<Service, Failure> {
    Ok(super::counter::service(global, only_reads)?.with_clock(global.clock()))
}

/// Counts a hit and prints what it came to; over the limit, exits 5.
pub(super) fn hit(global: &GlobalArgs, args: HitArgs) -> Result<(), Failure> {
    let service = service(global, false)?;
    let hit = Hit {
        name: args.name,
        spec: WindowSpec {
            length_ms: args.window,
            keep: args.keep,
        },
        cost: args.cost,
        limit: args.limit,
        policy: if args.sliding {
            Policy::Sliding
        } else {
            Policy::Fixed
        },
    };
    let key = args.once.idempotency_key;
    let done = super::block_on(async { Ok(service.hit(key.as_ref(), &hit).await?) })?;
    let outcome = done.value;
    let now_ms = service.now_ms()?;
    let window = window_length::format(hit.spec.length_ms);
    let mut out = std::io::stdout().lock();
    let printed = if global.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "name": hit.name,
                "window": window,
                "count": outcome.count,
                "used": outcome.used,
                "limit": hit.limit,
                "allowed": outcome.allowed,
                "remaining": outcome.remaining,
                "window_start": outcome.window_start,
                "resets_at": outcome.resets_at,
            })
        )
    } else {
        let resets_in = outcome.resets_at.saturating_sub(now_ms).div_ceil(1000);
        if outcome.allowed {
            writeln!(
                out,
                "allowed: {} of {} per {window}, {} left, resets in {resets_in} s",
                outcome.used, hit.limit, outcome.remaining
            )
        } else {
            writeln!(
                out,
                "limited: {} of {} per {window} (counted), resets in {resets_in} s",
                outcome.used, hit.limit
            )
        }
    };
    printed.context("writing to standard output")?;
    if done.replayed && !global.json {
        eprintln!(
            "tally: the idempotency key {} was used for this hit before: printing its first \
             answer, nothing counted now",
            key.as_ref().map_or("", |key| key.as_str())
        );
    }
    if outcome.allowed {
        Ok(())
    } else {
        drop(out);
        Err(Failure::Limited)
    }
}

/// Prints the counts of a name's last windows, oldest first: `START<TAB>COUNT` per line, the
/// window's start in UTC (RFC 3339).
pub(super) fn history(global: &GlobalArgs, args: HistoryArgs) -> Result<(), Failure> {
    let service = service(global, true)?;
    let counts = super::block_on(async {
        Ok(service
            .history(&args.name, args.window, args.last)
            .await?
            .value)
    })?;
    let now_ms = service.now_ms()?;
    let current = now_ms / args.window;
    let first = current.saturating_sub(counts.len().saturating_sub(1) as u64);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if global.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "name": args.name,
                "window": window_length::format(args.window),
                "counts": counts,
            })
        )
        .context("writing to standard output")?;
    } else {
        for (offset, count) in counts.iter().enumerate() {
            let start = (first + offset as u64).saturating_mul(args.window);
            writeln!(out, "{}\t{count}", utc(start)).context("writing to standard output")?;
        }
    }
    out.flush().context("writing to standard output")?;
    Ok(())
}

/// Deletes the windows that ended `--keep` windows ago, and says how many keys went.
pub(super) fn sweep(global: &GlobalArgs, args: &SweepArgs) -> Result<(), Failure> {
    let service = service(global, false)?;
    let removed = super::block_on(async { Ok(service.sweep(args.keep).await?) })?;
    if global.json {
        println!("{}", serde_json::json!({ "removed": removed }));
    } else {
        println!("swept {}", super::plural(removed, "window key"));
    }
    Ok(())
}

/// `ms` since the Unix epoch as an RFC 3339 UTC time (`2026-12-06T21:15:00Z`; milliseconds
/// shown when there are any).
pub fn utc(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    );
    let millis = match ms % 1000 {
        0 => String::new(),
        millis => format!(".{millis:03}"),
    };
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{millis}Z")
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_591_700_500), "2026-12-06T21:15:00.500Z");
        assert_eq!(utc(4_102_444_799_000), "2099-12-31T23:59:59Z");
    }
}
