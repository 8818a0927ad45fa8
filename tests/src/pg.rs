//! Test support for PostgreSQL: a fresh, throwaway database per test.
//!
//! The server is the one at `WASMQ_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; `.ci/ensure-postgres` provides it). Each
//! database is named `wasmq_test_<unix seconds>_<pid>_<n>`; the first call of a process
//! drops those left behind more than an hour ago by earlier runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection, Row};

/// The admin connection used to create test databases.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Older test databases than this (seconds) are dropped.
const STALE_AFTER_SECS: u64 = 3600;

/// The server URL from `WASMQ_TEST_DATABASE_URL`, or [`DEFAULT_URL`].
pub fn server_url() -> String {
    std::env::var("WASMQ_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Creates an empty, uniquely named database on the test server and returns its URL.
///
/// # Panics
/// If the server cannot be reached: run `.ci/ensure-postgres` first.
pub async fn fresh_database() -> String {
    fresh_database_on(&server_url()).await
}

/// Creates an empty, uniquely named database on the server at `server` (an admin URL,
/// e.g. a [`crate::pg_server::PgServer`]'s) and returns its URL.
///
/// # Panics
/// If the server cannot be reached.
pub async fn fresh_database_on(server: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static CLEANED: AtomicBool = AtomicBool::new(false);

    let mut admin = PgConnection::connect(server).await.unwrap_or_else(|e| {
        panic!("cannot reach the test PostgreSQL at {server} ({e}); run .ci/ensure-postgres")
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    if !CLEANED.swap(true, Ordering::SeqCst) {
        drop_stale(&mut admin, now).await;
    }
    let name = format!(
        "wasmq_test_{now}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    // The name is made of digits and underscores only, so it needs no quoting.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let _ = admin.close().await;
    with_database(server, &name)
}

/// Drops test databases created more than [`STALE_AFTER_SECS`] ago (best effort).
async fn drop_stale(admin: &mut PgConnection, now: u64) {
    let Ok(rows) =
        sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'wasmq\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .strip_prefix("wasmq_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        let is_plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_plain && created.is_some_and(|c| c + STALE_AFTER_SECS < now) {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// `url` with its database replaced by `database` (query parameters kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// SQL that records each job's every entry into `completed` in `test_completions` (an
/// insert as completed, as a job run ahead of storing is, or an update into it) with the
/// server's clock: a second completion of a job shows there.
pub const RECORD_COMPLETIONS: &str = r#"
CREATE TABLE test_completions (
    job_id  bigint      NOT NULL,
    attempt integer     NOT NULL,
    at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION test_record_completion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'completed' AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM 'completed') THEN
        INSERT INTO test_completions (job_id, attempt) VALUES (NEW.id, NEW.attempt);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_record_completion AFTER INSERT OR UPDATE ON wasmq_jobs
    FOR EACH ROW EXECUTE FUNCTION test_record_completion();
"#;

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
