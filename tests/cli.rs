//! The real `tally` binary, one process per command: every command is a restart.

use crate::common::{self, TempDb, tally, tally_fails, tally_ok};

/// Set to 10 in one process; another process reads 10.
#[test]
fn value_survives_process_restart() {
    let db = TempDb::new();
    assert_eq!(tally_ok(&db.path, &["set", "visits", "10"]), "10\n");
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "10\n");
}

/// 10, then an increment in another process prints 11, and a third process reads 11.
#[test]
fn increment_to_11_survives_process_restart() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "10"]);
    assert_eq!(tally_ok(&db.path, &["incr", "visits"]), "11\n");
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "11\n");
}

/// 10, then increments to 15 in separate processes (one of them `--by 3`), then 15.
#[test]
fn increments_to_15_survive_process_restarts() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "10"]);
    assert_eq!(tally_ok(&db.path, &["incr", "visits"]), "11\n");
    assert_eq!(tally_ok(&db.path, &["incr", "visits", "--by", "3"]), "14\n");
    assert_eq!(tally_ok(&db.path, &["incr", "visits"]), "15\n");
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "15\n");
    assert_eq!(db.raw_value("visits"), Some(b"15".to_vec()));
}

/// A counter never touched reads 0; `reset` removes it; `list` prints tab-separated lines or JSON.
#[test]
fn list_reset_and_json_output() {
    let db = TempDb::new();
    assert_eq!(tally_ok(&db.path, &["get", "never"]), "0\n");
    tally_ok(&db.path, &["incr", "b", "--by", "2"]);
    tally_ok(&db.path, &["incr", "a user/likes"]);
    tally_ok(&db.path, &["set", "gone", "5"]);
    assert_eq!(tally_ok(&db.path, &["reset", "gone"]), "0\n");
    assert_eq!(tally_ok(&db.path, &["list"]), "a user/likes\t1\nb\t2\n");
    assert_eq!(
        tally_ok(&db.path, &["list", "--json"]),
        "[{\"name\":\"a user/likes\",\"value\":1},{\"name\":\"b\",\"value\":2}]\n"
    );
    assert_eq!(
        tally_ok(&db.path, &["--json", "incr", "b"]),
        "{\"name\":\"b\",\"value\":3}\n"
    );
    assert_eq!(tally_ok(&db.path, &["get", "gone"]), "0\n");
}

/// Refused operations exit 1 with one line naming the problem, and change nothing.
#[test]
fn refused_operations_exit_1_and_change_nothing() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "big", "18446744073709551615"]);
    let stderr = tally_fails(&db.path, &["incr", "big"], 1);
    assert_eq!(
        stderr,
        "tally: error: counter \"big\" would overflow past 18446744073709551615 (the u64 maximum); \
         its value is unchanged\n"
    );
    assert_eq!(
        tally_ok(&db.path, &["get", "big"]),
        "18446744073709551615\n"
    );

    db.write_raw("visits", "abc");
    let stderr = tally_fails(&db.path, &["incr", "visits"], 1);
    assert!(
        stderr.starts_with(
            "tally: error: counter \"visits\" holds a stored value that is not a decimal u64"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
    assert_eq!(db.raw_value("visits"), Some(b"abc".to_vec()));

    let stderr = tally_fails(&db.path, &["incr", ""], 1);
    assert_eq!(
        stderr,
        "tally: error: invalid counter name: a counter name must not be empty\n"
    );
    let stderr = tally_fails(&db.path, &["set", "tab\there", "1"], 1);
    assert!(stderr.contains("control characters"), "{stderr}");
    assert_eq!(db.raw_value(""), None);
    assert_eq!(db.raw_value("tab\there"), None);
    assert_eq!(db.raw_value("big"), Some(b"18446744073709551615".to_vec()));
}

/// Numbers clap cannot take (negative, too large, not a number) are usage errors: exit 2.
#[test]
fn out_of_range_numbers_are_usage_errors() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "n", "5"]);
    for args in [
        &["incr", "n", "--by", "-1"][..],
        &["incr", "n", "--by", "18446744073709551616"],
        &["set", "n", "1.5"],
        &["set", "n", "ten"],
        &["frobnicate"],
    ] {
        let stderr = tally_fails(&db.path, args, 2);
        assert!(stderr.starts_with("tally: error: "), "{args:?}: {stderr}");
    }
    assert_eq!(tally_ok(&db.path, &["get", "n"]), "5\n");
}

/// A file that is not a database is refused with exit 3 and left byte-for-byte as it was.
#[test]
fn corrupt_database_file_is_refused() {
    let db = TempDb::new();
    let junk = b"definitely not SQLite; ".repeat(100);
    std::fs::write(&db.path, &junk).unwrap();
    let stderr = tally_fails(&db.path, &["incr", "visits"], 3);
    assert!(
        stderr.starts_with("tally: error: cannot open the counter database")
            && stderr.contains("not a database"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
    assert_eq!(std::fs::read(&db.path).unwrap(), junk);
}

/// Components that cannot be run are named as such: exit 3, one line, the store untouched.
#[test]
fn wrong_component_files_are_refused() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "10"]);
    let text = db.dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let core = db.dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").unwrap()).unwrap();
    let empty = db.dir.path().join("empty.wasm");
    std::fs::write(&empty, wat::parse_str("(component)").unwrap()).unwrap();
    let missing = db.dir.path().join("missing.wasm");

    let cases = [
        (&text, "is not a WebAssembly file"),
        (&core, "is a core WebAssembly module, not a component"),
        (
            &empty,
            "is not a tally counter component (it must export tally:counter/counter@0.2.1 and \
             tally:counter/window@0.2.1)",
        ),
        (&missing, "cannot read component file"),
    ];
    for (path, expected) in cases {
        let path = path.to_str().unwrap();
        let stderr = tally_fails(&db.path, &["--component", path, "incr", "visits"], 3);
        assert!(stderr.contains(expected), "{path}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "10\n");
}

/// `--component` runs another build of the component: the embedded one, written to a file.
#[test]
fn component_file_can_be_given() {
    let db = TempDb::new();
    let file = db.dir.path().join("counter.wasm");
    std::fs::write(&file, tally::runtime::EMBEDDED_COMPONENT).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        tally_ok(
            &db.path,
            &["--component", file, "incr", "visits", "--by", "4"]
        ),
        "4\n"
    );
    assert_eq!(tally_ok(&db.path, &["get", "visits"]), "4\n");
}

