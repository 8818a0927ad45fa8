//! PostgreSQL restarted under running workers: they reconnect and carry on; no job is
//! lost and none is completed twice. Its own test binary, because it restarts the
//! server every other test in the process would be using.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use wasmq_host::queue::{JobFilter, JobState, NewJob};
use wasmq_host::worker::WorkerConfig;
use wasmq_tests::guests;
use wasmq_tests::harness::{eventually, fresh_store, job, put_module, start_worker};

/// Restarts the local Debian cluster serving the test database (what CI runs on).
fn restart_postgres() {
    let clusters = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("pg_lsclusters (Debian's postgresql-common)");
    let text = String::from_utf8_lossy(&clusters.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("5432"))
        .expect("a cluster on port 5432");
    let mut f = line.split_whitespace();
    let (version, name) = (f.next().unwrap(), f.next().unwrap());
    let status = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            version,
            name,
            "restart",
            "--mode",
            "fast",
        ])
        .status()
        .expect("pg_ctlcluster");
    assert!(
        status.success(),
        "restarting PostgreSQL {version}/{name} failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_database_restart_and_lose_nothing() {
    let store = fresh_store().await;
    put_module(&store, "echo", guests::ECHO).await;
    let first: Vec<NewJob> = (0..2_000).map(|i| job("echo", json!({ "n": i }))).collect();
    store.enqueue(first).await.unwrap();
    let w = start_worker(
        store.clone(),
        WorkerConfig {
            queues: vec![("default".into(), 8)],
            ..Default::default()
        },
        8,
    );

    tokio::task::spawn_blocking(restart_postgres).await.unwrap();

    // Enqueue more once the database takes writes again (a client would retry too).
    let second: Vec<NewJob> = (2_000..3_000)
        .map(|i| job("echo", json!({ "n": i })))
        .collect();
    eventually(
        Duration::from_secs(60),
        "the database to accept enqueues again",
        || {
            let (store, batch) = (store.clone(), second.clone());
            async move { store.enqueue(batch).await.ok() }
        },
    )
    .await;

    let count = |state| {
        let store = store.clone();
        async move {
            let mut n = 0;
            let mut cursor = None;
            loop {
                let page = store
                    .list(
                        "default",
                        &JobFilter {
                            state: Some(state),
                            limit: 1000,
                            cursor,
                            ..Default::default()
                        },
                    )
                    .await
                    .ok()?;
                n += page.jobs.len();
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => return Some(n),
                }
            }
        }
    };
    eventually(
        Duration::from_secs(120),
        "all 3,000 jobs to complete",
        || async { (count(JobState::Completed).await? == 3_000).then_some(()) },
    )
    .await;
    w.stop().await;

    let mut cursor = None;
    let mut inputs = std::collections::HashSet::new();
    loop {
        let page = store
            .list(
                "default",
                &JobFilter {
                    limit: 1000,
                    cursor,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for j in &page.jobs {
            assert_eq!(j.state, JobState::Completed);
            assert_eq!(j.result.as_deref(), Some(j.input.as_slice()));
            assert!(inputs.insert(j.input.clone()), "one job per input");
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(inputs.len(), 3_000);
}
