//! Coalescing enqueues on PostgreSQL: one `INSERT … ON CONFLICT DO UPDATE` on the partial
//! unique index of waiting, never started keyed jobs (migration 0009), so concurrent
//! enqueues of a key on any number of nodes leave one job.

use std::collections::HashMap;

use super::rows::{clamp_i32, db_err, get, job_from_row, json};
use crate::queue::{Enqueued, NewJob, StoreError};

/// Jobs with a coalesce key (one per tenant and key: the core folds a batch). A new key
/// makes a `scheduled` job at now + window, capped at now + max (`coalesce_until`); a
/// key held by a waiting job that has not started takes the latest job's fields and
/// moves its run time to now + window, never past the cap. A row updated by a claim in
/// the meantime leaves the index, and the statement inserts instead. Rows are locked in
/// key order so that two batches cannot deadlock. `inserted` tells a new job (`xmax` is
/// 0 only for a row this statement inserted).
const COALESCE: &str = r#"
WITH input AS (
    SELECT * FROM UNNEST(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::bytea[],
        $7::int[], $8::jsonb[], $9::text[], $10::bigint[], $11::bigint[]
    ) AS t(tenant, module, digest, queue, priority, input, max_attempts, limits,
           coalesce_key, window_us, max_us)
),
resolved AS (
    SELECT i.*,
           COALESCE(i.digest, (SELECT m.digest FROM wasmq_modules m
                               WHERE m.tenant = i.tenant AND m.name = i.module
                               ORDER BY m.version DESC LIMIT 1)) AS pinned
    FROM input i
),
up AS (
    INSERT INTO wasmq_jobs AS j (tenant, module, digest, queue, priority, input, state,
                                 run_at, max_attempts, limits, coalesce_key, coalesce_until)
    SELECT tenant, module, pinned, queue, priority, input, 'scheduled',
           now() + window_us * interval '1 microsecond', max_attempts, limits,
           coalesce_key, now() + max_us * interval '1 microsecond'
    FROM resolved
    WHERE pinned IS NOT NULL
    ORDER BY tenant, coalesce_key
    ON CONFLICT (tenant, coalesce_key)
        WHERE coalesce_key IS NOT NULL AND started_at IS NULL
          AND state IN ('scheduled', 'available')
    DO UPDATE SET module = EXCLUDED.module, digest = EXCLUDED.digest,
        queue = EXCLUDED.queue, priority = EXCLUDED.priority, input = EXCLUDED.input,
        max_attempts = EXCLUDED.max_attempts, limits = EXCLUDED.limits,
        run_at = LEAST(EXCLUDED.run_at, j.coalesce_until),
        state = CASE WHEN LEAST(EXCLUDED.run_at, j.coalesce_until) > now()
                     THEN 'scheduled' ELSE 'available' END
    RETURNING (j.xmax = 0) AS inserted, j.*
),
notified AS (
    SELECT pg_notify('wasmq_jobs', $12 || ' ' || q.queue)
    FROM (SELECT DISTINCT queue FROM up WHERE state = 'available') q
)
SELECT * FROM up WHERE (SELECT count(*) FROM notified) >= 0
"#;

/// Stores `jobs` (each with a coalesce key, no two of a tenant with the same key) with
/// [`COALESCE`]: the answer of each, `None` for a job whose module has no version.
pub(super) async fn upsert(
    jobs: &[&NewJob],
    node: &str,
    db: impl sqlx::PgExecutor<'_>,
) -> Result<Vec<Option<Enqueued>>, StoreError> {
    let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let mut keys = Vec::with_capacity(jobs.len());
    let mut windows = Vec::with_capacity(jobs.len());
    let mut caps = Vec::with_capacity(jobs.len());
    for job in jobs {
        let coalesce = job
            .coalesce
            .as_ref()
            .ok_or_else(|| StoreError::Invalid("a coalescing job has no key".into()))?;
        keys.push(coalesce.key.as_str());
        windows.push(micros(coalesce.window));
        caps.push(coalesce.max.map(micros));
    }
    let rows = sqlx::query(COALESCE)
        .bind(jobs.iter().map(|j| j.tenant.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.module.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.digest.as_deref()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.input.as_slice()).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| clamp_i32(j.max_attempts))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| json(&j.limits)).collect::<Vec<_>>())
        .bind(&keys)
        .bind(&windows)
        .bind(&caps)
        .bind(node)
        .fetch_all(db)
        .await
        .map_err(db_err)?;
    let mut answers: HashMap<(String, String), Enqueued> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let job = job_from_row(row)?;
        let key: String = get(row, "coalesce_key")?;
        let inserted: bool = get(row, "inserted")?;
        answers.insert(
            (job.tenant.clone(), key),
            Enqueued {
                job,
                duplicate: false,
                coalesced: !inserted,
            },
        );
    }
    Ok(jobs
        .iter()
        .zip(&keys)
        .map(|(job, key)| answers.remove(&(job.tenant.clone(), (*key).to_owned())))
        .collect())
}
