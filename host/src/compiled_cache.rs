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
        // An unreadable or foreign artifact is compiled afresh below and replaced.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &artifact) } {
            return Ok(component);
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
    let mut file =
        tempfile::NamedTempFile::new_in(cache_dir).context("creating a temporary file")?;
    file.write_all(compiled).context("writing the artifact")?;
    file.persist(artifact)
        .context("renaming the artifact into place")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Config, OptLevel};

    fn component(text: &str) -> Vec<u8> {
        wat::parse_str(text).unwrap()
    }

    fn artifacts(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// The key changes with the component's bytes and with the engine configuration, and stays
    /// the same for the same bytes under an identically configured engine.
    #[test]
    fn key_covers_component_and_engine_configuration() {
        let (a, b) = (
            component("(component)"),
            component("(component (core module))"),
        );
        let engine = Engine::default();
        assert_eq!(cache_key(&engine, &a), cache_key(&Engine::default(), &a));
        assert_ne!(cache_key(&engine, &a), cache_key(&engine, &b));
        let mut config = Config::new();
        config.cranelift_opt_level(OptLevel::None);
        let unoptimized = Engine::new(&config).unwrap();
        assert_ne!(cache_key(&engine, &a), cache_key(&unoptimized, &a));
    }

    /// The first load writes one artifact; the second load of the same component reuses it;
    /// another component gets its own.
    #[test]
    fn artifacts_are_written_once_per_component() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let a = component("(component)");
        load_component(&engine, &a, "a", Some(dir.path())).unwrap();
        let first = artifacts(dir.path());
        assert_eq!(first.len(), 1);
        let written = std::fs::metadata(&first[0]).unwrap().modified().unwrap();
        load_component(&engine, &a, "a", Some(dir.path())).unwrap();
        assert_eq!(artifacts(dir.path()), first);
        assert_eq!(
            std::fs::metadata(&first[0]).unwrap().modified().unwrap(),
            written
        );
        load_component(
            &engine,
            &component("(component (core module))"),
            "b",
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(artifacts(dir.path()).len(), 2);
    }

    /// A damaged artifact is not trusted: the component is compiled again and the file replaced.
    #[test]
    fn damaged_artifact_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let a = component("(component)");
        load_component(&engine, &a, "a", Some(dir.path())).unwrap();
        let artifact = artifacts(dir.path()).remove(0);
        std::fs::write(&artifact, b"garbage").unwrap();
        load_component(&engine, &a, "a", Some(dir.path())).unwrap();
        assert_ne!(std::fs::read(&artifact).unwrap(), b"garbage");
    }

    /// Text files and core modules are named for what they are.
    #[test]
    fn non_components_are_named() {
        let engine = Engine::default();
        let error = load_component(&engine, b"hello", "f", None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "f is not a WebAssembly file (it does not start with \"\\0asm\")"
        );
        let error = load_component(&engine, &component("(module)"), "f", None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("f is a core WebAssembly module")
        );
    }
}
