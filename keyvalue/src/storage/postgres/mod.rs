//! The PostgreSQL backend: counters in the database a service already runs, shared by every
//! tally process that points at it, and kept through the loss of a machine when the server
//! commits to a synchronous standby.
//!
//! Layout ([`schema`]): tables in a schema of their own (default `tally`), created by the first
//! write; keys in byte order; values `bytea` (counters as ASCII decimal text, as in every store).
//! Writes go through one writer task per store ([`writer`]): group commit, increments of one
//! counter coalesced, each caller answered with its own value after `COMMIT` returned; a batch's
//! plain increments in one round trip ([`increments`]), the rest by the write rules.
//! Reads take a pooled connection and never create anything.
//!
//! Connections ([`connection`]): a libpq-style URL, several hosts with
//! `target_session_attrs=read-write` for failover, TLS through rustls; a pool of at most
//! [`PostgresOptions::pool_size`] connections, which replaces dead ones as it hands them out,
//! so the store serves again after a restart or failover without being reopened.
//!
//! The store runs its connections and writer on a small tokio runtime of its own (as the SQLite
//! store has its writer thread), so it works the same under any caller: a server's runtime, a
//! one-shot command's current-thread runtime, or none.

mod connection;
mod error;
mod increments;
mod schema;
mod writer;

pub use schema::{SchemaProblem, SchemaRefusal};

use super::{
    Applied, Capabilities, Cursor, KeyPage, MAX_PAGE_SIZE, Note, Storage, StorageError,
    StoreFuture, WriteGroup, WriteRequest,
};
use crate::observer::Observer;
use deadpool_postgres::Pool;
use schema::{SchemaKind, SchemaName};
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use writer::Job;

/// How a [`PostgresStorage`] is opened.
#[derive(Clone)]
pub struct PostgresOptions {
    /// The schema that holds tally's tables (created by the first write).
    pub schema: String,
    /// The most connections the store opens: keep a fleet of processes under the server's
    /// `max_connections`.
    pub pool_size: usize,
    /// How long `COMMIT` may take before the write's outcome is reported unknown (a synchronous
    /// standby that is down makes it wait forever).
    pub commit_timeout: Duration,
    /// Told the size of every group commit; `None` records nothing.
    pub observer: Option<Arc<dyn Observer>>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "tally".into(),
            pool_size: 16,
            commit_timeout: Duration::from_secs(10),
            observer: None,
        }
    }
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("commit_timeout", &self.commit_timeout)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// The row of [`crate::open::backends`] table: `postgres://` and `postgresql://`.
pub static BACKEND: crate::open::backend::Backend = crate::open::backend::Backend {
    name: "PostgreSQL",
    schemes: &["postgres://", "postgresql://"],
    options: &[
        crate::open::backend::StoreOption::Schema,
        crate::open::backend::StoreOption::PoolSize,
        crate::open::backend::StoreOption::CommitTimeout,
    ],
    durability: |_| {
        "the server's synchronous_commit and synchronous standbys (acknowledged when COMMIT \
         returns)"
    },
    open: |url, options| {
        let defaults = PostgresOptions::default();
        let postgres = PostgresOptions {
            schema: options.schema.clone().unwrap_or(defaults.schema),
            pool_size: options.pool_size.unwrap_or(defaults.pool_size),
            commit_timeout: options.commit_timeout.unwrap_or(defaults.commit_timeout),
            observer: options.observer.clone(),
        };
        Ok(Arc::new(PostgresStorage::open(url, postgres)?))
    },
};

