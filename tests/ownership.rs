//! tally touches only what is its own: another application's SQLite file is refused byte for
//! byte, and commands that only read (`get`, `list`, `export`, a backup's source) never create,
//! convert or upgrade a database.

use crate::common;

use common::server::Server;
use common::{TempDb, run, run_ok, tally, tally_fails, tally_ok};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::Path;

/// The names in a directory: what a command left beside the database (`-wal`, `-shm`, ...).
fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".log"))
        .collect()
}

fn journal_mode(path: &Path) -> String {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap()
}

/// Every command, and the server, refuse another application's SQLite file with exit 3 and a
/// message that says whose it is, and leave it byte for byte as it was, journal mode included:
/// a file with tables of its own and no application_id, one with a foreign application_id, and
/// one with a foreign application_id but no tables yet.
#[test]
fn foreign_sqlite_files_are_refused_and_left_untouched() {
    let setups = [
        "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');",
        "PRAGMA application_id = 1234; CREATE TABLE kv (bucket, key, value);",
        "PRAGMA application_id = 1234;",
    ];
    for setup in setups {
        let db = TempDb::new();
        Connection::open(&db.path)
            .unwrap()
            .execute_batch(setup)
            .unwrap();
        let before = std::fs::read(&db.path).unwrap();
        assert_eq!(journal_mode(&db.path), "delete");
        let files = listing(db.dir.path());
        let export_file = db.dir.path().join("import.jsonl");
        std::fs::write(&export_file, "{\"name\":\"a\",\"value\":1}\n").unwrap();
        let backup = db.dir.path().join("copy.db");
        let commands: [&[&str]; 8] = [
            &["get", "v"],
            &["incr", "v"],
            &["set", "v", "5"],
            &["reset", "v"],
            &["list"],
            &["export"],
            &["import", export_file.to_str().unwrap()],
            &["backup", backup.to_str().unwrap()],
        ];
        for args in commands {
            let stderr = tally_fails(&db.path, args, 3);
            assert!(
                stderr.contains("belongs to another application") && !stderr.contains("upgrade"),
                "{setup} {args:?}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
        }
        let mut serve = common::tally_command();
        let output = serve
            .arg("--db")
            .arg(&db.path)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(3), "{setup}: the server started");
        assert!(String::from_utf8_lossy(&output.stderr).contains("belongs to another application"));

        assert!(
            std::fs::read(&db.path).unwrap() == before,
            "{setup}: the file changed"
        );
        assert_eq!(journal_mode(&db.path), "delete");
        let mut expected = files;
        expected.insert("import.jsonl".into());
        assert_eq!(listing(db.dir.path()), expected, "{setup}");
    }
}

/// A tally database of a newer schema keeps its "upgrade tally" message (and is not changed).
#[test]
fn a_newer_tally_database_asks_for_an_upgrade() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "v", "5"]);
    Connection::open(&db.path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let before = std::fs::read(&db.path).unwrap();
    for args in [&["get", "v"][..], &["incr", "v"]] {
        let stderr = tally_fails(&db.path, args, 3);
        assert!(
            stderr.contains("schema version 99") && stderr.contains("upgrade tally"),
            "{stderr}"
        );
    }
    assert!(std::fs::read(&db.path).unwrap() == before);
}

/// A new file is tally's to initialise: an empty file, and a SQLite file with no tables and no
/// application_id (what `sqlite3 new.db 'PRAGMA page_size=8192; VACUUM'` leaves).
#[test]
fn new_files_are_initialised() {
    let db = TempDb::new();
    std::fs::write(&db.path, b"").unwrap();
    assert_eq!(tally_ok(&db.path, &["incr", "v"]), "1\n");
    assert_eq!(journal_mode(&db.path), "wal");

    let db = TempDb::new();
    Connection::open(&db.path)
        .unwrap()
        .execute_batch("PRAGMA page_size = 8192; VACUUM;")
        .unwrap();
    assert!(std::fs::metadata(&db.path).unwrap().len() > 0);
    assert_eq!(tally_ok(&db.path, &["incr", "v", "--by", "4"]), "4\n");
    assert_eq!(tally_ok(&db.path, &["get", "v"]), "4\n");
}

