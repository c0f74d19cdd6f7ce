//! Which component runs and how it is compiled: the one embedded in this binary or a file
//! (`--component`), compiled once or loaded from the cache (`crate::compiled_cache`), and a
//! refusal by the pool explained as the memory limit it is.

use crate::compiled_cache::load_component;
use anyhow::{Context, Result};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The counter component built from `guest/` by `host/build.rs`.
pub static EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("TALLY_GUEST_WASM"));

/// Which component to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// The component embedded in this binary.
    Embedded,
    /// A component file, e.g. another build of `guest/`.
    File(PathBuf),
}

impl ComponentSource {
    /// The component's bytes, and how messages name it.
    fn load(&self) -> Result<(Cow<'static, [u8]>, String)> {
        match self {
            Self::Embedded => Ok((EMBEDDED_COMPONENT.into(), "the embedded component".into())),
            Self::File(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read component file {}", path.display()))?;
                Ok((bytes.into(), format!("component file {}", path.display())))
            }
        }
    }
}

/// The component `source` names, compiled for `engine` (or loaded from `cache_dir`), and how
/// messages name it. The refusal of a component whose memory at start is past
/// `pooled_memory_limit` (the limit of a pooled engine's memories) is a [`MemoryBelowStart`].
pub(super) fn compile(
    engine: &Engine,
    source: &ComponentSource,
    cache_dir: Option<&Path>,
    pooled_memory_limit: Option<usize>,
) -> Result<(Component, String)> {
    let (wasm, origin) = source.load()?;
    let component = load_component(engine, &wasm, &origin, cache_dir).map_err(|error| {
        let Some(memory_limit) = pooled_memory_limit else {
            return error;
        };
        match memory_needed_at_start(&wasm, &origin) {
            Some(needed) if needed > memory_limit as u64 => anyhow::Error::new(MemoryBelowStart {
                needed,
                limit: memory_limit,
            }),
            _ => error,
        }
    })?;
    Ok((component, origin))
}

/// A memory limit below what the component needs to start: the pooling allocator refuses the
/// component, whatever the request.
#[derive(Debug)]
pub struct MemoryBelowStart {
    /// Bytes of linear memory the component starts with.
    pub needed: u64,
    /// The limit, in bytes.
    pub limit: usize,
}

impl std::fmt::Display for MemoryBelowStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the component needs {} MiB of memory to start, more than the memory limit of {} MiB",
            self.needed.div_ceil(1 << 20),
            self.limit >> 20
        )
    }
}

impl std::error::Error for MemoryBelowStart {}

/// The linear memory the component starts with, in bytes, when a pooled engine refused it
/// (read with an engine without a pool, so only on that error path).
fn memory_needed_at_start(wasm: &[u8], origin: &str) -> Option<u64> {
    let engine = Engine::new(&super::engine::config(None, 0)).ok()?;
    let component = load_component(&engine, wasm, origin, None).ok()?;
    let pages = component.resources_required()?.max_initial_memory_size?;
    Some(pages.saturating_mul(64 << 10))
}
