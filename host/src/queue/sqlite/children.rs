//! Child jobs on SQLite: inserted in the write transaction that completes their parent,
//! with the ids their guest was told (drawn at the call).

use sqlx::{Sqlite, Transaction};

use super::rows::{db_err, json_text, micros};
use crate::queue::{ChildJob, StoreError};

/// A child whose idempotency key a stored job of the tenant has is not stored (the
/// guest was told that job's id if it was stored at the call).
const INSERT_CHILD: &str = r#"
INSERT INTO wasmq_jobs (id, tenant, module, digest, queue, priority, input, state, run_at,
                        max_attempts, limits, idempotency_key, parent_id, depth, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 > $13 THEN 'scheduled' ELSE 'available' END,
        max($8, $13), $9, $10, $11, $12, $14, $13)
ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
"#;

/// Inserts the children of job `parent`, at `now_us`, inside the caller's transaction.
pub(super) async fn insert(
    tx: &mut Transaction<'static, Sqlite>,
    parent: i64,
    children: &[ChildJob],
    now_us: i64,
) -> Result<(), StoreError> {
    for child in children {
        let job = &child.job;
        sqlx::query(INSERT_CHILD)
            .bind(child.id)
            .bind(job.tenant.as_str())
            .bind(job.module.as_str())
            .bind(job.digest.as_deref())
            .bind(job.queue.as_str())
            .bind(i64::from(job.priority))
            .bind(job.input.as_slice())
            .bind(job.run_at.map_or(now_us, micros))
            .bind(i64::from(job.max_attempts))
            .bind(json_text(&job.limits))
            .bind(job.idempotency_key.as_deref())
            .bind(parent)
            .bind(now_us)
            .bind(i64::from(child.depth))
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}
