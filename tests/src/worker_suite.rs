//! Workers over any [`Store`] with real guests: what a user of the queue sees, the same on
//! every backend. Each case is a `pub async fn(Arc<dyn Store>)` on a store of its own; a
//! backend's test file expands them with [`worker_tests!`], as the store conformance suite
//! does (`tests/tests/worker.rs` for PostgreSQL, `worker_sqlite.rs` for SQLite).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wasmq_host::queue::{ErrorKind, Job, JobFilter, JobState, Limits, NewJob};
use wasmq_host::worker::WorkerConfig;

use crate::guests;
use crate::harness::{
    assert_completed_with, eventually, finished, in_state, job, list_all, put_module,
    put_module_for, start_worker,
};

mod handoff;

pub use handoff::*;
/// Re-exported for [`worker_tests!`].
pub use wasmq_host::queue::Store;

/// Expands to one `#[tokio::test]` per worker case; `$make` is an expression (it may
/// `.await`) giving a fresh `Arc<dyn Store>`, evaluated once per case, and `$many` the
/// number of jobs of the bulk case. The hand-off cases (`handoff_*`) hold on every store:
/// the queue core hands jobs over the same way whatever the driver.
#[macro_export]
macro_rules! worker_tests {
    ($make:expr, many = $many:expr $(,)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn many_jobs_through_two_pools_complete_exactly_once() {
            let store: ::std::sync::Arc<dyn $crate::worker_suite::Store> = $make;
            $crate::worker_suite::many_jobs_through_two_pools_complete_exactly_once(store, $many)
                .await;
        }
        $crate::worker_tests!(@cases $make;
            a_job_of_a_vanished_worker_is_rescued_and_completes_elsewhere,
            retries_with_backoff_until_attempts_run_out_then_fails,
            fatal_fails_at_once_and_limit_violations_are_recorded_with_their_kind,
            results_usage_log_and_progress_are_written_back,
            cancelling_a_running_job_interrupts_it_long_before_its_timeout,
            cancelling_a_waiting_job_means_it_never_runs,
            a_backlog_drains_while_another_tenant_enqueues_one_at_a_time,
            delayed_jobs_run_after_their_time_and_priority_goes_first,
            graceful_shutdown_gives_unfinished_jobs_back_at_once,
            handoff_a_long_job_is_stored_running_for_the_worker_and_completes_once,
            handoff_a_short_job_is_run_before_it_is_stored_and_answered_completed,
            handoff_a_failed_attempt_run_ahead_is_stored_retryable_then_retried,
            handoff_an_unknown_module_is_refused_and_the_worker_keeps_taking_jobs,
            handoff_a_job_that_may_not_run_ahead_is_stored_before_it_runs,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::worker_suite::Store> = $make;
                $crate::worker_suite::$case(store).await;
            }
        )*
    };
}

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        queues: vec![("default".into(), concurrency)],
        ..WorkerConfig::default()
    }
}

/// Every job of tenant `default`, newest first.
pub async fn all_jobs(store: &Arc<dyn Store>) -> Vec<Job> {
    list_all(&**store).await.expect("list every job")
}

/// Waits until no job is waiting or running. The answer comes from one look at every job
/// (not one count per state: a rescued job can go running → retryable → available between
/// two counts and be missed by both); cheap one-row probes per state come first, so the
/// whole table is read only once it looks drained.
pub async fn drained(store: &Arc<dyn Store>, within: Duration) {
    const UNFINISHED: [JobState; 4] = [
        JobState::Running,
        JobState::Available,
        JobState::Scheduled,
        JobState::Retryable,
    ];
    eventually(within, "every job to finish", || async {
        for state in UNFINISHED {
            let filter = JobFilter {
                state: Some(state),
                limit: 1,
                ..JobFilter::default()
            };
            if !store
                .list("default", &filter)
                .await
                .unwrap()
                .jobs
                .is_empty()
            {
                return None;
            }
        }
        let jobs = all_jobs(store).await;
        jobs.iter().all(|j| j.state.is_finished()).then_some(())
    })
    .await;
}

