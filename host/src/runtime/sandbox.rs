//! What confines an instance: a WASI with nothing behind it, a memory limit its limiter
//! enforces (and remembers enforcing), a deadline, and the words for a call stopped by one of
//! them, in terms of the option that set it.

use super::engine::APPLIED_WRITE_GRACE;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tally_keyvalue::KeyValueCtx;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What every instance's store holds: a locked-down WASI context, the resource table and the
/// keyvalue context.
pub(super) struct HostState {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) keyvalue: KeyValueCtx,
    pub(super) limiter: Limiter,
    /// The current call passed its deadline after a write was applied and was given
    /// [`APPLIED_WRITE_GRACE`] to return.
    pub(super) in_grace: bool,
}

impl HostState {
    /// A fresh state serving the request `keyvalue` is for, its memory held to `memory_limit`
    /// bytes.
    pub(super) fn new(keyvalue: KeyValueCtx, memory_limit: usize) -> Self {
        Self {
            wasi: sandbox(),
            table: ResourceTable::new(),
            keyvalue,
            limiter: Limiter {
                limits: StoreLimitsBuilder::new()
                    .memory_size(memory_limit)
                    .trap_on_grow_failure(true)
                    .build(),
                refused_memory: false,
                memory: 0,
            },
            in_grace: false,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The WASI the standard library of `wasm32-wasip2` links against, with nothing behind it: no
/// preopened directories, no environment, no arguments, no network, empty stdin and discarded
/// stdout/stderr. The component can reach nothing but its keyvalue store.
fn sandbox() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// The store's limits, remembering whether it refused the guest memory: how a trap is told to
/// be the memory limit's, without reading the error's text.
pub(super) struct Limiter {
    limits: StoreLimits,
    pub(super) refused_memory: bool,
    /// Bytes of linear memory the instance has (every memory's growth, allowed, summed).
    pub(super) memory: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum);
        if matches!(allowed, Ok(true)) {
            self.memory += desired.saturating_sub(current);
        } else {
            self.refused_memory = true;
        }
        allowed
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// What one instance may use; kept to explain a trap in terms of the option that caused it.
#[derive(Debug, Clone)]
pub(super) struct Limits {
    pub(super) memory: usize,
    pub(super) deadline: Duration,
    pub(super) deadline_ticks: u64,
    pub(super) metrics: Option<Arc<Metrics>>,
}

impl Limits {
    /// A failed call as one line that names its cause (the wasm backtrace goes to the debug
    /// log): the deadline, the memory limit (`out_of_memory`: the limiter refused a
    /// `memory.grow`, which wasmtime reports as an error that is not a `Trap`), or the trap
    /// itself. Counted as a guest trap.
    pub(super) fn explain(
        &self,
        error: wasmtime::Error,
        out_of_memory: bool,
        in_grace: bool,
    ) -> anyhow::Error {
        if let Some(metrics) = &self.metrics {
            metrics.guest_traps.fetch_add(1, Ordering::Relaxed);
        }
        let error = anyhow::Error::from(error);
        let why = match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) if in_grace => format!(
                "ran past its time limit of {} ms and the {} ms grace after its write, and was \
                 stopped",
                self.deadline.as_millis(),
                APPLIED_WRITE_GRACE.as_millis()
            ),
            Some(Trap::Interrupt) => format!(
                "ran past its time limit of {} ms and was stopped",
                self.deadline.as_millis()
            ),
            _ if out_of_memory => format!(
                "needed more than its memory limit of {} MiB and was stopped",
                self.memory >> 20
            ),
            Some(trap) => format!("failed with a {trap}"),
            None => return error,
        };
        tracing::debug!("guest failure: {error:?}");
        anyhow::anyhow!("the counter component {why}")
    }
}
