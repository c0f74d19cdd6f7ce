//! The component in the `wasmtime` command-line host (`./setup --test` puts one in `.tools/bin`:
//! PyPI's prebuilt wasmtime 49, or wasmtime-cli 48 built from crates.io where that wheel cannot
//! be had): a runtime that shares no code with tally's host (not even, with 49, its wasmtime
//! version), with its own in-memory `wasi:keyvalue` store.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `wasmtime` from `$TALLY_WASMTIME`, else the one `./setup --test` installed, else the PATH's;
/// one that is missing or of another version than 48 or 49 fails the test with the fix.
fn wasmtime() -> PathBuf {
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/wasmtime");
    let wasmtime = match std::env::var_os("TALLY_WASMTIME") {
        Some(path) => PathBuf::from(path),
        None if installed.exists() => installed,
        None => "wasmtime".into(),
    };
    let version = Command::new(&wasmtime).arg("--version").output();
    match version {
        Ok(output)
            if ["wasmtime 48.", "wasmtime 49."]
                .iter()
                .any(|known| String::from_utf8_lossy(&output.stdout).starts_with(known)) =>
        {
            wasmtime
        }
        _ => panic!("this test needs the wasmtime CLI 48 or 49: run ./setup --test"),
    }
}

/// Writes the component with `tally component --out`, as a user would.
fn component(dir: &Path) -> PathBuf {
    let file = dir.join("counter.wasm");
    let status = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["component", "--out"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read(&file).unwrap(),
        tally::runtime::EMBEDDED_COMPONENT
    );
    file
}

/// Runs `wasmtime run -S keyvalue [seed] --invoke CALL FILE` and returns what it printed.
fn invoke(file: &Path, seed: Option<&str>, call: &str) -> String {
    let mut command = Command::new(wasmtime());
    command.args(["run", "-S", "keyvalue"]);
    if let Some(seed) = seed {
        command.args(["-S", &format!("keyvalue-in-memory-data={seed}")]);
    }
    let output = command.args(["--invoke", call]).arg(file).output().unwrap();
    assert!(
        output.status.success(),
        "wasmtime {call}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// `increment` prints the new value; a seeded 41 becomes 42; the fully qualified export name
/// works too; typed errors come out as WIT values.
#[test]
fn component_runs_in_the_wasmtime_cli() {
    let dir = tempfile::tempdir().unwrap();
    let file = component(dir.path());
    assert_eq!(invoke(&file, None, r#"increment("visits", 1)"#), "ok(1)");
    // The CLI's store forgets between runs: the next run starts from nothing again.
    assert_eq!(invoke(&file, None, r#"get("visits")"#), "ok(0)");
    assert_eq!(
        invoke(&file, Some("visits=41"), r#"increment("visits", 1)"#),
        "ok(42)"
    );
    assert_eq!(
        invoke(
            &file,
            Some("visits=41"),
            r#"tally:counter/counter.increment@0.2.1("visits", 1)"#
        ),
        "ok(42)"
    );
    // A window, at a time the call gives: the same outcome tally's host answers.
    assert_eq!(
        invoke(
            &file,
            None,
            r#"hit("api", {length-ms: 60000, keep: 2}, 1, 3, fixed, 125000)"#
        ),
        "ok({count: 1, used: 1, allowed: true, remaining: 2, window-start: 120000, resets-at: \
         180000})"
    );
    assert_eq!(
        invoke(&file, Some("visits=abc"), r#"increment("visits", 1)"#),
        r#"err(corrupt-value("visits"))"#
    );
    assert_eq!(
        invoke(&file, None, r#"get("")"#),
        r#"err(invalid-name("a counter name must not be empty"))"#
    );
}
