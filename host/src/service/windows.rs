//! Windows through the service: what a hit asks for ([`Hit`]), the time it is counted at, and
//! sweeps of the windows that ended.
//!
//! The time comes from the service's [`Clock`]. A hit with an idempotency key is counted at the
//! time its first attempt was: the service keeps that time in a note named after the key (the
//! first note kept wins, on every process of the store), so a retry after a lost answer lands
//! in the same window, makes the same write, and is answered from its record even when the
//! window has ended since. A store without notes counts a retry at its own time: within the
//! same window it is a replay, in a later one its key is refused as used for another write.

#[cfg(doc)]
use super::Clock;
use super::Service;
use crate::bindings::{HitOutcome, Policy, WindowSpec};
use crate::failure::{Done, Failure};
use crate::idempotency::IdempotencyKey;
use crate::runtime::ListedWindows;
use tally_keyvalue::storage::{Cursor, Note};

/// A hit as a client asks for it.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The name.
    pub name: String,
    /// The window's length and how many windows are kept.
    pub spec: WindowSpec,
    /// What the hit adds (0: reads without counting).
    pub cost: u64,
    /// The most the window allows.
    pub limit: u64,
    /// How the count is checked against the limit.
    pub policy: Policy,
}

impl Service {
    /// Counts `hit` in the window that holds now (for a keyed hit: the time of its first
    /// attempt), with `key` on its writes.
    pub async fn hit(
        &self,
        key: Option<&IdempotencyKey>,
        hit: &Hit,
    ) -> Result<Done<HitOutcome>, Failure> {
        let mut lease = self.request(key).await?;
        let now_ms = self.hit_time(key).await?;
        let done = lease
            .hit(&hit.name, hit.spec, hit.cost, hit.limit, hit.policy, now_ms)
            .await;
        if let (Ok(done), Some(metrics)) = (&done, &self.metrics) {
            metrics.record_hit(done.value.allowed);
        }
        done
    }

    /// The counts of the `last` windows of `length_ms` up to now, oldest first.
    pub async fn history(
        &self,
        name: &str,
        length_ms: u64,
        last: u32,
    ) -> Result<Done<Vec<u64>>, Failure> {
        let now_ms = self.clock.now_ms()?;
        self.read()
            .await?
            .history(name, length_ms, last, now_ms)
            .await
    }

    /// The names with windows on the page of `limit` store keys at `from`, and where the
    /// listing goes on: nowhere once a page holds counters on a store that lists in key order
    /// (every window key sorts before every counter).
    pub async fn list_windows(
        &self,
        from: Option<Cursor>,
        limit: u32,
    ) -> Result<Done<ListedWindows>, Failure> {
        let mut done = self.read().await?.list_windows_from(from, limit).await?;
        if done.value.other_keys && self.storage.capabilities().key_order {
            done.value.next = None;
        }
        Ok(done)
    }

    /// Deletes the window keys whose window ended `keep` or more windows ago, through the whole
    /// store one page at a time (each on an instance of its own): how many.
    pub async fn sweep(&self, keep: u32) -> Result<u64, Failure> {
        let now_ms = self.clock.now_ms()?;
        let mut cursor: Option<String> = None;
        let mut removed = 0;
        loop {
            let step = self
                .read()
                .await?
                .sweep(cursor.as_deref(), keep, now_ms)
                .await?
                .value;
            removed += step.removed;
            match step.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if let Some(metrics) = &self.metrics {
            metrics.record_swept(removed);
        }
        Ok(removed)
    }

    /// When a hit with `key` counts: now, or the time its first attempt kept.
    async fn hit_time(&self, key: Option<&IdempotencyKey>) -> Result<u64, Failure> {
        let now_ms = self.clock.now_ms()?;
        let Some(key) = key else {
            return Ok(now_ms);
        };
        if !self.storage.capabilities().notes {
            return Ok(now_ms);
        }
        let note = Note::new(format!("hit-at:{}", key.as_str()), now_ms.to_string())
            .expiring_after(self.idempotency_retention);
        let kept = self.storage.keep_note(note).await.map_err(|failure| {
            Failure::of_store(failure, self.store_name(), self.counter_limit())
        })?;
        Ok(std::str::from_utf8(&kept)
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(now_ms))
    }
}
