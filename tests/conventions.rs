//! The command-line conventions users expect from their other tools: every option also read from
//! a `TALLY_*` variable (the command line winning), shell completions that complete, a
//! `--version` that names what matters, and no color under `NO_COLOR`.

use crate::common::{TempDb, run_ok, tally_command, tally_ok};
use clap::CommandFactory;
use std::io::BufReader;
use std::process::Stdio;
use tally::cli::Cli;

/// Every `--flag` of every command has a `TALLY_*` variable, and `--help` shows it; except
/// `--idempotency-key`, deliberately: a key exported once would turn every later write of the
/// shell into a replay of the first (or a refused reuse), silently counting nothing.
#[test]
fn every_flag_has_an_environment_variable() {
    fn visit(command: &clap::Command, path: &str, missing: &mut Vec<String>, count: &mut usize) {
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            if long == "idempotency-key" {
                assert!(
                    arg.get_env().is_none(),
                    "{path} --{long} must not read a variable"
                );
                continue;
            }
            *count += 1;
            match arg.get_env().and_then(|name| name.to_str()) {
                Some(name) if name.starts_with("TALLY_") => {}
                _ => missing.push(format!("{path} --{long}")),
            }
        }
        for sub in command.get_subcommands() {
            visit(sub, &format!("{path} {}", sub.get_name()), missing, count);
        }
    }
    let (mut missing, mut count) = (Vec::new(), 0);
    visit(&Cli::command(), "tally", &mut missing, &mut count);
    assert!(count >= 15, "only {count} flags found");
    assert_eq!(missing, Vec::<String>::new(), "flags without TALLY_*");

    let help = tally_command().args(["serve", "--help"]).output().unwrap();
    // Help is wrapped to the terminal; compare with the line breaks folded away.
    let help = String::from_utf8(help.stdout).unwrap();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for shown in [
        "[env: TALLY_LISTEN=]",
        "[env: TALLY_DB=]",
        "[env: TALLY_AUTH_TOKEN]",
    ] {
        assert!(help.contains(shown), "{shown} missing from:\n{help}");
    }
}

