//! What the component can reach: its imports are exactly the keyvalue store and the few WASI
//! interfaces Rust's standard library links, and a guest that reaches for files or the
//! environment is refused (tested through the server in `misbehaving.rs`).

use std::collections::BTreeSet;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The embedded component imports `wasi:keyvalue/{store,atomics}` and the interfaces the Rust
/// `wasm32-wasip2` standard library always links (streams for stdio, environment, exit, terminal
/// queries), and nothing else: no filesystem, sockets, clocks, random or HTTP.
#[test]
fn component_imports_only_keyvalue_and_std_basics() {
    let engine = Engine::default();
    let component = Component::new(&engine, tally::runtime::EMBEDDED_COMPONENT).unwrap();
    let imports: BTreeSet<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let expected: BTreeSet<String> = [
        "wasi:keyvalue/store@0.2.0-draft",
        "wasi:keyvalue/atomics@0.2.0-draft",
        "wasi:keyvalue/batch@0.2.0-draft",
        "wasi:io/error@0.2.6",
        "wasi:io/poll@0.2.6",
        "wasi:io/streams@0.2.6",
        "wasi:cli/environment@0.2.6",
        "wasi:cli/exit@0.2.6",
        "wasi:cli/stdin@0.2.6",
        "wasi:cli/stdout@0.2.6",
        "wasi:cli/stderr@0.2.6",
        "wasi:cli/terminal-input@0.2.6",
        "wasi:cli/terminal-output@0.2.6",
        "wasi:cli/terminal-stdin@0.2.6",
        "wasi:cli/terminal-stdout@0.2.6",
        "wasi:cli/terminal-stderr@0.2.6",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(imports, expected);
    let exports: Vec<String> = component
        .component_type()
        .exports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        exports,
        ["tally:counter/counter@0.2.1", "tally:counter/window@0.2.1"]
    );
}
