//! Loads a component, reusing native code compiled by an earlier process.
//!
//! Compiling the component with Cranelift costs tens of milliseconds (hundreds in a debug build),
//! far more than a CLI call should. The first process compiles it with
//! [`Engine::precompile_component`] and writes the result to the cache directory; later processes
//! memory-map it with [`Component::deserialize_file`].
//!
//! The file name is a SHA-256 over the component's bytes and the engine's
//! [`Engine::precompile_compatibility_hash`] (wasmtime version, compiler settings, target CPU
//! features), so another component or engine configuration never loads a stale artifact. Files
//! are written to a temporary name and renamed, so a concurrent or interrupted process never
//! leaves a half-written artifact under a real name.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bumped when the cache's own file format or keying changes.
const CACHE_FORMAT: &[u8] = b"tally-compiled-component-v1";

/// Compiles `wasm` (or loads its cached compilation from `cache_dir`). `origin` names the
/// component in error messages.
pub fn load_component(
    engine: &Engine,
    wasm: &[u8],
    origin: &str,
    cache_dir: Option<&Path>,
) -> Result<Component> {
    check_is_component(wasm, origin)?;
    let Some(cache_dir) = cache_dir else {
        return Component::new(engine, wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{origin} is not a valid component"));
    };
    let artifact = cache_dir.join(format!("{}.cwasm", cache_key(engine, wasm)));
    if artifact.is_file() {
        // SAFETY: the file was produced by `Engine::precompile_component` of this very engine
        // configuration (its name hashes the configuration and the component) and written by
        // rename, so it is complete. wasmtime re-checks its header and compatibility too.
        match unsafe { Component::deserialize_file(engine, &artifact) } {
            Ok(component) => return Ok(component),
            // Unreadable or foreign: compile afresh below and replace it.
            Err(_) => {}
        }
    }
    let compiled = engine
        .precompile_component(wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{origin} is not a valid component"))?;
    if let Err(error) = store_artifact(cache_dir, &artifact, &compiled) {
        eprintln!(
            "tally: warning: could not cache the compiled component in {} ({error:#}); \
             every run will compile it again",
            cache_dir.display()
        );
    }
    // SAFETY: `compiled` was produced just above by `precompile_component` on this engine.
    unsafe { Component::deserialize(engine, &compiled) }
        .map_err(anyhow::Error::from)
        .with_context(|| format!("loading the compiled form of {origin}"))
}

/// Names the common mistakes (a text file, a core module) before wasmtime's generic error.
fn check_is_component(wasm: &[u8], origin: &str) -> Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE_VERSION: &[u8] = &[1, 0, 0, 0];
    if !wasm.starts_with(MAGIC) {
        bail!("{origin} is not a WebAssembly file (it does not start with \"\\0asm\")");
    }
    if wasm.get(4..8) == Some(CORE_MODULE_VERSION) {
        bail!(
            "{origin} is a core WebAssembly module, not a component; build the guest for \
             wasm32-wasip2 (or wrap the module with `wasm-tools component new`)"
        );
    }
    Ok(())
}

fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut hasher = DigestHasher(Sha256::new());
    hasher.0.update(CACHE_FORMAT);
    hasher.0.update(Sha256::digest(wasm));
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher
        .0
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Feeds `Hash` input into SHA-256, so the key is stable across processes and Rust versions
/// (unlike `DefaultHasher`).
struct DigestHasher(Sha256);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

fn store_artifact(cache_dir: &Path, artifact: &Path, compiled: &[u8]) -> Result<()> {
    std::fs::create_dir_all(cache_dir).context("creating the cache directory")?;
    let mut file = tempfile::NamedTempFile::new_in(cache_dir).context("creating a temporary file")?;
    file.write_all(compiled).context("writing the artifact")?;
    file.persist(artifact).context("renaming the artifact into place")?;
    Ok(())
}

/// The per-user cache directory: `$XDG_CACHE_HOME/tally`, else `~/.cache/tally`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|dir| dir.join("tally"))
}
