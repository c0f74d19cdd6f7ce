//! `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`: one page of the component's listing, `COUNT`
//! long, filtered by the pattern. Redis clients treat a cursor as a number (and stop at 0),
//! while a listing's position is the store's cursor: the number names it in a note the store
//! keeps ([`crate::list_cursors`]), so a scan goes on over another connection, on another
//! server of the same store, or after a restart.

use super::{
    CommandError, Context, InTransaction, Reading, Reply, Running, Spec, failed, not_an_integer,
    syntax_error, text,
};
use crate::list_cursors::CursorRefused;
use crate::resp::glob;
use crate::resp::number::{strict_i64, strict_u64};

/// `SCAN`
pub(super) const SPEC: Spec = Spec {
    name: "scan",
    arity: -2,
    flags: &["readonly"],
    keys: (0, 0, 0),
    categories: &["@keyspace", "@read", "@slow"],
    stages_writes: false,
    in_transaction: InTransaction::Refuse,
    run,
};

/// A parsed `SCAN`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Scan {
    /// 0 to start; otherwise a number an earlier `SCAN` answered.
    pub cursor: u64,
    /// Only names matching this glob.
    pub pattern: Option<Vec<u8>>,
    /// How many counters to look at (a hint, as in Redis).
    pub count: u32,
    /// `false` after `TYPE` with a type other than `string`: nothing matches.
    pub strings: bool,
}

pub(super) fn parse(args: &[Vec<u8>]) -> Result<Scan, Reply> {
    let cursor = text(&args[1])
        .and_then(strict_u64)
        .ok_or_else(|| Reply::err("invalid cursor"))?;
    let (mut pattern, mut count, mut strings) = (None, 10, true);
    let mut options = args[2..].iter();
    while let Some(option) = options.next() {
        let value = options.next().ok_or_else(syntax_error)?;
        match String::from_utf8_lossy(option)
            .to_ascii_uppercase()
            .as_str()
        {
            "MATCH" => pattern = Some(value.clone()),
            "COUNT" => {
                let asked = text(value)
                    .and_then(strict_i64)
                    .ok_or_else(not_an_integer)?;
                if asked < 1 {
                    return Err(syntax_error());
                }
                count = u32::try_from(asked).unwrap_or(u32::MAX);
            }
            "TYPE" => strings = value.eq_ignore_ascii_case(b"string"),
            _ => return Err(syntax_error()),
        }
    }
    Ok(Scan {
        cursor,
        pattern,
        count,
        strings,
    })
}

fn run<'a>(args: &'a [Vec<u8>], ctx: &'a mut Context<'_, '_>) -> Running<'a> {
    Box::pin(async move {
        let scan = parse(args)?;
        let from =
            match scan.cursor {
                0 => None,
                number => Some(ctx.shared.cursors.scan_position(number).await.map_err(
                    |refused| match refused {
                        CursorRefused::Unknown(reason) => CommandError::from(Reply::err(reason)),
                        CursorRefused::Failed(failure) => failed(failure, Reading::Other),
                    },
                )?),
            };
        let limit = scan.count.clamp(1, tally_guest::page::MAX_LIMIT);
        let page = ctx
            .call(Reading::Other, false, async |counter| {
                counter.list_from(from.clone(), limit).await
            })
            .await?;
        let next = match &page.next {
            None => 0,
            Some(position) => ctx
                .shared
                .cursors
                .scan_number(position)
                .await
                .map_err(|failure| failed(failure, Reading::Other))?,
        };
        let names = page
            .counters
            .into_iter()
            .filter(|(name, _)| {
                scan.strings
                    && scan
                        .pattern
                        .as_deref()
                        .is_none_or(|pattern| glob::matches(pattern, name.as_bytes()))
            })
            .map(|(name, _)| Reply::text(name))
            .collect();
        Ok(Reply::Array(vec![
            Reply::text(next.to_string()),
            Reply::Array(names),
        ]))
    })
}