/// `n` echo jobs through two pools of 8: each completes once, with its own result.
pub async fn many_jobs_through_two_pools_complete_exactly_once(store: Arc<dyn Store>, n: usize) {
    put_module(&store, "echo", guests::ECHO).await;
    let jobs: Vec<NewJob> = (0..n).map(|i| job("echo", json!({ "n": i }))).collect();
    let enqueued = store.enqueue(jobs).await.unwrap();
    let started = Instant::now();
    let pools: Vec<_> = ["pool-a", "pool-b"]
        .into_iter()
        .map(|id| {
            let config = WorkerConfig {
                id: id.into(),
                ..config(8)
            };
            start_worker(store.clone(), config, 8)
        })
        .collect();
    drained(&store, Duration::from_secs(120)).await;
    let elapsed = started.elapsed();
    eprintln!(
        "two pools ran {n} echo jobs in {elapsed:?} ({:.0} jobs/s)",
        n as f64 / elapsed.as_secs_f64()
    );
    for pool in pools {
        pool.stop().await;
    }

    let jobs = all_jobs(&store).await;
    for j in &jobs {
        assert_completed_with(j, &j.input);
        assert_eq!(j.attempt, 1, "job {} ran {} times", j.id, j.attempt);
        assert!(
            j.history.is_empty(),
            "job {} has failed attempts: {:?}",
            j.id,
            j.history
        );
    }
    let ids: HashSet<i64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), n, "every job is there once");
    let expected: HashSet<i64> = enqueued.iter().map(|e| e.job.id).collect();
    assert_eq!(ids, expected);
}

