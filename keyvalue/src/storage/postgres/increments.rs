//! Plain increments in one round trip: `BEGIN`, one statement that adds each counter's deltas
//! in the database and returns the totals, and `COMMIT`, sent together. The general writer
//! ([`super::writer`]) needs two: it reads the rows first and applies the write rules here.
//!
//! A batch's increments without an idempotency key are coalesced per counter (one row change
//! whatever their number), and each caller's value is derived from the total the statement
//! returns: the total less the deltas of the increments that came after it. The statement
//! changes a row only where the rules cannot refuse: its value is ASCII decimal digits (as
//! [`crate::storage::value::decode`] reads them) and no caller's limit is passed
//! ([`Counter::ceiling`]: the largest starting value every one of them allows). A counter it
//! leaves alone (not a number, a limit in the way, or created by another process meanwhile)
//! goes to the general writer with its increments, in a transaction of its own after this one,
//! so the rules there answer them exactly; so do keyed writes, sets, deletes and groups.
//!
//! Failures follow the general writer's rule: before `COMMIT` was answered, a lost connection
//! or a timeout is "outcome unknown"; an error the server answered means nothing committed,
//! and the whole batch goes to the general writer, which has its own retries.

use super::Shared;
use super::error::{self, Failed};
use super::writer::{self, Job};
use crate::storage::{Write, value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// The statement, given the counters table's qualified name. Parameters: buckets, keys, deltas
/// and ceilings (decimal text); returns each counter it changed or created with its new value.
pub(super) fn statement(counters: &str) -> String {
    format!(
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                 AS t(bucket, key, delta, ceiling)),
         updated AS (
             UPDATE {counters} AS c
             SET value = convert_to(
                 (encode(c.value, 'escape')::numeric + i.delta::numeric)::text, 'UTF8')
             FROM input AS i
             WHERE c.bucket = i.bucket AND c.key = i.key
               AND CASE WHEN encode(c.value, 'escape') ~ '^[0-9]+$'
                        THEN encode(c.value, 'escape')::numeric <= i.ceiling::numeric
                        ELSE false END
             RETURNING c.bucket, c.key, c.value),
         inserted AS (
             INSERT INTO {counters} (bucket, key, value)
             SELECT i.bucket, i.key, convert_to(i.delta, 'UTF8') FROM input AS i
             WHERE NOT EXISTS
                 (SELECT 1 FROM {counters} AS c WHERE c.bucket = i.bucket AND c.key = i.key)
             ON CONFLICT (bucket, key) DO NOTHING
             RETURNING bucket, key, value)
         SELECT bucket, key, value FROM updated
         UNION ALL SELECT bucket, key, value FROM inserted"
    )
}

/// One counter's increments in the batch.
struct Counter {
    bucket: String,
    key: String,
    /// The sum of its deltas so far.
    total: u64,
    /// The largest starting value none of its increments' limits refuses.
    ceiling: u64,
    /// Its increments' places in the batch, each with the sum of the deltas up to and including
    /// it.
    jobs: Vec<(usize, u64)>,
    /// A delta sum passed `u64::MAX` or a limit refuses even from 0: the rules must answer.
    refused: bool,
}

/// The batch's plain increments, per counter.
pub(super) struct Increments {
    counters: Vec<Counter>,
}

impl Increments {
    /// The plain increments (no idempotency key) among `jobs`, per counter, in arrival order;
    /// `None` when there are none the statement can take.
    pub(super) fn of(jobs: &[&Job]) -> Option<Self> {
        let mut counters: Vec<Counter> = Vec::new();
        let mut index: HashMap<(&str, &str), usize> = HashMap::new();
        for (place, job) in jobs.iter().enumerate() {
            let Job::Write { request, .. } = job else {
                continue;
            };
            let Write::Increment { key, delta } = &request.write else {
                continue;
            };
            if request.idempotency_key.is_some() {
                continue;
            }
            let slot = *index
                .entry((request.bucket.as_str(), key.as_str()))
                .or_insert_with(|| {
                    counters.push(Counter {
                        bucket: request.bucket.clone(),
                        key: key.clone(),
                        total: 0,
                        ceiling: u64::MAX,
                        jobs: Vec::new(),
                        refused: false,
                    });
                    counters.len() - 1
                });
            let counter = &mut counters[slot];
            let limit = request.limit_within(u64::MAX);
            match counter.total.checked_add(*delta) {
                Some(total) if total <= limit => {
                    counter.total = total;
                    counter.ceiling = counter.ceiling.min(limit - total);
                }
                _ => counter.refused = true,
            }
            counter.jobs.push((place, counter.total));
        }
        counters.retain(|counter| !counter.refused);
        (!counters.is_empty()).then_some(Self { counters })
    }

