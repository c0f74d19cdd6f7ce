//! `tally component --out FILE`: writes the embedded counter component, so it can run in other
//! hosts (the `wasmtime` CLI, jco, any host with `wasi:keyvalue`), or be inspected with
//! `wasm-tools component wit FILE`.

use crate::runtime::EMBEDDED_COMPONENT;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// `tally component` options.
#[derive(Debug, Args)]
pub struct ComponentArgs {
    /// Where to write the component (`-` for standard output).
    #[arg(long, env = "TALLY_COMPONENT_OUT", value_name = "FILE")]
    out: PathBuf,
}

/// Writes the embedded component to `--out` and says where (on standard output with `json`, as
/// `{"component": FILE, "bytes": N}`).
pub(super) fn run(args: &ComponentArgs, json: bool) -> Result<()> {
    if args.out.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(EMBEDDED_COMPONENT)
            .and_then(|()| stdout.flush())
            .context("writing the component to standard output");
    }
    std::fs::write(&args.out, EMBEDDED_COMPONENT)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "component": args.out, "bytes": EMBEDDED_COMPONENT.len() })
        );
    } else {
        eprintln!(
            "tally: wrote the counter component ({} bytes) to {}",
            EMBEDDED_COMPONENT.len(),
            args.out.display()
        );
    }
    Ok(())
}
