//! Backups and moves through the real binary: `tally backup` of a database that a running server
//! keeps writing, `tally export` / `tally import` between SQLite and a real Redis server, and
//! imports that must change nothing when any part of them is wrong (a bad line, a value Redis
//! cannot hold, a full disk).

use crate::common::server::{Server, hammer};
use crate::common::{
    SmallDisk, TempDb, run, run_fails, run_ok, tally_command, tally_fails, tally_ok,
};
use std::path::Path;
use tally_test_support::redis_server::RedisServer;

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// SQLite → JSON lines → Redis → JSON lines → a new SQLite file: every counter arrives with its
/// exact value (Unicode names, 0, the largest Redis counter), and both exports are identical.
#[test]
fn counters_move_between_sqlite_and_redis() {
    let source = TempDb::new();
    let biggest = i64::MAX.to_string();
    for (name, value) in [
        ("visits", "10"),
        ("zero", "0"),
        ("ünïcødé ✓ \"quoted\"", "7"),
        ("user:42/likes", &*biggest),
    ] {
        tally_ok(&source.path, &["set", name, value]);
    }
    let exported = tally_ok(&source.path, &["export"]);
    assert_eq!(
        exported,
        "{\"name\":\"user:42/likes\",\"value\":9223372036854775807}\n\
         {\"name\":\"visits\",\"value\":10}\n\
         {\"name\":\"zero\",\"value\":0}\n\
         {\"name\":\"ünïcødé ✓ \\\"quoted\\\"\",\"value\":7}\n"
    );
    let file = source.dir.path().join("counters.jsonl");
    std::fs::write(&file, &exported).unwrap();

    let redis = RedisServer::start(&[]).unwrap();
    let store = redis.url(0);
    assert_eq!(
        run_ok(&["--store", &store, "import", path(&file)]),
        format!("imported 4 counters into {store}\n")
    );
    assert_eq!(run_ok(&["--store", &store, "incr", "visits"]), "11\n");
    assert_eq!(run_ok(&["--store", &store, "set", "visits", "10"]), "10\n");
    let from_redis = run_ok(&["--store", &store, "export"]);
    assert_eq!(from_redis, exported);

    let target = TempDb::new();
    let file = target.dir.path().join("from-redis.jsonl");
    std::fs::write(&file, &from_redis).unwrap();
    assert_eq!(
        run_ok(&["--json", "--db", path(&target.path), "import", path(&file)]),
        format!(
            "{{\"imported\":4,\"store\":\"sqlite:{}\"}}\n",
            target.path.display()
        )
    );
    assert_eq!(tally_ok(&target.path, &["export"]), exported);
    assert_eq!(tally_ok(&target.path, &["get", "visits"]), "10\n");
}

/// An import replaces the counters it names, keeps the others, and reads standard input for `-`.
#[test]
fn import_sets_named_counters_and_keeps_the_rest() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "kept", "3"]);
    tally_ok(&db.path, &["set", "replaced", "100"]);
    let mut child = tally_command()
        .args(["--db", path(&db.path), "import", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"name\":\"replaced\",\"value\":5}\n\n{\"name\":\"new\",\"value\":1}\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        tally_ok(&db.path, &["list"]),
        "kept\t3\nnew\t1\nreplaced\t5\n"
    );
}

/// A file with one bad line anywhere imports nothing: exit 1, the line named, every counter as it
/// was. The same for a name twice and for a value beyond what Redis can hold.
#[test]
fn a_bad_line_imports_nothing() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "c0001", "42"]);
    let before = tally_ok(&db.path, &["export"]);
    let good: String = (0..2000)
        .map(|i| format!("{{\"name\":\"c{i:04}\",\"value\":{i}}}\n"))
        .collect();
    let file = db.dir.path().join("import.jsonl");
    for (tail, reason) in [
        (
            "{\"name\":\"late\",\"value\":-1}\n",
            "line 2001: expected {\"name\": \"...\", \"value\": N}",
        ),
        (
            "{\"name\":\"c0007\",\"value\":1}\n",
            "line 2001: counter \"c0007\" already appeared on line 8",
        ),
        (
            "{\"name\":\"bad\\u0007name\",\"value\":1}\n",
            "line 2001: invalid counter name: a counter name must not contain control characters",
        ),
    ] {
        std::fs::write(&file, format!("{good}{tail}")).unwrap();
        let error = tally_fails(&db.path, &["import", path(&file)], 1);
        assert!(
            error.starts_with(&format!(
                "tally: error: cannot import {}; nothing changed: {reason}",
                file.display()
            )),
            "{error}"
        );
        assert_eq!(tally_ok(&db.path, &["export"]), before);
    }
    let error = tally_fails(&db.path, &["import", "/nonexistent/counters.jsonl"], 3);
    assert!(error.contains("cannot open the import file"), "{error}");

    let redis = RedisServer::start(&[]).unwrap();
    let store = redis.url(0);
    std::fs::write(
        &file,
        format!("{good}{{\"name\":\"huge\",\"value\":9223372036854775808}}\n"),
    )
    .unwrap();
    let error = run_fails(&["--store", &store, "import", path(&file)], 1);
    assert!(
        error.contains(
            "line 2001: counter \"huge\" has the value 9223372036854775808, above this store's \
             largest counter 9223372036854775807"
        ),
        "{error}"
    );
    assert_eq!(run_ok(&["--store", &store, "export"]), "");
}

