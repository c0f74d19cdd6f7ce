//! `tally serve` as a real child process on a free loopback port.

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tally::server::read_listening_address;
use tally_test_support::http_client::{Client, Response};
use tally_test_support::resp_client::RespClient;

/// A running `tally serve`; killed when dropped.
pub struct Server {
    child: Child,
    /// Kept open so the server's stdout never hits a closed pipe.
    _stdout: BufReader<ChildStdout>,
    pub address: SocketAddr,
    /// The RESP listener's address, when started with `--resp`.
    pub resp: Option<SocketAddr>,
}

impl Server {
    /// Starts `tally serve` on `db` (port 0) and waits for its `listening on` line.
    pub fn start(db: &Path, serve_args: &[&str]) -> Self {
        Self::start_with(db, &[], serve_args)
    }

    /// Like [`Server::start`], with global options (such as `--component`) before `serve`.
    pub fn start_with(db: &Path, global_args: &[&str], serve_args: &[&str]) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(db.with_extension("server.log"))
            .unwrap();
        let mut command = super::tally_command();
        // `--store` replaces `--db`; the database path then only names the log file.
        if !global_args.contains(&"--store") {
            command.arg("--db").arg(db);
        }
        command.args(global_args).arg("serve").args(serve_args);
        if !serve_args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let address = read_listening_address(&mut stdout).unwrap();
        let resp = serve_args
            .contains(&"--resp")
            .then(|| tally::resp::read_listening_address(&mut stdout).unwrap());
        Self {
            child,
            _stdout: stdout,
            address,
            resp,
        }
    }

    /// A new connection to the RESP listener (the server must have been started with `--resp`).
    pub fn resp_client(&self) -> RespClient {
        RespClient::connect(
            self.resp.expect("started without --resp"),
            Duration::from_secs(30),
        )
        .unwrap()
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new keep-alive connection to the server.
    pub fn client(&self) -> Client {
        Client::connect(self.address, Duration::from_secs(30)).unwrap()
    }

    /// One request on a fresh connection.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        self.client().request(method, path, body).unwrap()
    }

    /// The counter's value, asserting a 200.
    pub fn value(&self, name: &str) -> u64 {
        let response = self.request("GET", &format!("/counters/{name}"), None);
        assert_eq!(response.status, 200, "{response:?}");
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        body["value"].as_u64().unwrap()
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tally serve ignored SIGTERM for 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGKILL: the process dies at once, wherever it is.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `clients` threads, each sending `per_client` increments (keep-alive) to the servers in
/// turn, spread over `counters` counters named `c0`, `c1`, ...; every answer must be a 200.
pub fn hammer(servers: &[&Server], clients: usize, per_client: usize, counters: usize) {
    let addresses: Vec<SocketAddr> = servers.iter().map(|s| s.address).collect();
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let address = addresses[client % addresses.len()];
            std::thread::spawn(move || {
                let mut connection = Client::connect(address, Duration::from_secs(30)).unwrap();
                let path = format!("/counters/c{}/increment", client % counters);
                for _ in 0..per_client {
                    let response = connection.request("POST", &path, None).unwrap();
                    assert_eq!(response.status, 200, "{response:?}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// Lets the clients start together, SIGKILLs `server` after a random 100-700 ms, then stops
/// the clients and waits for them.
pub fn kill_under_load(
    server: Server,
    random: &mut super::Random,
    started: &std::sync::Barrier,
    stop: &std::sync::atomic::AtomicBool,
    clients: Vec<std::thread::JoinHandle<()>>,
) {
    started.wait();
    std::thread::sleep(std::time::Duration::from_millis(100 + random.below(600)));
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
}
