//! The engine: how instances are allocated (on demand, or from a pool sized for the instances
//! that may run at once plus the idle ones) and the clock their deadlines run on (an epoch a
//! background thread advances every [`EPOCH_TICK`]).

use anyhow::{Context, Result};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances; the granularity of the guest deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How long a call that passes its deadline after one of its writes was applied may still run
/// to return: the deadline stops hung guests, not the last microseconds of one that has done
/// its work, whose failure would leave an applied write behind an error. A guest still running
/// after the grace is stopped (`applied_then_failed`).
pub const APPLIED_WRITE_GRACE: Duration = Duration::from_secs(1);

/// What one pooled component instance may contain (the counter component: 3 core instances,
/// 1 memory); a component that needs more fails to instantiate, saying which limit it met.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
/// See [`CORE_INSTANCES_PER_COMPONENT`]. Each pooled memory reserves address space (not RAM).
const MEMORIES_PER_COMPONENT: u32 = 2;
/// See [`CORE_INSTANCES_PER_COMPONENT`].
const TABLES_PER_COMPONENT: u32 = 8;

/// Bytes of each pooled memory and table kept resident between instances.
const KEEP_RESIDENT: usize = 256 << 10;

/// The engine's configuration: epoch interruption always; with `pool_slots`, the pooling
/// allocator with that many instance slots, each memory at most `memory_limit` bytes.
pub(super) fn config(pool_slots: Option<u32>, memory_limit: usize) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if let Some(slots) = pool_slots {
        let mut pool = PoolingAllocationConfig::default();
        // Each component instance draws its core instances, memories and tables from pools of
        // their own (1000 each by default, whatever the component count): without these, the
        // counter component (3 core instances) could not run more than 333 at once.
        pool.total_component_instances(slots)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_memories(slots.saturating_mul(MEMORIES_PER_COMPONENT))
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .total_tables(slots.saturating_mul(TABLES_PER_COMPONENT))
            .total_stacks(slots)
            .max_memory_size(memory_limit)
            // Reset a reused slot's first pages with memset instead of returning them to the OS:
            // madvise on every request costs TLB shootdowns across cores and a page fault per
            // page on the next request. The counter component (64 KiB stack, see
            // .cargo/config.toml) touches little more than this.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// The epoch ticks after which a call of at most `deadline` is stopped: the first tick comes
/// anywhere within [`EPOCH_TICK`] of the call's start, so one more than the deadline's ticks
/// stops a guest between the deadline and one tick after it.
pub(super) fn deadline_ticks(deadline: Duration) -> u64 {
    ticks(deadline).saturating_add(1)
}

/// [`APPLIED_WRITE_GRACE`] in epoch ticks.
pub(super) fn grace_ticks() -> u64 {
    ticks(APPLIED_WRITE_GRACE).max(1)
}

/// `duration` in whole epoch ticks, rounded up.
fn ticks(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis().div_ceil(EPOCH_TICK.as_millis())).unwrap_or(u64::MAX)
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] until the engine is dropped.
pub(super) fn start_epoch_ticker(engine: &Engine) -> Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("tally-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("starting the epoch thread")?;
    Ok(())
}
