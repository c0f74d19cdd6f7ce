//! Group commit: one writer task per store gathers the writes that arrive while a commit is in
//! flight and commits them in a fixed number of round trips whatever their number: the plain
//! increments first, in one ([`super::increments`]), then everything else in one transaction
//! by the write rules, described here.
//!
//! The transaction by the rules: `BEGIN`; one `SELECT ... FOR UPDATE` of every counter the
//! batch touches (in key order, so two tally processes never deadlock) and one of its
//! idempotency records; the writes applied here, in arrival order, to those values (the
//! increment rule every store shares, so each caller gets its own exact value and increments of
//! one counter coalesce into one row change); one statement that writes every changed row
//! (arrays through `unnest`); `COMMIT`.
//! Every caller is answered only after `COMMIT` returned, with what its own write came to.
//!
//! A counter that did not exist is `INSERT`ed without `ON CONFLICT`: if another process created
//! it meanwhile, the insert fails, nothing commits, and the batch runs again on fresh reads, so
//! no increment is ever computed from a stale "absent". The same holds for idempotency records.
//!
//! `COMMIT` is bounded by the commit timeout: a synchronous standby that is down makes it wait
//! forever, and a commit cancelled then is still committed locally. So a commit that timed out,
//! or whose connection broke, answers "outcome unknown" (the connection is dropped), never
//! "nothing changed"; a retry with the same idempotency key then answers exactly.
//!
//! The server's `synchronous_commit` is the DBA's: tally never lowers it.

use super::Shared;
use super::error::{self, Failed};
use super::increments::Increments;
use super::schema;
use crate::storage::apply::{self, Record, RecordingCopy, WorkingCopy};
use crate::storage::idempotency::Written;
use crate::storage::{StorageError, Write, WriteGroup, WriteRequest};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;

/// The most jobs one transaction takes; the rest wait for the next.
const MAX_BATCH: usize = 1024;

/// How often a batch runs again after conflicting with another process's transaction.
const CONFLICT_ATTEMPTS: usize = 32;

/// How often a batch is tried again on a fresh connection after the one it had failed before
/// `COMMIT` (a pooled connection to a server that went away, noticed only when used).
const RECONNECT_ATTEMPTS: usize = 1;

/// One caller's work and where its answer goes.
pub(super) enum Job {
    /// One write.
    Write {
        request: WriteRequest,
        reply: oneshot::Sender<Result<Written, StorageError>>,
    },
    /// Writes that commit together or not at all.
    Group {
        group: WriteGroup,
        reply: oneshot::Sender<Result<Vec<u64>, StorageError>>,
    },
}

/// What one job came to in a transaction that committed.
enum Outcome {
    Write(Result<Written, StorageError>),
    Group(Result<Vec<u64>, StorageError>),
}

/// Runs until the store is dropped: takes what is queued, commits it, answers, again.
///
/// One writer per store: a second transaction in flight (gathering while the first waits for its
/// `COMMIT`) was measured slower, on one hot counter and on 10,000 names alike: on a shared
/// counter it only waits for the first one's row lock, and elsewhere the two compete for the
/// same server. Waiting for the callers the last commit answered before committing again
/// (batches of 31 of 32 connections instead of 16) was measured slower too, 0.80x to 0.95x
/// over HTTP: on two cores the callers take as long to come back as a commit takes.
pub(super) async fn run(shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::new();
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let in_batch: Vec<&Job> = batch.iter().collect();
        let outcomes = commit(&shared, &in_batch).await;
        if let Some(observer) = &shared.observer {
            observer.commit_batch(batch.len());
        }
        for (job, outcome) in batch.drain(..).zip(outcomes) {
            answer(job, outcome);
        }
    }
}

/// Sends a job its outcome.
fn answer(job: Job, outcome: Result<Outcome, Failed>) {
    let mismatch = || StorageError::Other("the writer mixed up two answers".into());
    match job {
        Job::Write { reply, .. } => {
            let _ = reply.send(match outcome {
                Ok(Outcome::Write(outcome)) => outcome,
                Ok(Outcome::Group(_)) => Err(mismatch()),
                Err(failed) => Err(failed.to_error()),
            });
        }
        Job::Group { reply, .. } => {
            let _ = reply.send(match outcome {
                Ok(Outcome::Group(outcome)) => outcome,
                Ok(Outcome::Write(_)) => Err(mismatch()),
                Err(failed) => Err(failed.to_error()),
            });
        }
    }
}

