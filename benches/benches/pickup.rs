//! How fast an idle worker picks up a new job, end to end on PostgreSQL.
//!
//! ```text
//! ./test.sh --no-run && cargo bench -p wasmq-benches --bench pickup
//! ```
//!
//! A worker pool (concurrency 8) runs idle; one client enqueues an `echo` job, waits
//! until it is completed (woken by the store's `JobsFinished` notification), and
//! repeats, 500 times. Reported: enqueue-to-completion latency percentiles. Needs the
//! PostgreSQL of `./test.sh` (or `WASMQ_TEST_DATABASE_URL`).

use std::time::{Duration, Instant};

use serde_json::json;
use wasmq_host::queue::StoreEvent;
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
        for i in 0..n + 20 {
            tokio::time::sleep(Duration::from_millis(20)).await; // 50 jobs/s, worker idle between
            let started = Instant::now();
            let id = store.enqueue(vec![job("echo", json!({ "n": i }))]).await.unwrap()[0].job.id;
            loop {
                match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
                    Ok(Ok(StoreEvent::JobsFinished { ids })) if ids.contains(&id) => break,
                    Ok(_) => {}
                    Err(_) => panic!("job {id} did not finish within 10 s"),
                }
            }
            if i >= 20 {
                latencies.push(started.elapsed()); // the first 20 warm caches and pools
            }
        }
        worker.stop().await;
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!(
            "pickup: enqueue→completed over {} jobs: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            latencies.len(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.95).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            latencies.last().unwrap().as_secs_f64() * 1e3,
        );
    });
}