/// `get`, `list` and `export` of a database that does not exist answer as an empty store (0,
/// nothing), say on standard error that no database exists there yet, and create nothing: not
/// the file, and not the default database's directory.
#[test]
fn reading_a_missing_database_creates_nothing() {
    let db = TempDb::new();
    let note = format!(
        "tally: no counter database exists at {} yet, so it holds no counters (the first write \
         creates it)\n",
        db.path.display()
    );
    for (args, stdout) in [
        (&["get", "v"][..], "0\n"),
        (&["list"], ""),
        (&["--json", "list"], "[]\n"),
        (&["export"], ""),
    ] {
        let output = tally(&db.path, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), stdout, "{args:?}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), note, "{args:?}");
    }
    assert!(listing(db.dir.path()).is_empty());
    // Backing up nothing is a mistake, and creates nothing either.
    let backup = db.dir.path().join("copy.db");
    let stderr = tally_fails(&db.path, &["backup", backup.to_str().unwrap()], 3);
    assert!(
        stderr.contains("there is no counter database at"),
        "{stderr}"
    );
    assert!(listing(db.dir.path()).is_empty());

    // The default database, in a fresh data directory.
    let home = tempfile::tempdir().unwrap();
    let output = common::tally_command()
        .env("XDG_DATA_HOME", home.path())
        .args(["get", "visits"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "0\n");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no counter database exists"));
    assert!(listing(home.path()).is_empty());
}

/// A backup is one self-contained file in rollback-journal mode; reading it ten times (every
/// command that reads, a backup of the backup among them) leaves it byte for byte as it was,
/// with no `-wal` or `-shm` beside it.
#[test]
fn reading_a_backup_leaves_it_as_it_was() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "11"]);
    tally_ok(&db.path, &["set", "likes", "3"]);
    let backup = db.dir.path().join("visits-backup.db");
    let backup_arg = backup.to_str().unwrap();
    tally_ok(&db.path, &["backup", backup_arg]);
    let before = std::fs::read(&backup).unwrap();
    assert_eq!(journal_mode(&backup), "delete");
    let files = listing(db.dir.path());

    let second = db.dir.path().join("second.db");
    for round in 0..10 {
        let output = match round % 5 {
            0 => tally_ok(&backup, &["get", "visits"]),
            1 => tally_ok(&backup, &["list"]),
            2 => tally_ok(&backup, &["export"]),
            3 => tally_ok(&backup, &["--json", "get", "likes"]),
            _ => {
                let _ = std::fs::remove_file(&second);
                tally_ok(&backup, &["backup", second.to_str().unwrap()])
            }
        };
        let expected = [
            "11\n",
            "likes\t3\nvisits\t11\n",
            "{\"name\":\"likes\",\"value\":3}\n{\"name\":\"visits\",\"value\":11}\n",
            "{\"name\":\"likes\",\"value\":3}\n",
        ];
        if let Some(expected) = expected.get(round % 5) {
            assert_eq!(output, *expected, "round {round}");
        }
    }
    assert!(
        std::fs::read(&backup).unwrap() == before,
        "the backup changed"
    );
    assert_eq!(journal_mode(&backup), "delete");
    let mut expected = files;
    expected.insert("second.db".into());
    assert_eq!(listing(db.dir.path()), expected);
    // Writes still convert it, as they create and convert any file that is tally's.
    assert_eq!(tally_ok(&backup, &["incr", "visits"]), "12\n");
    assert_eq!(journal_mode(&backup), "wal");
}

/// Reading tally's own database while nobody writes it leaves no `-wal` or `-shm` behind, and
/// reading it while a server writes sees the server's commits.
#[test]
fn reads_of_a_live_database_leave_nothing_behind() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "1"]);
    let files = listing(db.dir.path());
    assert_eq!(files, BTreeSet::from(["counters.db".to_string()]));
    for args in [&["get", "visits"][..], &["list"], &["export"]] {
        tally_ok(&db.path, args);
        assert_eq!(listing(db.dir.path()), files, "{args:?}");
    }

    let server = Server::start(&db.path, &[]);
    let response = server.request("POST", "/counters/visits/increment", None);
    assert_eq!(response.status, 200);
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "2\n");
    let output = run(&["--db", db.path.to_str().unwrap(), "list"]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "visits\t2\n");
    drop(server);
    assert_eq!(
        run_ok(&["--db", db.path.to_str().unwrap(), "get", "visits"]),
        "2\n"
    );
}
