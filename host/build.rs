//! Builds the counter component (`guest/`) for `wasm32-wasip2` and hands its path to the host
//! crate as `TALLY_GUEST_WASM`, so `cargo run` and `cargo test` embed a fresh component with no
//! extra step (`wasm_build.rs` has the nested build). The test-only misbehaving component is
//! built by `tests/support/build.rs`, only when tests are.

use std::path::{Path, PathBuf};

include!("wasm_build.rs");

fn main() {
    let host_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = host_dir.parent().expect("host/ lives inside the workspace");
    let wasm = build_component(root, "tally-guest", "guest");
    println!("cargo:rustc-env=TALLY_GUEST_WASM={}", wasm.display());

    // For `tally --version`: read where they are defined, so they cannot go stale.
    let wit_package = package_line(&root.join("wit/counter.wit"));
    let keyvalue_package = package_line(&root.join("wit/deps/keyvalue/world.wit"));
    println!("cargo:rustc-env=TALLY_WIT_PACKAGE={wit_package}");
    println!("cargo:rustc-env=TALLY_KEYVALUE_PACKAGE={keyvalue_package}");
    println!(
        "cargo:rustc-env=TALLY_WASMTIME_VERSION={}",
        locked_version(&root.join("Cargo.lock"), "wasmtime")
    );
}

/// The `package NAMESPACE:NAME@VERSION;` a WIT file declares.
fn package_line(wit: &Path) -> String {
    let text = std::fs::read_to_string(wit)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", wit.display()));
    text.lines()
        .find_map(|line| line.trim().strip_prefix("package "))
        .and_then(|rest| rest.strip_suffix(';'))
        .unwrap_or_else(|| panic!("{} declares no package", wit.display()))
        .trim()
        .to_string()
}

/// The version of `package` that `Cargo.lock` resolved.
fn locked_version(lock: &Path, package: &str) -> String {
    let text = std::fs::read_to_string(lock)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", lock.display()));
    let name_line = format!("name = \"{package}\"");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == name_line
            && let Some(version) = lines
                .next()
                .and_then(|line| line.strip_prefix("version = \""))
                .and_then(|rest| rest.strip_suffix('"'))
        {
            return version.to_string();
        }
    }
    panic!("{} does not lock {package}", lock.display())
}
