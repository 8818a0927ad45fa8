//! Rows of the SQLite driver: decoding what it reads, encoding what it binds (times as
//! unix microseconds, JSON as text), and driver errors as domain errors.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite};

use crate::queue::driver::{decode_err, sqlx_err};
use crate::queue::{
    AttemptRecord, Job, JobBody, JobError, JobSummary, Module, Progress, StoreError,
};

pub(super) fn open_err(path: &Path, e: sqlx::Error) -> StoreError {
    tracing::error!(error = %e, path = %path.display(), "cannot open the SQLite database");
    StoreError::Unavailable(format!(
        "cannot open the SQLite database {}: {e}",
        path.display()
    ))
}

/// Turns a driver error into a domain error ([`sqlx_err`] with SQLite's result codes).
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    sqlx_err(e, |db| {
        let code: i32 = db.code().and_then(|c| c.parse().ok()).unwrap_or_default();
        match code & 0xff {
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
            5 | 6 => Some(StoreError::Unavailable(format!(
                "the database is locked by another process ({code})"
            ))),
            // SQLITE_IOERR (10), SQLITE_FULL (13), SQLITE_CANTOPEN (14).
            10 | 13 | 14 => {
                tracing::error!(error = %db, "database I/O error");
                Some(StoreError::Unavailable(format!(
                    "the database file cannot be written ({code})"
                )))
            }
            _ => None,
        }
    })
}

pub(super) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column).map_err(|e| decode_err(column, e))
}

pub(super) fn get_u32(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    let v: i64 = get(row, column)?;
    u32::try_from(v).map_err(|e| decode_err(column, e))
}

pub(super) fn get_u64(row: &SqliteRow, column: &str) -> Result<u64, StoreError> {
    let v: i64 = get(row, column)?;
    u64::try_from(v).map_err(|e| decode_err(column, e))
}

pub(super) fn get_time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    from_micros(column, get(row, column)?)
}

pub(super) fn get_opt_time(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    get::<Option<i64>>(row, column)?
        .map(|v| from_micros(column, v))
        .transpose()
}

pub(super) fn get_json<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|e| decode_err(column, e))
}

pub(super) fn get_opt_json<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<T>, StoreError> {
    get::<Option<String>>(row, column)?
        .map(|text| serde_json::from_str(&text).map_err(|e| decode_err(column, e)))
        .transpose()
}

pub(super) fn from_micros(column: &str, v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| decode_err(column, v))
}

pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// `now` plus `d`, in microseconds, saturating.
pub(super) fn micros_after(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `now` minus `d`, in microseconds, saturating.
pub(super) fn micros_before(now: i64, d: Duration) -> i64 {
    now.saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(super) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("store types serialize to JSON")
}

/// A progress report as stored (the core made its note storable).
pub(super) fn progress_text(progress: &Progress) -> String {
    json_text(progress)
}

pub(super) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn job_from_row(row: &SqliteRow) -> Result<Job, StoreError> {
    let body = JobBody {
        input: get(row, "input")?,
        result: get(row, "result")?,
        log: get(row, "log")?,
        log_dropped: get_u64(row, "log_dropped")?,
        worker_id: get(row, "worker_id")?,
        lease_expires_at: get_opt_time(row, "lease_expires_at")?,
    };
    Ok(Job::from_parts(summary_from_row(row)?, body))
}

/// Reads the [`SUMMARY_COLUMNS`](crate::queue::driver::SUMMARY_COLUMNS).
pub(super) fn summary_from_row(row: &SqliteRow) -> Result<JobSummary, StoreError> {
    let state: String = get(row, "state")?;
    let priority: i64 = get(row, "priority")?;
    Ok(JobSummary {
        id: get(row, "id")?,
        tenant: get(row, "tenant")?,
        module: get(row, "module")?,
        digest: get(row, "digest")?,
        queue: get(row, "queue")?,
        priority: i16::try_from(priority).map_err(|e| decode_err("priority", e))?,
        state: state.parse().map_err(|e| decode_err("state", e))?,
        run_at: get_time(row, "run_at")?,
        attempt: get_u32(row, "attempt")?,
        max_attempts: get_u32(row, "max_attempts")?,
        limits: get_json(row, "limits")?,
        idempotency_key: get(row, "idempotency_key")?,
        progress: get_opt_json(row, "progress")?,
        error: get_opt_json(row, "error")?,
        usage: get_opt_json(row, "usage")?,
        history: get_json(row, "history")?,
        created_at: get_time(row, "created_at")?,
        started_at: get_opt_time(row, "started_at")?,
        finished_at: get_opt_time(row, "finished_at")?,
        cancel_requested: get(row, "cancel_requested")?,
    })
}

pub(super) fn module_from_row(row: &SqliteRow) -> Result<Module, StoreError> {
    let kind: String = get(row, "kind")?;
    Ok(Module {
        tenant: get(row, "tenant")?,
        name: get(row, "name")?,
        version: get_u32(row, "version")?,
        digest: get(row, "digest")?,
        size: get_u64(row, "size")?,
        kind: kind.parse().map_err(|e| decode_err("kind", e))?,
        limits: get_json(row, "limits")?,
        created_at: get_time(row, "created_at")?,
    })
}

pub(super) fn history_entry(attempt: u32, at: DateTime<Utc>, error: &JobError) -> String {
    json_text(&AttemptRecord {
        attempt,
        at,
        kind: error.kind,
        message: error.message.clone(),
    })
}

/// `sql` (`INSERT_RUNNING`, `INSERT_FINISHED`) with `job`'s id and columns as `$1..$9`: id,
/// tenant, module, digest, queue, limits, priority, input, max_attempts.
pub(super) fn bind_row<'q>(
    sql: &'static str,
    job: &'q Job,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(sql)
        .bind(job.id)
        .bind(&job.tenant)
        .bind(&job.module)
        .bind(&job.digest)
        .bind(&job.queue)
        .bind(json_text(&job.limits))
        .bind(i64::from(job.priority))
        .bind(job.input.as_slice())
        .bind(i64::from(job.max_attempts))
}
