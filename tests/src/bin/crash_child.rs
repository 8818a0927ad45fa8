//! The child process of `worker_sqlite.rs`'s
//! `an_acknowledged_enqueue_survives_the_process_being_killed`: opens the SQLite store at
//! the path given as its one argument, enqueues 100 `echo` jobs, claims 30, prints
//! `ACK <id>` for each acknowledged job and `CLAIMED <id>` for each claimed one, then
//! aborts: no destructor, close or checkpoint runs, as when a process is killed.
//!
//! A binary rather than a test, so it never counts as a test that passed.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wasmq_host::queue::sqlite::SqliteStore;
use wasmq_host::queue::{NewJob, Store};
use wasmq_tests::guests;
use wasmq_tests::harness::{job, put_module};

fn main() {
    let path = std::env::args_os()
        .nth(1)
        .expect("usage: crash_child <path of the SQLite database>");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(std::path::Path::new(&path))
                .await
                .expect("open the SQLite store"),
        );
        put_module(&store, "echo", guests::ECHO).await;
        let jobs: Vec<NewJob> = (0..100).map(|i| job("echo", json!(i))).collect();
        let enqueued = store.enqueue(jobs).await.expect("enqueue");
        let claimed = store
            .claim("default", "killed-worker", 30, Duration::from_millis(200))
            .await
            .expect("claim");
        let mut out = std::io::stdout().lock();
        for e in &enqueued {
            writeln!(out, "ACK {}", e.job.id).unwrap();
        }
        for j in &claimed {
            writeln!(out, "CLAIMED {}", j.id).unwrap();
        }
        out.flush().unwrap();
        std::process::abort();
    });
}
