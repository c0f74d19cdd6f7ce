//! A blocking RESP client that shows answers exactly as they came over the wire (`:1\r\n`,
//! `-ERR ...\r\n`), so tests can compare tally's bytes with Redis's. It reads one whole answer
//! per command (nested arrays and maps included) and nothing more.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One connection to a RESP server.
pub struct RespClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RespClient {
    /// Connects, with `timeout` on every read and write.
    pub fn connect(address: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// The multi-bulk encoding of one command.
    pub fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Sends raw bytes (several commands, or garbage).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Sends one command and returns its answer as it came, as text.
    pub fn command(&mut self, args: &[&str]) -> io::Result<String> {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        self.send_raw(&Self::encode(&args))?;
        self.read_reply()
    }

    /// Reads one whole answer, as text.
    pub fn read_reply(&mut self) -> io::Result<String> {
        let mut raw = Vec::new();
        self.read_into(&mut raw)?;
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }

    /// Whether the server has closed the connection (reads end of file).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0_u8];
        matches!(self.reader.read(&mut byte), Ok(0))
    }

    fn read_into(&mut self, raw: &mut Vec<u8>) -> io::Result<()> {
        let start = raw.len();
        if self.reader.read_until(b'\n', raw)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let line = String::from_utf8_lossy(&raw[start + 1..raw.len() - 2]).into_owned();
        let number = || {
            line.parse::<i64>()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, line.clone()))
        };
        match raw[start] {
            b'$' | b'=' => {
                let length = number()?;
                if length >= 0 {
                    let mut data = vec![0; usize::try_from(length).unwrap_or(0) + 2];
                    self.reader.read_exact(&mut data)?;
                    raw.extend_from_slice(&data);
                }
            }
            b'*' | b'~' | b'>' => {
                for _ in 0..number()?.max(0) {
                    self.read_into(raw)?;
                }
            }
            b'%' => {
                for _ in 0..2 * number()?.max(0) {
                    self.read_into(raw)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
