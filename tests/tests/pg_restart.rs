//! PostgreSQL restarted under running workers, with jobs in flight: the workers reconnect
//! and carry on; no job is lost, none runs twice, none is completed twice.
//!
//! The server is the test's own ([`PgServer`]: initdb into a temp dir, a free port), never
//! the shared one other tests use. A trigger records every transition of a job into
//! `completed` in a table, so a second completion of any job would show there even though
//! the job's row can only say `completed` once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, PgConnection, Row};
use wasmq_host::queue::{JobState, NewJob};
use wasmq_host::worker::WorkerConfig;
use wasmq_tests::guests;
use wasmq_tests::harness::{
    assert_completed_with, eventually, job, list_all, put_module, start_worker, store_at,
};
use wasmq_tests::pg_server::PgServer;

/// Iterations of the `loop` op for the long jobs: about a second of CPU work or more,
/// longer than a restart of the server takes however fast the machine, so jobs running
/// when it stops are still running when it is back.
const LONG_N: u64 = 1_000_000_000;
const LONG: usize = 8;
const SHORT_BEFORE: usize = 1_500;
const SHORT_AFTER: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_database_restart_with_jobs_in_flight_and_run_each_once() {
    let server = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let url = wasmq_tests::pg::fresh_database_on(&server.url()).await;
    let store = store_at(&url).await;
    let mut db = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(wasmq_tests::pg::RECORD_COMPLETIONS)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    put_module(&store, "echo", guests::ECHO).await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    // By priority: one echo job, so both modules are loaded (and cached) before the
    // restart (a module fetch that meets it fails the attempt as a trap today, a worker
    // defect this test does not cover); then the long jobs, so they are the ones in
    // flight; then the rest.
    let mut first = vec![NewJob {
        priority: 2,
        ..job("echo", json!({ "n": "warm" }))
    }];
    first.extend((0..LONG).map(|i| NewJob {
        priority: 1,
        ..job("hostile", json!({ "op": "loop", "n": LONG_N + i as u64 }))
    }));
    first.extend((0..SHORT_BEFORE).map(|i| job("echo", json!({ "n": i }))));
    store.enqueue(first).await.unwrap();
    let w = start_worker(
        store.clone(),
        WorkerConfig {
            queues: vec![("default".into(), 4)],
            // Far longer than the restart takes: nothing may be rescued and run again.
            lease: Duration::from_secs(60),
            ..Default::default()
        },
        4,
    );

    // Stop the server while long jobs are running.
    let in_flight: HashSet<i64> = eventually(
        Duration::from_secs(60),
        "long jobs to be running",
        || async {
            let jobs = list_all(&*store).await.ok()?;
            let warm = jobs
                .iter()
                .any(|j| j.module == "echo" && j.state == JobState::Completed);
            let running: HashSet<i64> = jobs
                .iter()
                .filter(|j| j.module == "hostile" && j.state == JobState::Running)
                .map(|j| j.id)
                .collect();
            (warm && running.len() >= 2).then_some(running)
        },
    )
    .await;
    let snapshot_at = chrono::Utc::now();
    let server = tokio::task::spawn_blocking(move || {
        server.stop();
        server.start_again();
        server
    })
    .await
    .unwrap();

    // Enqueue more once the database takes writes again (a client would retry too).
    let second: Vec<NewJob> = (SHORT_BEFORE..SHORT_BEFORE + SHORT_AFTER)
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

    let total = 1 + LONG + SHORT_BEFORE + SHORT_AFTER;
    let jobs = eventually(Duration::from_secs(180), "every job to finish", || async {
        let jobs = list_all(&*store).await.ok()?;
        jobs.iter().all(|j| j.state.is_finished()).then_some(jobs)
    })
    .await;
    w.stop().await;

    assert_eq!(jobs.len(), total, "no job lost, none added");
    for j in &jobs {
        assert_eq!(
            (j.attempt, j.history.len()),
            (1, 0),
            "job {} ran more than once: {:?}",
            j.id,
            j.history
        );
        let expected = match j.module.as_str() {
            "echo" => j.input.clone(),
            _ => {
                let input: serde_json::Value = serde_json::from_slice(&j.input).unwrap();
                json!({ "done": input["n"] }).to_string().into_bytes()
            }
        };
        assert_completed_with(j, &expected);
    }

    let mut db = PgConnection::connect(&url).await.unwrap();
    let restarted_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT pg_postmaster_start_time()")
            .fetch_one(&mut db)
            .await
            .unwrap();
    let rows = sqlx::query("SELECT job_id, attempt, at FROM test_completions")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let mut completions: HashMap<i64, Vec<(i32, chrono::DateTime<chrono::Utc>)>> = HashMap::new();
    for row in &rows {
        completions
            .entry(row.get("job_id"))
            .or_default()
            .push((row.get("attempt"), row.get("at")));
    }
    let ids: HashSet<i64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(
        completions.keys().copied().collect::<HashSet<_>>(),
        ids,
        "every job, and only those, completed"
    );
    for (id, times) in &completions {
        assert_eq!(
            times.len(),
            1,
            "job {id} completed {} times: {times:?}",
            times.len()
        );
    }
    assert!(
        restarted_at > snapshot_at,
        "the server was not restarted after the running jobs were seen"
    );
    // The restart hit jobs in flight: some that were running when it began finished
    // only after the server came back.
    let finished_after: Vec<i64> = in_flight
        .iter()
        .copied()
        .filter(|id| completions[id][0].1 > restarted_at)
        .collect();
    let long_ms: Vec<u64> = jobs
        .iter()
        .filter(|j| j.module == "hostile")
        .map(|j| j.usage.as_ref().map_or(0, |u| u.duration_ms))
        .collect();
    eprintln!(
        "{} of the {} jobs running at the restart completed after it; long jobs took {long_ms:?} ms",
        finished_after.len(),
        in_flight.len()
    );
    assert!(
        !finished_after.is_empty(),
        "none of the jobs running at the restart ({in_flight:?}) completed after it \
         (server back at {restarted_at}): the restart hit nothing in flight"
    );
    db.close().await.unwrap();
    drop(server);
}