/// `--help` names the default database file.
#[test]
fn help_shows_default_database() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("--help")
        .env("XDG_DATA_HOME", "/var/lib/example")
        .output()
        .unwrap();
    // Help is wrapped to the terminal; compare with the line breaks folded away.
    let help = String::from_utf8(output.stdout).unwrap();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("[default: /var/lib/example/tally/counters.db]"),
        "{help}"
    );
    let _ = tally; // the helper is shared with other tests
}

/// The bad-input matrix of `docs/guarantees.md`, through the CLI: each case's exit code and message, and
/// every stored counter unchanged afterwards.
#[test]
fn bad_input_matrix() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let db = TempDb::new();
    tally_ok(&db.path, &["set", "visits", "10"]);
    tally_ok(&db.path, &["set", "big", "18446744073709551615"]);
    let long = "x".repeat(257);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["incr", ""], 1, "must not be empty"),
        (vec!["incr", &long], 1, "at most 256 bytes"),
        (vec!["incr", "a\u{7}b"], 1, "control characters"),
        (
            vec!["incr", "visits", "--by", "-1"],
            2,
            "invalid value '-1' for '--by <N>': tally counters only count up: give a whole \
             number from 0 to 18446744073709551615",
        ),
        (
            vec!["set", "visits", "-5"],
            2,
            "invalid value '-5' for '<VALUE>': tally counters only count up",
        ),
        (vec!["incr", "visits", "--by", "1.5"], 2, "invalid value"),
        (vec!["incr", "visits", "--by", "one"], 2, "invalid value"),
        (
            vec!["incr", "visits", "--by", "18446744073709551616"],
            2,
            "invalid value",
        ),
        (vec!["set", "visits"], 2, "required"),
        (vec!["incr", "big"], 1, "would overflow"),
        (
            vec!["incr", "visits", "--by", "18446744073709551606"],
            1,
            "would overflow",
        ),
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
    ];
    for (args, code, message) in &cases {
        let stderr = tally_fails(&db.path, args, *code);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(
            stderr
                .trim_end()
                .lines()
                .filter(|l| l.contains("error:"))
                .count(),
            1,
            "{args:?}: {stderr}"
        );
        // Whoever found the error (the argument parser, the component, the store), the line
        // starts the same way.
        assert!(stderr.starts_with("tally: error: "), "{args:?}: {stderr}");
    }
    // (A NUL cannot travel in an argv string; the HTTP matrix covers `%00`.)
    // Invalid UTF-8 in a name is refused by the argument parser.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("--db")
        .arg(&db.path)
        .arg("incr")
        .arg(OsStr::from_bytes(b"a\xffb"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid UTF-8"));
    // A `/` is an ordinary character in a name.
    assert_eq!(tally_ok(&db.path, &["incr", "a/b"]), "1\n");

    assert_eq!(
        tally_ok(&db.path, &["list"]),
        "a/b\t1\nbig\t18446744073709551615\nvisits\t10\n"
    );
}

/// A reader that stops early (`tally component --out - | head -c4`, `tally export | head`):
/// what it read is right, and tally exits 0 without an error line.
#[test]
fn a_closed_pipe_is_no_error() {
    use std::io::Read;
    let db = TempDb::new();
    let lines: String = (0..20_000)
        .map(|n| format!("{{\"name\":\"k{n:05}\",\"value\":{n}}}\n"))
        .collect();
    let file = db.dir.path().join("many.jsonl");
    std::fs::write(&file, lines).unwrap();
    tally_ok(&db.path, &["import", file.to_str().unwrap()]);
    for (args, start) in [
        (vec!["component", "--out", "-"], &b"\0asm"[..]),
        (
            vec!["--db", db.path.to_str().unwrap(), "export"],
            b"{\"name\":\"k00000\"",
        ),
        (
            vec!["--db", db.path.to_str().unwrap(), "list"],
            b"k00000\t0\n",
        ),
    ] {
        let mut child = common::tally_command()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = vec![0; start.len()];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(head, start, "{args:?}");
        assert_eq!(
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).as_ref()
            ),
            (Some(0), ""),
            "{args:?}"
        );
    }
}

/// An option given through its variable (`TALLY_DB`) is not shown as if it were required in
/// the usage line of an error: the usage is the command's own.
#[test]
fn usage_lines_do_not_list_options_from_variables() {
    let db = TempDb::new();
    let output = common::tally_command()
        .arg("incr")
        .env("TALLY_DB", &db.path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\nUsage: tally incr [OPTIONS] <NAME>\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("--db <PATH>"), "{stderr}");
}