/// A disk that fills up halfway through an import: the import fails (exit 3) and not one of its
/// counters is stored; what was there before is intact.
#[test]
fn an_import_that_fills_the_disk_changes_nothing() {
    let Some(disk) = SmallDisk::mount("512k") else {
        return;
    };
    let db = disk.dir.path().join("counters.db");
    tally_ok(&db, &["set", "before", "9"]);
    let file = tempfile::NamedTempFile::new().unwrap();
    let lines: String = (0..5000)
        .map(|i| {
            format!(
                "{{\"name\":\"counter-{i:05}-{}\",\"value\":{i}}}\n",
                "x".repeat(150)
            )
        })
        .collect();
    std::fs::write(file.path(), lines).unwrap();
    let error = tally_fails(&db, &["import", path(file.path())], 3);
    assert!(
        error.contains("nothing changed") && error.contains("full"),
        "{error}"
    );
    assert_eq!(tally_ok(&db, &["list"]), "before\t9\n");
}

/// On a terminal the import shows a progress bar on standard error; piped, it prints nothing
/// there.
#[test]
fn import_shows_progress_only_on_a_terminal() {
    let db = TempDb::new();
    let file = db.dir.path().join("big.jsonl");
    let lines: String = (0..100_000)
        .map(|i| format!("{{\"name\":\"counter-{i}\",\"value\":{i}}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();

    let piped = run(&["--db", path(&db.path), "import", path(&file)]);
    assert!(piped.status.success());
    assert_eq!(String::from_utf8_lossy(&piped.stderr), "");

    // `script` gives the command a pseudo-terminal and records what it wrote there.
    let command = format!(
        "{} --db {} import {}",
        env!("CARGO_BIN_EXE_tally"),
        db.path.display(),
        file.display()
    );
    let output = std::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(
        screen.contains("checking [") || screen.contains("writing  ["),
        "no progress bar in {screen:?}"
    );
    assert!(screen.contains("imported 100000 counters"), "{screen}");
    assert_eq!(tally_ok(&db.path, &["get", "counter-99999"]), "99999\n");
}

/// A backup taken while a server is acknowledging increments is one consistent point in time: it
/// holds every write acknowledged before it began, nothing written after it ended, and opens as
/// an ordinary tally database.
#[test]
fn backup_while_serving_is_consistent() {
    let db = TempDb::new();
    let server = Server::start(&db.path, &[]);
    let response = server.request("PUT", "/counters/marker", Some(r#"{"value": 123}"#));
    assert_eq!(response.status, 200);

    let backup = db.dir.path().join("backup.db");
    let report = std::thread::scope(|scope| {
        let load = scope.spawn(|| hammer(&[&server], 8, 400, 4));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let report = tally_ok(&db.path, &["--json", "backup", path(&backup)]);
        let response = server.request("PUT", "/counters/marker", Some(r#"{"value": 456}"#));
        assert_eq!(response.status, 200);
        load.join().unwrap();
        report
    });
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    // One self-contained file (no WAL beside it) in which SQLite finds nothing wrong.
    assert!(!db.dir.path().join("backup.db-wal").exists());
    let conn = rusqlite::Connection::open(&backup).unwrap();
    let (mode, check): (String, String) = conn
        .query_row(
            "SELECT * FROM pragma_journal_mode, pragma_integrity_check",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((mode.as_str(), check.as_str()), ("delete", "ok"));
    drop(conn);

    assert_eq!(tally_ok(&backup, &["get", "marker"]), "123\n");
    let counters = report["counters"].as_u64().unwrap();
    assert!((1..=5).contains(&counters), "{report}");
    assert_eq!(
        report["bytes"].as_u64().unwrap(),
        std::fs::metadata(&backup).unwrap().len()
    );
    for name in ["c0", "c1", "c2", "c3"] {
        let live = server.value(name);
        assert_eq!(live, 8 * 400 / 4);
        let copied: u64 = tally_ok(&backup, &["get", name]).trim().parse().unwrap();
        assert!(copied <= live, "{name}: backup {copied}, live {live}");
    }
}

/// What `tally backup` refuses: an existing file (unless --force), the database itself, a
/// database that does not exist, a store that is not SQLite. Nothing is written in any case.
#[test]
fn backup_refuses_what_it_cannot_do_safely() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "5"]);
    let backup = db.dir.path().join("backup.db");
    std::fs::write(&backup, "precious").unwrap();
    let error = tally_fails(&db.path, &["backup", path(&backup)], 3);
    assert!(
        error.contains("already exists; choose a new file or pass --force"),
        "{error}"
    );
    assert_eq!(std::fs::read(&backup).unwrap(), b"precious");

    let error = tally_fails(&db.path, &["backup", path(&db.path)], 3);
    assert!(error.contains("is the database being backed up"), "{error}");

    let error = tally_fails(&db.dir.path().join("missing.db"), &["backup", "x.db"], 3);
    assert!(error.contains("there is no counter database at"), "{error}");
    assert!(!db.dir.path().join("missing.db").exists());

    let error = run_fails(&["--store", "memory", "backup", path(&backup)], 1);
    assert!(error.contains("use `tally export > FILE`"), "{error}");

    assert_eq!(
        tally_ok(&db.path, &["backup", "--force", path(&backup)]),
        format!(
            "backed up 1 counter (36864 bytes) from {} to {}\n",
            db.path.display(),
            backup.display()
        )
    );
    // No temporary files left behind.
    let mut names: Vec<_> = std::fs::read_dir(db.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains("backup"))
        .collect();
    names.sort();
    assert_eq!(names, ["backup.db"]);
    assert_eq!(tally_ok(&backup, &["get", "visits"]), "5\n");
}

/// An import is one write group, and a write group commits all or nothing across a SIGKILL:
/// killed at any moment, the database holds every counter of the file or none of them, and the
/// counter it held before is intact. The last import, not killed, holds them all.
#[test]
fn an_import_killed_at_any_moment_is_all_or_nothing() {
    const COUNTERS: i64 = 100_000;
    let scratch = TempDb::new();
    let file = scratch.dir.path().join("many.jsonl");
    let lines: String = (0..COUNTERS)
        .map(|i| format!("{{\"name\":\"c{i:06}\",\"value\":{i}}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let mut outcomes = Vec::new();
    for delay_ms in [5, 100, 300, 600, 900, 1200, 1600, 2400, u64::MAX] {
        let db = TempDb::new();
        tally_ok(&db.path, &["set", "before", "7"]);
        let mut import = tally_command();
        import.args(["--db", path(&db.path), "import", path(&file)]);
        if delay_ms == u64::MAX {
            assert!(import.output().unwrap().status.success());
        } else {
            let mut child = import
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            let _ = child.kill();
            child.wait().unwrap();
        }
        let conn = rusqlite::Connection::open(&db.path).unwrap();
        let (count, before): (i64, Vec<u8>) = conn
            .query_row(
                "SELECT count(*), (SELECT value FROM kv WHERE key = 'before') FROM kv",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(before, b"7", "killed after {delay_ms} ms");
        assert!(
            count == 1 || count == COUNTERS + 1,
            "killed after {delay_ms} ms, the database holds {count} counters: part of the import"
        );
        if count == COUNTERS + 1 {
            let last: Vec<u8> = conn
                .query_row("SELECT value FROM kv WHERE key = 'c099999'", [], |row| {
                    row.get(0)
                })
                .unwrap();
            assert_eq!(last, b"99999");
        }
        outcomes.push((delay_ms, count));
    }
    // The earliest kill lands before the commit, the import left alone completes.
    assert_eq!(outcomes.first().map(|o| o.1), Some(1), "{outcomes:?}");
    assert_eq!(
        outcomes.last().map(|o| o.1),
        Some(COUNTERS + 1),
        "{outcomes:?}"
    );
}
