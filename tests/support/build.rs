//! Builds the test-only misbehaving component (`tests/misbehaving-guest`) and the counter
//! component (`guest/`, for tests of crates that do not embed it) for `wasm32-wasip2`, and hands
//! their paths to this crate as `TALLY_MISBEHAVING_GUEST_WASM` and `TALLY_COUNTER_WASM`. This
//! crate is only ever a dev-dependency, so they are built for tests and never for `cargo build`
//! or `cargo install`.

include!("../../host/wasm_build.rs");

fn main() {
    let dir =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = dir
        .parent()
        .and_then(std::path::Path::parent)
        .expect("tests/support lives inside the workspace");
    let wasm = build_component(root, "tally-misbehaving-guest", "tests/misbehaving-guest");
    println!(
        "cargo:rustc-env=TALLY_MISBEHAVING_GUEST_WASM={}",
        wasm.display()
    );
    let wasm = build_component(root, "tally-guest", "guest");
    println!("cargo:rustc-env=TALLY_COUNTER_WASM={}", wasm.display());
}