/// [`Storage`] on a PostgreSQL database.
pub struct PostgresStorage {
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<Job>,
    // `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

/// What the store's tasks share.
pub(crate) struct Shared {
    pool: Pool,
    /// How long opening one connection may take (the URL's `connect_timeout`).
    connect_timeout: Duration,
    schema: SchemaName,
    statements: Statements,
    /// The tables exist (found at open, or created by a commit since).
    schema_ready: AtomicBool,
    /// The last commit timed out (and none returned since): the store is not ready.
    commit_timed_out: AtomicBool,
    commit_timeout: Duration,
    observer: Option<Arc<dyn Observer>>,
}

/// The statements, with the schema's name in them.
pub(crate) struct Statements {
    get: String,
    get_many: String,
    first_page: String,
    next_page: String,
    lock_counters: String,
    lock_records: String,
    write: String,
    increment: String,
    purge: String,
    purge_notes: String,
    probe: String,
    read_note: String,
    keep_note: String,
}

impl Statements {
    fn of(schema: &SchemaName) -> Self {
        let counters = schema.table("counters");
        let records = schema.table("idempotency_records");
        let notes = schema.table("notes");
        Self {
            get: format!("SELECT value FROM {counters} WHERE bucket = $1 AND key = $2"),
            get_many: format!(
                "SELECT key, value FROM {counters} WHERE bucket = $1 AND key = ANY($2)"
            ),
            first_page: format!(
                "SELECT key, value FROM {counters} WHERE bucket = $1 ORDER BY key LIMIT $2"
            ),
            next_page: format!(
                "SELECT key, value FROM {counters} WHERE bucket = $1 AND key > $2 ORDER BY key
                 LIMIT $3"
            ),
            lock_counters: format!(
                "SELECT bucket, key, value FROM {counters}
                 WHERE (bucket, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                 ORDER BY bucket, key FOR UPDATE"
            ),
            lock_records: format!(
                "SELECT key, fingerprint, outcome, expires_at FROM {records}
                 WHERE key = ANY($1) ORDER BY key FOR UPDATE"
            ),
            write: format!(
                "WITH updated AS (
                     UPDATE {counters} AS c SET value = t.value
                     FROM unnest($1::text[], $2::text[], $3::bytea[]) AS t(bucket, key, value)
                     WHERE c.bucket = t.bucket AND c.key = t.key),
                 inserted AS (
                     INSERT INTO {counters} (bucket, key, value)
                     SELECT * FROM unnest($4::text[], $5::text[], $6::bytea[])),
                 deleted AS (
                     DELETE FROM {counters} AS c USING unnest($7::text[], $8::text[]) AS t(bucket, key)
                     WHERE c.bucket = t.bucket AND c.key = t.key),
                 records_updated AS (
                     UPDATE {records} AS r
                     SET fingerprint = t.fingerprint, outcome = t.outcome, expires_at = t.expires_at
                     FROM unnest($9::text[], $10::text[], $11::text[], $12::int8[])
                          AS t(key, fingerprint, outcome, expires_at)
                     WHERE r.key = t.key)
                 INSERT INTO {records} (key, fingerprint, outcome, expires_at)
                 SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::int8[])"
            ),
            increment: increments::statement(&counters),
            probe: format!(
                "UPDATE {} SET version = version",
                schema.table("tally_schema")
            ),
            purge: format!(
                "DELETE FROM {records} WHERE key IN
                 (SELECT key FROM {records} WHERE expires_at <= $1 LIMIT 1000)"
            ),
            purge_notes: format!(
                "DELETE FROM {notes} WHERE name IN (SELECT name FROM {notes}
                 WHERE expires_at IS NOT NULL AND expires_at <= $1 LIMIT 1000)"
            ),
            read_note: format!(
                "SELECT value FROM {notes} WHERE name = $1
                 AND (expires_at IS NULL OR expires_at > $2)"
            ),
            // Replaces only an expired note; nothing returned: a live one holds the name.
            keep_note: format!(
                "INSERT INTO {notes} AS n (name, value, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE
                 SET value = excluded.value, expires_at = excluded.expires_at
                 WHERE n.expires_at IS NOT NULL AND n.expires_at <= $4
                 RETURNING value"
            ),
        }
    }
}

