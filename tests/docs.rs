//! The README shows the WIT contract verbatim; this keeps it from drifting.
#![allow(clippy::unwrap_used)]

/// README.md contains `wit/counter.wit` exactly, inside a wit code block.
#[test]
fn readme_shows_the_current_wit() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let wit = std::fs::read_to_string(root.join("wit/counter.wit")).unwrap();
    assert!(
        readme.contains(&format!("```wit\n{wit}```\n")),
        "README.md must show wit/counter.wit verbatim; paste the file into its wit block"
    );
}
