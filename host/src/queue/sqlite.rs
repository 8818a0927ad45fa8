//! [`SqliteStore`]: the [`Store`] embedded in one file, for a single node with zero setup.
//!
//! Same semantics as [`super::postgres::PgStore`] (the conformance suite checks both), with
//! the differences one process owning the database allows:
//!
//! - **One writer.** Every write goes through a pool of exactly one connection, inside
//!   `BEGIN IMMEDIATE` transactions, so writes never race each other and a claim needs no
//!   `SKIP LOCKED`: it is one `UPDATE … WHERE id IN (SELECT … ORDER BY … LIMIT n)
//!   RETURNING *`. Reads (`get`, `list`, modules, bytes) use a small separate pool; in WAL
//!   mode they never block the writer nor wait for it.
//! - **Group commit of finishes.** Concurrent [`Store::finish`] calls are coalesced: a caller
//!   queues its reports and whoever holds the write turn applies every queued report in one
//!   transaction (one fsync), answering each caller separately.
//! - **Durability.** WAL with `synchronous=FULL` for what a caller was promised: an
//!   acknowledged enqueue (or cancel, module, key) is fsynced before the answer, so it
//!   survives `kill -9` *and* an OS crash or power loss. Claims, heartbeats, progress and
//!   finishes commit with `NORMAL` (no fsync of their own), like PostgreSQL's
//!   `synchronous_commit=off`: they survive a process crash, and a power loss can only
//!   make a job run again (see [`SqliteStore::writer`]).
//! - **Wake-ups in process.** There is no LISTEN/NOTIFY and no other node: events are sent
//!   on a tokio broadcast channel after the transaction that causes them commits.
//! - **Rescue** needs no advisory lock: two concurrent calls are serialized by the writer and
//!   the second finds nothing left to rescue; it never reports `skipped`.
//!
//! Timestamps are stored as INTEGER unix microseconds (UTC), JSON as TEXT, bytes as BLOB.
//! "Now" is taken once per call in Rust and bound, so one call sees one time, like
//! PostgreSQL's `now()` within a transaction.

mod settings;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, Transaction};
use tokio::sync::{broadcast, oneshot};

use super::handoff::{self, Handoff, Reservation};
use super::keys;
use super::{
    AttemptRecord, Enqueued, ErrorKind, Finish, Heartbeat, Job, JobBody, JobCount, JobError,
    JobFilter, JobState, JobSummary, Module, NewJob, NewKey, NewModule, Outcome, Page, Principal,
    Progress, PutModule, RescueReport, Scope, Store, StoreError, StoreEvent,
};

/// [`super::MAX_HISTORY`] as the statements bind it.
const MAX_HISTORY: i64 = super::MAX_HISTORY as i64;
/// Events buffered per subscriber before it lags.
const EVENT_CAPACITY: usize = 4096;
/// Connections of the read pool.
const READ_CONNECTIONS: u32 = 4;
/// How long a statement waits for a lock held by another process (e.g. `wasmq key create`)
/// before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for its turn at the single writer connection.
const WRITE_TURN_TIMEOUT: Duration = Duration::from_secs(60);
/// Rows deleted per transaction by `prune`, so other writers get turns in between.
const PRUNE_BATCH: i64 = 10_000;
/// Jobs promoted per transaction by `promote_scheduled`.
const PROMOTE_BATCH: i64 = 10_000;

/// The SQLite store. Cheap to clone; clones share the pools and the event channel.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Exactly one connection: every write.
    write: SqlitePool,
    /// `query_only` connections: every read.
    read: SqlitePool,
    events: broadcast::Sender<StoreEvent>,
    /// Finish reports waiting for the next group commit.
    pending_finishes: Mutex<Vec<PendingFinish>>,
    /// Held by the caller applying the queued finishes (the group-commit leader).
    finish_turn: tokio::sync::Mutex<()>,
    /// This process's idle workers, to hand lone enqueued jobs to (see [`super::handoff`]).
    handoff: Arc<Handoff>,
}

struct PendingFinish {
    items: Vec<Finish>,
    reply: oneshot::Sender<Result<Vec<bool>, StoreError>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its parent directory if needed) the database file at `path`,
    /// in WAL mode with `synchronous=FULL`, and applies pending migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the database directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITE_TURN_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_err(path, e))?;
        sqlx::migrate!("./migrations-sqlite")
            .run(&write)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "database migration failed");
                StoreError::Database(format!("applying the database migrations failed: {e}"))
            })?;
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.create_if_missing(false).pragma("query_only", "ON"))
            .await
            .map_err(|e| open_err(path, e))?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                write,
                read,
                events,
                pending_finishes: Mutex::new(Vec::new()),
                finish_turn: tokio::sync::Mutex::new(()),
                handoff: Arc::default(),
            }),
        })
    }

    /// Starts a write transaction on the single writer connection. `IMMEDIATE` takes the
    /// write lock up front, so a transaction that reads and then writes never fails to
    /// upgrade because another process wrote in between.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.begin_write_with(true).await
    }

    /// [`SqliteStore::begin_write`], durable or not (see [`SqliteStore::writer`]).
    async fn begin_write_with(
        &self,
        durable: bool,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        let conn = self.writer(durable).await?;
        Transaction::begin(
            conn,
            Some(sqlx::SqlSafeStr::into_sql_str("BEGIN IMMEDIATE")),
        )
        .await
        .map_err(db_err)
    }

    /// The writer connection, set for what the next commit is. Durable commits
    /// (`synchronous=FULL`) wait for the WAL fsync: enqueues, cancels, modules, keys,
    /// maintenance. Claims, heartbeats, progress and finishes do not (`NORMAL`): they
    /// survive a process crash (the WAL is written before the commit returns), and on a
    /// power loss the last of them may be lost, which the queue tolerates as PostgreSQL's
    /// `synchronous_commit=off` does (a lost claim leaves the job waiting; a lost finish
    /// leaves it running until its lease expires and it runs again). The next durable
    /// commit's fsync covers them too.
    async fn writer(&self, durable: bool) -> Result<PoolConnection<Sqlite>, StoreError> {
        let mut conn = self.inner.write.acquire().await.map_err(db_err)?;
        let pragma = if durable {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        sqlx::query(pragma)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(conn)
    }

    fn notify(&self, event: StoreEvent) {
        // No receivers is fine: nobody is waiting.
        let _ = self.inner.events.send(event);
    }

    fn notify_available(&self, queues: BTreeSet<String>) {
        for queue in queues {
            self.notify(StoreEvent::JobsAvailable { queue });
        }
    }

    fn notify_finished(&self, ids: Vec<i64>) {
        if !ids.is_empty() {
            self.notify(StoreEvent::JobsFinished { ids });
        }
    }
}

