// Shared by `host/build.rs` (the counter component) and `tests/support/build.rs` (the test-only
// misbehaving component), each with `include!`: a nested `cargo build --target wasm32-wasip2`.
//
// The nested build gets its own target directory under `OUT_DIR` (sharing the outer one would
// deadlock on its lock) and a clean environment: variables that the outer cargo (or clippy) sets
// for native compilation would otherwise leak into the wasm build.

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

/// Builds the workspace package `package` (in `dir`, relative to the workspace `root`) for
/// `wasm32-wasip2` with the `guest` profile, and returns the path of its component.
fn build_component(root: &std::path::Path, package: &str, dir: &str) -> std::path::PathBuf {
    for watched in [
        &format!("{dir}/src"),
        &format!("{dir}/Cargo.toml"),
        "wit",
        ".cargo/config.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("guest-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "--profile", "guest", "--package", package])
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for var in LEAKY_VARS {
        build.env_remove(var);
    }
    let status = build
        .status()
        .unwrap_or_else(|error| panic!("could not run cargo to build {package}: {error}"));
    if !status.success() {
        panic!(
            "building {package} ({dir}/) for wasm32-wasip2 failed ({status}).\n\
             If the target is missing, run ./setup (it runs `rustup target add wasm32-wasip2`)."
        );
    }
    let wasm = target_dir
        .join("wasm32-wasip2/guest")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        wasm.is_file(),
        "the build of {package} succeeded but {} is missing",
        wasm.display()
    );
    wasm
}
