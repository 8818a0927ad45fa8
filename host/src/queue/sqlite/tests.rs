//! The SQLite driver's own cases: its file, its pragmas, its plans and its single writer.

use std::time::Duration;

use chrono::DateTime;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::SqliteStore;
use super::rows::{from_micros, micros, micros_after, micros_before};
use super::sql::{CLAIM, CLAIM_TENANT, list_sql};
use crate::queue::{Finish, JobFilter, JobState, ModuleKind, NewJob, NewModule, Outcome, Store};

async fn store_with_module(dir: &tempfile::TempDir) -> SqliteStore {
    let store = SqliteStore::open(&dir.path().join("nested/dirs/wasmq.db"))
        .await
        .unwrap();
    let bytes = b"module".to_vec();
    store
        .put_module(NewModule {
            tenant: "t".into(),
            name: "m".into(),
            kind: ModuleKind::Component,
            digest: hex::encode(Sha256::digest(&bytes)),
            bytes,
            limits: Default::default(),
        })
        .await
        .unwrap();
    store
}

/// The steps of SQLite's plan for `statement`.
async fn plan(store: &SqliteStore, statement: &str) -> Vec<String> {
    let explain = format!("EXPLAIN QUERY PLAN {statement}");
    sqlx::query(sqlx::AssertSqlSafe(explain))
        .fetch_all(&store.driver().read)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect()
}

#[tokio::test]
async fn a_state_listing_uses_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_module(&dir).await;
    let filter = JobFilter {
        state: Some(JobState::Running),
        ..JobFilter::default()
    };
    let plan = plan(&store, &list_sql(&filter, "*")).await;
    assert!(
        plan.iter()
            .any(|step| step.contains("wasmq_jobs_list_state")),
        "{plan:?}"
    );
}

/// Both claims, of every tenant and of one, search the claim index.
#[tokio::test]
async fn both_claims_use_the_claim_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_module(&dir).await;
    for claim in [CLAIM, CLAIM_TENANT] {
        let plan = plan(&store, claim).await;
        assert!(
            plan.iter().any(|step| step.contains("wasmq_jobs_claim")),
            "{plan:?}"
        );
        // Jobs (`wasmq_jobs`, aliased `j`, `w` and `r`, the running count) are searched,
        // never read through.
        let scans_jobs = |step: &String| {
            let mut words = step.split(' ');
            words.next() == Some("SCAN")
                && matches!(words.next(), Some("wasmq_jobs" | "j" | "w" | "r"))
        };
        assert!(!plan.iter().any(scans_jobs), "{plan:?}");
    }
}

fn jobs(n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|_| NewJob {
            tenant: "t".into(),
            ..NewJob::new("m", b"")
        })
        .collect()
}

#[tokio::test]
async fn opens_durable_wal_creating_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_module(&dir).await;
    assert!(dir.path().join("nested/dirs/wasmq.db").exists());
    let write = &store.driver().write;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(write)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(write)
        .await
        .unwrap();
    assert_eq!(synchronous, 2, "FULL");
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&store.driver().read)
        .await
        .unwrap();
    assert_eq!(busy, 10_000);
    let readonly = sqlx::query("DELETE FROM wasmq_jobs")
        .execute(&store.driver().read)
        .await;
    assert!(readonly.is_err(), "the read pool cannot write");
}

/// Enqueues wait for the fsync; a claim before them does not, and leaves no trace.
#[tokio::test]
async fn enqueues_commit_durably_after_claims_that_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_module(&dir).await;
    let synchronous = || async {
        sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
            .fetch_one(&store.driver().write)
            .await
            .unwrap()
    };
    store.enqueue(jobs(2)).await.unwrap();
    assert_eq!(synchronous().await, 2, "FULL after an enqueue");
    let claimed = store
        .claim("default", "w", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(synchronous().await, 1, "NORMAL after a claim");
    store.enqueue(jobs(1)).await.unwrap();
    assert_eq!(synchronous().await, 2, "FULL again for the next enqueue");
}

/// Two rescuers at once (two workers in one process) rescue each job once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rescues_take_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_module(&dir).await;
    store.enqueue(jobs(300)).await.unwrap();
    let claimed = store
        .claim("default", "gone", 300, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 300);
    let rescuer = |store: SqliteStore| tokio::spawn(async move { store.rescue().await });
    let (a, b) = (rescuer(store.clone()), rescuer(store.clone()));
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert!(!a.skipped && !b.skipped);
    let mut all: Vec<i64> = a.retried.iter().chain(&b.retried).copied().collect();
    all.sort_unstable();
    let mut expected: Vec<i64> = claimed.iter().map(|j| j.id).collect();
    expected.sort_unstable();
    assert_eq!(all, expected, "every job rescued exactly once");
    for job in &claimed {
        let job = store.get("t", job.id).await.unwrap().unwrap();
        assert_eq!(job.history.len(), 1);
    }
}

/// Many callers finishing at once are answered each for their own reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finishes_are_group_committed_and_answered_separately() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_module(&dir).await;
    store.enqueue(jobs(200)).await.unwrap();
    let claimed = store
        .claim("default", "w", 200, Duration::from_secs(60))
        .await
        .unwrap();
    let calls = claimed.chunks(5).enumerate().map(|(i, chunk)| {
        let store = store.clone();
        // Every other call also repeats a stale report, which must be refused.
        let mut items: Vec<Finish> = chunk
            .iter()
            .map(|j| {
                Finish::new(
                    j.id,
                    j.attempt,
                    Outcome::Complete {
                        result: j.id.to_le_bytes().to_vec(),
                    },
                )
            })
            .collect();
        if i % 2 == 0 {
            items.push(Finish::new(chunk[0].id, 99, Outcome::Release));
        }
        async move { (i, store.finish(items).await.unwrap()) }
    });
    for (i, applied) in futures_join_all(calls).await {
        let mut expected = vec![true; 5];
        if i % 2 == 0 {
            expected.push(false);
        }
        assert_eq!(applied, expected, "call {i}");
    }
    for job in &claimed {
        let job = store.get("t", job.id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(job.result, Some(job.id.to_le_bytes().to_vec()));
    }
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[test]
fn microseconds_round_trip_and_order() {
    let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
    assert_eq!(from_micros("t", micros(t)).unwrap(), t);
    assert!(micros_after(micros(t), Duration::from_millis(1)) > micros(t));
    assert_eq!(micros_after(i64::MAX - 1, Duration::from_secs(1)), i64::MAX);
    assert_eq!(micros_before(0, Duration::MAX), -i64::MAX);
}
