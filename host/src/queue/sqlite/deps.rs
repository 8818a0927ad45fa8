//! Dependencies on SQLite: a stored batch's dependencies attached in its transaction, and
//! the dependents of jobs that finished for good resolved in theirs, level by level down a
//! failure's chain. The single writer serializes every enqueue and finish, so no lock is
//! needed for a dependent to be released exactly once.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use sqlx::SqliteConnection;

use super::rows::{db_err, get, json_text, micros};
use crate::queue::deps::{self, Released};
use crate::queue::{Enqueued, JobState, NewJob, StoreError};

/// The jobs a batch depends on (`$1`: a JSON array of ids).
const PARENTS: &str =
    "SELECT id, tenant, state FROM wasmq_jobs WHERE id IN (SELECT value FROM json_each($1))";

/// A plan's rows (`$1`: a JSON array of objects, `NULL` members leaving a column as it
/// is), each written once; `$2` now.
const ATTACH: &str = r#"
UPDATE wasmq_jobs
SET dependents = dependents + c.added,
    state = coalesce(c.state, wasmq_jobs.state),
    deps_pending = coalesce(c.pending, wasmq_jobs.deps_pending),
    depends_on = coalesce(c.depends_on, wasmq_jobs.depends_on),
    error = coalesce(c.error, wasmq_jobs.error),
    finished_at = CASE WHEN c.state = 'cancelled' THEN $2 ELSE wasmq_jobs.finished_at END
FROM (SELECT value ->> 'id' AS id, value ->> 'added' AS added, value ->> 'state' AS state,
             value ->> 'pending' AS pending, value ->> 'depends_on' AS depends_on,
             value ->> 'error' AS error
      FROM json_each($1)) AS c
WHERE wasmq_jobs.id = c.id
RETURNING *
"#;

/// The pending edges (`$1`: a JSON array of `[depends_on, job_id]`).
const EDGES: &str = r#"
INSERT INTO wasmq_job_deps (depends_on, job_id)
SELECT value ->> 0, value ->> 1 FROM json_each($1)
"#;

/// The edges of finished jobs (`$1`: a JSON array of ids), taken out.
const TAKE_EDGES: &str = r#"
DELETE FROM wasmq_job_deps WHERE depends_on IN (SELECT value FROM json_each($1))
RETURNING job_id, depends_on
"#;

/// One completed dependency less (`$2` of them) for waiting job `$1`; at none left it is
/// due (`$3` now).
const COUNT_DOWN: &str = r#"
UPDATE wasmq_jobs
SET deps_pending = deps_pending - $2,
    state = CASE WHEN deps_pending > $2 THEN 'waiting'
                 WHEN run_at > $3 THEN 'scheduled'
                 ELSE 'available' END
WHERE id = $1 AND state = 'waiting'
RETURNING state, queue
"#;

/// Waiting job `$1` cancelled (`$2` now, `$3` the error).
const CANCEL_DEPENDENT: &str = r#"
UPDATE wasmq_jobs SET state = 'cancelled', finished_at = $2, error = $3
WHERE id = $1 AND state = 'waiting'
RETURNING id
"#;

/// Attaches the dependencies of the new jobs of a stored batch (`jobs` as requested,
/// `answers` as stored) in its transaction, and puts the rows it changed into `answers`.
pub(super) async fn attach(
    tx: &mut SqliteConnection,
    jobs: &[NewJob],
    answers: &mut [Enqueued],
    now: i64,
) -> Result<(), StoreError> {
    let ids = deps::parents(jobs, answers);
    if ids.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(PARENTS)
        .bind(json_text(&ids))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    let plan = deps::plan_from_rows(jobs, answers, &rows)?;
    let changes: Vec<serde_json::Value> = plan
        .rows
        .iter()
        .map(|row| {
            let dependent = row.dependent.as_ref();
            serde_json::json!({
                "id": row.id,
                "added": row.dependents_added,
                "state": dependent.and_then(|d| d.state).map(JobState::as_str),
                "pending": dependent.map(|d| d.pending),
                "depends_on": dependent.map(|d| json_text(&d.depends_on)),
                "error": dependent.and_then(|d| d.error.as_ref()).map(json_text),
            })
        })
        .collect();
    if !plan.edges.is_empty() {
        sqlx::query(EDGES)
            .bind(json_text(&plan.edges))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    let stored = sqlx::query(ATTACH)
        .bind(json_text(&changes))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    deps::answer_with(answers, &stored)
}

/// Resolves the dependents of `ended` (jobs that just finished for good, with their
/// state) in the caller's transaction: a completion counts each waiting dependent down
/// and makes it due at none left; a failure or cancellation cancels the waiting ones
/// (`dependency_failed`), and theirs, down the chain.
pub(super) async fn release(
    tx: &mut SqliteConnection,
    ended: Vec<(i64, JobState)>,
    now: i64,
) -> Result<Released, StoreError> {
    let mut released = Released::default();
    if ended.is_empty() {
        return Ok(released);
    }
    // Whether a released job is due is read now, holding the writer: an enqueue that
    // went first may have stamped its job later than the caller's `now`.
    let due_at = micros(Utc::now()).max(now);
    let (completed, mut failed): (Vec<_>, Vec<_>) = ended
        .into_iter()
        .partition(|(_, state)| *state == JobState::Completed);
    let completed: Vec<i64> = completed.into_iter().map(|(id, _)| id).collect();
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for (child, _) in take_edges(tx, &completed).await? {
        *counts.entry(child).or_default() += 1;
    }
    for (child, n) in counts {
        let row = sqlx::query(COUNT_DOWN)
            .bind(child)
            .bind(n)
            .bind(due_at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if let Some(row) = row
            && get::<String>(&row, "state")? == JobState::Available.as_str()
        {
            released.available.push(get(&row, "queue")?);
        }
    }
    while !failed.is_empty() {
        let states: HashMap<i64, JobState> = failed.iter().copied().collect();
        let ids: Vec<i64> = failed.iter().map(|(id, _)| *id).collect();
        // Each dependent names its first failed dependency.
        let mut first: BTreeMap<i64, i64> = BTreeMap::new();
        for (child, parent) in take_edges(tx, &ids).await? {
            let at = first.entry(child).or_insert(parent);
            *at = (*at).min(parent);
        }
        failed = Vec::new();
        for (child, parent) in first {
            let error = deps::dependency_failed(parent, states[&parent]);
            let row = sqlx::query(CANCEL_DEPENDENT)
                .bind(child)
                .bind(now)
                .bind(json_text(&error))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if row.is_some() {
                released.cancelled.push(child);
                failed.push((child, JobState::Cancelled));
            }
        }
    }
    Ok(released)
}

/// Deletes the pending edges of `ids`: their `(job_id, depends_on)`.
async fn take_edges(tx: &mut SqliteConnection, ids: &[i64]) -> Result<Vec<(i64, i64)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(TAKE_EDGES)
        .bind(json_text(&ids))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|row| Ok((get(row, "job_id")?, get(row, "depends_on")?)))
        .collect()
}
