//! Rows of the PostgreSQL driver: decoding what it reads, encoding what it binds, and
//! turning driver errors into domain errors at the store's edge.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::queue::driver::{decode_err, sqlx_err};
use crate::queue::rows::{Binds, Columns, native_binds, native_columns};
pub(super) use crate::queue::rows::{
    bind_advance, bind_job, bind_schedule, job_from_row, module_from_row, schedule_from_row,
};
use crate::queue::{Progress, StoreError};

/// Turns a driver error into a domain error ([`sqlx_err`] with PostgreSQL's codes).
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    sqlx_err(e, |db| {
        let code = db.code().unwrap_or_default();
        match code.as_ref() {
            "22P02" | "22003" => {
                tracing::warn!(error = %db, "store rejected a value");
                Some(StoreError::Invalid("a value is out of range".into()))
            }
            "40001" | "40P01" | "55P03" | "53300" | "57P01" | "57P02" | "57P03" => Some(
                StoreError::Unavailable(format!("the database is busy or restarting ({code})")),
            ),
            c if c.starts_with("08") => Some(StoreError::Unavailable(format!(
                "the database connection failed ({code})"
            ))),
            _ => None,
        }
    })
}

pub(super) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(|e| decode_err(column, e))
}

pub(super) fn to_u64(column: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|e| decode_err(column, e))
}

impl Columns for PgRow {
    native_columns!();

    fn small(&self, column: &str) -> Result<i16, StoreError> {
        get(self, column)
    }

    fn int(&self, column: &str) -> Result<i32, StoreError> {
        get(self, column)
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError> {
        get(self, column)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        get(self, column)
    }

    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        Ok(get::<Json<T>>(self, column)?.0)
    }

    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, StoreError> {
        Ok(get::<Option<Json<T>>>(self, column)?.map(|j| j.0))
    }
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("store types serialize to JSON")
}

/// A progress report as stored (the core made its note storable).
pub(super) fn progress_json(progress: &Progress) -> serde_json::Value {
    json(progress)
}

pub(super) fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub(super) fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

pub(super) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A statement of this driver, as [`Binds`] binds it.
pub(super) type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl<'q> Binds<'q> for PgQuery<'q> {
    native_binds!();

    fn count(self, value: u32) -> Self {
        self.bind(clamp_i32(value))
    }

    fn time(self, value: DateTime<Utc>) -> Self {
        self.bind(value)
    }

    fn opt_time(self, value: Option<DateTime<Utc>>) -> Self {
        self.bind(value)
    }

    fn json(self, value: &impl serde::Serialize) -> Self {
        self.bind(json(value))
    }
}
