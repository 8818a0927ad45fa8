//! Queue control on SQLite: a finished job run again, queues paused and resumed,
//! queues' limits of running jobs.

use chrono::{DateTime, Utc};

use super::SqliteDriver;
use super::rows::{db_err, get, job_from_row, json_text, micros};
use super::sql::COUNT_UNFINISHED;
use crate::queue::driver::ControlRows;
use crate::queue::rows::{queue_limit_from_row, stored_count};
use crate::queue::{Job, JobCount, QueueLimit, StoreError};

/// A failed or cancelled job back to `available` with no attempts counted; its history
/// (and log) kept, what its last attempt left cleared. It runs as
/// itself: its coalesce key is cleared, so it gathers no enqueues (a newer job may hold
/// the key).
const RETRY: &str = "
    UPDATE wasmq_jobs SET state = 'available', attempt = 0, run_at = ?3,
        result = NULL, error = NULL, usage = NULL, progress = NULL, started_at = NULL,
        finished_at = NULL, worker_id = NULL, lease_expires_at = NULL,
        cancel_requested = 0, coalesce_key = NULL
    WHERE tenant = ?1 AND id = ?2 AND state IN ('failed', 'cancelled')
    RETURNING *";

const PAUSE: &str = "INSERT INTO wasmq_queue_pauses (queue, tenant, paused_at) \
     VALUES (?2, ?1, ?3) ON CONFLICT DO NOTHING";

const RESUME: &str = "DELETE FROM wasmq_queue_pauses WHERE queue = ?2 AND tenant = ?1";

const SET_LIMIT: &str = "INSERT INTO wasmq_queue_limits (queue, tenant, max_running, updated_at) \
     VALUES (?2, ?1, ?3, ?4) ON CONFLICT (queue, tenant) DO UPDATE \
     SET max_running = excluded.max_running, updated_at = excluded.updated_at";

const REMOVE_LIMIT: &str = "DELETE FROM wasmq_queue_limits WHERE queue = ?2 AND tenant = ?1";

const LIMITS: &str = "SELECT tenant, queue, max_running FROM wasmq_queue_limits \
     WHERE ?1 IS NULL OR tenant = ?1 ORDER BY queue, tenant";

const PAUSED: &str = "SELECT DISTINCT queue FROM wasmq_queue_pauses \
     WHERE ?1 IS NULL OR tenant = ?1 ORDER BY queue";

/// Burst mode's question: a running job, or a due waiting one of an unpaused tenant.
/// `?1` is a JSON array of queue names.
const HAS_WORK: &str = "
    SELECT EXISTS (SELECT 1 FROM wasmq_jobs j
                   WHERE j.queue IN (SELECT value FROM json_each(?1)) AND j.state = 'running')
        OR EXISTS (SELECT 1 FROM wasmq_jobs j
                   WHERE j.queue IN (SELECT value FROM json_each(?1))
                     AND j.state IN ('available', 'scheduled', 'retryable')
                     AND j.run_at <= ?2
                     AND NOT EXISTS (SELECT 1 FROM wasmq_queue_pauses p
                                     WHERE p.queue = j.queue AND p.tenant = j.tenant))";

#[async_trait::async_trait]
impl ControlRows for SqliteDriver {
    async fn retry(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(RETRY)
            .bind(tenant)
            .bind(id)
            .bind(micros(Utc::now()))
            .fetch_optional(&self.write)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        job_from_row(&row).map(Some)
    }

    async fn set_paused(
        &self,
        tenant: &str,
        queue: &str,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let statement = if paused {
            sqlx::query(PAUSE)
                .bind(tenant)
                .bind(queue)
                .bind(micros(Utc::now()))
        } else {
            sqlx::query(RESUME).bind(tenant).bind(queue)
        };
        let done = statement
            .execute(&mut *self.writer(true).await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn paused_queues(&self, tenant: Option<&str>) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(PAUSED)
            .bind(tenant)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)
    }

    async fn set_queue_limit(
        &self,
        tenant: &str,
        queue: &str,
        max_running: Option<u64>,
    ) -> Result<(), StoreError> {
        let statement = match max_running {
            Some(n) => sqlx::query(SET_LIMIT)
                .bind(tenant)
                .bind(queue)
                .bind(stored_count(n))
                .bind(micros(Utc::now())),
            None => sqlx::query(REMOVE_LIMIT).bind(tenant).bind(queue),
        };
        statement
            .execute(&mut *self.writer(true).await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn queue_limits(&self, tenant: Option<&str>) -> Result<Vec<QueueLimit>, StoreError> {
        let rows = sqlx::query(LIMITS)
            .bind(tenant)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(queue_limit_from_row).collect()
    }

    async fn has_work(
        &self,
        queues: &[String],
        horizon: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        sqlx::query_scalar(HAS_WORK)
            .bind(json_text(&queues))
            .bind(micros(horizon))
            .fetch_one(&self.read)
            .await
            .map_err(db_err)
    }

    async fn count_unfinished(&self, tenant: &str) -> Result<Vec<JobCount>, StoreError> {
        self.counts(sqlx::query(COUNT_UNFINISHED).bind(tenant))
            .await
    }
}

impl SqliteDriver {
    /// The (queue, state, n) rows of a count.
    pub(super) async fn counts(
        &self,
        query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Vec<JobCount>, StoreError> {
        let rows = query.fetch_all(&self.read).await.map_err(db_err)?;
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
}
