//! Builds the counter component (`guest/`) for `wasm32-wasip2` and hands its path to the host
//! crate as `TALLY_GUEST_WASM`, so `cargo run` and `cargo test` embed a fresh component with no
//! extra step. The same build makes the test-only `tests/misbehaving-guest` component
//! (`TALLY_MISBEHAVING_GUEST_WASM`, used by the tests, never embedded): one nested cargo run, and
//! the second component adds a few seconds.
//!
//! The nested `cargo build` gets its own target directory under `OUT_DIR` (sharing the outer one
//! would deadlock on its lock) and a clean environment: variables that the outer cargo (or
//! clippy) sets for native compilation would otherwise leak into the wasm build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables the outer build sets that must not reach the nested wasm build.
const LEAKY_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_MAKEFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_PROFILE_RELEASE_DEBUG",
];

fn main() {
    let host_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = host_dir.parent().expect("host/ lives inside the workspace");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("guest-target");

    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        "tests/misbehaving-guest/src",
        "tests/misbehaving-guest/Cargo.toml",
        "wit",
        ".cargo/config.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "--profile", "guest"])
        .args([
            "--package",
            "tally-guest",
            "--package",
            "tally-misbehaving-guest",
        ])
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for var in LEAKY_VARS {
        build.env_remove(var);
    }
    let status = build
        .status()
        .unwrap_or_else(|error| panic!("could not run cargo to build the guest: {error}"));
    if !status.success() {
        panic!(
            "building the counter component (guest/) for wasm32-wasip2 failed ({status}).\n\
             If the target is missing, run ./setup (it runs `rustup target add wasm32-wasip2`)."
        );
    }

    for (variable, file) in [
        ("TALLY_GUEST_WASM", "tally_guest.wasm"),
        (
            "TALLY_MISBEHAVING_GUEST_WASM",
            "tally_misbehaving_guest.wasm",
        ),
    ] {
        let wasm = target_dir.join("wasm32-wasip2/guest").join(file);
        assert!(
            Path::new(&wasm).is_file(),
            "the guest build succeeded but {} is missing",
            wasm.display()
        );
        println!("cargo:rustc-env={variable}={}", wasm.display());
    }

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