pub async fn a_job_of_a_vanished_worker_is_rescued_and_completes_elsewhere(store: Arc<dyn Store>) {
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
    // A short lease, so the rescue comes soon; heartbeats well within it, so the job is
    // not taken from this worker too while it loads the module.
    let config = WorkerConfig {
        lease: Duration::from_millis(400),
        heartbeat: Duration::from_millis(100),
        ..config(2)
    };
    let w = start_worker(store.clone(), config, 2);
    let j = finished(&store, id, Duration::from_secs(20)).await;
    w.stop().await;
    assert_eq!(j.state, JobState::Completed, "history: {:?}", j.history);
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

pub async fn retries_with_backoff_until_attempts_run_out_then_fails(store: Arc<dyn Store>) {
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

pub async fn fatal_fails_at_once_and_limit_violations_are_recorded_with_their_kind(
    store: Arc<dyn Store>,
) {
    put_module(&store, "hostile", guests::HOSTILE).await;
    let limited = |input, limits| NewJob {
        limits,
        max_attempts: 1,
        ..job("hostile", input)
    };
    let jobs = vec![
        job("hostile", json!({"op": "fatal"})),
        limited(
            json!({"op": "spin"}),
            Limits {
                fuel: Some(1_000_000),
                ..Default::default()
            },
        ),
        limited(
            json!({"op": "grow"}),
            Limits {
                memory_bytes: Some(8 << 20),
                ..Default::default()
            },
        ),
        limited(
            json!({"op": "result", "n": 5000}),
            Limits {
                output_bytes: Some(100),
                ..Default::default()
            },
        ),
        limited(
            json!({"op": "spin"}),
            Limits {
                timeout_ms: Some(200),
                fuel: Some(u64::MAX / 2),
                ..Default::default()
            },
        ),
    ];
    let ids: Vec<i64> = store
        .enqueue(jobs)
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

pub async fn results_usage_log_and_progress_are_written_back(store: Arc<dyn Store>) {
    put_module(&store, "hostile", guests::HOSTILE).await;
    let ids = store
        .enqueue(vec![
            job("hostile", json!({"op": "progress"})),
            job("hostile", json!({"op": "log_flood", "n": 3})),
        ])
        .await
        .unwrap();
    let w = start_worker(store.clone(), config(2), 2);
    let j = finished(&store, ids[0].job.id, Duration::from_secs(20)).await;
    let l = finished(&store, ids[1].job.id, Duration::from_secs(20)).await;
    w.stop().await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.progress.unwrap().percent, 100);
    let usage = j.usage.unwrap();
    assert!(usage.fuel > 0);
    assert!(usage.memory_peak_bytes > 0);
    assert_eq!(l.log.lines().count(), 3, "log: {}", l.log);
}

pub async fn cancelling_a_running_job_interrupts_it_long_before_its_timeout(store: Arc<dyn Store>) {
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
    let asked = Instant::now();
    store.cancel("default", id).await.unwrap();
    let j = finished(&store, id, Duration::from_secs(10)).await;
    let took = asked.elapsed();
    w.stop().await;
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.error.unwrap().kind, ErrorKind::Cancelled);
    // The heartbeat (every 500 ms) carries the cancel; a cancel that did not reach the
    // guest would leave it spinning until its 30 s timeout. Not a speed check: a loaded
    // machine stretches the heartbeat.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

pub async fn cancelling_a_waiting_job_means_it_never_runs(store: Arc<dyn Store>) {
    put_module(&store, "echo", guests::ECHO).await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(500);
    let mut later = job("echo", json!(1));
    later.run_at = Some(at);
    // Due just after it, and claimed after it (claims go by priority, then run_at): once
    // the marker has run, the cancelled job would have been claimed had it been due.
    let mut marker = job("echo", json!(2));
    marker.run_at = Some(at + chrono::Duration::milliseconds(100));
    marker.priority = -1;
    let ids = store.enqueue(vec![later, marker]).await.unwrap();
    let (id, marker) = (ids[0].job.id, ids[1].job.id);
    store.cancel("default", id).await.unwrap();
    let w = start_worker(store.clone(), config(1), 1);
    let m = finished(&store, marker, Duration::from_secs(10)).await;
    assert_eq!(m.state, JobState::Completed);
    w.stop().await;
    let j = store.get("default", id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.attempt, 0, "it never ran");
}

pub async fn delayed_jobs_run_after_their_time_and_priority_goes_first(store: Arc<dyn Store>) {
    put_module(&store, "echo", guests::ECHO).await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let delayed = NewJob {
        run_at: Some(at),
        ..job("echo", json!("later"))
    };
    let low = NewJob {
        priority: 0,
        ..job("echo", json!("low"))
    };
    let high = NewJob {
        priority: 10,
        ..job("echo", json!("high"))
    };
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

pub async fn graceful_shutdown_gives_unfinished_jobs_back_at_once(store: Arc<dyn Store>) {
    put_module(&store, "hostile", guests::HOSTILE).await;
    let mut long = job("hostile", json!({"op": "spin"}));
    long.limits = Limits {
        fuel: Some(u64::MAX / 2),
        timeout_ms: Some(60_000),
        ..Default::default()
    };
    let id = store.enqueue(vec![long]).await.unwrap()[0].job.id;
    let config = WorkerConfig {
        grace: Duration::from_millis(300),
        ..config(1)
    };
    let w = start_worker(store.clone(), config, 1);
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

/// One tenant's backlog drains while another tenant enqueues one job at a time: the
/// second tenant's jobs do not wait behind the backlog, and their stream of enqueues
/// (short, fair claims; a wake-up each) never leaves the pool idle with jobs waiting.
pub async fn a_backlog_drains_while_another_tenant_enqueues_one_at_a_time(store: Arc<dyn Store>) {
    put_module(&store, "echo", guests::ECHO).await;
    put_module_for(&store, "other", "echo", guests::ECHO).await;
    let backlog: Vec<NewJob> = (0..1_000).map(|i| job("echo", json!({ "n": i }))).collect();
    store.enqueue(backlog).await.unwrap();
    let w = start_worker(store.clone(), config(2), 2);
    // Seconds when the pool keeps claiming; minutes when it idles between wake-ups.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut theirs = Vec::new();
    loop {
        let one = NewJob {
            tenant: "other".into(),
            ..job("echo", json!({ "other": theirs.len() }))
        };
        theirs.push(store.enqueue(vec![one]).await.unwrap()[0].job.id);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let left: u64 = store
            .queues("default")
            .await
            .unwrap()
            .iter()
            .map(|q| q.available + q.running + q.retryable)
            .sum();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} of the backlog still unfinished"
        );
    }
    for id in theirs {
        let j = eventually(Duration::from_secs(10), "the other tenant's job", || {
            let store = store.clone();
            async move {
                store
                    .get("other", id)
                    .await
                    .ok()
                    .flatten()
                    .filter(|j| j.state.is_finished())
            }
        })
        .await;
        assert_eq!(j.state, JobState::Completed, "job {id}");
    }
    w.stop().await;
}