fn open_err(path: &Path, e: sqlx::Error) -> StoreError {
    tracing::error!(error = %e, path = %path.display(), "cannot open the SQLite database");
    StoreError::Unavailable(format!(
        "cannot open the SQLite database {}: {e}",
        path.display()
    ))
}

/// Turns a driver error into a domain error; the detail of unexpected ones goes to the log.
fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for the database".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store was closed".into()),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("the database connection crashed".into())
        }
        sqlx::Error::Database(db) => {
            let code: i32 = db.code().and_then(|c| c.parse().ok()).unwrap_or_default();
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    StoreError::Conflict("it already exists".into())
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => StoreError::Conflict(
                    "it refers to something deleted at the same time; try again".into(),
                ),
                sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::NotNullViolation => {
                    tracing::warn!(error = %e, "store rejected a value");
                    StoreError::Invalid("a value is out of range".into())
                }
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
                _ if matches!(code & 0xff, 5 | 6) => StoreError::Unavailable(format!(
                    "the database is locked by another process ({code})"
                )),
                // SQLITE_IOERR (10), SQLITE_FULL (13), SQLITE_CANTOPEN (14).
                _ if matches!(code & 0xff, 10 | 13 | 14) => {
                    tracing::error!(error = %e, "database I/O error");
                    StoreError::Unavailable(format!("the database file cannot be written ({code})"))
                }
                _ => {
                    tracing::error!(error = %e, "database error");
                    StoreError::Database(format!("an internal database error occurred ({code})"))
                }
            }
        }
        _ => {
            tracing::error!(error = %e, "database error");
            StoreError::Database("an internal database error occurred".into())
        }
    }
}

use super::{SUMMARY_COLUMNS, decode_err};

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column).map_err(|e| decode_err(column, e))
}

fn get_u32(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    let v: i64 = get(row, column)?;
    u32::try_from(v).map_err(|e| decode_err(column, e))
}

fn get_u64(row: &SqliteRow, column: &str) -> Result<u64, StoreError> {
    let v: i64 = get(row, column)?;
    u64::try_from(v).map_err(|e| decode_err(column, e))
}

fn get_time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    from_micros(column, get(row, column)?)
}

fn get_opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    get::<Option<i64>>(row, column)?
        .map(|v| from_micros(column, v))
        .transpose()
}

fn get_json<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|e| decode_err(column, e))
}

fn get_opt_json<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<T>, StoreError> {
    get::<Option<String>>(row, column)?
        .map(|text| serde_json::from_str(&text).map_err(|e| decode_err(column, e)))
        .transpose()
}

