//! Queue control on PostgreSQL: a finished job run again.

use super::PgDriver;
use super::rows::{db_err, job_from_row};
use crate::queue::{Job, StoreError};

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

impl PgDriver {
    pub(super) async fn retry_row(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
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
}
