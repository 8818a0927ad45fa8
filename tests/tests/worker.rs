//! Workers against a real PostgreSQL and real guests: what a user of the queue sees.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use wasmq_host::queue::{ErrorKind, JobState, Limits, NewJob};
use wasmq_host::worker::WorkerConfig;
use wasmq_tests::guests;
use wasmq_tests::harness::{
    eventually, finished, fresh_store, in_state, job, put_module, start_worker,
};

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        queues: vec![("default".into(), concurrency)],
        ..WorkerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_through_two_pools_complete_exactly_once() {
    let store = fresh_store().await;
    put_module(&store, "echo", guests::ECHO).await;
    let jobs: Vec<NewJob> = (0..10_000)
        .map(|i| job("echo", json!({ "n": i })))
        .collect();
    let enqueued = store.enqueue(jobs).await.unwrap();
    let a = start_worker(
        store.clone(),
        WorkerConfig {
            id: "pool-a".into(),
            ..config(8)
        },
        8,
    );
    let b = start_worker(
        store.clone(),
        WorkerConfig {
            id: "pool-b".into(),
            ..config(8)
        },
        8,
    );
    let last = enqueued.last().unwrap().job.id;
    eventually(
        Duration::from_secs(120),
        "10,000 jobs to complete",
        || async {
            let page = store
                .list(
                    "default",
                    &wasmq_host::queue::JobFilter {
                        state: Some(JobState::Completed),
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let done = page.jobs.first().map(|j| j.id == last).unwrap_or(false);
            let left = store
                .list(
                    "default",
                    &wasmq_host::queue::JobFilter {
                        state: Some(JobState::Available),
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let running = store
                .list(
                    "default",
                    &wasmq_host::queue::JobFilter {
                        state: Some(JobState::Running),
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            (done && left.jobs.is_empty() && running.jobs.is_empty()).then_some(())
        },
    )
    .await;
    a.stop().await;
    b.stop().await;

    let mut seen = HashSet::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(
                "default",
                &wasmq_host::queue::JobFilter {
                    limit: 1000,
                    cursor,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for j in &page.jobs {
            assert_eq!(
                j.state,
                JobState::Completed,
                "job {} is {:?}",
                j.id,
                j.state
            );
            assert_eq!(j.attempt, 1, "job {} ran {} times", j.id, j.attempt);
            assert!(
                j.history.is_empty(),
                "job {} has failed attempts: {:?}",
                j.id,
                j.history
            );
            assert_eq!(
                j.result.as_deref(),
                Some(j.input.as_slice()),
                "job {} has its own result",
                j.id
            );
            assert!(seen.insert(j.id));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10_000, "every job is there once");
    let workers: HashSet<_> = enqueued.iter().map(|e| e.job.id).collect();
    assert_eq!(workers, seen);
}

#[tokio::test]
async fn a_job_of_a_vanished_worker_is_rescued_and_completes_elsewhere() {
    let store = fresh_store().await;
    put_module(&store, "echo", guests::ECHO).await;
    let id = store
        .enqueue(vec![job("echo", json!("survivor"))])
        .await
        .unwrap()[0]
        .job
        .id;
    // A worker claims it with a short lease and vanishes without finishing.
    let claimed = store
        .claim("default", "ghost-worker", 1, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, id);
    let w = start_worker(
        store.clone(),
        WorkerConfig {
            lease: Duration::from_millis(400),
            ..config(2)
        },
        2,
    );
    let j = finished(&store, id, Duration::from_secs(20)).await;
    w.stop().await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.result.as_deref(), Some(&b"\"survivor\""[..]));
    assert_eq!(j.attempt, 2);
    assert_eq!(
        j.history.len(),
        1,
        "the lost attempt is in the history: {:?}",
        j.history
    );
    assert_eq!(j.history[0].kind, ErrorKind::Lost);
    assert_eq!(j.history[0].attempt, 1);
}

#[tokio::test]
async fn retries_with_backoff_until_attempts_run_out_then_fails() {
    let store = fresh_store().await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    let mut j = job("hostile", json!({"op": "retry"}));
    j.max_attempts = 3;
    let id = store.enqueue(vec![j]).await.unwrap()[0].job.id;
    let w = start_worker(store.clone(), config(2), 2);
    // Attempt 1 fails, then waits ~1 s, attempt 2 ~2 s: well within 20 s.
    let j = finished(&store, id, Duration::from_secs(20)).await;
    w.stop().await;
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.attempt, 3);
    assert_eq!(j.history.len(), 3);
    assert!(j.history.iter().all(|h| h.kind == ErrorKind::TaskError));
    let gap = j.history[1].at - j.history[0].at;
    assert!(
        gap >= chrono::Duration::milliseconds(700),
        "backed off between attempts: {gap}"
    );
    assert_eq!(j.error.unwrap().message, "please retry");
}

#[tokio::test]
async fn fatal_fails_at_once_and_limit_violations_are_recorded_with_their_kind() {
    let store = fresh_store().await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    let fatal = job("hostile", json!({"op": "fatal"}));
    let mut fuel = job("hostile", json!({"op": "spin"}));
    fuel.limits = Limits {
        fuel: Some(1_000_000),
        ..Default::default()
    };
    fuel.max_attempts = 1;
    let mut memory = job("hostile", json!({"op": "grow"}));
    memory.limits = Limits {
        memory_bytes: Some(8 << 20),
        ..Default::default()
    };
    memory.max_attempts = 1;
    let mut output = job("hostile", json!({"op": "result", "n": 5000}));
    output.limits = Limits {
        output_bytes: Some(100),
        ..Default::default()
    };
    output.max_attempts = 1;
    let mut timeout = job("hostile", json!({"op": "spin"}));
    timeout.limits = Limits {
        timeout_ms: Some(200),
        fuel: Some(u64::MAX / 2),
        ..Default::default()
    };
    timeout.max_attempts = 1;
    let ids: Vec<i64> = store
        .enqueue(vec![fatal, fuel, memory, output, timeout])
        .await
        .unwrap()
        .iter()
        .map(|e| e.job.id)
        .collect();
    let w = start_worker(store.clone(), config(4), 4);
    let mut kinds = Vec::new();
    for id in &ids {
        let j = finished(&store, *id, Duration::from_secs(20)).await;
        assert_eq!(j.state, JobState::Failed);
        assert_eq!(j.attempt, 1, "not retried");
        kinds.push(j.error.unwrap().kind);
    }
    w.stop().await;
    assert_eq!(
        kinds,
        vec![
            ErrorKind::TaskError,
            ErrorKind::OutOfFuel,
            ErrorKind::MemoryLimit,
            ErrorKind::OutputLimit,
            ErrorKind::Timeout
        ]
    );
}

#[tokio::test]
async fn results_usage_log_and_progress_are_written_back() {
    let store = fresh_store().await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    let id = store
        .enqueue(vec![job("hostile", json!({"op": "progress"}))])
        .await
        .unwrap()[0]
        .job
        .id;
    let log_id = store
        .enqueue(vec![job("hostile", json!({"op": "log_flood", "n": 3}))])
        .await
        .unwrap()[0]
        .job
        .id;
    let w = start_worker(store.clone(), config(2), 2);
    let j = finished(&store, id, Duration::from_secs(20)).await;
    let l = finished(&store, log_id, Duration::from_secs(20)).await;
    w.stop().await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.progress.unwrap().percent, 100);
    let usage = j.usage.unwrap();
    assert!(usage.fuel > 0);
    assert!(usage.memory_peak_bytes > 0);
    assert_eq!(l.log.lines().count(), 3, "log: {}", l.log);
}

#[tokio::test]
async fn cancelling_a_running_job_interrupts_it_within_a_second() {
    let store = fresh_store().await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    let mut spin = job("hostile", json!({"op": "spin"}));
    spin.limits = Limits {
        fuel: Some(u64::MAX / 2),
        timeout_ms: Some(30_000),
        ..Default::default()
    };
    let id = store.enqueue(vec![spin]).await.unwrap()[0].job.id;
    let w = start_worker(store.clone(), config(2), 2);
    in_state(&store, id, JobState::Running, Duration::from_secs(10)).await;
    let asked = std::time::Instant::now();
    store.cancel("default", id).await.unwrap();
    let j = finished(&store, id, Duration::from_secs(5)).await;
    let took = asked.elapsed();
    w.stop().await;
    assert_eq!(j.state, JobState::Cancelled);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test]
async fn cancelling_a_waiting_job_means_it_never_runs() {
    let store = fresh_store().await;
    put_module(&store, "echo", guests::ECHO).await;
    let mut later = job("echo", json!(1));
    later.run_at = Some(chrono::Utc::now() + chrono::Duration::seconds(1));
    let id = store.enqueue(vec![later]).await.unwrap()[0].job.id;
    store.cancel("default", id).await.unwrap();
    let w = start_worker(store.clone(), config(2), 2);
    let marker = store.enqueue(vec![job("echo", json!(2))]).await.unwrap()[0]
        .job
        .id;
    finished(&store, marker, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // past the cancelled job's run_at
    w.stop().await;
    let j = store.get("default", id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.attempt, 0, "it never ran");
}

#[tokio::test]
async fn delayed_jobs_run_after_their_time_and_priority_goes_first() {
    let store = fresh_store().await;
    put_module(&store, "echo", guests::ECHO).await;
    let mut delayed = job("echo", json!("later"));
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    delayed.run_at = Some(at);
    let mut low = job("echo", json!("low"));
    low.priority = 0;
    let mut high = job("echo", json!("high"));
    high.priority = 10;
    let ids: Vec<i64> = store
        .enqueue(vec![delayed, low, high])
        .await
        .unwrap()
        .iter()
        .map(|e| e.job.id)
        .collect();
    let w = start_worker(store.clone(), config(1), 1);
    let d = finished(&store, ids[0], Duration::from_secs(10)).await;
    let l = finished(&store, ids[1], Duration::from_secs(10)).await;
    let h = finished(&store, ids[2], Duration::from_secs(10)).await;
    w.stop().await;
    assert!(
        d.started_at.unwrap() >= at,
        "ran at {:?}, scheduled for {at}",
        d.started_at
    );
    assert!(
        h.started_at.unwrap() <= l.started_at.unwrap(),
        "priority 10 ran before priority 0"
    );
}

#[tokio::test]
async fn graceful_shutdown_gives_unfinished_jobs_back_at_once() {
    let store = fresh_store().await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    let mut long = job("hostile", json!({"op": "spin"}));
    long.limits = Limits {
        fuel: Some(u64::MAX / 2),
        timeout_ms: Some(60_000),
        ..Default::default()
    };
    let id = store.enqueue(vec![long]).await.unwrap()[0].job.id;
    let w = start_worker(
        store.clone(),
        WorkerConfig {
            grace: Duration::from_millis(300),
            ..config(1)
        },
        1,
    );
    in_state(&store, id, JobState::Running, Duration::from_secs(10)).await;
    w.stop().await;
    let j = store.get("default", id).await.unwrap().unwrap();
    assert_eq!(
        j.state,
        JobState::Available,
        "given back for another worker"
    );
    assert_eq!(j.attempt, 0, "the interrupted attempt does not count");
    assert!(j.history.is_empty());
}

/// Jobs enqueued in the process of an idle worker: handed to it directly (no claim) and,
/// when short, run before they are stored (`queue::handoff`).
mod handoff {
    use super::*;
    use std::sync::Arc;
    use wasmq_host::queue::{Enqueued, Store, StoreError};

    /// Enqueues `make()` until the store answers with a job in `state` (the worker has to
    /// be idle first); jobs answered otherwise are waited for.
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_job_is_run_before_it_is_stored_and_answered_completed() {
        let store = fresh_store().await;
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
        // Nothing else was stored, and it does not run again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = store.get("default", j.id).await.unwrap().unwrap();
        assert_eq!((again.state, again.attempt), (JobState::Completed, 1));
        w.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_attempt_run_ahead_is_stored_retryable_then_retried() {
        let store = fresh_store().await;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_job_is_stored_running_for_the_worker_and_completes_once() {
        let store = fresh_store().await;
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
        let result: serde_json::Value =
            serde_json::from_slice(done.result.as_ref().unwrap()).unwrap();
        assert_eq!(result["done"], n);
        assert!(done.history.is_empty());
        w.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_module_is_refused_and_the_worker_keeps_taking_jobs() {
        let store = fresh_store().await;
        put_module(&store, "echo", guests::ECHO).await;
        let w = start_worker(store.clone(), config(1), 1);
        enqueue_until(&store, JobState::Completed, || job("echo", json!(1))).await;
        let err = store
            .enqueue(vec![job("nope", json!(1))])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::ModuleNotFound { .. }), "{err:?}");
        let e = enqueue_until(&store, JobState::Completed, || job("echo", json!(2))).await;
        assert_eq!(e.job.result.as_deref(), Some(&b"2"[..]));
        w.stop().await;
    }
}