impl Shared {
    /// A pooled connection (a new one if none is idle), or why none can be had.
    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.connection().await.map_err(|failed| failed.to_error())
    }

    /// Why `client`'s role was refused (`42501`): the right it lacks and how to grant it,
    /// asked of the server; PostgreSQL's own words where that cannot be told.
    async fn denied(
        &self,
        client: &deadpool_postgres::Object,
        error: &tokio_postgres::Error,
    ) -> error::Failed {
        match schema::missing_right(&***client, &self.schema).await {
            Ok(Some(missing)) => {
                error::Failed::Misconfigured(format!("{missing} ({})", error::describe(error)))
            }
            _ => error::before_commit(error),
        }
    }

    /// [`Shared::client`] for the writer, which retries some failures.
    async fn connection(&self) -> Result<deadpool_postgres::Object, error::Failed> {
        self.pool
            .get()
            .await
            .map_err(|failed| error::of_pool(failed, self.connect_timeout))
    }
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("schema", &self.shared.schema.as_str())
            .finish_non_exhaustive()
    }
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://` or `postgresql://`, libpq's form) and checks the schema:
    /// another application's ([`StorageError::Refused`], caused by a [`SchemaRefusal`]) is refused untouched, and a server that
    /// cannot be reached is [`StorageError::Unavailable`]. Creates nothing: the first write
    /// creates the tables.
    pub fn open(url: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        let schema = SchemaName::parse(&options.schema)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tally-postgres")
            .enable_all()
            .build()
            .map_err(|error| {
                StorageError::Other(format!("cannot start the PostgreSQL client: {error}").into())
            })?;
        match Self::start(&runtime, url, schema, options) {
            Ok((shared, jobs)) => Ok(Self {
                shared,
                jobs,
                runtime: Some(runtime),
            }),
            Err(error) => {
                // The caller may be async, where dropping a runtime (which blocks) panics.
                runtime.shutdown_background();
                Err(error)
            }
        }
    }

    /// The pool, the schema checked, the writer started on `runtime`.
    fn start(
        runtime: &tokio::runtime::Runtime,
        url: &str,
        schema: SchemaName,
        options: PostgresOptions,
    ) -> Result<(Arc<Shared>, mpsc::UnboundedSender<Job>), StorageError> {
        let connections = {
            // The pool needs the runtime it will spawn connections on.
            let _entered = runtime.enter();
            connection::pool(url, options.pool_size)?
        };
        let pool = connections.pool.clone();
        let connect_timeout = connections.connect_timeout;
        let kind = block_on(runtime, {
            let pool = pool.clone();
            let schema = schema.clone();
            async move {
                let client = pool
                    .get()
                    .await
                    .map_err(|failed| error::of_pool(failed, connect_timeout).to_error())?;
                schema::inspect(&**client, &schema)
                    .await
                    .map_err(|failed| error::of_read(&failed))
            }
        })?;
        let ready = match kind {
            SchemaKind::New | SchemaKind::Older => false,
            SchemaKind::Tally => true,
            SchemaKind::Refused(problem) => return Err(schema::refused(&schema, problem)),
        };
        let shared = Arc::new(Shared {
            pool,
            connect_timeout,
            statements: Statements::of(&schema),
            schema,
            schema_ready: AtomicBool::new(ready),
            commit_timed_out: AtomicBool::new(false),
            commit_timeout: options.commit_timeout,
            observer: options.observer,
        });
        let (jobs, queue) = mpsc::unbounded_channel();
        runtime.spawn(writer::run(shared.clone(), queue));
        Ok((shared, jobs))
    }

    /// Runs `operation` on the store's runtime and awaits it from the caller's.
    fn spawn<T: Send + 'static>(
        &self,
        operation: impl Future<Output = Result<T, StorageError>> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let Some(runtime) = &self.runtime else {
            return Box::pin(std::future::ready(Err(closed())));
        };
        let task = runtime.spawn(operation);
        Box::pin(async move { task.await.map_err(|_| closed())? })
    }

    /// Runs `read` on a pooled connection; a read of tables that do not exist yet is `empty`.
    fn read<T: Send + 'static, F>(&self, empty: T, read: F) -> StoreFuture<'static, T>
    where
        F: for<'c> FnOnce(
                &'c deadpool_postgres::Client,
                &'c Statements,
            ) -> std::pin::Pin<
                Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'c>,
            > + Send
            + 'static,
    {
        let shared = self.shared.clone();
        self.spawn(async move {
            let client = shared.client().await?;
            match read(&client, &shared.statements).await {
                Ok(value) => Ok(value),
                Err(failed) if error::is_missing_table(&failed) => Ok(empty),
                Err(failed) => {
                    let error = error::of_read(&failed);
                    if matches!(error, StorageError::Unavailable(_)) {
                        drop(deadpool_postgres::Object::take(client));
                    }
                    Err(error)
                }
            }
        })
    }

    /// Hands `job` to the writer and awaits its answer.
    fn submit_job<T: Send + 'static>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StorageError>>) -> Job,
    ) -> StoreFuture<'static, T> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(job(reply)).is_err() {
            return Box::pin(std::future::ready(Err(closed())));
        }
        Box::pin(async move { answer.await.map_err(|_| closed())? })
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime blocks, which an async caller may not do: let it go in the
            // background. The connections close with it.
            runtime.shutdown_background();
        }
    }
}

