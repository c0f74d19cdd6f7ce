//! Inline commands (`INCR "page views"` typed into `telnet` or `nc`), split into arguments as
//! Redis splits them (its `sdssplitargs`): words separated by whitespace; `"..."` with the
//! escapes `\n`, `\r`, `\t`, `\b`, `\a`, `\xHH` and `\` before any other character; `'...'` with
//! only `\'`; a closing quote must end its argument. Anything else (an unclosed quote, text
//! right after a closing one) is Redis's `unbalanced quotes` protocol error.

/// Why a line is not a command.
pub const UNBALANCED: &str = "unbalanced quotes in request";

/// The arguments of one inline line (without its line ending).
pub fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut args = Vec::new();
    let mut rest = line;
    loop {
        rest = skip_space(rest);
        if rest.is_empty() {
            return Ok(args);
        }
        let (arg, after) = argument(rest)?;
        args.push(arg);
        rest = after;
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn skip_space(text: &[u8]) -> &[u8] {
    let start = text.iter().position(|&byte| !is_space(byte));
    &text[start.unwrap_or(text.len())..]
}

/// One argument from the start of `text` (which is not a space), and what follows it.
fn argument(text: &[u8]) -> Result<(Vec<u8>, &[u8]), &'static str> {
    let mut arg = Vec::new();
    let mut at = 0;
    while let Some(&byte) = text.get(at) {
        match byte {
            b'"' => at = double_quoted(text, at + 1, &mut arg)?,
            b'\'' => at = single_quoted(text, at + 1, &mut arg)?,
            // Redis ends a bare word at a NUL too.
            byte if is_space(byte) || byte == 0 => break,
            byte => {
                arg.push(byte);
                at += 1;
            }
        }
    }
    Ok((arg, &text[at..]))
}

/// The closing quote at `at` must end the argument: the index after it.
fn closed(text: &[u8], at: usize) -> Result<usize, &'static str> {
    match text.get(at + 1) {
        Some(&next) if !is_space(next) => Err(UNBALANCED),
        _ => Ok(at + 1),
    }
}

/// A `"..."` whose content starts at `at`: appends it, unescaped, and returns the index after
/// the closing quote.
fn double_quoted(text: &[u8], mut at: usize, arg: &mut Vec<u8>) -> Result<usize, &'static str> {
    loop {
        match *text.get(at).ok_or(UNBALANCED)? {
            b'"' => return closed(text, at),
            b'\\' if text.get(at + 1) == Some(&b'x') => match hex_byte(text.get(at + 2..at + 4)) {
                Some(byte) => {
                    arg.push(byte);
                    at += 4;
                }
                None => {
                    arg.push(b'x');
                    at += 2;
                }
            },
            b'\\' if at + 1 < text.len() => {
                arg.push(match text[at + 1] {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                at += 2;
            }
            byte => {
                arg.push(byte);
                at += 1;
            }
        }
    }
}

/// A `'...'` whose content starts at `at`: appends it (only `\'` is an escape) and returns the
/// index after the closing quote.
fn single_quoted(text: &[u8], mut at: usize, arg: &mut Vec<u8>) -> Result<usize, &'static str> {
    loop {
        match *text.get(at).ok_or(UNBALANCED)? {
            b'\'' => return closed(text, at),
            b'\\' if text.get(at + 1) == Some(&b'\'') => {
                arg.push(b'\'');
                at += 2;
            }
            byte => {
                arg.push(byte);
                at += 1;
            }
        }
    }
}

/// Two hex digits as a byte.
fn hex_byte(digits: Option<&[u8]>) -> Option<u8> {
    let digits = std::str::from_utf8(digits?).ok()?;
    if digits.len() == 2 && digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        u8::from_str_radix(digits, 16).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{UNBALANCED, split};

    fn words(line: &str) -> Result<Vec<String>, &'static str> {
        split(line.as_bytes()).map(|args| {
            args.into_iter()
                .map(|arg| String::from_utf8(arg).unwrap())
                .collect()
        })
    }

    /// Words, quotes that join words, escapes, quotes in the middle of a word.
    #[test]
    fn splits_as_redis_does() {
        assert_eq!(
            words("  INCRBY  visits 5 ").unwrap(),
            ["INCRBY", "visits", "5"]
        );
        assert_eq!(
            words(r#"SET "page views" 3"#).unwrap(),
            ["SET", "page views", "3"]
        );
        assert_eq!(
            words(r#"ECHO "a\"b\\c\n\x41\x4g""#).unwrap(),
            ["ECHO", "a\"b\\c\nAx4g"]
        );
        assert_eq!(words(r"ECHO 'it\'s \n'").unwrap(), ["ECHO", "it's \\n"]);
        assert_eq!(words(r#"ECHO ab"c d"e"#), Err(UNBALANCED));
        assert_eq!(words(r#"ECHO ab"c d""#).unwrap(), ["ECHO", "abc d"]);
        assert_eq!(words(r#"ECHO """#).unwrap(), ["ECHO", ""]);
        assert_eq!(words("").unwrap(), Vec::<String>::new());
    }

    /// An unclosed quote, or text right after a closing one, is refused.
    #[test]
    fn unbalanced_quotes_are_refused() {
        for line in [
            r#"INCR "a"#,
            r#"INCR "a"b"#,
            "INCR 'a",
            "INCR 'a'b",
            r#"INCR "a\"#,
        ] {
            assert_eq!(words(line), Err(UNBALANCED), "{line}");
        }
    }
}