    /// Commits the increments in one round trip: each job's new value by place in the batch;
    /// `None` for every job it did not apply (not a plain increment, or an increment of a counter
    /// the statement left alone), which the general writer must.
    pub(super) async fn commit(
        &self,
        shared: &Shared,
        batch: usize,
    ) -> Result<Vec<Option<u64>>, Failed> {
        let mut client = shared.connection().await?;
        let result = self.transact(shared, &mut client).await;
        if let Err(failed) = &result
            && failed.breaks_connection()
        {
            drop(deadpool_postgres::Object::take(client));
        }
        let totals = result?;
        let mut values = vec![None; batch];
        for (counter, total) in self.counters.iter().zip(totals) {
            let Some(total) = total else {
                continue;
            };
            // The statement added `counter.total` to what it found: each caller's value is the
            // total less the deltas of the increments after it.
            for (place, so_far) in &counter.jobs {
                let value = total.checked_sub(counter.total - so_far).ok_or_else(|| {
                    Failed::OutcomeUnknown(format!(
                        "PostgreSQL: the increments of {:?} committed {total}, less than they added",
                        counter.key
                    ))
                })?;
                values[*place] = Some(value);
            }
        }
        Ok(values)
    }

    /// `BEGIN`, the statement and `COMMIT`, sent together: each counter's new total, in the
    /// order of [`Increments::counters`]; `None` for a counter the statement left alone.
    async fn transact(
        &self,
        shared: &Shared,
        client: &mut deadpool_postgres::Object,
    ) -> Result<Vec<Option<u64>>, Failed> {
        if !shared.schema_ready.load(Ordering::Acquire) {
            writer::create_schema(shared, client).await?;
        }
        let statement = client
            .prepare_cached(&shared.statements.increment)
            .await
            .map_err(|error| error::before_commit(&error))?;
        let buckets: Vec<&str> = self.counters.iter().map(|c| c.bucket.as_str()).collect();
        let keys: Vec<&str> = self.counters.iter().map(|c| c.key.as_str()).collect();
        let deltas: Vec<String> = self.counters.iter().map(|c| c.total.to_string()).collect();
        let ceilings: Vec<String> = self
            .counters
            .iter()
            .map(|c| c.ceiling.to_string())
            .collect();
        let parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&buckets, &keys, &deltas, &ceilings];
        let begin = client.batch_execute("BEGIN");
        let rows = client.query(&statement, &parameters);
        // Sent right behind: if the statement fails on the server, the transaction is aborted
        // and this COMMIT only ends it (PostgreSQL answers ROLLBACK).
        let committed = tokio::time::timeout(shared.commit_timeout, client.batch_execute("COMMIT"));
        let (begun, rows, committed) = tokio::join!(begin, rows, committed);
        let rows = writer::settle(shared, client, begun.and(rows), committed).await?;
        let slots: HashMap<(&str, &str), usize> = buckets
            .iter()
            .zip(&keys)
            .enumerate()
            .map(|(slot, (bucket, key))| ((*bucket, *key), slot))
            .collect();
        let mut totals = vec![None; self.counters.len()];
        for row in rows {
            let (bucket, key, stored): (&str, &str, &[u8]) = (row.get(0), row.get(1), row.get(2));
            let total = value::decode(stored).ok_or_else(|| {
                Failed::OutcomeUnknown(format!(
                    "PostgreSQL: the increment of {key:?} committed a value that is not a number"
                ))
            })?;
            if let Some(&slot) = slots.get(&(bucket, key)) {
                totals[slot] = Some(total);
            }
        }
        Ok(totals)
    }
}
