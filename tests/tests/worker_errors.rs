//! Worker failures as a tenant sees them, against a real PostgreSQL and real guests: the
//! store's and the host's own words stay in the operator's log, and a report the store
//! refuses fails its job instead of being retried forever.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection;
use wasmq_host::queue::{ErrorKind, JobState, NewJob};
use wasmq_host::worker::WorkerConfig;
use wasmq_tests::guests;
use wasmq_tests::harness::{finished, fresh_store_with_url, job, put_module, start_worker};

fn config() -> WorkerConfig {
    WorkerConfig {
        queues: vec![("default".into(), 2)],
        ..WorkerConfig::default()
    }
}

/// Runs `sql` on the test database at `url`, beside the store.
async fn alter(url: &str, sql: &'static str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
}

/// The store fails every read of module bytes (its table is gone, a database error with
/// an SQL state): the job fails saying the store was unavailable, in no words of the
/// database's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_the_store_cannot_read_fails_without_the_stores_words() {
    let (store, url) = fresh_store_with_url().await;
    put_module(&store, "echo", guests::ECHO).await;
    alter(
        &url,
        "ALTER TABLE wasmq_module_blobs RENAME TO wasmq_module_blobs_gone",
    )
    .await;
    let new = NewJob {
        max_attempts: 1,
        ..job("echo", json!({}))
    };
    let id = store.enqueue(vec![new]).await.unwrap()[0].job.id;
    let w = start_worker(store.clone(), config(), 2);
    let failed = finished(&store, id, Duration::from_secs(60)).await;
    w.stop().await;
    assert_eq!(failed.state, JobState::Failed);
    let message = failed.error.expect("an error").message;
    assert!(
        message.starts_with("could not load module `echo`"),
        "{message}"
    );
    assert!(message.contains("the store was unavailable"), "{message}");
    for leak in ["database", "42P01", "fetching", "wasmq_module_blobs"] {
        assert!(!message.contains(leak), "`{leak}` in: {message}");
    }
}

/// The database refuses a finished attempt's report (here a constraint on the log's
/// length that the guest's log breaks): the job fails at once with a message that says
/// its report could not be stored, instead of staying running while the report is
/// retried forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_the_store_refuses_fails_the_job() {
    let (store, url) = fresh_store_with_url().await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    alter(
        &url,
        "ALTER TABLE wasmq_jobs ADD CONSTRAINT short_logs CHECK (length(log) < 10) NOT VALID",
    )
    .await;
    let new = NewJob {
        max_attempts: 1,
        ..job("hostile", json!({ "op": "log_flood", "n": 100 }))
    };
    let claimed = store.enqueue(vec![new.clone()]).await.unwrap()[0].job.id;
    let w = start_worker(store.clone(), config(), 2);
    finished(&store, claimed, Duration::from_secs(60)).await;
    // The worker idles now: the next job is handed to it (and may be run before it is
    // stored, its report going in with it), and must not fail the enqueue.
    let handed = store.enqueue(vec![new]).await.unwrap()[0].job.id;
    for id in [claimed, handed] {
        let failed = finished(&store, id, Duration::from_secs(60)).await;
        assert_eq!(failed.state, JobState::Failed, "job {id}");
        assert_eq!(failed.attempt, 1);
        assert!(failed.log.is_empty(), "the refused log is not kept");
        let error = failed.error.expect("an error");
        assert_eq!(error.kind, ErrorKind::OutputLimit, "it had completed");
        assert!(
            error.message.contains("report could not be stored"),
            "{}",
            error.message
        );
    }
    w.stop().await;
}
