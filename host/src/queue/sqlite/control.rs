//! Queue control on SQLite: a finished job run again.

use chrono::Utc;

use super::SqliteDriver;
use super::rows::{db_err, job_from_row, micros};
use crate::queue::{Job, StoreError};

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

impl SqliteDriver {
    pub(super) async fn retry_row(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
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
}
