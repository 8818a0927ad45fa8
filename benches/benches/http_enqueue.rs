//! Enqueue throughput over HTTP, on PostgreSQL: single requests on keep-alive
//! connections, and the batch call.
//!
//! ```text
//! ./test.sh --no-run && cargo bench -p wasmq-benches --bench http_enqueue
//! ```
//!
//! The API (no workers) serves on a loopback socket; a client sends `POST /v1/jobs`
//! with 16 requests in flight over keep-alive connections, then `POST /v1/jobs/batch`
//! with 10,000 jobs a call. Reports jobs/s for each. Needs the PostgreSQL of `./test.sh`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use wasmq_host::api::{self, ApiConfig, AppState};
use wasmq_host::queue::Scope;
use wasmq_host::runtime::{Runtime, RuntimeConfig};
use wasmq_tests::guests;
use wasmq_tests::harness::{fresh_store, put_module};

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (singles, batches) = if quick { (200, 1) } else { (20_000, 10) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = fresh_store().await;
        put_module(&store, "echo", guests::ECHO).await;
        let key = store.create_key("default", Some("bench"), &[Scope::Admin]).await.unwrap().key;
        let runtime = Runtime::new(RuntimeConfig { slots: 1, ..RuntimeConfig::default() }).unwrap();
        let state = AppState::new(store.clone(), runtime, ApiConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(api::serve(listener, state, std::future::pending()));
        let client = reqwest::Client::new();

        // Single requests, 16 in flight, keep-alive.
        let started = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (client, base, key, next) = (client.clone(), base.clone(), key.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= singles {
                        break;
                    }
                    let resp = client
                        .post(format!("{base}/v1/jobs"))
                        .bearer_auth(&key)
                        .json(&json!({"module": "echo", "input": {"n": i}}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 202);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let single_rate = singles as f64 / started.elapsed().as_secs_f64();

        // The batch call, 10,000 jobs each.
        let body = json!({ "jobs": (0..10_000).map(|i| json!({"module": "echo", "input": {"n": i}})).collect::<Vec<_>>() });
        let body = serde_json::to_vec(&body).unwrap();
        let started = Instant::now();
        for _ in 0..batches {
            let resp = client
                .post(format!("{base}/v1/jobs/batch"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
        }
        let batch_rate = (batches * 10_000) as f64 / started.elapsed().as_secs_f64();
        println!("http enqueue: single requests {single_rate:.0} jobs/s ({singles} requests, 16 in flight); batch {batch_rate:.0} jobs/s ({batches} × 10,000)");
    });
}
