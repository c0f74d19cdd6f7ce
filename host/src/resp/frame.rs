//! Reading commands off the wire: RESP multi-bulk requests (`*2\r\n$4\r\nINCR\r\n$6\r\nvisits\r\n`,
//! what every client library sends) and inline commands (`INCR visits\r\n`, what a person types
//! into `nc` or `telnet`), as Redis reads them.
//!
//! The limits are checked on the headers, before the data they announce is buffered: a client
//! cannot make the server hold more than [`MAX_COMMAND_BYTES`] for one command.

/// The most arguments (the command name included) one command may have.
pub const MAX_ARGUMENTS: usize = 1024;

/// The longest bulk string (one argument) accepted, in bytes.
pub const MAX_BULK_BYTES: usize = 1 << 20;

/// The most bytes of arguments one command may announce in all: room for one argument at the
/// bulk limit and a full `MGET` of long names, while 10,000 clients cannot pin gigabytes.
pub const MAX_COMMAND_BYTES: usize = 2 << 20;

/// The longest inline command or header line (Redis's own inline limit).
const MAX_LINE_BYTES: usize = 64 << 10;

/// Input that is not a command: answered with `-ERR Protocol error: ...`, then the connection is
/// closed (Redis does the same; the stream cannot be resynchronised).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(String);

impl ProtocolError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// One parsed command: its arguments (the name first) and how many bytes of input it used.
/// `args` is empty for an empty inline line or `*0`, which Redis skips silently.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// The command name and its arguments, as sent.
    pub args: Vec<Vec<u8>>,
    /// Bytes of input consumed.
    pub used: usize,
}

/// The complete commands at the start of some input.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch {
    /// Each command's arguments, the name first (empty commands left out).
    pub commands: Vec<Vec<Vec<u8>>>,
    /// Bytes of input they used.
    pub used: usize,
    /// What stopped the batch, if input that is not a command did.
    pub error: Option<ProtocolError>,
}

/// Parses every complete command at the start of `input`, at most `max` of them, each once.
pub fn parse_batch(input: &[u8], max: usize) -> Batch {
    let mut batch = Batch {
        commands: Vec::new(),
        used: 0,
        error: None,
    };
    while batch.commands.len() < max {
        match parse(&input[batch.used..]) {
            Ok(Some(Frame { args, used })) => {
                batch.used += used;
                if !args.is_empty() {
                    batch.commands.push(args);
                }
            }
            Ok(None) => break,
            Err(error) => {
                batch.error = Some(error);
                break;
            }
        }
    }
    batch
}

/// Parses the first command in `input`: `Ok(None)` when more input is needed.
pub fn parse(input: &[u8]) -> Result<Option<Frame>, ProtocolError> {
    match input.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(input),
        Some(_) => parse_inline(input),
    }
}

/// The line starting at `from` without its `\r\n`, and where the next one starts.
fn line<'a>(
    input: &'a [u8],
    from: usize,
    what: &str,
) -> Result<Option<(&'a [u8], usize)>, ProtocolError> {
    let rest = &input[from..];
    match rest.iter().position(|&byte| byte == b'\n') {
        Some(end) if end > 0 && rest[end - 1] == b'\r' => {
            Ok(Some((&rest[..end - 1], from + end + 1)))
        }
        Some(_) => Err(ProtocolError::new(format!("{what} must end with CRLF"))),
        None if rest.len() > MAX_LINE_BYTES => Err(ProtocolError::new(format!("too big {what}"))),
        None => Ok(None),
    }
}

/// A header's decimal number, as Redis reads it (`string2ll`: an optional `-`, digits, no
/// leading zeros, nothing else).
fn header_number(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(super::number::strict_i64)
}

