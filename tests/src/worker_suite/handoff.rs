//! The worker cases of a job handed to an idle worker (`queue::handoff`): run before it
//! is stored, or (not done in time, or not allowed to run ahead) stored `running` for the
//! worker. The same on every store.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wasmq_host::queue::{Enqueued, ErrorKind, JobState, NewJob, Store};

use super::config;
use crate::guests;
use crate::harness::{eventually, finished, job, put_module, start_worker};

/// Enqueues `make()` until the store answers with a job in `state` (the worker has to be
/// idle first: the job is handed to it, `queue::handoff`); jobs answered otherwise are
/// waited for.
async fn enqueue_until(
    store: &Arc<dyn Store>,
    state: JobState,
    make: impl Fn() -> NewJob,
) -> Enqueued {
    eventually(
        Duration::from_secs(30),
        "an idle worker to take a job",
        || async {
            let e = store.enqueue(vec![make()]).await.unwrap().remove(0);
            if e.job.state == state {
                return Some(e);
            }
            finished(store, e.job.id, Duration::from_secs(30)).await;
            None
        },
    )
    .await
}

pub async fn handoff_a_short_job_is_run_before_it_is_stored_and_answered_completed(
    store: Arc<dyn Store>,
) {
    put_module(&store, "hostile", guests::HOSTILE).await;
    let w = start_worker(store.clone(), config(2), 2);
    let e = enqueue_until(&store, JobState::Completed, || {
        job("hostile", json!({"op": "job"}))
    })
    .await;
    assert!(!e.duplicate);
    let j = e.job;
    assert_eq!(j.attempt, 1);
    let result: serde_json::Value = serde_json::from_slice(j.result.as_ref().unwrap()).unwrap();
    assert_eq!(
        result["id"],
        j.id.to_string(),
        "the guest saw the id it is stored under"
    );
    assert_eq!(result["attempt"], 1);
    assert!(j.history.is_empty() && j.error.is_none());
    assert!(j.started_at.is_some() && j.finished_at.is_some() && j.worker_id.is_none());
    let stored = store.get("default", j.id).await.unwrap().unwrap();
    assert_eq!(stored, j, "the answer is the stored job");
    // It does not run again, not even from a copy left in the store: a marker that goes
    // through the store (due a moment from now, so not handed off) and is claimed after
    // any such copy (lower priority) has run.
    let marker = NewJob {
        run_at: Some(chrono::Utc::now() + chrono::Duration::milliseconds(300)),
        priority: -1,
        ..job("hostile", json!({"op": "job"}))
    };
    let marker = store.enqueue(vec![marker]).await.unwrap().remove(0).job;
    assert_eq!(marker.state, JobState::Scheduled);
    finished(&store, marker.id, Duration::from_secs(10)).await;
    let again = store.get("default", j.id).await.unwrap().unwrap();
    assert_eq!((again.state, again.attempt), (JobState::Completed, 1));
    w.stop().await;
}

pub async fn handoff_a_failed_attempt_run_ahead_is_stored_retryable_then_retried(
    store: Arc<dyn Store>,
) {
    put_module(&store, "hostile", guests::HOSTILE).await;
    let w = start_worker(store.clone(), config(2), 2);
    let e = enqueue_until(&store, JobState::Retryable, || NewJob {
        max_attempts: 2,
        ..job("hostile", json!({"op": "retry"}))
    })
    .await;
    let j = e.job;
    assert_eq!(j.attempt, 1);
    assert_eq!(j.error.as_ref().unwrap().kind, ErrorKind::TaskError);
    assert_eq!(j.history.len(), 1);
    assert_eq!(j.history[0].attempt, 1);
    assert!(j.run_at > j.created_at, "backs off");
    let done = finished(&store, j.id, Duration::from_secs(30)).await;
    assert_eq!(done.state, JobState::Failed);
    assert_eq!(done.attempt, 2);
    assert_eq!(done.history.len(), 2);
    w.stop().await;
}

pub async fn handoff_a_long_job_is_stored_running_for_the_worker_and_completes_once(
    store: Arc<dyn Store>,
) {
    put_module(&store, "hostile", guests::HOSTILE).await;
    let w = start_worker(store.clone(), config(2), 2);
    // Tens of milliseconds: longer than the enqueue waits for it.
    let n = 20_000_000;
    let e = enqueue_until(&store, JobState::Running, || {
        job("hostile", json!({"op": "loop", "n": n}))
    })
    .await;
    let j = e.job;
    assert_eq!(j.attempt, 1);
    assert!(j.worker_id.is_some() && j.lease_expires_at.is_some());
    let done = finished(&store, j.id, Duration::from_secs(30)).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(
        done.attempt, 1,
        "the attempt that started ahead is the one stored"
    );
    let result: serde_json::Value = serde_json::from_slice(done.result.as_ref().unwrap()).unwrap();
    assert_eq!(result["done"], n);
    assert!(done.history.is_empty());
    w.stop().await;
}

pub async fn handoff_an_unknown_module_is_refused_and_the_worker_keeps_taking_jobs(
    store: Arc<dyn Store>,
) {
    put_module(&store, "echo", guests::ECHO).await;
    let w = start_worker(store.clone(), config(1), 1);
    enqueue_until(&store, JobState::Completed, || job("echo", json!(1))).await;
    let err = store
        .enqueue(vec![job("nope", json!(1))])
        .await
        .unwrap_err();
    assert!(
        matches!(err, wasmq_host::queue::StoreError::ModuleNotFound { .. }),
        "{err:?}"
    );
    let e = enqueue_until(&store, JobState::Completed, || job("echo", json!(2))).await;
    assert_eq!(e.job.result.as_deref(), Some(&b"2"[..]));
    w.stop().await;
}

/// A job that may not run before it is stored (`NewJob::may_run_ahead` false: its attempt
/// could reach outside its sandbox) is never answered finished by its enqueue, however
/// short: it is stored `running` for the idle worker first, and then completes once.
pub async fn handoff_a_job_that_may_not_run_ahead_is_stored_before_it_runs(store: Arc<dyn Store>) {
    put_module(&store, "hostile", guests::HOSTILE).await;
    let w = start_worker(store.clone(), config(2), 2);
    let make = || NewJob {
        may_run_ahead: false,
        ..job("hostile", json!({"op": "job"}))
    };
    let j = eventually(
        Duration::from_secs(30),
        "an idle worker to take a job",
        || async {
            let e = store.enqueue(vec![make()]).await.unwrap().remove(0);
            assert!(
                !e.job.state.is_finished() && e.job.state != JobState::Retryable,
                "a job that may not run ahead was run before it was stored: {:?}",
                e.job.state
            );
            if e.job.state == JobState::Running {
                return Some(e.job);
            }
            finished(&store, e.job.id, Duration::from_secs(30)).await;
            None
        },
    )
    .await;
    assert_eq!(j.attempt, 1);
    assert!(j.worker_id.is_some() && j.lease_expires_at.is_some());
    let done = finished(&store, j.id, Duration::from_secs(30)).await;
    assert_eq!((done.state, done.attempt), (JobState::Completed, 1));
    let result: serde_json::Value = serde_json::from_slice(done.result.as_ref().unwrap()).unwrap();
    assert_eq!(
        result["id"],
        j.id.to_string(),
        "the guest saw its stored id"
    );
    w.stop().await;
}