/// Variables configure the real binary; a flag on the command line beats a variable; two
/// variables naming different stores are an error, not a guess.
#[test]
fn environment_variables_configure_commands() {
    let db = TempDb::new();
    let env_db = db.path.to_str().unwrap();
    let run = outcome;
    let ok = |vars: &[(&str, &str)], args: &[&str]| {
        let (code, stdout, stderr) = run(vars, args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        stdout
    };
    assert_eq!(
        ok(
            &[("TALLY_DB", env_db), ("TALLY_INCR_BY", "5")],
            &["incr", "a"]
        ),
        "5\n"
    );
    assert_eq!(tally_ok(&db.path, &["get", "a"]), "5\n");
    assert_eq!(
        ok(&[("TALLY_DB", env_db), ("TALLY_JSON", "1")], &["get", "a"]),
        "{\"name\":\"a\",\"value\":5}\n"
    );
    assert_eq!(
        ok(
            &[("TALLY_DB", env_db), ("TALLY_JSON", "false")],
            &["get", "a"]
        ),
        "5\n"
    );
    // The command line wins over the environment, in both directions.
    assert_eq!(
        ok(&[("TALLY_DB", env_db)], &["--store", "memory", "get", "a"]),
        "0\n"
    );
    assert_eq!(
        ok(&[("TALLY_STORE", "memory")], &["--db", env_db, "get", "a"]),
        "5\n"
    );
    assert_eq!(
        ok(
            &[("TALLY_DB", env_db), ("TALLY_INCR_BY", "5")],
            &["incr", "a", "--by", "2"]
        ),
        "7\n"
    );
    let (code, stdout, stderr) = run(
        &[("TALLY_DB", env_db), ("TALLY_STORE", "memory")],
        &["get", "a"],
    );
    assert_eq!((code, stdout.as_str()), (Some(2), ""));
    assert!(
        stderr.contains("TALLY_DB") && stderr.contains("TALLY_STORE (memory) are both set"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[], &["--db", env_db, "--store", "memory", "get", "a"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--db and --store both say where the counters live"),
        "{stderr}"
    );
}

/// What tally is run with, its exit code, standard output and standard error.
fn outcome(vars: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let output = tally_command()
        .envs(vars.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Options that only one kind of store takes are refused with any other store (exit 2, naming
/// the flag or the variable and the kind of store it is for) instead of being silently ignored,
/// and nothing is written.
#[test]
fn store_specific_options_are_refused_elsewhere() {
    let db = TempDb::new();
    let sqlite = db.path.to_str().unwrap();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case; 6] = [
        (
            &[],
            &["--store", "memory", "--durability", "relaxed", "incr", "a"],
            "--durability applies to SQLite stores only, and the store is memory",
        ),
        (
            &[],
            &["--store", "memory", "--durability", "full", "get", "a"],
            "--durability applies to SQLite stores only",
        ),
        (
            &[("TALLY_DURABILITY", "relaxed")],
            &["--store", "memory", "serve"],
            "TALLY_DURABILITY applies to SQLite stores only",
        ),
        (
            &[],
            &["--store", "memory", "--busy-timeout-ms", "10", "get", "a"],
            "--busy-timeout-ms applies to SQLite stores only",
        ),
        (
            &[("TALLY_BUSY_TIMEOUT_MS", "10")],
            &["--store", "memory", "get", "a"],
            "TALLY_BUSY_TIMEOUT_MS applies to SQLite stores only",
        ),
        (
            &[],
            &["--db", sqlite, "--allow-redis-eviction", "incr", "a"],
            "--allow-redis-eviction applies to Redis stores only, and the store is sqlite:",
        ),
    ];
    for (vars, args, message) in cases {
        let (code, stdout, stderr) = outcome(vars, args);
        assert_eq!((code, stdout.as_str()), (Some(2), ""), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("tally: error: ") && stderr.contains(message),
            "{args:?}: {stderr}"
        );
    }
    assert!(!db.path.exists(), "a refused command created the database");
    // Where they apply, they work; a variable that says "no" is no request at all.
    assert_eq!(
        tally_ok(
            &db.path,
            &[
                "--durability",
                "relaxed",
                "--busy-timeout-ms",
                "10",
                "incr",
                "a"
            ]
        ),
        "1\n"
    );
    let (code, stdout, _) = outcome(
        &[("TALLY_ALLOW_REDIS_EVICTION", "0")],
        &["--db", sqlite, "get", "a"],
    );
    assert_eq!((code, stdout.as_str()), (Some(0), "1\n"));
}

/// A bad value from a variable names the variable, not the flag the user never typed; every
/// error line starts with `tally: error: `.
#[test]
fn bad_variables_are_named() {
    let (code, stdout, stderr) = outcome(
        &[("TALLY_JSON", "maybe")],
        &["--store", "memory", "get", "a"],
    );
    assert_eq!((code, stdout.as_str()), (Some(2), ""));
    assert!(
        stderr.starts_with(
            "tally: error: invalid value 'maybe' for TALLY_JSON (the variable of --json)"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = outcome(
        &[("TALLY_BUSY_TIMEOUT_MS", "soon")],
        &["--store", "memory", "get", "a"],
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("for TALLY_BUSY_TIMEOUT_MS (the variable of --busy-timeout-ms)"),
        "{stderr}"
    );
    // On the command line, the flag is what is named, even with the variable set too.
    let (code, _, stderr) = outcome(
        &[("TALLY_BUSY_TIMEOUT_MS", "later")],
        &["--busy-timeout-ms", "soon", "--store", "memory", "get", "a"],
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("tally: error: invalid value 'soon' for '--busy-timeout-ms <MS>'"),
        "{stderr}"
    );
}

/// With `--json`, results are JSON on standard output and errors are one JSON object on
/// standard error, `{"error", "code"}` with the HTTP API's codes; `component` says what it
/// wrote as JSON too.
#[test]
fn json_covers_results_and_errors() {
    let db = TempDb::new();
    tally_ok(&db.path, &["set", "big", "18446744073709551615"]);
    let path = db.path.to_str().unwrap();
    let json_error = |args: &[&str], exit: i32| {
        let (code, stdout, stderr) = outcome(&[], args);
        assert_eq!((code, stdout.as_str()), (Some(exit), ""), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stderr).unwrap()
    };
    let error = json_error(&["--json", "--db", path, "incr", "big"], 1);
    assert_eq!(error["code"], "overflow");
    assert_eq!(
        error["error"],
        "counter \"big\" would overflow past 18446744073709551615 (the u64 maximum); its value is unchanged"
    );
    assert_eq!(
        json_error(&["--json", "--db", path, "get", ""], 1)["code"],
        "invalid_name"
    );
    let missing = db.dir.path().join("nowhere/counters.db");
    let error = json_error(
        &["--json", "--db", missing.to_str().unwrap(), "incr", "a"],
        3,
    );
    assert_eq!(error["code"], "failure");
    assert!(
        error["error"].as_str().unwrap().contains("does not exist"),
        "{error}"
    );
    let bad = db.dir.path().join("bad.jsonl");
    std::fs::write(&bad, "nonsense\n").unwrap();
    let error = json_error(
        &["--json", "--db", path, "import", bad.to_str().unwrap()],
        1,
    );
    assert_eq!(error["code"], "invalid_input");

    let out = db.dir.path().join("counter.wasm");
    let (code, stdout, stderr) = outcome(
        &[],
        &["--json", "component", "--out", out.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let written: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(written["component"], out.to_str().unwrap());
    assert_eq!(written["bytes"], std::fs::metadata(&out).unwrap().len());
}

/// `tally completions bash` completes subcommands and flags in a real bash.
#[test]
fn bash_completion_completes() {
    let script = run_ok(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tally.bash");
    std::fs::write(&file, script).unwrap();
    let complete = |words: &str| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; \
             _tally tally \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        let output = std::process::Command::new("bash")
            .args(["--norc", "-c", &program])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut words: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        words.sort();
        words
    };
    assert_eq!(complete("tally ba"), ["backup"]);
    assert_eq!(complete("tally i"), ["import", "incr"]);
    assert!(complete("tally serve --").contains(&"--listen".to_string()));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = run_ok(&["completions", shell]);
        assert!(
            script.contains("backup") && script.contains("import"),
            "{shell}"
        );
    }
}

/// `tally --version` names tally's version, the WIT contract and the wasmtime it runs on, all
/// read from their sources (Cargo.toml, `wit/`, Cargo.lock).
#[test]
fn version_names_the_contract_and_wasmtime() {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    let wasmtime = lock
        .split("[[package]]")
        .find(|package| package.contains("\nname = \"wasmtime\"\n"))
        .and_then(|package| package.split("version = \"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert!(wasmtime.starts_with("48."), "{wasmtime}");
    let version = tally_command().arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap(),
        format!(
            "tally {}\ncontract tally:counter@0.2.1 (imports wasi:keyvalue@0.2.0-draft)\n\
             wasmtime {wasmtime}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// Runs `command` on a pseudo-terminal (`script`) and returns what it drew there.
fn on_terminal(command: &str, no_color: bool) -> String {
    let mut script = std::process::Command::new("script");
    script
        .args(["--quiet", "--return", "--command", command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let output = script.output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// On a terminal help and logs are colored; with `NO_COLOR` they are not.
#[test]
fn no_color_turns_color_off() {
    let tally = env!("CARGO_BIN_EXE_tally");
    let help = format!("{tally} --help");
    assert!(
        on_terminal(&help, false).contains("\x1b["),
        "help is never colored"
    );
    let plain = on_terminal(&help, true);
    assert!(
        plain.contains("Usage:") && !plain.contains("\x1b["),
        "{plain:?}"
    );

    // Long enough for a debug build to start on a loaded 2-core machine (3 s was not: a CI run
    // with other builds beside it saw no output at all before the interrupt).
    let serve = format!("timeout -s INT 10 {tally} --store memory serve --listen 127.0.0.1:0");
    let colored = on_terminal(&serve, false);
    assert!(
        colored.contains("INFO") && colored.contains("\x1b["),
        "{colored:?}"
    );
    let plain = on_terminal(&serve, true);
    assert!(
        plain.contains("INFO") && !plain.contains("\x1b["),
        "{plain:?}"
    );
}

/// `tally serve` takes its address from `TALLY_LISTEN`.
#[test]
fn serve_listens_where_tally_listen_says() {
    let db = TempDb::new();
    let mut child = tally_command()
        .args(["--db", db.path.to_str().unwrap(), "serve"])
        .env("TALLY_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let address = tally::server::read_listening_address(&mut stdout).unwrap();
    assert!(address.ip().is_loopback() && address.port() != 8080);
    child.kill().unwrap();
    child.wait().unwrap();
}
