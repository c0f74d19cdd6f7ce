//! The glob patterns of `KEYS` and `SCAN ... MATCH`, with Redis's rules (its `stringmatchlen`):
//! `*` any run of bytes, `?` one byte, `[abc]`, `[^abc]` and `[a-z]` one byte of a set, and `\`
//! to take the next byte literally. Matching is on bytes, as Redis matches keys.

/// Whether `text` matches `pattern`. Time is at most the product of their lengths whatever the
/// pattern (a star backtracks only to the latest star), so a pattern of many stars cannot stall
/// the server.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let tokens = tokens(pattern);
    let (mut at, mut read) = (0, 0);
    // The latest star's token index and the text position it is currently extended to.
    let mut star: Option<(usize, usize)> = None;
    while read < text.len() {
        match tokens.get(at) {
            Some(Token::Star) => {
                star = Some((at, read));
                at += 1;
            }
            Some(token) if token.accepts(text[read]) => {
                at += 1;
                read += 1;
            }
            _ => match star {
                Some((star_at, star_read)) => {
                    at = star_at + 1;
                    read = star_read + 1;
                    star = Some((star_at, star_read + 1));
                }
                None => return false,
            },
        }
    }
    tokens[at.min(tokens.len())..]
        .iter()
        .all(|token| matches!(token, Token::Star))
}

/// One element of a pattern; every one but [`Token::Star`] matches exactly one byte.
enum Token {
    Star,
    Any,
    Byte(u8),
    /// A `[...]` set, as 256 bits, already negated if it started with `^`.
    Set([u64; 4]),
}

impl Token {
    fn accepts(&self, byte: u8) -> bool {
        match self {
            Self::Star => true,
            Self::Any => true,
            Self::Byte(expected) => *expected == byte,
            Self::Set(bits) => bits[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0,
        }
    }
}

fn tokens(pattern: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut at = 0;
    while at < pattern.len() {
        let token = match pattern[at] {
            b'*' => Token::Star,
            b'?' => Token::Any,
            b'\\' if at + 1 < pattern.len() => {
                at += 1;
                Token::Byte(pattern[at])
            }
            b'[' => {
                let (set, next) = set(pattern, at + 1);
                at = next;
                tokens.push(Token::Set(set));
                continue;
            }
            byte => Token::Byte(byte),
        };
        tokens.push(token);
        at += 1;
    }
    tokens
}

/// The set that starts at `from` (right after a `[`), and where the pattern goes on after its
/// `]`. An unclosed set runs to the end of the pattern, as in Redis.
fn set(pattern: &[u8], from: usize) -> ([u64; 4], usize) {
    let mut bits = [0_u64; 4];
    let mut add = |low: u8, high: u8| {
        for byte in low..=high {
            bits[usize::from(byte >> 6)] |= 1 << (byte & 63);
        }
    };
    let negated = pattern.get(from) == Some(&b'^');
    let mut at = from + usize::from(negated);
    while at < pattern.len() && pattern[at] != b']' {
        if pattern[at] == b'\\' && at + 1 < pattern.len() {
            add(pattern[at + 1], pattern[at + 1]);
            at += 2;
        } else if at + 2 < pattern.len() && pattern[at + 1] == b'-' && pattern[at + 2] != b']' {
            let (a, b) = (pattern[at], pattern[at + 2]);
            add(a.min(b), a.max(b));
            at += 3;
        } else {
            add(pattern[at], pattern[at]);
            at += 1;
        }
    }
    if negated {
        bits = bits.map(|word| !word);
    }
    (bits, at + 1)
}

#[cfg(test)]
mod tests {
    use super::matches;

    /// Redis's pattern rules, case by case.
    #[test]
    fn redis_glob_rules() {
        let yes = |pattern: &str, text: &str| {
            assert!(
                matches(pattern.as_bytes(), text.as_bytes()),
                "{pattern} ~ {text}"
            )
        };
        let no = |pattern: &str, text: &str| {
            assert!(
                !matches(pattern.as_bytes(), text.as_bytes()),
                "{pattern} !~ {text}"
            )
        };
        yes("*", "");
        yes("*", "anything");
        yes("user:*", "user:42");
        no("user:*", "users:42");
        yes("h?llo", "hello");
        no("h?llo", "hllo");
        yes("h*llo", "heeeello");
        yes("h**l*o", "hello");
        yes("h[ae]llo", "hallo");
        no("h[ae]llo", "hillo");
        yes("h[^e]llo", "hallo");
        no("h[^e]llo", "hello");
        yes("h[a-b]llo", "hbllo");
        yes("h[b-a]llo", "hallo");
        no("h[a-b]llo", "hcllo");
        yes("a\\*b", "a*b");
        no("a\\*b", "axb");
        yes("[\\]]", "]");
        yes("x[ab", "xa");
        no("abc", "abcd");
        no("abcd", "abc");
        yes("*:visits", "user:1:visits");
        no("*:visits", "user:1:visit");
        yes("a*b*c", "aXbYbZc");
        no("a*b*c", "aXbYbZ");
    }

    /// Many stars against a long key get an answer: a naive backtracking matcher would take
    /// exponential time here and never finish.
    #[test]
    fn many_stars_get_an_answer() {
        let pattern = "*a".repeat(500) + "b";
        let text = "a".repeat(256);
        assert!(!matches(pattern.as_bytes(), text.as_bytes()));
        assert!(matches(
            pattern.as_bytes(),
            (text.repeat(2) + "b").as_bytes()
        ));
    }
}
