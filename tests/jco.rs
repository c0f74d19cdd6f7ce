//! The component in Node.js through jco (`examples/jco/`): transpiled with `wasi:keyvalue` mapped
//! to a JavaScript implementation, then run by the example's own `node --test` suite and, as
//! separate Node processes, by `increment.js` over a JSON file that survives between them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jco")
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Transpiles the embedded component and runs it in Node.js.
#[test]
fn component_runs_in_node_through_jco() {
    let dir = example_dir();
    assert!(
        dir.join("node_modules/@bytecodealliance/jco").is_dir(),
        "jco is not installed in examples/jco: run ./setup (it runs npm ci there)"
    );
    run(Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["component", "--out"])
        .arg(dir.join("counter.wasm")));
    run(Command::new("npm")
        .args(["run", "-s", "transpile"])
        .current_dir(&dir));

    let tests = run(Command::new("node").arg("--test").current_dir(&dir));
    let report = String::from_utf8_lossy(&tests.stdout);
    assert!(
        report.contains("# pass 2") && report.contains("# fail 0"),
        "{report}"
    );

    // Two separate Node processes share counters through KV_FILE.
    let state = tempfile::tempdir().unwrap();
    let increment = |by: &str| {
        let output = run(Command::new("node")
            .args(["increment.js", "visits", by])
            .env("KV_FILE", state.path().join("counters.json"))
            .current_dir(&dir));
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(increment("10"), "10\n");
    assert_eq!(increment("1"), "11\n");
}
