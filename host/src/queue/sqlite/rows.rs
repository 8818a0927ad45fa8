//! Rows of the SQLite driver: decoding what it reads, encoding what it binds (times as
//! unix microseconds, JSON as text), and driver errors as domain errors.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite};

use serde::de::DeserializeOwned;

use crate::queue::driver::{decode_err, sqlx_err};
use crate::queue::rows::{Binds, Columns, native_binds, native_columns};
pub(super) use crate::queue::rows::{
    bind_advance, bind_job, bind_schedule, job_from_row, module_from_row, schedule_from_row,
};
use crate::queue::{AttemptRecord, JobError, Progress, StoreError};

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

impl Columns for SqliteRow {
    native_columns!();

    fn small(&self, column: &str) -> Result<i16, StoreError> {
        i16::try_from(get::<i64>(self, column)?).map_err(|e| decode_err(column, e))
    }

    fn int(&self, column: &str) -> Result<i32, StoreError> {
        i32::try_from(get::<i64>(self, column)?).map_err(|e| decode_err(column, e))
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        get_time(self, column)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        get_opt_time(self, column)
    }

    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        get_json(self, column)
    }

    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, StoreError> {
        get_opt_json(self, column)
    }
}

pub(super) fn history_entry(attempt: u32, at: DateTime<Utc>, error: &JobError) -> String {
    json_text(&AttemptRecord {
        attempt,
        at,
        kind: error.kind,
        message: error.message.clone(),
    })
}

impl<'q> Binds<'q> for sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    native_binds!();

    fn count(self, value: u32) -> Self {
        self.bind(i64::from(value))
    }

    fn time(self, value: DateTime<Utc>) -> Self {
        self.bind(micros(value))
    }

    fn opt_time(self, value: Option<DateTime<Utc>>) -> Self {
        self.bind(value.map(micros))
    }

    fn json(self, value: &impl serde::Serialize) -> Self {
        self.bind(json_text(value))
    }
}
