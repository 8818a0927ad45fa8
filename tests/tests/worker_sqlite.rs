//! Workers on the embedded SQLite store and real guests: the single-node setup a user gets
//! with zero configuration.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wasmq_host::queue::sqlite::SqliteStore;
use wasmq_host::queue::{ErrorKind, JobFilter, JobState, Limits, NewJob, Store};
use wasmq_host::worker::WorkerConfig;
use wasmq_tests::guests;
use wasmq_tests::harness::{eventually, finished, in_state, job, put_module, start_worker};

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        queues: vec![("default".into(), concurrency)],
        ..WorkerConfig::default()
    }
}

async fn open(path: &Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(path)
            .await
            .expect("open the SQLite store"),
    )
}

/// Every job of tenant `default`, newest first.
async fn all_jobs(store: &Arc<dyn Store>) -> Vec<wasmq_host::queue::Job> {
    let mut jobs = Vec::new();
    let mut cursor = None;
    loop {
        let filter = JobFilter {
            limit: 1000,
            cursor,
            ..JobFilter::default()
        };
        let page = store.list("default", &filter).await.unwrap();
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return jobs,
        }
    }
}

/// Waits until no job is waiting or running. Each job is read once per look (not one
/// count per state: a rescued job can go running → retryable → available between two
/// counts and be missed by both).
async fn drained(store: &Arc<dyn Store>, within: Duration) {
    eventually(within, "every job to finish", || async {
        let jobs = all_jobs(store).await;
        jobs.iter().all(|j| j.state.is_finished()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_jobs_on_sqlite_complete_exactly_once() {
    let store = open(&wasmq_tests::sqlite::fresh_path()).await;
    put_module(&store, "echo", guests::ECHO).await;
    let jobs: Vec<NewJob> = (0..2_000).map(|i| job("echo", json!({ "n": i }))).collect();
    let started = Instant::now();
    let enqueued = store.enqueue(jobs).await.unwrap();
    eprintln!("enqueued 2000 jobs on SQLite in {:?}", started.elapsed());
    let started = Instant::now();
    let w = start_worker(store.clone(), config(8), 8);
    drained(&store, Duration::from_secs(120)).await;
    let elapsed = started.elapsed();
    eprintln!(
        "a worker pool ran 2000 echo jobs on SQLite in {elapsed:?} ({:.0} jobs/s)",
        2_000.0 / elapsed.as_secs_f64()
    );
    w.stop().await;

    let jobs = all_jobs(&store).await;
    assert_eq!(jobs.len(), 2_000);
    for j in &jobs {
        assert_eq!(
            j.state,
            JobState::Completed,
            "job {} is {:?}",
            j.id,
            j.state
        );
        assert_eq!(j.attempt, 1, "job {} ran {} times", j.id, j.attempt);
        assert!(j.history.is_empty(), "job {}: {:?}", j.id, j.history);
        assert_eq!(
            j.result.as_deref(),
            Some(j.input.as_slice()),
            "job {}",
            j.id
        );
    }
    let ids: HashSet<i64> = jobs.iter().map(|j| j.id).collect();
    let expected: HashSet<i64> = enqueued.iter().map(|e| e.job.id).collect();
    assert_eq!(ids, expected, "every job is there once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_on_sqlite_interrupts_it_within_a_second() {
    let store = open(&wasmq_tests::sqlite::fresh_path()).await;
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
    let j = finished(&store, id, Duration::from_secs(5)).await;
    let took = asked.elapsed();
    w.stop().await;
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.error.unwrap().kind, ErrorKind::Cancelled);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

/// The process "dies" with jobs claimed (the store is dropped, its leases never renewed);
/// a fresh store on the same file rescues them, and a worker completes every job once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_claimed_before_a_crash_complete_once_after_reopening() {
    let path = wasmq_tests::sqlite::fresh_path();
    let lost: Vec<i64> = {
        let store = open(&path).await;
        put_module(&store, "echo", guests::ECHO).await;
        let jobs: Vec<NewJob> = (0..200).map(|i| job("echo", json!(i))).collect();
        store.enqueue(jobs).await.unwrap();
        let claimed = store
            .claim("default", "crashed-worker", 50, Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 50);
        claimed.iter().map(|j| j.id).collect()
        // The store is dropped here without finishing anything.
    };

    let store = open(&path).await;
    let w = start_worker(
        store.clone(),
        WorkerConfig {
            // Rescue runs every lease / 4; heartbeats come well within the lease even on
            // a loaded machine, so only the dead process's jobs are rescued.
            lease: Duration::from_secs(2),
            heartbeat: Duration::from_millis(200),
            ..config(8)
        },
        8,
    );
    drained(&store, Duration::from_secs(60)).await;
    w.stop().await;

    let jobs = all_jobs(&store).await;
    assert_eq!(jobs.len(), 200);
    let lost: HashSet<i64> = lost.into_iter().collect();
    for j in &jobs {
        assert_eq!(
            j.state,
            JobState::Completed,
            "job {} is {:?}",
            j.id,
            j.state
        );
        assert_eq!(
            j.result.as_deref(),
            Some(j.input.as_slice()),
            "job {}",
            j.id
        );
        if lost.contains(&j.id) {
            assert_eq!(j.attempt, 2, "job {} ran again once", j.id);
            assert_eq!(j.history.len(), 1, "job {}: {:?}", j.id, j.history);
            assert_eq!(j.history[0].kind, ErrorKind::Lost);
            assert_eq!(j.history[0].attempt, 1);
            assert!(j.history[0].message.contains("crashed-worker"));
        } else {
            assert_eq!(j.attempt, 1, "job {} ran {} times", j.id, j.attempt);
            assert!(j.history.is_empty(), "job {}: {:?}", j.id, j.history);
        }
    }
}

/// Set by [`an_acknowledged_enqueue_survives_the_process_being_killed`] for its child.
const CRASH_CHILD_DB: &str = "WASMQ_TEST_CRASH_CHILD_DB";

/// The child half of [`an_acknowledged_enqueue_survives_the_process_being_killed`]: run by
/// that test in a separate process (this test binary again), it enqueues, claims some jobs,
/// prints what was acknowledged and aborts, with no destructor, close or checkpoint. Run
/// directly, it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_enqueues_claims_and_aborts() {
    let Ok(path) = std::env::var(CRASH_CHILD_DB) else {
        return;
    };
    let store = open(Path::new(&path)).await;
    put_module(&store, "echo", guests::ECHO).await;
    let jobs: Vec<NewJob> = (0..100).map(|i| job("echo", json!(i))).collect();
    let enqueued = store.enqueue(jobs).await.unwrap();
    let claimed = store
        .claim("default", "killed-worker", 30, Duration::from_millis(200))
        .await
        .unwrap();
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for e in &enqueued {
        writeln!(out, "ACK {}", e.job.id).unwrap();
    }
    for j in &claimed {
        writeln!(out, "CLAIMED {}", j.id).unwrap();
    }
    out.flush().unwrap();
    std::process::abort();
}

/// A process that acknowledged an enqueue and claimed jobs is killed (aborted: no clean
/// shutdown); a new process opens the same file, rescues the claimed jobs and completes
/// every acknowledged job exactly once, the lost attempts in their history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_enqueue_survives_the_process_being_killed() {
    let path = wasmq_tests::sqlite::fresh_path();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_enqueues_claims_and_aborts",
            "--nocapture",
        ])
        .env(CRASH_CHILD_DB, &path)
        .output()
        .expect("run the child test process");
    assert!(!child.status.success(), "the child should have aborted");
    let stdout = String::from_utf8_lossy(&child.stdout);
    let ids = |prefix: &str| -> HashSet<i64> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|id| id.trim().parse().unwrap())
            .collect()
    };
    let (acked, claimed) = (ids("ACK "), ids("CLAIMED "));
    assert_eq!(acked.len(), 100, "child output: {stdout}");
    assert_eq!(claimed.len(), 30, "child output: {stdout}");

    let store = open(&path).await;
    let w = start_worker(
        store.clone(),
        WorkerConfig {
            // Rescue runs every lease / 4; heartbeats come well within the lease even on
            // a loaded machine, so only the dead process's jobs are rescued.
            lease: Duration::from_secs(2),
            heartbeat: Duration::from_millis(200),
            ..config(8)
        },
        8,
    );
    drained(&store, Duration::from_secs(60)).await;
    w.stop().await;
    let jobs = all_jobs(&store).await;
    assert_eq!(
        jobs.iter().map(|j| j.id).collect::<HashSet<_>>(),
        acked,
        "every acknowledged job is there, once"
    );
    for j in &jobs {
        assert_eq!(
            j.state,
            JobState::Completed,
            "job {} is {:?}",
            j.id,
            j.state
        );
        assert_eq!(
            j.result.as_deref(),
            Some(j.input.as_slice()),
            "job {}",
            j.id
        );
        if claimed.contains(&j.id) {
            assert_eq!(j.attempt, 2, "job {} ran again once", j.id);
            assert_eq!(j.history.len(), 1, "job {}: {:?}", j.id, j.history);
            assert_eq!(j.history[0].kind, ErrorKind::Lost);
        } else {
            assert_eq!(j.attempt, 1, "job {} ran {} times", j.id, j.attempt);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_while_the_worker_idles_is_handed_to_it_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("wasmq.db")).await;
    put_module(&store, "echo", guests::ECHO).await;
    let w = start_worker(store.clone(), config(1), 1);
    let e = eventually(
        Duration::from_secs(30),
        "an idle worker to take a job",
        || async {
            let e = store
                .enqueue(vec![job("echo", json!(7))])
                .await
                .unwrap()
                .remove(0);
            if e.job.state == JobState::Running {
                return Some(e);
            }
            finished(&store, e.job.id, Duration::from_secs(30)).await;
            None
        },
    )
    .await;
    assert_eq!(e.job.attempt, 1);
    assert!(e.job.worker_id.is_some());
    let done = finished(&store, e.job.id, Duration::from_secs(30)).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.attempt, 1);
    assert_eq!(done.result.as_deref(), Some(&b"7"[..]));
    w.stop().await;
}