fn parse_multibulk(input: &[u8]) -> Result<Option<Frame>, ProtocolError> {
    let Some((header, mut at)) = line(input, 0, "mbulk count string")? else {
        return Ok(None);
    };
    let count = header_number(&header[1..])
        .ok_or_else(|| ProtocolError::new("invalid multibulk length"))?;
    if count <= 0 {
        return Ok(Some(Frame {
            args: Vec::new(),
            used: at,
        }));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > MAX_ARGUMENTS {
        return Err(ProtocolError::new(format!(
            "a command has at most {MAX_ARGUMENTS} arguments; this one announced {count}"
        )));
    }
    let mut args = Vec::with_capacity(count);
    let mut announced = 0_usize;
    for _ in 0..count {
        let Some((header, data)) = line(input, at, "bulk count string")? else {
            return Ok(None);
        };
        let Some((&b'$', digits)) = header.split_first() else {
            let got = header.first().map_or('?', |&byte| char::from(byte));
            return Err(ProtocolError::new(format!("expected '$', got '{got}'")));
        };
        let length = header_number(digits)
            .and_then(|length| usize::try_from(length).ok())
            .ok_or_else(|| ProtocolError::new("invalid bulk length"))?;
        if length > MAX_BULK_BYTES {
            return Err(ProtocolError::new(format!(
                "a bulk string has at most {MAX_BULK_BYTES} bytes; this one announced {length}"
            )));
        }
        announced += length;
        if announced > MAX_COMMAND_BYTES {
            return Err(ProtocolError::new(format!(
                "a command has at most {MAX_COMMAND_BYTES} bytes of arguments"
            )));
        }
        let end = data + length;
        if input.len() < end + 2 {
            return Ok(None);
        }
        if &input[end..end + 2] != b"\r\n" {
            return Err(ProtocolError::new("a bulk string must end with CRLF"));
        }
        args.push(input[data..end].to_vec());
        at = end + 2;
    }
    Ok(Some(Frame { args, used: at }))
}

/// An inline command, split as Redis splits it ([`super::inline`]), ended by `\n` (with or
/// without `\r`).
fn parse_inline(input: &[u8]) -> Result<Option<Frame>, ProtocolError> {
    let Some(end) = input.iter().position(|&byte| byte == b'\n') else {
        return if input.len() > MAX_LINE_BYTES {
            Err(ProtocolError::new("too big inline request"))
        } else {
            Ok(None)
        };
    };
    let text = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
    let args = super::inline::split(text).map_err(ProtocolError::new)?;
    if args.len() > MAX_ARGUMENTS {
        return Err(ProtocolError::new(format!(
            "a command has at most {MAX_ARGUMENTS} arguments"
        )));
    }
    Ok(Some(Frame {
        args,
        used: end + 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|word| word.as_bytes().to_vec()).collect()
    }

    /// A multi-bulk command parses whole, and every shorter prefix asks for more input.
    #[test]
    fn multibulk_parses_and_waits_for_the_rest() {
        let input = b"*2\r\n$4\r\nINCR\r\n$6\r\nvisits\r\n*1\r\n$4\r\nPING\r\n";
        let first = parse(input).unwrap().unwrap();
        assert_eq!(first.args, args(&["INCR", "visits"]));
        assert_eq!(first.used, 26);
        assert_eq!(parse(&input[26..]).unwrap().unwrap().args, args(&["PING"]));
        for cut in 0..26 {
            assert_eq!(parse(&input[..cut]), Ok(None), "prefix of {cut} bytes");
        }
    }

    /// Binary data (CRLF inside a bulk string) is taken by length, not by line.
    #[test]
    fn bulk_strings_are_binary() {
        let frame = parse(b"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(frame.args[1], b"a\r\nb");
    }

    /// Inline commands split on spaces; empty lines and `*0` are skipped.
    #[test]
    fn inline_commands_and_empty_ones() {
        let frame = parse(b"INCRBY  visits 5\r\n").unwrap().unwrap();
        assert_eq!(frame.args, args(&["INCRBY", "visits", "5"]));
        assert_eq!(frame.used, 18);
        assert_eq!(parse(b"PING\n").unwrap().unwrap().args, args(&["PING"]));
        assert_eq!(parse(b"\r\n").unwrap().unwrap().args, Vec::<Vec<u8>>::new());
        assert_eq!(parse(b"*0\r\n").unwrap().unwrap().used, 4);
        assert_eq!(parse(b"PING"), Ok(None));
    }

    /// A batch holds every complete command, up to its maximum, and stops at garbage.
    #[test]
    fn batches_stop_at_the_maximum_or_at_garbage() {
        let input = b"PING\r\n\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI";
        let batch = parse_batch(input, 10);
        assert_eq!(batch.commands, vec![args(&["PING"]), args(&["PING"])]);
        assert_eq!(batch.used, 22);
        assert_eq!(batch.error, None);
        assert_eq!(parse_batch(input, 1).used, 6);
        let batch = parse_batch(b"PING\r\n*x\r\n", 10);
        assert_eq!(batch.commands, vec![args(&["PING"])]);
        assert_eq!(batch.used, 6);
        assert!(batch.error.is_some());
    }

    /// Limits are refused from the header, before any of the data arrives.
    #[test]
    fn limits_are_refused_from_the_header() {
        assert_eq!(
            parse(b"*1025\r\n").unwrap_err().to_string(),
            "Protocol error: a command has at most 1024 arguments; this one announced 1025"
        );
        assert_eq!(
            parse(b"*2\r\n$3\r\nSET\r\n$1048577\r\n")
                .unwrap_err()
                .to_string(),
            "Protocol error: a bulk string has at most 1048576 bytes; this one announced 1048577"
        );
        assert_eq!(parse(b"*1\r\n$1048576\r\n"), Ok(None));
        let mut big = b"*4\r\n".to_vec();
        for _ in 0..3 {
            big.extend_from_slice(b"$1048576\r\n");
            big.extend(std::iter::repeat_n(b'x', 1 << 20));
            big.extend_from_slice(b"\r\n");
        }
        assert_eq!(
            parse(&big).unwrap_err().to_string(),
            "Protocol error: a command has at most 2097152 bytes of arguments"
        );
        assert_eq!(
            parse(&vec![b'x'; MAX_LINE_BYTES + 1])
                .unwrap_err()
                .to_string(),
            "Protocol error: too big inline request"
        );
    }

    /// Garbage in a multi-bulk request is a protocol error with Redis's words.
    #[test]
    fn garbage_is_a_protocol_error() {
        for (input, message) in [
            (&b"*x\r\n"[..], "Protocol error: invalid multibulk length"),
            (b"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"),
            (b"*1\r\n$-3\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$01\r\nx\r\n", "Protocol error: invalid bulk length"),
            (
                b"*1\r\n$4\r\nPINGxx",
                "Protocol error: a bulk string must end with CRLF",
            ),
            (
                b"*1\n",
                "Protocol error: mbulk count string must end with CRLF",
            ),
        ] {
            assert_eq!(parse(input).unwrap_err().to_string(), message, "{input:?}");
        }
    }
}
