//! A minimal blocking HTTP/1.1 keep-alive client: enough to drive `tally serve` from the tests,
//! with exact control over connections and nothing between the caller and the socket.
//!
//! It sends `Content-Length` bodies and reads responses framed by `Content-Length` (what the
//! server sends); it is not a general-purpose client.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One persistent connection to a server.
pub struct Client {
    reader: BufReader<TcpStream>,
    host: String,
}

/// A response: its status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The headers, names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Response {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl Client {
    /// Connects to `address`; every read and write gives up after `timeout`.
    pub fn connect(address: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
            host: address.to_string(),
        })
    }

    /// Sends one request on this connection and reads the whole response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<Response> {
        self.request_with_headers(method, path, None, body)
    }

    /// Like [`Client::request`], with extra header lines (`Name: value`, CRLF-separated).
    pub fn request_with_headers(
        &mut self,
        method: &str,
        path: &str,
        headers: Option<&str>,
        body: Option<&str>,
    ) -> io::Result<Response> {
        let body = body.unwrap_or("");
        let extra = headers.map_or_else(String::new, |headers| format!("{headers}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             {extra}Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes())?;

        let mut line = String::new();
        self.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
        let mut length = 0;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.to_ascii_lowercase(), value.trim().to_string());
                if name == "content-length" {
                    length = value
                        .parse()
                        .map_err(|_| invalid(format!("bad content-length {value:?}")))?;
                }
                headers.push((name, value));
            }
        }
        // The answer to HEAD has headers only, whatever Content-Length says (RFC 9110 9.3.2).
        if method == "HEAD" {
            length = 0;
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        let body = String::from_utf8(body).map_err(|_| invalid("body is not UTF-8".into()))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn read_line(&mut self, line: &mut String) -> io::Result<()> {
        if self.reader.read_line(line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(())
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
