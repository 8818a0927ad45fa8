//! Dependencies on PostgreSQL: a stored batch's dependencies attached in its transaction,
//! and the rows `wasmq_release_dependents` (migration 0011) answers read back.
//!
//! The enqueue locks every job its batch depends on (`FOR NO KEY UPDATE`, ascending ids)
//! before it reads their states, and raises their `dependents`. A finish of such a job
//! either took its row lock first (the enqueue then reads it finished and adds no edge),
//! or waits for the enqueue's commit and then reads the raised `dependents`, which makes
//! it resolve the dependents with a snapshot that sees the new edges.

use sqlx::PgConnection;

use super::rows::{clamp_i32, db_err, get, json};
use crate::queue::deps::{self, Released};
use crate::queue::{Enqueued, JobState, NewJob, StoreError};

/// The jobs a batch depends on, locked against a concurrent finish, in id order.
const LOCK_PARENTS: &str = r#"
SELECT id, tenant, state FROM wasmq_jobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE
"#;

/// A plan ([`deps::Plan`]) written: per row, dependents added and, for a new dependent,
/// its state, count, ids and error (`NULL`: unchanged); then the pending edges. One
/// UPDATE per row, so a job of the batch that is both a dependent and a dependency is
/// written once.
const ATTACH: &str = r#"
WITH c AS (
    SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::int[], $5::jsonb[],
                         $6::jsonb[])
        AS t(id, added, state, pending, depends_on, error)
),
edges AS (
    INSERT INTO wasmq_job_deps (depends_on, job_id)
    SELECT * FROM UNNEST($7::bigint[], $8::bigint[])
    RETURNING 1
),
upd AS (
    UPDATE wasmq_jobs j
    SET dependents = j.dependents + c.added,
        state = COALESCE(c.state, j.state),
        deps_pending = COALESCE(c.pending, j.deps_pending),
        depends_on = COALESCE(c.depends_on, j.depends_on),
        error = COALESCE(c.error, j.error),
        finished_at = CASE WHEN c.state = 'cancelled' THEN now() ELSE j.finished_at END
    FROM c
    WHERE j.id = c.id
    RETURNING j.*
)
SELECT * FROM upd WHERE (SELECT count(*) FROM edges) >= 0
"#;

/// Attaches the dependencies of the new jobs of a stored batch (`jobs` as requested,
/// `answers` as stored), in its transaction `tx`, and puts the rows it changed into
/// `answers`. [`StoreError::Invalid`] for a dependency on an unknown job or another
/// tenant's (the caller rolls the batch back).
pub(super) async fn attach(
    tx: &mut PgConnection,
    jobs: &[NewJob],
    answers: &mut [Enqueued],
) -> Result<(), StoreError> {
    let ids = deps::parents(jobs, answers);
    if ids.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(LOCK_PARENTS)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    let plan = deps::plan_from_rows(jobs, answers, &rows)?;
    let n = plan.rows.len();
    let (mut ids, mut added, mut states, mut pending, mut depends_on, mut errors) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for row in &plan.rows {
        let dependent = row.dependent.as_ref();
        ids.push(row.id);
        added.push(clamp_i32(row.dependents_added));
        states.push(dependent.and_then(|d| d.state).map(JobState::as_str));
        pending.push(dependent.map(|d| clamp_i32(d.pending)));
        depends_on.push(dependent.map(|d| json(&d.depends_on)));
        errors.push(dependent.and_then(|d| d.error.as_ref()).map(json));
    }
    let (on, of): (Vec<i64>, Vec<i64>) = plan.edges.into_iter().unzip();
    let stored = sqlx::query(ATTACH)
        .bind(&ids)
        .bind(&added)
        .bind(&states)
        .bind(&pending)
        .bind(&depends_on)
        .bind(&errors)
        .bind(&on)
        .bind(&of)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    deps::answer_with(answers, &stored)
}

/// What `wasmq_release_dependents` answered, as rows of `id`, `state` and `queue`.
pub(super) fn released<'r>(
    rows: impl IntoIterator<Item = &'r sqlx::postgres::PgRow>,
) -> Result<Released, StoreError> {
    let mut released = Released::default();
    for row in rows {
        match get::<String>(row, "state")?.parse()? {
            JobState::Available => released.available.push(get(row, "queue")?),
            JobState::Cancelled => released.cancelled.push(get(row, "id")?),
            _ => {}
        }
    }
    Ok(released)
}
