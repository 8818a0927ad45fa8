//! [`SqliteDriver`]: the storage primitives in one embedded file, and [`SqliteStore`], the
//! queue over them, for a single node with zero setup.
//!
//! The same primitives as [`super::postgres::PgDriver`] (the conformance suite checks both
//! through the core), with the differences one process owning the database allows:
//!
//! - **One writer.** Every write goes through a pool of exactly one connection, inside
//!   `BEGIN IMMEDIATE` transactions, so writes never race each other and a claim needs no
//!   `SKIP LOCKED`: it is one `UPDATE … WHERE id IN (SELECT … ORDER BY … LIMIT n)
//!   RETURNING *`. Reads (`get`, `list`, modules, bytes) use a small separate pool; in WAL
//!   mode they never block the writer nor wait for it.
//! - **Group commit of finishes** (`finish.rs`): concurrent finishes are applied in one
//!   transaction (one fsync), each caller answered for its own reports.
//! - **Durability.** WAL with `synchronous=FULL` for what a caller was promised: an
//!   acknowledged enqueue (or cancel, module, key) is fsynced before the answer, so it
//!   survives `kill -9` *and* an OS crash or power loss. Claims, heartbeats, progress and
//!   finishes commit with `NORMAL` (no fsync of their own), like PostgreSQL's
//!   `synchronous_commit=off`: they survive a process crash, and a power loss can only
//!   make a job run again (see [`SqliteDriver::writer`]).
//! - **No other node.** There is no LISTEN/NOTIFY: the core's in-process events are all.
//! - **Rescue** needs no advisory lock: two concurrent calls are serialized by the writer and
//!   the second finds nothing left to rescue; it never reports `skipped`.
//!
//! Timestamps are stored as INTEGER unix microseconds (UTC), JSON as TEXT, bytes as BLOB.
//! "Now" is taken once per call in Rust and bound, so one call sees one time, like
//! PostgreSQL's `now()` within a transaction.
//!
//! By concern: `sql.rs` (the statements), `rows.rs` (decoding and binding, errors),
//! `batch.rs` (enqueue batches), `finish.rs` (group commit).

mod batch;
mod children;
mod coalesce;
mod control;
mod deps;
mod finish;
mod rows;
mod schedules;
mod settings;
mod sql;
mod tenants;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, Transaction};

use crate::queue::deps::Released;
use crate::queue::driver::{
    Cancelled, Driver, Finished, Inserted, KeyRow, Rescued, cancelled_before_it_ran, decode_err,
    decode_state, outcome_columns, outcome_values,
};
use crate::queue::rows::Listed;
use crate::queue::{
    ErrorKind, Finish, Job, JobCount, JobError, JobFilter, JobState, LOST_CANCELLED_MESSAGE,
    LOST_MESSAGE, MAX_HISTORY, Module, NewJob, NewModule, Progress, PutModule, Queue, StoreError,
    event_channel,
};
use rows::{
    bind_job, clamp_i64, db_err, get, get_u32, history_entry, job_from_row, json_text, micros,
    micros_after, micros_before, module_from_row, open_err, progress_text,
};
use sql::*;

/// Connections of the read pool.
const READ_CONNECTIONS: u32 = 4;
/// How long a statement waits for a lock held by another process (e.g. `wasmq key create`)
/// before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for its turn at the single writer connection.
const WRITE_TURN_TIMEOUT: Duration = Duration::from_secs(60);

/// The store in one SQLite file: the queue core over [`SqliteDriver`].
pub type SqliteStore = Queue<SqliteDriver>;

/// The SQLite driver. Cheap to clone; clones share the pools and the finish queue.
#[derive(Clone)]
pub struct SqliteDriver {
    /// Exactly one connection: every write.
    write: SqlitePool,
    /// `query_only` connections: every read.
    read: SqlitePool,
    /// Finish reports waiting for the next group commit.
    pending_finishes: Arc<Mutex<Vec<finish::PendingFinish>>>,
    /// Held by the caller applying the queued finishes (the group-commit leader).
    finish_turn: Arc<tokio::sync::Mutex<()>>,
}

impl Queue<SqliteDriver> {
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
            // A commit that failed (a full disk) can leave the writer inside its
            // transaction, where every later `BEGIN` fails: such a connection is closed
            // (SQLite rolls it back) and a fresh one opened in its place.
            .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
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
        let driver = SqliteDriver {
            write,
            read,
            pending_finishes: Arc::default(),
            finish_turn: Arc::default(),
        };
        Ok(Queue::new(driver, event_channel()))
    }
}

