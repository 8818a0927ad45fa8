//! Queue control on PostgreSQL: a finished job run again, queues paused and resumed,
//! queues' limits of running jobs.

use chrono::{DateTime, Utc};

use super::PgDriver;
use super::rows::{db_err, job_from_row};
use super::sql::COUNT_UNFINISHED;
use crate::queue::driver::ControlRows;
use crate::queue::rows::{queue_limit_from_row, stored_count};
use crate::queue::{Job, JobCount, QueueLimit, StoreError};

/// Every pause and resume tells the other nodes to read the pauses again (payload: the
/// queue).
pub(super) const CHANNEL_PAUSES: &str = "wasmq_pauses";

/// A failed or cancelled job back to `available` with no attempts counted; its history
/// (and log) kept, what its last attempt left cleared. It runs as
/// itself: its coalesce key is cleared, so it gathers no enqueues (a newer job may hold
/// the key). Other nodes' workers are woken.
const RETRY: &str = "
    WITH r AS (
        UPDATE wasmq_jobs SET state = 'available', attempt = 0, run_at = now(),
            result = NULL, error = NULL, usage = NULL, progress = NULL, started_at = NULL,
            finished_at = NULL, worker_id = NULL, lease_expires_at = NULL,
            cancel_requested = false, coalesce_key = NULL
        WHERE tenant = $1 AND id = $2 AND state IN ('failed', 'cancelled')
        RETURNING *
    ), n AS (SELECT pg_notify('wasmq_jobs', $3 || ' ' || queue) FROM r)
    SELECT r.* FROM r, n";

/// Notified on commit only, so a node that hears it reads the pause's row.
const PAUSE: &str = "
    WITH p AS (
        INSERT INTO wasmq_queue_pauses (queue, tenant) VALUES ($2, $1)
        ON CONFLICT DO NOTHING RETURNING queue
    )
    SELECT pg_notify('wasmq_pauses', $3 || ' ' || queue) FROM p";

const RESUME: &str = "
    WITH r AS (
        DELETE FROM wasmq_queue_pauses WHERE queue = $2 AND tenant = $1 RETURNING queue
    )
    SELECT pg_notify('wasmq_pauses', $3 || ' ' || queue) FROM r";

/// Upserts or deletes the limit; tells the other nodes on the pauses' channel, so they
/// read the limits again and their workers claim (a raised limit leaves room).
const SET_LIMIT: &str = "
    WITH up AS (
        INSERT INTO wasmq_queue_limits (queue, tenant, max_running)
        SELECT $2, $1, $3 WHERE $3 IS NOT NULL
        ON CONFLICT (queue, tenant) DO UPDATE
            SET max_running = excluded.max_running, updated_at = now()
        RETURNING queue
    ), gone AS (
        DELETE FROM wasmq_queue_limits WHERE queue = $2 AND tenant = $1 AND $3 IS NULL
        RETURNING queue
    )
    SELECT pg_notify('wasmq_pauses', $4 || ' ' || queue)
    FROM (SELECT queue FROM up UNION ALL SELECT queue FROM gone) c";

const LIMITS: &str = "SELECT tenant, queue, max_running FROM wasmq_queue_limits \
     WHERE $1::text IS NULL OR tenant = $1 ORDER BY queue, tenant";

const PAUSED: &str = "SELECT DISTINCT queue FROM wasmq_queue_pauses \
     WHERE $1::text IS NULL OR tenant = $1 ORDER BY queue";

/// Burst mode's question: a running job, or a due waiting one of an unpaused tenant.
const HAS_WORK: &str = "
    SELECT EXISTS (SELECT 1 FROM wasmq_jobs j WHERE j.queue = ANY($1) AND j.state = 'running')
        OR EXISTS (SELECT 1 FROM wasmq_jobs j
                   WHERE j.queue = ANY($1)
                     AND j.state IN ('available', 'scheduled', 'retryable')
                     AND j.run_at <= $2
                     AND NOT EXISTS (SELECT 1 FROM wasmq_queue_pauses p
                                     WHERE p.queue = j.queue AND p.tenant = j.tenant))";

#[async_trait::async_trait]
impl ControlRows for PgDriver {
    async fn retry(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(RETRY)
            .bind(tenant)
            .bind(id)
            .bind(&*self.node)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
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
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let changed = sqlx::query(if paused { PAUSE } else { RESUME })
            .bind(tenant)
            .bind(queue)
            .bind(&*self.node)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(changed.len() == 1)
    }

    async fn paused_queues(&self, tenant: Option<&str>) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let queues = sqlx::query_scalar(PAUSED)
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(queues)
    }

    async fn set_queue_limit(
        &self,
        tenant: &str,
        queue: &str,
        max_running: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        sqlx::query(SET_LIMIT)
            .bind(tenant)
            .bind(queue)
            .bind(max_running.map(stored_count))
            .bind(&*self.node)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(())
    }

    async fn queue_limits(&self, tenant: Option<&str>) -> Result<Vec<QueueLimit>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(LIMITS)
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        rows.iter().map(queue_limit_from_row).collect()
    }

    async fn has_work(
        &self,
        queues: &[String],
        horizon: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let any = sqlx::query_scalar(HAS_WORK)
            .bind(queues)
            .bind(horizon)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(any)
    }

    async fn count_unfinished(&self, tenant: &str) -> Result<Vec<JobCount>, StoreError> {
        self.counts(sqlx::query(COUNT_UNFINISHED).bind(tenant))
            .await
    }
}
