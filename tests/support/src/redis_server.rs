//! A throwaway `redis-server` on a free loopback port, with its data in a temporary directory:
//! what the Redis tests run on. Killed when dropped.

use anyhow::{Context, Result, bail};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` with persistence off unless `extra_args` turn it on, and waits until
    /// it accepts connections.
    pub fn start(extra_args: &[&str]) -> Result<Self> {
        let data = tempfile::tempdir().context("creating a directory for redis-server")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(data.path())
            .args(extra_args)
            .stdout(Stdio::null())
            .spawn()
            .context(
                "starting redis-server (install it with ./setup, Debian package redis-server)",
            )?;
        let mut server = Self {
            child,
            port,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("redis-server exited at start ({status})");
            }
            if Instant::now() > deadline {
                bail!("redis-server did not listen on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(server)
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