fn from_micros(column: &str, v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| decode_err(column, v))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// `now` plus `d`, in microseconds, saturating.
fn micros_after(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `now` minus `d`, in microseconds, saturating.
fn micros_before(now: i64, d: Duration) -> i64 {
    now.saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("store types serialize to JSON")
}

/// A progress report as stored, its note made storable ([`super::storable`]).
fn progress_text(progress: &super::Progress) -> String {
    json_text(&super::storable_progress(progress))
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn job_from_row(row: &SqliteRow) -> Result<Job, StoreError> {
    let body = JobBody {
        input: get(row, "input")?,
        result: get(row, "result")?,
        log: get(row, "log")?,
        log_dropped: get_u64(row, "log_dropped")?,
        worker_id: get(row, "worker_id")?,
        lease_expires_at: get_opt_time(row, "lease_expires_at")?,
    };
    Ok(Job::from_parts(summary_from_row(row)?, body))
}

/// Reads the [`SUMMARY_COLUMNS`].
fn summary_from_row(row: &SqliteRow) -> Result<JobSummary, StoreError> {
    let state: String = get(row, "state")?;
    let priority: i64 = get(row, "priority")?;
    Ok(JobSummary {
        id: get(row, "id")?,
        tenant: get(row, "tenant")?,
        module: get(row, "module")?,
        digest: get(row, "digest")?,
        queue: get(row, "queue")?,
        priority: i16::try_from(priority).map_err(|e| decode_err("priority", e))?,
        state: state.parse().map_err(|e| decode_err("state", e))?,
        run_at: get_time(row, "run_at")?,
        attempt: get_u32(row, "attempt")?,
        max_attempts: get_u32(row, "max_attempts")?,
        limits: get_json(row, "limits")?,
        idempotency_key: get(row, "idempotency_key")?,
        progress: get_opt_json(row, "progress")?,
        error: get_opt_json(row, "error")?,
        usage: get_opt_json(row, "usage")?,
        history: get_json(row, "history")?,
        created_at: get_time(row, "created_at")?,
        started_at: get_opt_time(row, "started_at")?,
        finished_at: get_opt_time(row, "finished_at")?,
        cancel_requested: get(row, "cancel_requested")?,
    })
}

fn module_from_row(row: &SqliteRow) -> Result<Module, StoreError> {
    let kind: String = get(row, "kind")?;
    Ok(Module {
        tenant: get(row, "tenant")?,
        name: get(row, "name")?,
        version: get_u32(row, "version")?,
        digest: get(row, "digest")?,
        size: get_u64(row, "size")?,
        kind: kind.parse().map_err(|e| decode_err("kind", e))?,
        limits: get_json(row, "limits")?,
        created_at: get_time(row, "created_at")?,
    })
}

// ---------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------

/// The latest version's digest of a module (the pin of a job enqueued without one).
const LATEST_DIGEST: &str = r#"
SELECT digest FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC LIMIT 1
"#;

const BY_IDEMPOTENCY_KEY: &str = r#"
SELECT * FROM wasmq_jobs WHERE tenant = $1 AND idempotency_key = $2
"#;

const INSERT_JOB: &str = r#"
INSERT INTO wasmq_jobs (tenant, module, digest, queue, priority, input, state, run_at,
                        max_attempts, limits, idempotency_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING *
"#;

/// The claim: due waiting jobs of one queue, in claim order, marked running. The single
/// writer makes it atomic; served by the partial index `wasmq_jobs_claim`.
const CLAIM: &str = r#"
UPDATE wasmq_jobs
SET state = 'running',
    attempt = attempt + 1,
    started_at = $1,
    worker_id = $2,
    lease_expires_at = $3,
    cancel_requested = 0,
    progress = NULL
WHERE id IN (SELECT id FROM wasmq_jobs
             WHERE queue = $4
               AND state IN ('available', 'scheduled', 'retryable')
               AND run_at <= $1
             ORDER BY priority DESC, run_at, id
             LIMIT $5)
RETURNING *
"#;

/// A job just inserted, taken as its first attempt by `$2` (see [`super::handoff`]).
const TAKE: &str = r#"
UPDATE wasmq_jobs
SET state = 'running', attempt = 1, started_at = $1, worker_id = $2, lease_expires_at = $3
WHERE id = $4
RETURNING *
"#;

/// `$2` is a JSON array of job ids.
const HEARTBEAT: &str = r#"
UPDATE wasmq_jobs
SET lease_expires_at = $3
WHERE id IN (SELECT value FROM json_each($2)) AND state = 'running' AND worker_id = $1
RETURNING id, cancel_requested
"#;

/// Applies one report, only to a job still running at the reported attempt; `$8` is the
/// history entry to append (or NULL), `$13` the history's bound: at it, the second entry
/// goes, so the first and the latest are kept (see `MAX_HISTORY`).
const FINISH: &str = r#"
UPDATE wasmq_jobs
SET state = $3,
    result = CASE WHEN $3 = 'completed' THEN $4 ELSE result END,
    error = CASE WHEN $3 = 'available' THEN error ELSE $5 END,
    -- A released job goes back as if this attempt never started.
    attempt = CASE WHEN $3 = 'available' THEN attempt - 1 ELSE attempt END,
    run_at = CASE WHEN $3 = 'available' THEN $6 ELSE COALESCE($7, run_at) END,
    finished_at = CASE WHEN $3 IN ('retryable', 'available') THEN NULL ELSE $6 END,
    history = CASE WHEN $8 IS NULL THEN history
                   ELSE json_insert(CASE WHEN json_array_length(history) >= $13
                                         THEN json_remove(history, '$[1]') ELSE history END,
                                    '$[#]', json($8)) END,
    usage = $9,
    log = $10,
    log_dropped = $11,
    progress = COALESCE($12, progress),
    worker_id = NULL,
    lease_expires_at = NULL
WHERE id = $1 AND state = 'running' AND attempt = $2
RETURNING id, state, queue
"#;

const SET_PROGRESS: &str = r#"
UPDATE wasmq_jobs SET progress = $3
WHERE id = $1 AND attempt = $2 AND state = 'running'
"#;

/// Running jobs whose lease expired.
const EXPIRED: &str = r#"
SELECT id, attempt, max_attempts, cancel_requested, worker_id, queue FROM wasmq_jobs
WHERE state = 'running' AND lease_expires_at <= $1
"#;

/// Takes back one expired job: `$2` is its next state, `$4` its error, `$5` the history
/// entry, `$6` the history's bound (as [`FINISH`] keeps it).
const RESCUE_ONE: &str = r#"
UPDATE wasmq_jobs
SET state = $2,
    run_at = CASE WHEN $2 = 'retryable' THEN $3 ELSE run_at END,
    error = $4,
    history = json_insert(CASE WHEN json_array_length(history) >= $6
                               THEN json_remove(history, '$[1]') ELSE history END,
                          '$[#]', json($5)),
    finished_at = CASE WHEN $2 = 'retryable' THEN NULL ELSE $3 END,
    worker_id = NULL,
    lease_expires_at = NULL
WHERE id = $1 AND state = 'running'
"#;

const PROMOTE: &str = r#"
UPDATE wasmq_jobs SET state = 'available'
WHERE id IN (SELECT id FROM wasmq_jobs
             WHERE state IN ('scheduled', 'retryable') AND run_at <= $1
             ORDER BY run_at
             LIMIT $2)
RETURNING queue
"#;

const JOB_STATE: &str = "SELECT state FROM wasmq_jobs WHERE tenant = $1 AND id = $2";

const CANCEL_WAITING: &str = r#"
UPDATE wasmq_jobs
SET state = 'cancelled', finished_at = $2, error = $3
WHERE id = $1
RETURNING *
"#;

const CANCEL_RUNNING: &str = r#"
UPDATE wasmq_jobs SET cancel_requested = 1 WHERE id = $1 RETURNING *
"#;

const GET: &str = "SELECT * FROM wasmq_jobs WHERE tenant = $1 AND id = $2";

/// The listing query for the filters that are set. SQLite does not fold `$n IS NULL OR …`
/// away when planning, so a set filter is written as a plain comparison (letting it pick
/// the matching `wasmq_jobs_list*` index) and an unset one as `$n IS NULL`, which keeps
/// every parameter in place. Built from constant fragments only; every value is bound.
/// `columns` is `*` or [`SUMMARY_COLUMNS`], a constant.
fn list_sql(filter: &JobFilter, columns: &str) -> String {
    let mut sql = format!("SELECT {columns} FROM wasmq_jobs WHERE tenant = $1");
    for (set, compare, unset) in [
        (filter.state.is_some(), " AND state = $2", " AND $2 IS NULL"),
        (
            filter.module.is_some(),
            " AND module = $3",
            " AND $3 IS NULL",
        ),
        (filter.queue.is_some(), " AND queue = $4", " AND $4 IS NULL"),
        (filter.cursor.is_some(), " AND id < $5", " AND $5 IS NULL"),
    ] {
        sql.push_str(if set { compare } else { unset });
    }
    sql.push_str(" ORDER BY id DESC LIMIT $6");
    sql
}

const PRUNE: &str = r#"
DELETE FROM wasmq_jobs
WHERE id IN (SELECT id FROM wasmq_jobs
             WHERE state IN ('completed', 'failed', 'cancelled') AND finished_at < $1
             LIMIT $2)
"#;

/// Blobs no module version and no unfinished job refers to (optionally only the digests
/// of the JSON array `$1`).
const SWEEP_BLOBS: &str = r#"
DELETE FROM wasmq_module_blobs
WHERE ($1 IS NULL OR digest IN (SELECT value FROM json_each($1)))
  AND NOT EXISTS (SELECT 1 FROM wasmq_modules m WHERE m.digest = wasmq_module_blobs.digest)
  AND NOT EXISTS (SELECT 1 FROM wasmq_jobs j
                  WHERE j.digest = wasmq_module_blobs.digest
                    AND j.state IN ('scheduled', 'available', 'running', 'retryable'))
"#;

// ---------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------

const LATEST_MODULE: &str = r#"
SELECT * FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC LIMIT 1
"#;

const PUT_BLOB: &str = r#"
INSERT INTO wasmq_module_blobs (digest, bytes, size, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (digest) DO NOTHING
"#;

const INSERT_MODULE: &str = r#"
INSERT INTO wasmq_modules (tenant, name, version, digest, size, kind, limits, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING *
"#;

const MODULE_VERSIONS: &str = r#"
SELECT * FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC
"#;

const LIST_MODULES: &str = r#"
SELECT * FROM wasmq_modules m
WHERE tenant = $1
  AND version = (SELECT max(version) FROM wasmq_modules
                 WHERE tenant = m.tenant AND name = m.name)
ORDER BY name
"#;

const DELETE_MODULE: &str = r#"
DELETE FROM wasmq_modules WHERE tenant = $1 AND name = $2 RETURNING digest
"#;

const MODULE_BYTES: &str = "SELECT bytes FROM wasmq_module_blobs WHERE digest = $1";

/// The stored state and error of an outcome.
fn finish_state(outcome: &Outcome) -> (&'static str, Option<JobError>) {
    match outcome {
        Outcome::Complete { .. } => ("completed", None),
        Outcome::Retry { error, .. } => ("retryable", Some(super::bounded(error))),
        Outcome::Fail { error } => ("failed", Some(super::bounded(error))),
        Outcome::Release => ("available", None),
        Outcome::Cancelled => (
            "cancelled",
            Some(JobError::new(
                ErrorKind::Cancelled,
                "cancelled while running",
            )),
        ),
    }
}

fn history_entry(attempt: u32, at: DateTime<Utc>, error: &JobError) -> String {
    json_text(&AttemptRecord {
        attempt,
        at,
        kind: error.kind,
        message: error.message.clone(),
    })
}

impl SqliteStore {
    /// Applies the finish reports of several callers in one transaction; answers in order.
    async fn finish_group(&self, groups: &[Vec<Finish>]) -> Result<Vec<Vec<bool>>, StoreError> {
        let now = Utc::now();
        let now_us = micros(now);
        let mut tx = self.begin_write_with(false).await?;
        let mut answers = Vec::with_capacity(groups.len());
        let mut finished = Vec::new();
        let mut released = BTreeSet::new();
        for items in groups {
            // One report per job and call: a second report of the same job is refused.
            let mut seen = HashSet::with_capacity(items.len());
            let mut applied = Vec::with_capacity(items.len());
            for item in items {
                if !seen.insert(item.id) {
                    applied.push(false);
                    continue;
                }
                let (state, error) = finish_state(&item.outcome);
                let result = match &item.outcome {
                    Outcome::Complete { result } => Some(result.as_slice()),
                    _ => None,
                };
                let retry_at = match &item.outcome {
                    Outcome::Retry { retry_at, .. } => Some(micros(*retry_at)),
                    _ => None,
                };
                let row = sqlx::query(FINISH)
                    .bind(item.id)
                    .bind(i64::from(item.attempt))
                    .bind(state)
                    .bind(result)
                    .bind(error.as_ref().map(json_text))
                    .bind(now_us)
                    .bind(retry_at)
                    .bind(error.as_ref().map(|e| history_entry(item.attempt, now, e)))
                    .bind(json_text(&item.usage))
                    .bind(super::storable(&item.log))
                    .bind(clamp_i64(item.log_dropped))
                    .bind(item.progress.as_ref().map(progress_text))
                    .bind(MAX_HISTORY)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if let Some(row) = &row {
                    let queue: String = get(row, "queue")?;
                    match state {
                        "available" => {
                            released.insert(queue);
                        }
                        "retryable" => {}
                        _ => finished.push(item.id),
                    }
                }
                applied.push(row.is_some());
            }
            answers.push(applied);
        }
        tx.commit().await.map_err(db_err)?;
        self.notify_finished(finished);
        self.notify_available(released);
        Ok(answers)
    }

    /// Applies every queued finish report (of any caller) in one transaction.
    async fn drain_finishes(&self) {
        let _turn = self.inner.finish_turn.lock().await;
        let pending = std::mem::take(
            &mut *self
                .inner
                .pending_finishes
                .lock()
                .expect("finish queue lock"),
        );
        if pending.is_empty() {
            return;
        }
        let (groups, replies): (Vec<_>, Vec<_>) =
            pending.into_iter().map(|p| (p.items, p.reply)).unzip();
        tracing::trace!(
            callers = groups.len(),
            reports = groups.iter().map(Vec::len).sum::<usize>(),
            "group commit of finish reports"
        );
        match self.finish_group(&groups).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Most rows one multi-row `INSERT` takes (12 parameters each, far below SQLite's
/// 32,766). A run of keyless jobs is written in statements of 256, 128, …, 1 rows, so at
/// most nine statement texts exist and each stays prepared.
const ROWS_PER_INSERT: usize = 256;

/// A keyless job of a batch, waiting to go in with the run it belongs to.
struct PlainRow<'a> {
    /// Its place in the batch's answer.
    at: usize,
    new: &'a NewJob,
    digest: String,
    state: JobState,
    run_at: i64,
}

/// Writes `rows` (keyless jobs, in batch order) with one `INSERT … VALUES (…), (…)` per
/// [`ROWS_PER_INSERT`] rows, reading back only the ids, and answers each row in `out`.
///
/// Every statement is a trip to sqlx's SQLite thread and back, so rows go in many to a
/// statement and only the ids are read back: the rest of the stored job is what was
/// written (`now` is the batch's one time). The one writer
/// holds the transaction, so a statement's rows take consecutive ids in `VALUES` order;
/// `RETURNING` may list them in any order, so they are sorted.
async fn insert_plain(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &mut Vec<PlainRow<'_>>,
    now: i64,
    out: &mut [Option<Enqueued>],
) -> Result<(), StoreError> {
    let created_at = from_micros("created_at", now)?;
    let mut rest = &rows[..];
    while !rest.is_empty() {
        let take = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO wasmq_jobs (tenant, module, digest, queue, priority, input, state, \
             run_at, max_attempts, limits, idempotency_key, created_at) ",
        );
        q.push_values(chunk, |mut b, row| {
            b.push_bind(row.new.tenant.as_str())
                .push_bind(row.new.module.as_str())
                .push_bind(row.digest.as_str())
                .push_bind(row.new.queue.as_str())
                .push_bind(i64::from(row.new.priority))
                .push_bind(row.new.input.as_slice())
                .push_bind(row.state.as_str())
                .push_bind(row.run_at)
                .push_bind(i64::from(row.new.max_attempts))
                .push_bind(json_text(&row.new.limits))
                .push_bind(None::<&str>)
                .push_bind(now);
        });
        q.push(" RETURNING id");
        let mut ids: Vec<i64> = q
            .build_query_scalar()
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err)?;
        if ids.len() != chunk.len() {
            return Err(StoreError::Database(format!(
                "{} of {} jobs were inserted, but the answers do not line up with the batch",
                ids.len(),
                chunk.len()
            )));
        }
        ids.sort_unstable();
        for (row, id) in chunk.iter().zip(ids) {
            let run_at = from_micros("run_at", row.run_at)?;
            let job = Job::just_enqueued(
                row.new.clone(),
                id,
                row.digest.clone(),
                row.state,
                run_at,
                created_at,
            );
            out[row.at] = Some(Enqueued {
                job,
                duplicate: false,
            });
        }
    }
    rows.clear();
    Ok(())
}

impl SqliteStore {
    /// One page of a listing of `columns` (`*` or [`SUMMARY_COLUMNS`]), each row decoded
    /// with `decode`. One row more than the page is read, to tell if more follow.
    async fn listing<T: super::Listed>(
        &self,
        tenant: &str,
        filter: &JobFilter,
        columns: &'static str,
        decode: fn(&SqliteRow) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let limit = super::page_limit(filter);
        let rows = sqlx::query(sqlx::AssertSqlSafe(list_sql(filter, columns)))
            .bind(tenant)
            .bind(filter.state.map(JobState::as_str))
            .bind(filter.module.as_deref())
            .bind(filter.queue.as_deref())
            .bind(filter.cursor)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.inner.read)
            .await
            .map_err(db_err)?;
        super::decode_page(&rows, limit, decode)
    }

    /// The body of [`Store::enqueue`]; with a `slot`, `jobs` is one due job without a key,
    /// written running for the slot's worker and handed to it after the commit.
    async fn insert_jobs(
        &self,
        jobs: Vec<NewJob>,
        slot: Option<Reservation>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        let now = micros(Utc::now());
        let mut tx = self.begin_write().await?;
        let mut pins: HashMap<(&str, &str), Option<String>> = HashMap::new();
        // (tenant, key) → index in `out` of the job that holds the key.
        let mut keyed: HashMap<(&str, &str), usize> = HashMap::new();
        // Answers in batch order; keyless ones are filled in when their run is written.
        let mut out: Vec<Option<Enqueued>> = Vec::with_capacity(jobs.len());
        let mut plain: Vec<PlainRow> = Vec::new();
        let mut available = BTreeSet::new();
        for new in &jobs {
            if let Some(key) = new.idempotency_key.as_deref() {
                // Ids follow the batch's order: the keyless jobs before this one go first.
                insert_plain(&mut tx, &mut plain, now, &mut out).await?;
                if let Some(&i) = keyed.get(&(new.tenant.as_str(), key)) {
                    let job = out[i].as_ref().map(|e| e.job.clone());
                    out.push(job.map(|job| Enqueued {
                        job,
                        duplicate: true,
                    }));
                    continue;
                }
                let existing = sqlx::query(BY_IDEMPOTENCY_KEY)
                    .bind(&new.tenant)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if let Some(row) = existing {
                    keyed.insert((new.tenant.as_str(), key), out.len());
                    out.push(Some(Enqueued {
                        job: job_from_row(&row)?,
                        duplicate: true,
                    }));
                    continue;
                }
            }
            let digest = match &new.digest {
                Some(digest) => digest.clone(),
                None => {
                    let pin_key = (new.tenant.as_str(), new.module.as_str());
                    let pin = match pins.get(&pin_key) {
                        Some(pin) => pin.clone(),
                        None => {
                            let pin: Option<String> = sqlx::query_scalar(LATEST_DIGEST)
                                .bind(&new.tenant)
                                .bind(&new.module)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(db_err)?;
                            pins.insert(pin_key, pin.clone());
                            pin
                        }
                    };
                    // Dropping the transaction rolls the whole batch back.
                    pin.ok_or_else(|| StoreError::ModuleNotFound {
                        module: new.module.clone(),
                    })?
                }
            };
            let run_at = new.run_at.map_or(now, micros);
            let state = if run_at > now {
                JobState::Scheduled
            } else {
                JobState::Available
            };
            if new.idempotency_key.is_none() && slot.is_none() {
                if state == JobState::Available {
                    available.insert(new.queue.clone());
                }
                plain.push(PlainRow {
                    at: out.len(),
                    new,
                    digest,
                    state,
                    run_at,
                });
                out.push(None);
                if plain.len() == ROWS_PER_INSERT {
                    insert_plain(&mut tx, &mut plain, now, &mut out).await?;
                }
                continue;
            }
            let row = sqlx::query(INSERT_JOB)
                .bind(&new.tenant)
                .bind(&new.module)
                .bind(digest)
                .bind(&new.queue)
                .bind(i64::from(new.priority))
                .bind(new.input.as_slice())
                .bind(state.as_str())
                .bind(run_at)
                .bind(i64::from(new.max_attempts))
                .bind(json_text(&new.limits))
                .bind(new.idempotency_key.as_deref())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            if let Some(key) = new.idempotency_key.as_deref() {
                keyed.insert((new.tenant.as_str(), key), out.len());
            }
            // A lone due job for an idle worker of this process: taken at once, in
            // this transaction, as the claim would take it.
            let row = match &slot {
                Some(slot) => sqlx::query(TAKE)
                    .bind(now)
                    .bind(slot.worker())
                    .bind(micros_after(now, slot.lease()))
                    .bind(get::<i64>(&row, "id")?)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?,
                None => {
                    if state == JobState::Available {
                        available.insert(new.queue.clone());
                    }
                    row
                }
            };
            out.push(Some(Enqueued {
                job: job_from_row(&row)?,
                duplicate: false,
            }));
        }
        insert_plain(&mut tx, &mut plain, now, &mut out).await?;
        let out = out
            .into_iter()
            .collect::<Option<Vec<Enqueued>>>()
            .ok_or_else(|| StoreError::Database("a job of the batch was not answered".into()))?;
        tx.commit().await.map_err(db_err)?;
        self.notify_available(available);
        if let (Some(slot), [taken]) = (slot, out.as_slice()) {
            slot.hand_over(taken.job.clone(), self).await;
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        super::check_attempts(&jobs)?;
        if let Some(slot) = self.inner.handoff.reserve_for(&jobs) {
            // A caller that goes away cannot stop it between the commit and the hand-off.
            let store = self.clone();
            return handoff::detached(async move { store.insert_jobs(jobs, Some(slot)).await })
                .await;
        }
        self.insert_jobs(jobs, None).await
    }

    async fn claim(
        &self,
        queue: &str,
        worker_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = micros(Utc::now());
        let rows = sqlx::query(CLAIM)
            .bind(now)
            .bind(worker_id)
            .bind(micros_after(now, lease))
            .bind(queue)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *self.writer(false).await?)
            .await
            .map_err(db_err)?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        super::sort_claimed(&mut jobs);
        Ok(jobs)
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        ids: &[i64],
        lease: Duration,
    ) -> Result<Heartbeat, StoreError> {
        if ids.is_empty() {
            return Ok(Heartbeat::default());
        }
        let now = micros(Utc::now());
        let rows = sqlx::query(HEARTBEAT)
            .bind(worker_id)
            .bind(json_text(&ids))
            .bind(micros_after(now, lease))
            .fetch_all(&mut *self.writer(false).await?)
            .await
            .map_err(db_err)?;
        let held = rows
            .iter()
            .map(|row| {
                Ok((
                    get::<i64>(row, "id")?,
                    get::<bool>(row, "cancel_requested")?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Heartbeat::from_held(ids, held))
    }

    async fn finish(&self, items: Vec<Finish>) -> Result<Vec<bool>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .pending_finishes
            .lock()
            .expect("finish queue lock")
            .push(PendingFinish { items, reply });
        // The group commit runs in its own task, so a caller that gives up waiting cannot
        // abandon the reports of the others it collected.
        let store = self.clone();
        tokio::spawn(async move { store.drain_finishes().await });
        answer.await.map_err(|_| {
            StoreError::Unavailable("the finish reports were not applied; try again".into())
        })?
    }

    async fn set_progress(
        &self,
        id: i64,
        attempt: u32,
        progress: Progress,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(SET_PROGRESS)
            .bind(id)
            .bind(i64::from(attempt))
            .bind(progress_text(&progress))
            .execute(&mut *self.writer(false).await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn rescue(&self) -> Result<RescueReport, StoreError> {
        let now = Utc::now();
        let now_us = micros(now);
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(EXPIRED)
            .bind(now_us)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut report = RescueReport::default();
        let mut available = BTreeSet::new();
        let mut workers = super::LostWorkers::default();
        for row in &rows {
            let id: i64 = get(row, "id")?;
            let attempt = get_u32(row, "attempt")?;
            let max_attempts = get_u32(row, "max_attempts")?;
            let cancel_requested: bool = get(row, "cancel_requested")?;
            workers.add(get(row, "worker_id")?, id);
            let (next, error) = if cancel_requested {
                (
                    JobState::Cancelled,
                    JobError::new(ErrorKind::Cancelled, super::LOST_CANCELLED_MESSAGE),
                )
            } else {
                let error = JobError::new(ErrorKind::Lost, super::LOST_MESSAGE);
                if attempt < max_attempts {
                    (JobState::Retryable, error)
                } else {
                    (JobState::Failed, error)
                }
            };
            sqlx::query(RESCUE_ONE)
                .bind(id)
                .bind(next.as_str())
                .bind(now_us)
                .bind(json_text(&error))
                .bind(history_entry(attempt, now, &error))
                .bind(MAX_HISTORY)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            match next {
                JobState::Retryable => {
                    report.retried.push(id);
                    available.insert(get::<String>(row, "queue")?);
                }
                JobState::Cancelled => report.cancelled.push(id),
                _ => report.failed.push(id),
            }
        }
        tx.commit().await.map_err(db_err)?;
        workers.log();
        for ids in [
            &mut report.retried,
            &mut report.failed,
            &mut report.cancelled,
        ] {
            ids.sort_unstable();
        }
        if !rows.is_empty() {
            tracing::info!(
                retried = report.retried.len(),
                failed = report.failed.len(),
                cancelled = report.cancelled.len(),
                "rescued jobs whose worker stopped renewing its lease"
            );
        }
        let mut finished: Vec<i64> = report.failed.clone();
        finished.extend(&report.cancelled);
        self.notify_finished(finished);
        self.notify_available(available);
        Ok(report)
    }

    async fn promote_scheduled(&self) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let now = micros(Utc::now());
            let queues: Vec<String> = sqlx::query_scalar(PROMOTE)
                .bind(now)
                .bind(PROMOTE_BATCH)
                .fetch_all(&mut *self.writer(true).await?)
                .await
                .map_err(db_err)?;
            total += queues.len() as u64;
            let promoted = queues.len();
            self.notify_available(queues.into_iter().collect());
            if (promoted as i64) < PROMOTE_BATCH {
                return Ok(total);
            }
        }
    }

    async fn cancel(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let now = micros(Utc::now());
        let mut tx = self.begin_write().await?;
        let state: Option<String> = sqlx::query_scalar(JOB_STATE)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(state) = state else {
            return Ok(None);
        };
        let state: JobState = state.parse().map_err(|e| decode_err("state", e))?;
        let row = if state.is_waiting() {
            let error = JobError::new(ErrorKind::Cancelled, "cancelled before it ran");
            sqlx::query(CANCEL_WAITING)
                .bind(id)
                .bind(now)
                .bind(json_text(&error))
                .fetch_one(&mut *tx)
                .await
        } else if state == JobState::Running {
            sqlx::query(CANCEL_RUNNING)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
        } else {
            sqlx::query(GET)
                .bind(tenant)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
        }
        .map_err(db_err)?;
        let job = job_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        if state.is_waiting() {
            self.notify_finished(vec![id]);
        } else if state == JobState::Running {
            self.notify(StoreEvent::CancelRequested { id });
        }
        Ok(Some(job))
    }

    async fn get(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(GET)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list(&self, tenant: &str, filter: &JobFilter) -> Result<Page, StoreError> {
        self.listing(tenant, filter, "*", job_from_row).await
    }

    async fn list_summaries(
        &self,
        tenant: &str,
        filter: &JobFilter,
    ) -> Result<Page<JobSummary>, StoreError> {
        (self.listing(tenant, filter, SUMMARY_COLUMNS, summary_from_row)).await
    }

    async fn job_state(&self, tenant: &str, id: i64) -> Result<Option<JobState>, StoreError> {
        let state: Option<String> = sqlx::query_scalar(JOB_STATE)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(db_err)?;
        super::decode_state(state)
    }

    async fn prune(&self, older_than: Duration) -> Result<u64, StoreError> {
        let cutoff = micros_before(micros(Utc::now()), older_than);
        let mut total = 0u64;
        loop {
            let deleted = sqlx::query(PRUNE)
                .bind(cutoff)
                .bind(PRUNE_BATCH)
                .execute(&mut *self.writer(true).await?)
                .await
                .map_err(db_err)?
                .rows_affected();
            total += deleted;
            if (deleted as i64) < PRUNE_BATCH {
                break;
            }
        }
        if let Err(e) = sqlx::query(SWEEP_BLOBS)
            .bind(None::<String>)
            .execute(&mut *self.writer(true).await?)
            .await
        {
            tracing::warn!(error = %e, "sweeping unused module bytes failed");
        }
        Ok(total)
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    fn handoff(&self) -> Option<&Arc<Handoff>> {
        Some(&self.inner.handoff)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.inner.read.acquire().await.map_err(db_err)?;
        conn.ping().await.map_err(db_err)
    }

    async fn put_module(&self, module: NewModule) -> Result<PutModule, StoreError> {
        if hex::encode(Sha256::digest(&module.bytes)) != module.digest {
            return Err(StoreError::Invalid(format!(
                "digest {} is not the sha256 of the module bytes",
                module.digest
            )));
        }
        let now = micros(Utc::now());
        let mut tx = self.begin_write().await?;
        let latest = sqlx::query(LATEST_MODULE)
            .bind(&module.tenant)
            .bind(&module.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(module_from_row)
            .transpose()?;
        if let Some(latest) = &latest
            && latest.digest == module.digest
            && latest.kind == module.kind
            && latest.limits == module.limits
        {
            return Ok(PutModule {
                module: latest.clone(),
                created: false,
            });
        }
        let size = i64::try_from(module.bytes.len()).unwrap_or(i64::MAX);
        sqlx::query(PUT_BLOB)
            .bind(&module.digest)
            .bind(&module.bytes)
            .bind(size)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let version = latest.map_or(1, |m| m.version.saturating_add(1));
        let row = sqlx::query(INSERT_MODULE)
            .bind(&module.tenant)
            .bind(&module.name)
            .bind(i64::from(version))
            .bind(&module.digest)
            .bind(size)
            .bind(module.kind.as_str())
            .bind(json_text(&module.limits))
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let stored = module_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(PutModule {
            module: stored,
            created: true,
        })
    }

    async fn get_module(&self, tenant: &str, name: &str) -> Result<Option<Module>, StoreError> {
        let row = sqlx::query(LATEST_MODULE)
            .bind(tenant)
            .bind(name)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(module_from_row).transpose()
    }

    async fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<Module>, StoreError> {
        let rows = sqlx::query(MODULE_VERSIONS)
            .bind(tenant)
            .bind(name)
            .fetch_all(&self.inner.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(module_from_row).collect()
    }

    async fn list_modules(&self, tenant: &str) -> Result<Vec<Module>, StoreError> {
        let rows = sqlx::query(LIST_MODULES)
            .bind(tenant)
            .fetch_all(&self.inner.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(module_from_row).collect()
    }

    async fn delete_module(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let digests: BTreeSet<String> = sqlx::query_scalar(DELETE_MODULE)
            .bind(tenant)
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?
            .into_iter()
            .collect();
        if digests.is_empty() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(SWEEP_BLOBS)
            .bind(Some(json_text(&digests)))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn module_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar(MODULE_BYTES)
            .bind(digest)
            .fetch_optional(&self.inner.read)
            .await
            .map_err(db_err)
    }

    async fn count_jobs(&self) -> Result<Vec<JobCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue, state, count(*) AS n FROM wasmq_jobs GROUP BY queue, state ORDER BY 1, 2",
        )
        .fetch_all(&self.inner.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(JobCount {
                    queue: get(row, "queue")?,
                    state: get::<String>(row, "state")?.parse()?,
                    count: u64::try_from(get::<i64>(row, "n")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn create_key(
        &self,
        tenant: &str,
        name: Option<&str>,
        scopes: &[Scope],
    ) -> Result<NewKey, StoreError> {
        let (id, key, hash, scopes) = keys::new_key(tenant, scopes)?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO wasmq_api_keys (id, tenant, name, hash, scopes, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(name)
        .bind(&hash)
        .bind(json_text(&scopes))
        .bind(micros(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(NewKey { id, key })
    }

    async fn authenticate(&self, key: &str) -> Result<Option<Principal>, StoreError> {
        let Some((id, secret)) = keys::parse(key) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT tenant, hash, scopes FROM wasmq_api_keys WHERE id = ?1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.inner.read)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let scopes: Vec<String> = serde_json::from_str(&get::<String>(&row, "scopes")?)
            .map_err(|e| StoreError::Database(format!("stored key scopes are not valid: {e}")))?;
        Ok(keys::principal(
            id,
            secret,
            get(&row, "tenant")?,
            &get::<String>(&row, "hash")?,
            &scopes,
        ))
    }

    async fn revoke_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE wasmq_api_keys SET revoked_at = ?3 \
             WHERE tenant = ?1 AND id = ?2 AND revoked_at IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(micros(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    // Module settings: see `settings.rs`.

    async fn module_settings(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<super::ModuleSettings, StoreError> {
        self.settings_of(tenant, name).await
    }

    async fn allowed_hosts(
        &self,
        tenant: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        self.allowed_hosts_of(tenant).await
    }

    async fn set_allowed_hosts(
        &self,
        tenant: &str,
        name: &str,
        hosts: &[String],
    ) -> Result<(), StoreError> {
        self.put_allowed_hosts(tenant, name, hosts).await
    }

    async fn set_module_config(
        &self,
        tenant: &str,
        name: &str,
        values: &std::collections::BTreeMap<String, String>,
        secrets: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.put_config(tenant, name, values, secrets).await
    }

    async fn delete_module_settings(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.forget_settings(tenant, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{ModuleKind, NewJob};

    async fn store_with_module(dir: &tempfile::TempDir) -> SqliteStore {
        let store = SqliteStore::open(&dir.path().join("nested/dirs/wasmq.db"))
            .await
            .unwrap();
        let bytes = b"module".to_vec();
        store
            .put_module(NewModule {
                tenant: "t".into(),
                name: "m".into(),
                kind: ModuleKind::Component,
                digest: hex::encode(Sha256::digest(&bytes)),
                bytes,
                limits: Default::default(),
            })
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn a_state_listing_uses_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_module(&dir).await;
        let filter = JobFilter {
            state: Some(JobState::Running),
            ..JobFilter::default()
        };
        let explain = format!("EXPLAIN QUERY PLAN {}", list_sql(&filter, "*"));
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(explain))
            .fetch_all(&store.inner.read)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect();
        assert!(
            plan.iter()
                .any(|step| step.contains("wasmq_jobs_list_state")),
            "{plan:?}"
        );
    }

    fn jobs(n: usize) -> Vec<NewJob> {
        (0..n)
            .map(|_| NewJob {
                tenant: "t".into(),
                ..NewJob::new("m", b"")
            })
            .collect()
    }

    #[tokio::test]
    async fn opens_durable_wal_creating_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_module(&dir).await;
        assert!(dir.path().join("nested/dirs/wasmq.db").exists());
        let write = &store.inner.write;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(write)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(write)
            .await
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&store.inner.read)
            .await
            .unwrap();
        assert_eq!(busy, 10_000);
        let readonly = sqlx::query("DELETE FROM wasmq_jobs")
            .execute(&store.inner.read)
            .await;
        assert!(readonly.is_err(), "the read pool cannot write");
    }

    /// Enqueues wait for the fsync; a claim before them does not, and leaves no trace.
    #[tokio::test]
    async fn enqueues_commit_durably_after_claims_that_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_module(&dir).await;
        let synchronous = || async {
            sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                .fetch_one(&store.inner.write)
                .await
                .unwrap()
        };
        store.enqueue(jobs(2)).await.unwrap();
        assert_eq!(synchronous().await, 2, "FULL after an enqueue");
        let claimed = store
            .claim("default", "w", 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(synchronous().await, 1, "NORMAL after a claim");
        store.enqueue(jobs(1)).await.unwrap();
        assert_eq!(synchronous().await, 2, "FULL again for the next enqueue");
    }

    /// Two rescuers at once (two workers in one process) rescue each job once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_rescues_take_each_job_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_module(&dir).await;
        store.enqueue(jobs(300)).await.unwrap();
        let claimed = store
            .claim("default", "gone", 300, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 300);
        let rescuer = |store: SqliteStore| tokio::spawn(async move { store.rescue().await });
        let (a, b) = (rescuer(store.clone()), rescuer(store.clone()));
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert!(!a.skipped && !b.skipped);
        let mut all: Vec<i64> = a.retried.iter().chain(&b.retried).copied().collect();
        all.sort_unstable();
        let mut expected: Vec<i64> = claimed.iter().map(|j| j.id).collect();
        expected.sort_unstable();
        assert_eq!(all, expected, "every job rescued exactly once");
        for job in &claimed {
            let job = store.get("t", job.id).await.unwrap().unwrap();
            assert_eq!(job.history.len(), 1);
        }
    }

    /// Many callers finishing at once are answered each for their own reports.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_finishes_are_group_committed_and_answered_separately() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_module(&dir).await;
        store.enqueue(jobs(200)).await.unwrap();
        let claimed = store
            .claim("default", "w", 200, Duration::from_secs(60))
            .await
            .unwrap();
        let calls = claimed.chunks(5).enumerate().map(|(i, chunk)| {
            let store = store.clone();
            // Every other call also repeats a stale report, which must be refused.
            let mut items: Vec<Finish> = chunk
                .iter()
                .map(|j| {
                    Finish::new(
                        j.id,
                        j.attempt,
                        Outcome::Complete {
                            result: j.id.to_le_bytes().to_vec(),
                        },
                    )
                })
                .collect();
            if i % 2 == 0 {
                items.push(Finish::new(chunk[0].id, 99, Outcome::Release));
            }
            async move { (i, store.finish(items).await.unwrap()) }
        });
        for (i, applied) in futures_join_all(calls).await {
            let mut expected = vec![true; 5];
            if i % 2 == 0 {
                expected.push(false);
            }
            assert_eq!(applied, expected, "call {i}");
        }
        for job in &claimed {
            let job = store.get("t", job.id).await.unwrap().unwrap();
            assert_eq!(job.state, JobState::Completed);
            assert_eq!(job.result, Some(job.id.to_le_bytes().to_vec()));
        }
    }

    async fn futures_join_all<F: std::future::Future + Send + 'static>(
        futures: impl Iterator<Item = F>,
    ) -> Vec<F::Output>
    where
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            out.push(handle.await.unwrap());
        }
        out
    }

    #[test]
    fn microseconds_round_trip_and_order() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        assert_eq!(from_micros("t", micros(t)).unwrap(), t);
        assert!(micros_after(micros(t), Duration::from_millis(1)) > micros(t));
        assert_eq!(micros_after(i64::MAX - 1, Duration::from_secs(1)), i64::MAX);
        assert_eq!(micros_before(0, Duration::MAX), -i64::MAX);
    }
}
