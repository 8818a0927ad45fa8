//! Coalescing enqueues on SQLite: the one writer updates the waiting, never started job
//! of the key, or inserts one; the partial unique index of migration 0007 backs it.

use sqlx::{Sqlite, Transaction};

use super::rows::{db_err, job_from_row, json_text, micros_after};
use crate::queue::{Coalesce, Enqueued, NewJob, StoreError};

/// The waiting job of a key takes the latest job's fields and runs at `?9` (now +
/// window), never past its cap; `available` if that is not after `?10` (now).
const COALESCE_INTO: &str = r#"
UPDATE wasmq_jobs SET module = ?3, digest = ?4, queue = ?5, priority = ?6, input = ?7,
    max_attempts = ?8, limits = ?11,
    run_at = min(?9, coalesce(coalesce_until, ?9)),
    state = CASE WHEN min(?9, coalesce(coalesce_until, ?9)) > ?10
                 THEN 'scheduled' ELSE 'available' END
WHERE tenant = ?1 AND coalesce_key = ?2 AND started_at IS NULL
  AND state IN ('scheduled', 'available')
RETURNING *
"#;

/// A new job of a key: `scheduled` at now + window, capped at `?11`.
const COALESCE_NEW: &str = r#"
INSERT INTO wasmq_jobs (tenant, module, digest, queue, priority, input, state, run_at,
                        max_attempts, limits, coalesce_key, coalesce_until, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'scheduled', ?7, ?8, ?9, ?10, ?11, ?12)
RETURNING *
"#;

/// Stores `new` (pinned to `digest`) under its coalesce key at `now` (microseconds).
pub(super) async fn upsert(
    tx: &mut Transaction<'static, Sqlite>,
    new: &NewJob,
    coalesce: &Coalesce,
    digest: &str,
    now: i64,
) -> Result<Enqueued, StoreError> {
    let run_at = micros_after(now, coalesce.window);
    let limits = json_text(&new.limits);
    let updated = sqlx::query(COALESCE_INTO)
        .bind(&new.tenant)
        .bind(&coalesce.key)
        .bind(&new.module)
        .bind(digest)
        .bind(&new.queue)
        .bind(i64::from(new.priority))
        .bind(new.input.as_slice())
        .bind(i64::from(new.max_attempts))
        .bind(run_at)
        .bind(now)
        .bind(&limits)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    if let Some(row) = updated {
        return Ok(Enqueued {
            job: job_from_row(&row)?,
            duplicate: false,
            coalesced: true,
        });
    }
    let row = sqlx::query(COALESCE_NEW)
        .bind(&new.tenant)
        .bind(&new.module)
        .bind(digest)
        .bind(&new.queue)
        .bind(i64::from(new.priority))
        .bind(new.input.as_slice())
        .bind(run_at)
        .bind(i64::from(new.max_attempts))
        .bind(&limits)
        .bind(&coalesce.key)
        .bind(coalesce.max.map(|max| micros_after(now, max)))
        .bind(now)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(Enqueued {
        job: job_from_row(&row)?,
        duplicate: false,
        coalesced: false,
    })
}