/// Commits `jobs`: the plain increments in one round trip ([`Increments`]), then the rest (and
/// the increments that statement left to the rules) as one transaction of the general kind.
/// Each job's outcome, in order, or why it did not commit (or may have).
async fn commit(shared: &Shared, jobs: &[&Job]) -> Vec<Result<Outcome, Failed>> {
    let Some(increments) = Increments::of(jobs) else {
        return commit_by_the_rules(shared, jobs).await;
    };
    let values = match increments.commit(shared, jobs.len()).await {
        Ok(values) => values,
        Err(unknown @ Failed::OutcomeUnknown(_)) => {
            return jobs.iter().map(|_| Err(unknown.clone())).collect();
        }
        // Nothing committed: the general transaction, with its retries, takes them all.
        Err(_) => return commit_by_the_rules(shared, jobs).await,
    };
    let rest: Vec<&Job> = (0..jobs.len())
        .filter(|place| values[*place].is_none())
        .map(|place| jobs[place])
        .collect();
    let mut rest_outcomes = if rest.is_empty() {
        Vec::new()
    } else {
        commit_by_the_rules(shared, &rest).await
    }
    .into_iter();
    values
        .into_iter()
        .map(|value| match value {
            Some(value) => Ok(Outcome::Write(Ok(Written::applied(value)))),
            None => rest_outcomes
                .next()
                .unwrap_or_else(|| Err(Failed::Backend("the writer lost an outcome".into()))),
        })
        .collect()
}

/// Commits `jobs` as one transaction by the write rules (running it again after a conflict):
/// each job's outcome, in order, or why none of them committed (or may have).
async fn commit_by_the_rules(shared: &Shared, jobs: &[&Job]) -> Vec<Result<Outcome, Failed>> {
    let mut conflicts = 0;
    let mut reconnects = 0;
    let failed = loop {
        match attempt(shared, jobs).await {
            Ok(outcomes) => return outcomes.into_iter().map(Ok).collect(),
            Err(Failed::Retry) if conflicts + 1 < CONFLICT_ATTEMPTS => conflicts += 1,
            Err(Failed::Unavailable(_)) if reconnects < RECONNECT_ATTEMPTS => reconnects += 1,
            Err(failed) => break failed,
        }
    };
    jobs.iter().map(|_| Err(failed.clone())).collect()
}

/// A counter: its bucket and key.
type CounterId = (String, String);

/// One counter's value as the transaction found it and as the batch has made it so far.
struct Slot {
    stored: Option<Vec<u8>>,
    now: Option<Vec<u8>>,
}

/// One idempotency key's record as the transaction found it (any row, live or expired) and the
/// record the batch makes, if it makes one.
struct RecordSlot {
    stored: Option<Record>,
    made: Option<Record>,
}

/// The values one transaction works on: the rows its locking reads found, as the batch's writes
/// change them (the working copy the write rules apply to).
struct Values {
    counters: HashMap<CounterId, Slot>,
    records: HashMap<String, RecordSlot>,
}

impl WorkingCopy for Values {
    type Error = StorageError;

    fn get(&mut self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.slot(bucket, key)?.now.clone())
    }

    fn put(&mut self, bucket: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StorageError> {
        self.slot(bucket, key)?.now = value;
        Ok(())
    }
}

impl RecordingCopy for Values {
    /// The batch's record, else the stored one.
    fn record(&mut self, key: &str) -> Result<Option<Record>, StorageError> {
        Ok(self
            .records
            .get(key)
            .and_then(|slot| slot.made.as_ref().or(slot.stored.as_ref()))
            .cloned())
    }

    fn put_record(&mut self, key: &str, record: Record) -> Result<(), StorageError> {
        match self.records.get_mut(key) {
            Some(slot) => {
                slot.made = Some(record);
                Ok(())
            }
            None => Err(unread(key)),
        }
    }
}

