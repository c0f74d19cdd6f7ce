//! A throwaway PostgreSQL server from Debian's binaries on a free loopback port, its data in a
//! temporary directory: what the PostgreSQL tests run on, primary or synchronous standby.
//! Stopped when dropped.
//!
//! `initdb` refuses to run as root, so as root (CI) every server command runs as the `postgres`
//! user that Debian's package creates, on a directory handed to it.

use anyhow::{Context, Result, bail};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL server.
pub struct PostgresServer {
    // Holds the data directory and the log; removed when dropped.
    _dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl PostgresServer {
    /// A new server (`initdb`, trust authentication, user `postgres`) with `settings` added to
    /// its `postgresql.conf` (`"synchronous_standby_names = '*'"`, say), started and accepting
    /// connections.
    pub fn start(settings: &[&str]) -> Result<Self> {
        Self::start_with_files(settings, &[])
    }

    /// [`PostgresServer::start`], with `files` (name, contents) written into the data directory
    /// first, readable by the server only (a TLS key and certificate, say).
    pub fn start_with_files(settings: &[&str], files: &[(&str, &[u8])]) -> Result<Self> {
        let bin = bin_dir()?;
        let (dir, data, log) = directory()?;
        run_as_server_user(
            Command::new(bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(&data),
        )
        .context("initdb")?;
        for (name, contents) in files {
            use std::os::unix::fs::PermissionsExt;
            let path = data.join(name);
            std::fs::write(&path, contents).with_context(|| format!("writing {name}"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            if let Some((uid, gid)) = server_user()? {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
            }
        }
        Self::configure_and_start(dir, data, log, bin, settings)
    }

    /// A standby of `primary` (`pg_basebackup -R`, streaming) with `settings` added to the
    /// configuration it copied, started: with `synchronous_standby_names = '*'` on the primary,
    /// the primary's commits wait for this one.
    pub fn standby_of(primary: &Self, settings: &[&str]) -> Result<Self> {
        let bin = bin_dir()?;
        let (dir, data, log) = directory()?;
        run_as_server_user(
            Command::new(bin.join("pg_basebackup"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "-p",
                ])
                .arg(primary.port.to_string())
                .arg("-D")
                .arg(&data),
        )
        .context("pg_basebackup")?;
        Self::configure_and_start(dir, data, log, bin, settings)
    }

    fn configure_and_start(
        dir: tempfile::TempDir,
        data: PathBuf,
        log: PathBuf,
        bin: PathBuf,
        settings: &[&str],
    ) -> Result<Self> {
        let conf = data.join("postgresql.conf");
        let original = std::fs::read_to_string(&conf).context("reading postgresql.conf")?;
        let mut server = Self {
            _dir: dir,
            data,
            log,
            port: 0,
            bin,
        };
        for _ in 0..5 {
            server.port = free_port()?;
            let mut text = original.clone();
            text.push_str(&format!(
                "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 max_connections = 200\nshared_buffers = 32MB\n",
                server.port,
                server.data.display()
            ));
            for setting in settings {
                text.push_str(setting);
                text.push('\n');
            }
            std::fs::write(&conf, text).context("writing postgresql.conf")?;
            match server.pg_ctl(&["start", "-w", "-t", "60"]) {
                Ok(_) => return Ok(server),
                Err(error) => {
                    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                    // Another process took the port meanwhile: try another.
                    if !log.contains("could not bind") && !log.contains("in use") {
                        bail!("{error:#}\n{log}");
                    }
                }
            }
        }
        bail!("PostgreSQL lost its port to another process 5 times")
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of its `postgres` database, as `--store` takes it.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with `psql` and returns what it printed (unaligned, tuples only), trimmed.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .context("running psql")?;
        if !output.status.success() {
            bail!(
                "psql {sql:?} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Waits (at most 30 s) until a standby streams from this server synchronously
    /// (`pg_stat_replication.sync_state` is `sync`; it starts as `async` for a moment).
    pub fn wait_for_synchronous_standby(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.psql("SELECT sync_state FROM pg_stat_replication")?;
            if state == "sync" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("no synchronous standby after 30 s (sync_state {state:?})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The path of a program of the server's version (`pgbench`, say).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// SIGKILLs the postmaster, as a crash of the machine would end it (its backends exit
    /// when they notice).
    pub fn kill(&self) -> Result<()> {
        let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .context("reading postmaster.pid")?;
        let pid = pid.lines().next().unwrap_or_default().trim().to_string();
        let status = Command::new("kill").args(["-9", &pid]).status()?;
        if !status.success() {
            bail!("kill -9 {pid} failed");
        }
        // The port is free once the postmaster is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            if Instant::now() > deadline {
                bail!("PostgreSQL still listens on {} after SIGKILL", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Makes `role` log in over TCP with a password (`scram-sha-256`) instead of trust, and
    /// reloads the server's configuration; other roles stay trusted.
    pub fn require_password_for(&self, role: &str) -> Result<()> {
        let hba = self.data.join("pg_hba.conf");
        let original = std::fs::read_to_string(&hba).context("reading pg_hba.conf")?;
        std::fs::write(
            &hba,
            format!("host all {role} 127.0.0.1/32 scram-sha-256\n{original}"),
        )
        .context("writing pg_hba.conf")?;
        self.pg_ctl(&["reload"]).map(drop)
    }

    /// Stops the server (fast shutdown: clients are disconnected, nothing is lost).
    pub fn stop(&self) -> Result<()> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]).map(drop)
    }

    /// Starts the stopped (or killed) server again on its port.
    pub fn start_again(&self) -> Result<()> {
        self.pg_ctl(&["start", "-w", "-t", "60"]).map(drop)
    }

    /// Promotes a standby to primary and waits until it is one.
    pub fn promote(&self) -> Result<()> {
        self.pg_ctl(&["promote", "-w", "-t", "60"]).map(drop)
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output> {
        run_as_server_user(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(args),
        )
        .with_context(|| format!("pg_ctl {}", args.join(" ")))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }
}

/// The directory of the newest installed PostgreSQL's programs (`TALLY_PG_BIN` overrides).
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("TALLY_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (install it with ./setup --test, Debian package postgresql)")?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no PostgreSQL with initdb under /usr/lib/postgresql (./setup --test installs it)")
}

/// A temporary directory the server's user owns, with the data directory's and log's paths.
fn directory() -> Result<(tempfile::TempDir, PathBuf, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("tally-postgres")
        .tempdir()
        .context("creating a directory for PostgreSQL")?;
    if let Some((uid, gid)) = server_user()? {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
            .context("giving the postgres user its directory")?;
    }
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    Ok((dir, data, log))
}

/// As root, the `postgres` user's uid and gid (servers run as it); otherwise `None`.
fn server_user() -> Result<Option<(u32, u32)>> {
    // Asked once per test process: every server command needs it.
    static USER: std::sync::OnceLock<Result<Option<(u32, u32)>, String>> =
        std::sync::OnceLock::new();
    USER.get_or_init(|| look_up_server_user().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn look_up_server_user() -> Result<Option<(u32, u32)>> {
    let me = command_output(Command::new("id").arg("-u"))?;
    if me != "0" {
        return Ok(None);
    }
    let uid = command_output(Command::new("id").args(["-u", "postgres"]))
        .context("as root, the servers run as the postgres user, which does not exist")?;
    let gid = command_output(Command::new("id").args(["-g", "postgres"]))?;
    Ok(Some((uid.parse()?, gid.parse()?)))
}

fn command_output(command: &mut Command) -> Result<String> {
    let output = command.output()?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Runs a server program, as the `postgres` user when this is root; its output, or its error
/// with what it printed.
fn run_as_server_user(command: &mut Command) -> Result<Output> {
    let mut command = if server_user()?.is_some() {
        let mut wrapped = Command::new("runuser");
        wrapped
            .args(["-u", "postgres", "--"])
            .arg(command.get_program())
            .args(command.get_args());
        wrapped
    } else {
        std::mem::replace(command, Command::new(Path::new("true")))
    };
    let output = command
        .stdin(Stdio::null())
        .output()
        .context("running a PostgreSQL program")?;
    if !output.status.success() {
        bail!(
            "{:?} failed: {}{}",
            command.get_program(),
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("finding a free port")?
        .port())
}
