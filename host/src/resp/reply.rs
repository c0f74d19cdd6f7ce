//! Answers on the wire, in the protocol version the client chose with `HELLO` (RESP2 by
//! default, RESP3 after `HELLO 3`). The two differ here only in how nothing (`$-1` / `_`) and a
//! map (a flat array / `%`) are written.

/// The protocol version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, every client's default.
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The number `HELLO` takes and answers.
    pub fn version(self) -> i64 {
        match self {
            Self::Resp2 => 2,
            Self::Resp3 => 3,
        }
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(&'static str),
    /// `-ERR ...`: the whole line after `-`, its first word the error's kind.
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$5\r\nhello`
    Bulk(Vec<u8>),
    /// Nothing: a missing counter (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// `*N` and its elements.
    Array(Vec<Reply>),
    /// `%N` in RESP3, a flat array of keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`
    pub const OK: Self = Self::Simple("OK");

    /// An error of kind `ERR` with `message`.
    pub fn err(message: impl std::fmt::Display) -> Self {
        Self::Error(format!("ERR {message}"))
    }

    /// A bulk string of text.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Bulk(text.into().into_bytes())
    }

    /// Whether this answer is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error(_))
    }

    /// Appends the encoding of this answer to `out`.
    pub fn write(&self, out: &mut Vec<u8>, protocol: Protocol) {
        match self {
            Self::Simple(text) => line(out, b'+', text.as_bytes()),
            // An error is one line: a line break inside would end it early and desynchronise the
            // client, so any that a message carries become spaces.
            Self::Error(text) => {
                let text: String = text
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                line(out, b'-', text.as_bytes());
            }
            Self::Integer(value) => line(out, b':', value.to_string().as_bytes()),
            Self::Bulk(bytes) => {
                line(out, b'$', bytes.len().to_string().as_bytes());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Self::Nil => match protocol {
                Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
            },
            Self::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.write(out, protocol);
                }
            }
            Self::Map(entries) => {
                match protocol {
                    Protocol::Resp2 => line(out, b'*', (2 * entries.len()).to_string().as_bytes()),
                    Protocol::Resp3 => line(out, b'%', entries.len().to_string().as_bytes()),
                }
                for (key, value) in entries {
                    key.write(out, protocol);
                    value.write(out, protocol);
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: &Reply, protocol: Protocol) -> String {
        let mut out = Vec::new();
        reply.write(&mut out, protocol);
        String::from_utf8(out).unwrap()
    }

    /// Each kind of answer in both protocol versions.
    #[test]
    fn encodes_resp2_and_resp3() {
        let both = |reply: Reply, expected: &str| {
            assert_eq!(encoded(&reply, Protocol::Resp2), expected);
            assert_eq!(encoded(&reply, Protocol::Resp3), expected);
        };
        both(Reply::OK, "+OK\r\n");
        both(Reply::Integer(-3), ":-3\r\n");
        both(
            Reply::text("18446744073709551615"),
            "$20\r\n18446744073709551615\r\n",
        );
        both(Reply::err("bad\r\nthing"), "-ERR bad  thing\r\n");
        both(
            Reply::Array(vec![Reply::Integer(1), Reply::text("a")]),
            "*2\r\n:1\r\n$1\r\na\r\n",
        );
        assert_eq!(encoded(&Reply::Nil, Protocol::Resp2), "$-1\r\n");
        assert_eq!(encoded(&Reply::Nil, Protocol::Resp3), "_\r\n");
        let map = Reply::Map(vec![(Reply::text("proto"), Reply::Integer(3))]);
        assert_eq!(
            encoded(&map, Protocol::Resp2),
            "*2\r\n$5\r\nproto\r\n:3\r\n"
        );
        assert_eq!(
            encoded(&map, Protocol::Resp3),
            "%1\r\n$5\r\nproto\r\n:3\r\n"
        );
    }
}