impl Values {
    /// The slot of a counter the transaction read (every one a job touches).
    fn slot(&mut self, bucket: &str, key: &str) -> Result<&mut Slot, StorageError> {
        self.counters
            .get_mut(&(bucket.to_string(), key.to_string()))
            .ok_or_else(|| unread(key))
    }
}

/// A key the batch did not read before it came to write it: the writer's own mistake.
fn unread(key: &str) -> StorageError {
    StorageError::Other(format!("the writer did not read {key:?} before writing it").into())
}

/// One try at committing `jobs`.
async fn attempt(shared: &Shared, jobs: &[&Job]) -> Result<Vec<Outcome>, Failed> {
    let mut client = shared.connection().await?;
    let result = transact(shared, &mut client, jobs).await;
    if let Err(failed) = &result
        && failed.breaks_connection()
    {
        // Dead, read-only, or mid-COMMIT: never hand it out again.
        drop(deadpool_postgres::Object::take(client));
    }
    result
}

/// The batch's transaction in two round trips: `BEGIN` and the locking reads, sent together;
/// then, once the writes are applied here, the one write statement and `COMMIT`, sent together.
async fn transact(
    shared: &Shared,
    client: &mut deadpool_postgres::Object,
    jobs: &[&Job],
) -> Result<Vec<Outcome>, Failed> {
    let before = |error: tokio_postgres::Error| error::before_commit(&error);
    if !shared.schema_ready.load(Ordering::Acquire) {
        create_schema(shared, client).await?;
    }
    let statements = &shared.statements;
    let lock_counters = client
        .prepare_cached(&statements.lock_counters)
        .await
        .map_err(before)?;
    let lock_records = client
        .prepare_cached(&statements.lock_records)
        .await
        .map_err(before)?;
    let write = client
        .prepare_cached(&statements.write)
        .await
        .map_err(before)?;
    let touched = Touched::of(jobs);
    let begin = client.batch_execute("BEGIN");
    let counter_ids: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
        [&touched.buckets, &touched.keys];
    let counters = client.query(&lock_counters, &counter_ids);
    let records = async {
        if touched.records.is_empty() {
            Ok(Vec::new())
        } else {
            client.query(&lock_records, &[&touched.records]).await
        }
    };
    let read = tokio::try_join!(begin, counters, records).map_err(before);
    let (_, counter_rows, record_rows) = match read {
        Ok(rows) => rows,
        Err(failed) => {
            if !failed.breaks_connection() {
                // The transaction may be open (and aborted): end it before the connection
                // goes back to the pool.
                let _ = client.batch_execute("ROLLBACK").await;
            }
            return Err(failed);
        }
    };
    let mut values = Values::of(touched, counter_rows, record_rows);
    let outcomes: Vec<Outcome> = jobs
        .iter()
        .map(|job| match job {
            Job::Write { request, .. } => {
                Outcome::Write(apply::apply_request(&mut values, request, u64::MAX).and_then(|o| o))
            }
            Job::Group { group, .. } => {
                Outcome::Group(apply::apply_group(&mut values, group, u64::MAX).and_then(|o| o))
            }
        })
        .collect();
    let changes = Changes::of(&values);
    let parameters = changes.parameters();
    let written = async {
        if changes.is_empty() {
            Ok(0)
        } else {
            client.execute(&write, &parameters).await
        }
    };
    // Sent right behind the write: if the write fails on the server, the transaction is
    // aborted and this COMMIT only ends it (PostgreSQL answers ROLLBACK).
    let committed = tokio::time::timeout(shared.commit_timeout, client.batch_execute("COMMIT"));
    let (written, committed) = tokio::join!(written, committed);
    settle(shared, client, written, committed).await?;
    Ok(outcomes)
}

