//! `wasmq worker` processes on one PostgreSQL: three of them drain one queue, every job
//! completed exactly once; and the retention given by `--retention` is what the
//! maintenance prunes by (older finished jobs deleted, newer and unfinished ones kept).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run, text, worker};
use serde_json::json;
use wasmq_host::queue::{JobState, NewJob, Store};
use wasmq_tests::guests;
use wasmq_tests::harness::{finished, fresh_store_with_url, job, put_module, start_worker};

/// Enqueues `jobs`: their ids.
async fn enqueue(store: &Arc<dyn Store>, jobs: Vec<NewJob>) -> Vec<i64> {
    let enqueued = store.enqueue(jobs).await.unwrap();
    enqueued.into_iter().map(|e| e.job.id).collect()
}

async fn raw(url: &str) -> sqlx::PgPool {
    sqlx::PgPool::connect(url)
        .await
        .expect("connect to the test database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_complete_300_jobs_exactly_once() {
    let (store, url) = fresh_store_with_url().await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    let mut procs = Vec::new();
    for _ in 0..3 {
        procs.push(worker(&url, &["--queue", "default=2"]).await);
    }
    // A few milliseconds of work a job, so the three share the queue.
    let jobs = (0..300)
        .map(|i| job("hostile", json!({"op": "loop", "n": 1_000_000 + i})))
        .collect();
    let ids = enqueue(&store, jobs).await;

    // Which workers hold jobs, sampled while the queue drains.
    let db = raw(&url).await;
    let mut holders = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let held: Vec<Option<String>> =
            sqlx::query_scalar("SELECT DISTINCT worker_id FROM wasmq_jobs WHERE state = 'running'")
                .fetch_all(&db)
                .await
                .unwrap();
        holders.extend(held.into_iter().flatten());
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM wasmq_jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} jobs still not finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(holders.len(), 3, "every worker took jobs: {holders:?}");

    for (i, id) in ids.iter().enumerate() {
        let j = store.get("default", *id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Completed, "job {id}");
        assert_eq!(j.attempt, 1, "job {id} ran once");
        assert!(j.history.is_empty(), "job {id}: {:?}", j.history);
        let expected = json!({ "done": 1_000_000 + i }).to_string();
        assert_eq!(j.result.as_deref(), Some(expected.as_bytes()), "job {id}");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM wasmq_jobs")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, 300, "no job was duplicated");
    for mut p in procs {
        p.terminate();
        assert!(p.exited(Duration::from_secs(30)).await.success());
    }
}

/// Enqueues `input` jobs of `module` and waits until they have finished.
async fn finished_jobs(
    store: &Arc<dyn Store>,
    module: &str,
    inputs: &[serde_json::Value],
) -> Vec<i64> {
    let jobs = inputs.iter().map(|i| job(module, i.clone())).collect();
    let ids = enqueue(store, jobs).await;
    for id in &ids {
        finished(store, *id, Duration::from_secs(60)).await;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_prunes_finished_jobs_older_than_the_retention() {
    let (store, url) = fresh_store_with_url().await;
    put_module(&store, "echo", guests::ECHO).await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    // Finished jobs in each finished state, run by an in-process pool.
    let pool = start_worker(store.clone(), Default::default(), 2);
    let completed = finished_jobs(&store, "echo", &[json!(1), json!(2), json!(3)]).await;
    let failed = finished_jobs(&store, "hostile", &[json!({"op": "fatal"})]).await;
    pool.stop().await;
    let mut idle = job("echo", json!(4));
    idle.queue = "nobody".into();
    let waiting = store.enqueue(vec![idle.clone()]).await.unwrap()[0].job.id;
    let cancelled = store.enqueue(vec![idle]).await.unwrap()[0].job.id;
    store.cancel("default", cancelled).await.unwrap();
    let failed_state = store
        .get("default", failed[0])
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(failed_state, JobState::Failed);

    // Two hours old (past a 1 h retention, inside the default week), 30 min old, new.
    let db = raw(&url).await;
    let age = |ids: Vec<i64>, minutes: i32| {
        let db = db.clone();
        async move {
            sqlx::query(
                "UPDATE wasmq_jobs SET finished_at = now() - make_interval(mins => $2), \
                 created_at = now() - make_interval(mins => $2) WHERE id = ANY($1)",
            )
            .bind(ids)
            .bind(minutes)
            .execute(&db)
            .await
            .unwrap();
        }
    };
    let old = vec![completed[0], completed[1], failed[0], cancelled];
    age(old.clone(), 120).await;
    age(vec![completed[2]], 30).await;
    sqlx::query("UPDATE wasmq_jobs SET created_at = now() - interval '2 hours' WHERE id = $1")
        .bind(waiting)
        .execute(&db)
        .await
        .unwrap();

    let mut proc = worker(&url, &["--retention", "1h"]).await;
    let line = proc
        .line_containing("pruned finished jobs", Duration::from_secs(30))
        .await;
    assert!(line.contains("deleted=4"), "{line}");
    for id in &old {
        assert!(
            store.get("default", *id).await.unwrap().is_none(),
            "job {id} pruned"
        );
    }
    for id in [completed[2], waiting] {
        assert!(
            store.get("default", id).await.unwrap().is_some(),
            "job {id} kept"
        );
    }
    proc.terminate();
    assert!(proc.exited(Duration::from_secs(30)).await.success());
}

#[test]
fn a_retention_that_is_not_a_duration_is_refused() {
    let out = run(
        &[
            "worker",
            "--database-url",
            "postgres://127.0.0.1:1/x",
            "--retention",
            "forever",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--retention") && err.contains("forever"),
        "{err}"
    );
}
