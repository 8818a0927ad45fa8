//! How fast an idle worker picks up a new job, end to end on PostgreSQL.
//!
//! ```text
//! ./test.sh --no-run && cargo bench -p wasmq-benches --bench pickup
//! ```
//!
//! A worker pool (concurrency 8) runs idle; one client enqueues an `echo` job, waits
//! until it is completed (answered completed when the worker ran it ahead of storing it,
//! else woken by the store's `JobsFinished` notification), and repeats, 500 times.
//! Reported: enqueue-to-completion latency percentiles, and how many jobs were run ahead.
//! Needs the PostgreSQL of `./test.sh` (or `WASMQ_TEST_DATABASE_URL`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::broadcast;
use wasmq_host::queue::{Job, JobState, Store, StoreEvent};
use wasmq_host::worker::WorkerConfig;
use wasmq_tests::guests;
use wasmq_tests::harness::{fresh_store, job, put_module, start_worker};

const JOBS: usize = 500;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run once, small.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 20 } else { JOBS };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = fresh_store().await;
        put_module(&store, "echo", guests::ECHO).await;
        let worker = start_worker(store.clone(), WorkerConfig { queues: vec![("default".into(), 8)], ..Default::default() }, 8);
        let mut events = store.subscribe();
        let mut latencies = Vec::with_capacity(n);
        let mut ahead = 0;
        for i in 0..n + 20 {
            tokio::time::sleep(Duration::from_millis(20)).await; // 50 jobs/s, worker idle between
            let started = Instant::now();
            let enqueued = store.enqueue(vec![job("echo", json!({ "n": i }))]).await.unwrap().remove(0).job;
            let answered_completed = enqueued.state == JobState::Completed;
            wait_completed(&store, &mut events, enqueued).await;
            if i >= 20 {
                ahead += usize::from(answered_completed);
                latencies.push(started.elapsed()); // the first 20 warm caches and pools
            }
        }
        worker.stop().await;
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!(
            "pickup: enqueue→completed over {} jobs: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {ahead} run ahead of storing",
            latencies.len(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.95).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            latencies.last().unwrap().as_secs_f64() * 1e3,
        );
    });
}

/// Waits until `job` (as its enqueue answered) is completed. A job run ahead of storing is
/// answered completed and sends no `JobsFinished`; a stored one sends it when it finishes.
/// The store is read again at every event (and every 100 ms, should one be missed), so a
/// job never waits on a notification that will not come; after 10 s it panics.
async fn wait_completed(
    store: &Arc<dyn Store>,
    events: &mut broadcast::Receiver<StoreEvent>,
    job: Job,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut state = job.state;
    while !state.is_finished() {
        assert!(
            Instant::now() < deadline,
            "job {} still {state:?} after 10 s",
            job.id
        );
        match tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            Ok(Ok(StoreEvent::JobsFinished { ids })) if !ids.contains(&job.id) => continue,
            Ok(Ok(StoreEvent::JobsAvailable { .. } | StoreEvent::CancelRequested { .. })) => {
                continue;
            }
            _ => {}
        }
        state = store
            .get("default", job.id)
            .await
            .unwrap()
            .expect("the job exists")
            .state;
    }
    assert_eq!(state, JobState::Completed, "job {} ended {state:?}", job.id);
}
