//! Queue control from the binary: `wasmq queue list|pause|resume` against a real server,
//! and `--burst`, which runs what is due in its queues, then exits 0 by itself, leaving
//! jobs due later than `--burst-wait` for the next run.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Proc, command, free_listen, readyz_is, run, text};
use serde_json::{Value, json};
use wasmq_host::queue::{JobState, NewJob, Scope, Store};
use wasmq_tests::guests;
use wasmq_tests::harness::{fresh_store_with_url, job, put_module};

/// Enqueues `n` echo jobs due now and one delayed by `delay`: their ids, the delayed last.
async fn enqueue(store: &Arc<dyn Store>, n: usize, delay: Duration) -> Vec<i64> {
    let mut jobs: Vec<NewJob> = (0..n).map(|i| job("echo", json!({ "i": i }))).collect();
    jobs.push(NewJob {
        run_at: Some(chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap()),
        ..job("echo", json!("later"))
    });
    let enqueued = store.enqueue(jobs).await.unwrap();
    enqueued.into_iter().map(|e| e.job.id).collect()
}

async fn state(store: &Arc<dyn Store>, id: i64) -> JobState {
    store.get("default", id).await.unwrap().unwrap().state
}

/// Runs `wasmq ARGS` to its own end (no signal): it must exit 0 within a minute.
async fn runs_to_the_end(args: &[&str]) {
    let mut proc = Proc::spawn(command(args));
    let status = proc.exited(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}:\n{}", proc.lines().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_worker_completes_what_is_due_and_leaves_later_jobs() {
    let (store, url) = fresh_store_with_url().await;
    put_module(&store, "echo", guests::ECHO).await;
    let ids = enqueue(&store, 20, Duration::from_secs(3600)).await;
    let (due, later) = ids.split_at(20);

    runs_to_the_end(&["worker", "--database-url", &url, "--burst"]).await;
    for id in due {
        assert_eq!(state(&store, *id).await, JobState::Completed, "job {id}");
    }
    assert_eq!(state(&store, later[0]).await, JobState::Scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_waits_for_jobs_due_within_its_wait() {
    let (store, url) = fresh_store_with_url().await;
    put_module(&store, "echo", guests::ECHO).await;
    let ids = enqueue(&store, 3, Duration::from_secs(1)).await;

    let args = [
        "worker",
        "--database-url",
        &url,
        "--burst",
        "--burst-wait",
        "30s",
    ];
    runs_to_the_end(&args).await;
    for id in &ids {
        assert_eq!(state(&store, *id).await, JobState::Completed, "job {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_in_burst_mode_stops_when_its_queues_are_done() {
    let (store, url) = fresh_store_with_url().await;
    put_module(&store, "echo", guests::ECHO).await;
    let ids = enqueue(&store, 5, Duration::from_secs(3600)).await;
    let listen = free_listen();

    let args = [
        "serve",
        "--database-url",
        &url,
        "--listen",
        &listen,
        "--burst",
    ];
    runs_to_the_end(&args).await;
    for id in &ids[..5] {
        assert_eq!(state(&store, *id).await, JobState::Completed, "job {id}");
    }
    assert_eq!(state(&store, ids[5]).await, JobState::Scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_commands_pause_list_and_resume() {
    let (store, url) = fresh_store_with_url().await;
    let key = store
        .create_key("default", None, &[Scope::Admin])
        .await
        .unwrap()
        .key;
    let listen = free_listen();
    let mut server = Proc::spawn(command(&[
        "serve",
        "--database-url",
        &url,
        "--listen",
        &listen,
    ]));
    let base = format!("http://{listen}");
    readyz_is(&base, 200, Duration::from_secs(60)).await;
    let client = [("WASMQ_URL", base.as_str()), ("WASMQ_KEY", key.as_str())];
    let ok = |args: &[&str]| -> Value {
        let out = run(args, &client);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let paused = ok(&["queue", "pause", "mail"]);
    assert_eq!(
        (paused["name"].clone(), paused["paused"].clone()),
        (json!("mail"), json!(true))
    );
    let listed = ok(&["queue", "list"]);
    assert_eq!(listed["queues"][0]["name"], "mail");
    assert_eq!(listed["queues"][0]["paused"], true);
    assert_eq!(ok(&["queue", "resume", "mail"])["paused"], false);
    let refused = run(&["queue", "pause", "No_Such"], &client);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("422"),
        "{}",
        text(&refused.stderr)
    );

    server.terminate();
    assert!(server.exited(Duration::from_secs(30)).await.success());
}
