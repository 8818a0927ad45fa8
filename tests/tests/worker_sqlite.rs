//! Workers on the embedded SQLite store and real guests: the single-node setup a user gets
//! with zero configuration. The worker suite (`wasmq_tests::worker_suite`, the same cases
//! as on PostgreSQL), then what only a file-backed store has: a process that dies with
//! jobs claimed, and one killed after acknowledging an enqueue.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wasmq_host::queue::sqlite::SqliteStore;
use wasmq_host::queue::{ErrorKind, JobState, NewJob, Store};
use wasmq_host::worker::WorkerConfig;
use wasmq_tests::guests;
use wasmq_tests::harness::{
    assert_completed_with, eventually, finished, job, put_module, start_worker,
};
use wasmq_tests::worker_suite::{all_jobs, drained};

wasmq_tests::worker_tests!(open(&wasmq_tests::sqlite::fresh_path()).await, many = 2_000);

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
        assert_completed_with(j, &j.input);
        if lost.contains(&j.id) {
            assert_eq!(j.attempt, 2, "job {} ran again once", j.id);
            assert_eq!(j.history.len(), 1, "job {}: {:?}", j.id, j.history);
            assert_eq!(j.history[0].kind, ErrorKind::Lost);
            assert_eq!(j.history[0].attempt, 1);
            // The tenant learns what happened, not which worker it was.
            assert!(j.history[0].message.contains("stopped renewing its lease"));
            assert!(!j.history[0].message.contains("crashed-worker"));
        } else {
            assert_eq!(j.attempt, 1, "job {} ran {} times", j.id, j.attempt);
            assert!(j.history.is_empty(), "job {}: {:?}", j.id, j.history);
        }
    }
}

/// A process that acknowledged an enqueue and claimed jobs is killed (aborted: no clean
/// shutdown); a new process opens the same file, rescues the claimed jobs and completes
/// every acknowledged job exactly once, the lost attempts in their history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_enqueue_survives_the_process_being_killed() {
    let path = wasmq_tests::sqlite::fresh_path();
    // The child is `tests/src/bin/crash_child.rs`.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_crash_child"))
        .arg(&path)
        .output()
        .expect("run the crash_child process");
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
        assert_completed_with(j, &j.input);
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