impl SqliteDriver {
    /// Starts a write transaction on the single writer connection. `IMMEDIATE` takes the
    /// write lock up front, so a transaction that reads and then writes never fails to
    /// upgrade because another process wrote in between.
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.begin_write_with(true).await
    }

    /// [`SqliteDriver::begin_write`], durable or not (see [`SqliteDriver::writer`]).
    pub(super) async fn begin_write_with(
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
    pub(super) async fn writer(&self, durable: bool) -> Result<PoolConnection<Sqlite>, StoreError> {
        let mut conn = self.write.acquire().await.map_err(db_err)?;
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
}

#[async_trait::async_trait]
impl Driver for SqliteDriver {
    async fn insert_batch(&self, jobs: Vec<NewJob>) -> Result<Inserted, StoreError> {
        // The single writer serializes enqueues: a key never races.
        self.insert_jobs(jobs).await.map(Inserted::Done)
    }

    async fn latest_digest(&self, tenant: &str, name: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(LATEST_DIGEST)
            .bind(tenant)
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)
    }

    async fn job_id_by_key(&self, tenant: &str, key: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(JOB_ID_BY_KEY)
            .bind(tenant)
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)
    }

    async fn draw_ids(&self, n: usize) -> Result<Vec<i64>, StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        // Durable: reserved ids are never handed out again, not after a power loss either.
        let mut tx = self.begin_write().await?;
        sqlx::query(SEQUENCE_ROW)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let last: i64 = sqlx::query_scalar(RESERVE_IDS)
            .bind(n)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok((last - n + 1..=last).collect())
    }

    async fn insert_running(&self, job: &Job, lease: Duration) -> Result<Job, StoreError> {
        let now = micros(Utc::now());
        let mut tx = self.begin_write().await?;
        let row = bind_job(sqlx::query(INSERT_RUNNING), job)
            .bind(job.worker_id.as_deref())
            .bind(micros_after(now, lease))
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        job_from_row(&row)
    }

    async fn insert_finished(&self, job: &Job, report: &Finish) -> Result<Job, StoreError> {
        let now = Utc::now();
        let (state, error) = outcome_columns(&report.outcome);
        let (result, retry_at) = outcome_values(&report.outcome);
        let history = match (&error, state) {
            (Some(error), s) if s != JobState::Available => {
                format!("[{}]", history_entry(1, now, error))
            }
            _ => "[]".to_owned(),
        };
        let mut tx = self.begin_write().await?;
        let row = bind_job(sqlx::query(INSERT_FINISHED), job)
            .bind(state.as_str())
            .bind(result)
            .bind(error.as_ref().map(json_text))
            .bind(retry_at.map(micros))
            .bind(json_text(&report.usage))
            .bind(report.log.as_str())
            .bind(clamp_i64(report.log_dropped))
            .bind(report.progress.as_ref().map(progress_text))
            .bind(micros(now))
            .bind(history)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if state == JobState::Completed {
            children::insert(&mut tx, job.id, &report.children, micros(now)).await?;
        }
        tx.commit().await.map_err(db_err)?;
        job_from_row(&row)
    }

    async fn claim(
        &self,
        tenant: Option<&str>,
        queue: &str,
        worker: &str,
        limit: usize,
        lease: Duration,
        max_running: Option<u64>,
    ) -> Result<Vec<Job>, StoreError> {
        let now = micros(Utc::now());
        let statement = sqlx::query(if tenant.is_some() {
            CLAIM_TENANT
        } else {
            CLAIM
        })
        .bind(now)
        .bind(worker)
        .bind(micros_after(now, lease))
        .bind(queue)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(max_running.map(crate::queue::rows::stored_count));
        let statement = match tenant {
            Some(tenant) => statement.bind(tenant),
            None => statement,
        };
        let rows = statement
            .fetch_all(&mut *self.writer(false).await?)
            .await
            .map_err(db_err)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn heartbeat(
        &self,
        worker: &str,
        ids: &[i64],
        lease: Duration,
    ) -> Result<Vec<(i64, bool)>, StoreError> {
        let now = micros(Utc::now());
        let rows = sqlx::query(HEARTBEAT)
            .bind(worker)
            .bind(json_text(&ids))
            .bind(micros_after(now, lease))
            .fetch_all(&mut *self.writer(false).await?)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| Ok((get(row, "id")?, get(row, "cancel_requested")?)))
            .collect()
    }

    async fn finish(&self, items: Vec<Finish>) -> Result<Finished, StoreError> {
        self.finish_grouped(items).await
    }

    async fn set_progress(
        &self,
        id: i64,
        attempt: u32,
        progress: &Progress,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(SET_PROGRESS)
            .bind(id)
            .bind(i64::from(attempt))
            .bind(progress_text(progress))
            .execute(&mut *self.writer(false).await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn rescue(&self) -> Result<Option<(Vec<Rescued>, Released)>, StoreError> {
        // The writer serializes rescuers: a second finds nothing left, so none is skipped.
        let now = Utc::now();
        let now_us = micros(now);
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(EXPIRED)
            .bind(now_us)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut rescued = Vec::with_capacity(rows.len());
        // Jobs that ended failed or cancelled and have dependents, with their state.
        let mut ended = Vec::new();
        for row in &rows {
            let id: i64 = get(row, "id")?;
            let attempt = get_u32(row, "attempt")?;
            let (state, error) = if get(row, "cancel_requested")? {
                (
                    JobState::Cancelled,
                    JobError::new(ErrorKind::Cancelled, LOST_CANCELLED_MESSAGE),
                )
            } else if attempt < get_u32(row, "max_attempts")? {
                (
                    JobState::Retryable,
                    JobError::new(ErrorKind::Lost, LOST_MESSAGE),
                )
            } else {
                (
                    JobState::Failed,
                    JobError::new(ErrorKind::Lost, LOST_MESSAGE),
                )
            };
            sqlx::query(RESCUE_ONE)
                .bind(id)
                .bind(state.as_str())
                .bind(now_us)
                .bind(json_text(&error))
                .bind(history_entry(attempt, now, &error))
                .bind(MAX_HISTORY as i64)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if state != JobState::Retryable && get::<i64>(row, "dependents")? > 0 {
                ended.push((id, state));
            }
            rescued.push(Rescued {
                id,
                state,
                queue: get(row, "queue")?,
                worker: get(row, "worker_id")?,
            });
        }
        let released = deps::release(&mut tx, ended, now_us).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some((rescued, released)))
    }

    async fn promote(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(PROMOTE)
            .bind(micros(Utc::now()))
            .bind(i64::from(limit))
            .fetch_all(&mut *self.writer(true).await?)
            .await
            .map_err(db_err)
    }

    async fn cancel(&self, tenant: &str, id: i64) -> Result<Option<Cancelled>, StoreError> {
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
        let now_cancelled = state.is_waiting() || state == JobState::Waiting;
        let row = if now_cancelled {
            sqlx::query(CANCEL_WAITING)
                .bind(id)
                .bind(now)
                .bind(json_text(&cancelled_before_it_ran()))
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
        let released = if now_cancelled && job.dependents > 0 {
            deps::release(&mut tx, vec![(id, JobState::Cancelled)], now).await?
        } else {
            Released::default()
        };
        tx.commit().await.map_err(db_err)?;
        Ok(Some(Cancelled {
            job,
            now: now_cancelled,
            released,
        }))
    }

    async fn get(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(GET)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list<T: Listed>(
        &self,
        tenant: &str,
        filter: &JobFilter,
    ) -> Result<Vec<T>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(list_sql(filter, T::COLUMNS)))
            .bind(tenant)
            .bind(filter.state.map(JobState::as_str))
            .bind(filter.module.as_deref())
            .bind(filter.queue.as_deref())
            .bind(filter.cursor)
            .bind(i64::from(filter.limit))
            .bind(
                filter
                    .schedule
                    .as_ref()
                    .map(|s| format!("wasmq:schedule:{s}:")),
            )
            .bind(
                filter
                    .schedule
                    .as_ref()
                    .map(|s| format!("wasmq:schedule:{s};")),
            )
            .bind(filter.parent)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(T::from_row).collect()
    }

    async fn job_state(&self, tenant: &str, id: i64) -> Result<Option<JobState>, StoreError> {
        let state: Option<String> = sqlx::query_scalar(JOB_STATE)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        decode_state(state)
    }

    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64, StoreError> {
        let cutoff = micros_before(micros(Utc::now()), older_than);
        Ok(sqlx::query(PRUNE)
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(&mut *self.writer(true).await?)
            .await
            .map_err(db_err)?
            .rows_affected())
    }

    async fn sweep_blobs(&self) -> Result<(), StoreError> {
        sqlx::query(SWEEP_BLOBS)
            .bind(None::<String>)
            .execute(&mut *self.writer(true).await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn count_jobs(&self) -> Result<Vec<JobCount>, StoreError> {
        self.counts(sqlx::query(COUNT_JOBS)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.read.acquire().await.map_err(db_err)?;
        conn.ping().await.map_err(db_err)
    }

    async fn put_module(
        &self,
        module: &NewModule,
        unchanged: &(dyn for<'m> Fn(&'m Module) -> bool + Send + Sync),
    ) -> Result<PutModule, StoreError> {
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
        if let Some(latest) = latest.as_ref().filter(|latest| unchanged(latest)) {
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
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(module_from_row).transpose()
    }

    async fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<Module>, StoreError> {
        let rows = sqlx::query(MODULE_VERSIONS)
            .bind(tenant)
            .bind(name)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(module_from_row).collect()
    }

    async fn list_modules(&self, tenant: &str) -> Result<Vec<Module>, StoreError> {
        let rows = sqlx::query(LIST_MODULES)
            .bind(tenant)
            .fetch_all(&self.read)
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
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)
    }

    async fn insert_key(
        &self,
        id: &str,
        name: Option<&str>,
        key: &KeyRow,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(INSERT_KEY)
            .bind(id)
            .bind(&key.tenant)
            .bind(name)
            .bind(&key.hash)
            .bind(json_text(&key.scopes))
            .bind(micros(Utc::now()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(KEY)
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let scopes = serde_json::from_str(&get::<String>(&row, "scopes")?)
            .map_err(|e| StoreError::Database(format!("stored key scopes are not valid: {e}")))?;
        Ok(Some(KeyRow {
            tenant: get(&row, "tenant")?,
            hash: get(&row, "hash")?,
            scopes,
        }))
    }

    async fn revoke_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(REVOKE_KEY)
            .bind(tenant)
            .bind(id)
            .bind(micros(Utc::now()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }
}
