//! The component in Node.js through jco (`examples/jco/`): transpiled with `wasi:keyvalue` mapped
//! to a JavaScript implementation, then run by the example's own `node --test` suite and, as
//! separate Node processes, by `increment.js` over a JSON file that survives between them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Held by each test while it transpiles into and runs the example's directory, which they
/// share (`counter.wasm`, `out/`).
static EXAMPLE: std::sync::Mutex<()> = std::sync::Mutex::new(());

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

/// The example's directory with the embedded component written there and transpiled by jco.
fn transpiled_example() -> PathBuf {
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
    dir
}

/// Transpiles the embedded component and runs it in Node.js.
#[test]
fn component_runs_in_node_through_jco() {
    let _example = EXAMPLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = transpiled_example();

    let tests = run(Command::new("node").arg("--test").current_dir(&dir));
    let report = String::from_utf8_lossy(&tests.stdout);
    assert!(
        report.contains("# pass 3") && report.contains("# fail 0"),
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

/// The component in Node.js answers the same hits at the same times as `tally hit`, each hit a
/// Node process of its own over `kv.js`'s file.
#[test]
fn node_hits_answer_as_tallys() {
    let _example = EXAMPLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = transpiled_example();
    let expected = crate::windows::tally_parity_outcomes();
    let state = tempfile::tempdir().unwrap();
    let outcomes: Vec<_> = crate::windows::PARITY_HITS
        .iter()
        .map(|(offset, policy, cost)| {
            let now = (crate::windows::T0 + offset).to_string();
            let cost = cost.to_string();
            let output = run(Command::new("node")
                .args(["hit.js", "api", "60000", "3", &cost, policy, &now])
                .env("KV_FILE", state.path().join("windows.json"))
                .current_dir(&dir));
            crate::windows::hit_fields(&serde_json::from_slice(&output.stdout).unwrap())
        })
        .collect();
    assert_eq!(outcomes, expected);
}