/// What a transaction's last statement and the `COMMIT` sent right behind it came to: the
/// statement's result once committed, or why it did not commit (or may have). Also keeps the
/// store's "a commit timed out" flag.
pub(super) async fn settle<T>(
    shared: &Shared,
    client: &deadpool_postgres::Object,
    sent: Result<T, tokio_postgres::Error>,
    committed: Result<Result<(), tokio_postgres::Error>, tokio::time::error::Elapsed>,
) -> Result<T, Failed> {
    match (sent, committed) {
        (Err(denied), _) if denied.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            Err(shared.denied(client, &denied).await)
        }
        // The server refused the statement: nothing committed.
        (Err(refused), _) if refused.code().is_some() => Err(error::before_commit(&refused)),
        // The connection failed with the statement and COMMIT both sent: either may have run.
        (Err(lost), _) => Err(error::at_commit(&lost)),
        (Ok(_), Err(_)) => {
            shared.commit_timed_out.store(true, Ordering::Release);
            Err(Failed::OutcomeUnknown(format!(
                "PostgreSQL: COMMIT did not return within the commit timeout ({} ms); a \
                 synchronous standby may be down, and the write may have committed",
                shared.commit_timeout.as_millis()
            )))
        }
        (Ok(_), Ok(Err(lost))) => Err(error::at_commit(&lost)),
        (Ok(result), Ok(Ok(()))) => {
            shared.commit_timed_out.store(false, Ordering::Release);
            Ok(result)
        }
    }
}

/// Creates the tables (in a transaction of their own, under the advisory lock; see
/// [`schema::create`]) before the first batch commits.
pub(super) async fn create_schema(
    shared: &Shared,
    client: &mut deadpool_postgres::Object,
) -> Result<(), Failed> {
    let before = |error: tokio_postgres::Error| error::before_commit(&error);
    let transaction = client.transaction().await.map_err(before)?;
    let created = schema::create(&transaction, &shared.schema).await;
    let created = match created {
        Err(denied) if denied.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            drop(transaction);
            return Err(shared.denied(client, &denied).await);
        }
        other => other.map_err(before)?,
    };
    created.map_err(|refused| Failed::Backend(refused.to_string()))?;
    match tokio::time::timeout(shared.commit_timeout, transaction.commit()).await {
        Ok(Ok(())) => {
            shared.schema_ready.store(true, Ordering::Release);
            Ok(())
        }
        Ok(Err(lost)) => Err(error::at_commit(&lost)),
        Err(_) => {
            shared.commit_timed_out.store(true, Ordering::Release);
            Err(Failed::OutcomeUnknown(format!(
                "PostgreSQL: creating tally's tables did not commit within the commit timeout \
                 ({} ms); a synchronous standby may be down",
                shared.commit_timeout.as_millis()
            )))
        }
    }
}

/// Every counter and idempotency record the jobs touch, in key order (the order rows are
/// locked in, so two writers never wait for each other in a cycle).
struct Touched {
    buckets: Vec<String>,
    keys: Vec<String>,
    records: Vec<String>,
}

impl Touched {
    fn of(jobs: &[&Job]) -> Self {
        let mut counters: BTreeSet<CounterId> = BTreeSet::new();
        let mut records: BTreeSet<String> = BTreeSet::new();
        for job in jobs {
            match job {
                Job::Write { request, .. } => {
                    counters.insert((request.bucket.clone(), request.write.key().to_string()));
                    if let Some(key) = &request.idempotency_key {
                        records.insert(key.as_str().to_string());
                    }
                }
                Job::Group { group, .. } => {
                    let keys = group
                        .writes
                        .iter()
                        .map(Write::key)
                        .chain(group.expected.iter().map(|expected| expected.key.as_str()));
                    for key in keys {
                        counters.insert((group.bucket.clone(), key.to_string()));
                    }
                }
            }
        }
        let (buckets, keys) = counters.into_iter().unzip();
        Self {
            buckets,
            keys,
            records: records.into_iter().collect(),
        }
    }
}

