//! A throwaway `redis-server` on a free loopback port, with its data in a temporary directory:
//! what the Redis tests run on. Killed when dropped.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` with persistence off unless `extra_args` turn it on, and waits until
    /// it accepts connections. Tests start servers in parallel, so two may pick the same free
    /// port: the loser exits, and its test must not talk to the winner. A server is only taken
    /// once it says its data directory is this one's; otherwise it starts again on another port.
    pub fn start(extra_args: &[&str]) -> Result<Self> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::start_once(extra_args)? {
                Some(server) => return Ok(server),
                None if attempts < 5 => continue,
                None => bail!("redis-server lost its port to another process 5 times"),
            }
        }
    }

    /// One try on one free port; `None` when another process holds that port.
    fn start_once(extra_args: &[&str]) -> Result<Option<Self>> {
        let data = tempfile::tempdir().context("creating a directory for redis-server")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let args: Vec<String> = extra_args.iter().map(|arg| arg.to_string()).collect();
        let child = spawn(port, data.path(), &args)?;
        let mut server = Self {
            child,
            port,
            data,
            args,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if server.child.try_wait()?.is_some() {
                // Most likely the port was taken meanwhile (by a server of another test).
                return Ok(None);
            }
            if let Ok(connection) = TcpStream::connect(("127.0.0.1", port)) {
                return Ok(server
                    .serves_from_own_directory(connection)?
                    .then_some(server));
            }
            if Instant::now() > deadline {
                bail!("redis-server did not listen on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server on this port is this one: `CONFIG GET dir` names its directory.
    fn serves_from_own_directory(&self, mut connection: TcpStream) -> Result<bool> {
        connection.set_read_timeout(Some(Duration::from_secs(5)))?;
        connection.write_all(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$3\r\ndir\r\n")?;
        let mut reply = Vec::new();
        let mut chunk = [0; 4096];
        let own = self.data.path().canonicalize()?;
        let own = own.to_string_lossy();
        // The reply is `*2 $3 dir $N <path>`: read until the path (or enough bytes) arrived.
        while reply.len() < 8192 {
            let read = match connection.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            reply.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&reply);
            if text.contains(own.as_ref()) {
                return Ok(true);
            }
            if text.matches("\r\n").count() >= 5 {
                break;
            }
        }
        Ok(false)
    }

    /// Kills the server with SIGKILL, as a crash or an outage would: its clients see their
    /// connections drop and new ones refused.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the killed server again on the same port, from the same data directory, with the
    /// same options, and waits until it serves.
    pub fn restart(&mut self) -> Result<()> {
        self.child = spawn(self.port, self.data.path(), &self.args)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.child.try_wait()?.is_some() {
                bail!("redis-server did not start again on port {}", self.port);
            }
            if let Ok(connection) = TcpStream::connect(("127.0.0.1", self.port))
                && self.serves_from_own_directory(connection)?
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "redis-server did not listen on port {} again within 10 s",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of its database `db`, as `--store` takes it.
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-server` on `port` with its data in `dir`, persistence off unless `args` turn it on.
fn spawn(port: u16, dir: &std::path::Path, args: &[String]) -> Result<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .context("starting redis-server (install it with ./setup, Debian package redis-server)")
}