/// What a readiness probe found.
enum Probe {
    /// A session that writes, and the rights tally needs.
    Ready,
    /// A session that only reads.
    ReadOnly,
    /// A right the role lacks, in words.
    Missing(String),
}

/// The store was dropped while an operation was in flight.
fn closed() -> StorageError {
    StorageError::Other("the PostgreSQL store was closed".into())
}

/// `future` run to completion on `runtime`, from any thread (an async caller's included).
fn block_on<T: Send>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = T> + Send,
) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(future))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Storage for PostgresStorage {
    /// Records and groups in the writer's transaction; increment limits checked there too;
    /// notes in a table of their own.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_idempotency_records()
            .with_write_groups()
            .with_increment_limits()
            .with_notes()
            .with_key_order()
    }

    /// A session that can write (not a standby's, not a demoted primary's); before the tables
    /// exist, a role that may create them (the first write will: a role without the right is
    /// [`StorageError::Misconfigured`], naming it); once they exist or a commit timed out, a
    /// commit that returns within the commit timeout: the version row rewritten as it is, a real
    /// write, so its commit waits for a synchronous standby as a counter's does (a commit that
    /// writes nothing never waits), and fails as a counter's would on a full disk or a missing
    /// right.
    fn check_ready(&self) -> StoreFuture<'_, ()> {
        let shared = self.shared.clone();
        self.spawn(async move {
            let mut client = shared.client().await?;
            let write = shared.schema_ready.load(Ordering::Acquire)
                || shared.commit_timed_out.load(Ordering::Acquire);
            let probe = async {
                let transaction = client.transaction().await?;
                let read_only: String = transaction
                    .query_one("SHOW transaction_read_only", &[])
                    .await?
                    .get(0);
                if read_only == "on" {
                    return Ok(Probe::ReadOnly);
                }
                if !write {
                    if let Some(missing) =
                        schema::missing_right(&*transaction, &shared.schema).await?
                    {
                        return Ok(Probe::Missing(missing));
                    }
                } else {
                    transaction.execute(&shared.statements.probe, &[]).await?;
                }
                transaction.commit().await.map(|()| Probe::Ready)
            };
            let outcome = match tokio::time::timeout(shared.commit_timeout, probe).await {
                Ok(Ok(Probe::Ready)) => Ok(()),
                Ok(Ok(Probe::ReadOnly)) => Err(StorageError::Unavailable(
                    "PostgreSQL: the server only reads (a standby, or a primary that was \
                     demoted); name the primary, or every host with \
                     target_session_attrs=read-write"
                        .into(),
                )),
                Ok(Ok(Probe::Missing(missing))) => Err(StorageError::Misconfigured(missing.into())),
                Ok(Err(denied)) if denied.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                    Err(shared.denied(&client, &denied).await.to_error())
                }
                Ok(Err(failed)) => Err(match error::before_commit(&failed) {
                    error::Failed::Retry => StorageError::Busy(error::describe(&failed).into()),
                    error::Failed::Backend(detail) => StorageError::Unavailable(detail.into()),
                    failed => failed.to_error(),
                }),
                Err(_) => Err(StorageError::Unavailable(
                    format!(
                        "PostgreSQL: a commit did not return within the commit timeout ({} ms); is \
                     the synchronous standby down?",
                        shared.commit_timeout.as_millis()
                    )
                    .into(),
                )),
            };
            match &outcome {
                Ok(()) if write => shared.commit_timed_out.store(false, Ordering::Release),
                Ok(()) => {}
                Err(StorageError::Unavailable(_)) => {
                    drop(deadpool_postgres::Object::take(client));
                }
                Err(_) => {}
            }
            outcome
        })
    }

    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.read(None, move |client, statements| {
            Box::pin(async move {
                let statement = client.prepare_cached(&statements.get).await?;
                let row = client.query_opt(&statement, &[&bucket, &key]).await?;
                Ok(row.map(|row| row.get(0)))
            })
        })
    }

    /// One statement, so the values are of one point in time.
    fn get_many<'a>(
        &'a self,
        bucket: &'a str,
        keys: &'a [String],
    ) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        let (bucket, keys) = (bucket.to_string(), keys.to_vec());
        let empty = vec![None; keys.len()];
        self.read(empty, move |client, statements| {
            Box::pin(async move {
                let statement = client.prepare_cached(&statements.get_many).await?;
                let found: std::collections::HashMap<String, Vec<u8>> = client
                    .query(&statement, &[&bucket, &keys])
                    .await?
                    .into_iter()
                    .map(|row| (row.get(0), row.get(1)))
                    .collect();
                Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
            })
        })
    }

    /// By key, in byte order (the column's collation is `C`): exactly once per listing. The
    /// values come with the keys, from the same statement.
    fn list_keys<'a>(
        &'a self,
        bucket: &'a str,
        cursor: Option<&'a Cursor>,
        limit: usize,
    ) -> StoreFuture<'a, KeyPage> {
        let after = match cursor.map(|cursor| cursor.as_key("PostgreSQL store")) {
            Some(Err(invalid)) => return Box::pin(std::future::ready(Err(invalid))),
            Some(Ok(key)) => Some(key.to_string()),
            None => None,
        };
        let bucket = bucket.to_string();
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        self.read(
            KeyPage::by_key(Vec::new(), false),
            move |client, statements| {
                Box::pin(async move {
                    // One more than asked for says whether another page follows.
                    let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
                    let rows = match &after {
                        None => {
                            let statement = client.prepare_cached(&statements.first_page).await?;
                            client.query(&statement, &[&bucket, &fetch]).await?
                        }
                        Some(after) => {
                            let statement = client.prepare_cached(&statements.next_page).await?;
                            client.query(&statement, &[&bucket, after, &fetch]).await?
                        }
                    };
                    let mut entries: Vec<(String, Vec<u8>)> = rows
                        .into_iter()
                        .map(|row| (row.get(0), row.get(1)))
                        .collect();
                    let more = entries.len() > limit;
                    entries.truncate(limit);
                    Ok(KeyPage::entries_by_key(entries, more))
                })
            },
        )
    }

    /// Pages of keys and values inside one repeatable-read transaction: one point in time.
    fn scan<'a>(
        &'a self,
        bucket: &'a str,
        visit: &'a mut (dyn FnMut(&str, &[u8]) -> ControlFlow<()> + Send),
    ) -> StoreFuture<'a, ()> {
        // The visitor stays on the caller's side; pages come over a channel.
        let (pages, mut arriving) = mpsc::channel::<Vec<(String, Vec<u8>)>>(2);
        let shared = self.shared.clone();
        let bucket_name = bucket.to_string();
        let reading = self.spawn(async move {
            let mut client = shared.client().await?;
            let outcome = async {
                let transaction = client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?;
                // The listing's statements, a whole page each.
                let statements = &shared.statements;
                let limit = i64::try_from(MAX_PAGE_SIZE).unwrap_or(i64::MAX);
                let mut after: Option<String> = None;
                loop {
                    let rows = match &after {
                        None => {
                            transaction
                                .query(&statements.first_page, &[&bucket_name, &limit])
                                .await?
                        }
                        Some(after) => {
                            transaction
                                .query(&statements.next_page, &[&bucket_name, after, &limit])
                                .await?
                        }
                    };
                    let page: Vec<(String, Vec<u8>)> = rows
                        .into_iter()
                        .map(|row| (row.get(0), row.get(1)))
                        .collect();
                    let full = page.len() == MAX_PAGE_SIZE;
                    after = page.last().map(|(key, _)| key.clone());
                    if pages.send(page).await.is_err() || !full {
                        break;
                    }
                }
                transaction.commit().await
            }
            .await;
            match outcome {
                Ok(()) => Ok(()),
                Err(failed) if error::is_missing_table(&failed) => Ok(()),
                Err(failed) => Err(error::of_read(&failed)),
            }
        });
        Box::pin(async move {
            let mut stopped = false;
            while let Some(page) = arriving.recv().await {
                for (key, value) in &page {
                    if visit(key, value).is_break() {
                        stopped = true;
                        break;
                    }
                }
                if stopped {
                    break;
                }
            }
            drop(arriving);
            reading.await
        })
    }

    /// Through the writer task: group-committed, answered after `COMMIT`.
    fn write(&self, request: WriteRequest) -> StoreFuture<'_, Applied> {
        let written = self.submit_job(|reply| Job::Write { request, reply });
        Box::pin(async move { written.await.map(Applied::durable_now) })
    }

    /// One transaction of the writer's.
    fn write_group(&self, group: WriteGroup) -> StoreFuture<'_, Vec<u64>> {
        self.submit_job(|reply| Job::Group { group, reply })
    }

    /// Up to 1000 expired records and 1000 expired notes per call.
    fn purge_expired(&self) -> StoreFuture<'_, usize> {
        self.read(0, |client, statements| {
            Box::pin(async move {
                let now = super::idempotency::now_millis();
                let statement = client.prepare_cached(&statements.purge).await?;
                let records = client.execute(&statement, &[&now]).await?;
                let statement = client.prepare_cached(&statements.purge_notes).await?;
                let notes = client.execute(&statement, &[&now]).await?;
                Ok(usize::try_from(records.max(notes)).unwrap_or(usize::MAX))
            })
        })
    }

    fn read_note<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let name = name.to_string();
        self.read(None, move |client, statements| {
            Box::pin(async move {
                let statement = client.prepare_cached(&statements.read_note).await?;
                let now = super::idempotency::now_millis();
                let row = client.query_opt(&statement, &[&name, &now]).await?;
                Ok(row.map(|row| row.get(0)))
            })
        })
    }

    /// On a pooled connection, outside the writer (a note is no counter): the tables created
    /// first if this is the store's first write, then one statement that keeps the note or
    /// finds a live one, committed within the commit timeout.
    fn keep_note(&self, note: Note) -> StoreFuture<'_, Vec<u8>> {
        let shared = self.shared.clone();
        self.spawn(async move {
            let mut client = shared.client().await?;
            if !shared.schema_ready.load(Ordering::Acquire) {
                writer::create_schema(&shared, &mut client)
                    .await
                    .map_err(|failed| failed.to_error())?;
            }
            let keep = async {
                let now = super::idempotency::now_millis();
                let statement = client.prepare_cached(&shared.statements.keep_note).await?;
                let kept = client
                    .query_opt(
                        &statement,
                        &[&note.name, &note.value, &note.expires_at(), &now],
                    )
                    .await?;
                if let Some(row) = kept {
                    return Ok::<_, tokio_postgres::Error>(Some(row.get(0)));
                }
                // A live note holds the name; this statement's snapshot sees its commit.
                let statement = client.prepare_cached(&shared.statements.read_note).await?;
                let row = client.query_opt(&statement, &[&note.name, &now]).await?;
                Ok(row.map(|row| row.get(0)))
            };
            let kept: Option<Vec<u8>> =
                match tokio::time::timeout(shared.commit_timeout, keep).await {
                    Ok(Ok(kept)) => kept,
                    // The server's own refusal committed nothing; a lost connection may have.
                    Ok(Err(failed)) if failed.code().is_some() => {
                        return Err(error::before_commit(&failed).to_error());
                    }
                    Ok(Err(failed)) => return Err(error::at_commit(&failed).to_error()),
                    Err(_) => {
                        return Err(StorageError::OutcomeUnknown(format!(
                            "PostgreSQL: keeping the note {:?} did not commit within the commit \
                         timeout ({} ms)",
                            note.name,
                            shared.commit_timeout.as_millis()
                        ).into()));
                    }
                };
            // Only a note that expired between the two statements (and was purged) is
            // missing: the one given is then as good as kept by the next call.
            kept.ok_or_else(|| {
                StorageError::Busy(
                    format!(
                        "the note {:?} changed while it was being kept; try again",
                        note.name
                    )
                    .into(),
                )
            })
        })
    }
}