impl Values {
    /// The touched counters and records as the locking reads found them.
    fn of(
        touched: Touched,
        counter_rows: Vec<tokio_postgres::Row>,
        record_rows: Vec<tokio_postgres::Row>,
    ) -> Self {
        let mut found: HashMap<CounterId, Vec<u8>> = counter_rows
            .into_iter()
            .map(|row| ((row.get(0), row.get(1)), row.get(2)))
            .collect();
        let counters = touched
            .buckets
            .into_iter()
            .zip(touched.keys)
            .map(|id| {
                let stored = found.remove(&id);
                (
                    id,
                    Slot {
                        now: stored.clone(),
                        stored,
                    },
                )
            })
            .collect();
        let mut records: HashMap<String, RecordSlot> = record_rows
            .into_iter()
            .map(|row| {
                let record = Record {
                    fingerprint: row.get(1),
                    outcome: row.get(2),
                    expires_at: row.get(3),
                };
                (
                    row.get(0),
                    RecordSlot {
                        stored: Some(record),
                        made: None,
                    },
                )
            })
            .collect();
        for key in touched.records {
            records.entry(key).or_insert(RecordSlot {
                stored: None,
                made: None,
            });
        }
        Self { counters, records }
    }
}

/// Every row the batch changed, as the write statement's arrays.
struct Changes<'a> {
    updated: Columns<'a>,
    inserted: Columns<'a>,
    deleted: Columns<'a>,
    records_updated: RecordColumns<'a>,
    records_inserted: RecordColumns<'a>,
}

impl<'a> Changes<'a> {
    fn of(values: &'a Values) -> Self {
        let mut changes = Self {
            updated: Columns::default(),
            inserted: Columns::default(),
            deleted: Columns::default(),
            records_updated: RecordColumns::default(),
            records_inserted: RecordColumns::default(),
        };
        for ((bucket, key), slot) in &values.counters {
            match (&slot.stored, &slot.now) {
                _ if slot.now == slot.stored => {}
                (Some(_), Some(value)) => changes.updated.push(bucket, key, value),
                (None, Some(value)) => changes.inserted.push(bucket, key, value),
                (Some(_), None) => changes.deleted.push(bucket, key, &[]),
                (None, None) => {}
            }
        }
        for (key, slot) in &values.records {
            match (&slot.stored, &slot.made) {
                (Some(_), Some(made)) => changes.records_updated.push(key, made),
                (None, Some(made)) => changes.records_inserted.push(key, made),
                (_, None) => {}
            }
        }
        changes
    }

    fn is_empty(&self) -> bool {
        self.updated.keys.is_empty()
            && self.inserted.keys.is_empty()
            && self.deleted.keys.is_empty()
            && self.records_updated.keys.is_empty()
            && self.records_inserted.keys.is_empty()
    }

    /// The write statement's parameters, in its order.
    fn parameters(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 16] {
        [
            &self.updated.buckets,
            &self.updated.keys,
            &self.updated.values,
            &self.inserted.buckets,
            &self.inserted.keys,
            &self.inserted.values,
            &self.deleted.buckets,
            &self.deleted.keys,
            &self.records_updated.keys,
            &self.records_updated.fingerprints,
            &self.records_updated.outcomes,
            &self.records_updated.expiries,
            &self.records_inserted.keys,
            &self.records_inserted.fingerprints,
            &self.records_inserted.outcomes,
            &self.records_inserted.expiries,
        ]
    }
}

/// Rows of counters as the arrays `unnest` takes.
#[derive(Default)]
struct Columns<'a> {
    buckets: Vec<&'a str>,
    keys: Vec<&'a str>,
    values: Vec<&'a [u8]>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, bucket: &'a str, key: &'a str, value: &'a [u8]) {
        self.buckets.push(bucket);
        self.keys.push(key);
        self.values.push(value);
    }
}

/// Idempotency records as the arrays `unnest` takes.
#[derive(Default)]
struct RecordColumns<'a> {
    keys: Vec<&'a str>,
    fingerprints: Vec<&'a str>,
    outcomes: Vec<&'a str>,
    expiries: Vec<i64>,
}

impl<'a> RecordColumns<'a> {
    fn push(&mut self, key: &'a str, record: &'a Record) {
        self.keys.push(key);
        self.fingerprints.push(&record.fingerprint);
        self.outcomes.push(&record.outcome);
        self.expiries.push(record.expires_at);
    }
}
