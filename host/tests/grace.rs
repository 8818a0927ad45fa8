//! SIGTERM with a job in flight, on `wasmq serve` and on `wasmq worker` (PostgreSQL):
//! a job that ends inside the grace period completes before the process exits 0; one
//! that outlasts it is given back — `available` again, the attempt not counted, nothing
//! in its history — and another worker completes it as its first attempt.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Proc, command, free_listen};
use serde_json::json;
use wasmq_host::queue::{JobState, Limits, Store};
use wasmq_tests::guests;
use wasmq_tests::harness::{eventually, finished, fresh_store_with_url, in_state, job, put_module};

/// Iterations of the hostile guest's `loop` op: CPU work of about a second or more on
/// this kind of machine (longer under load), so SIGTERM lands while it runs.
const LOOP: u64 = 600_000_000;

/// `wasmq serve` or `wasmq worker` on `url` with grace `grace`, no fuel cap.
fn start(which: &str, url: &str, grace: &str) -> Proc {
    let mut args = vec![which, "--database-url", url, "--grace", grace];
    let listen = free_listen();
    if which == "serve" {
        args.extend(["--listen", &listen]);
    }
    args.extend([
        "--max-fuel",
        "18446744073709551615",
        "--max-timeout",
        "120s",
    ]);
    Proc::spawn(command(&args))
}

/// Starts `which` with `grace`, enqueues a `loop` job, sends SIGTERM once it runs, and
/// waits for a clean exit whose log says `expect`: the store, its URL and the job's id.
async fn sigterm_while_running(
    which: &str,
    grace: &str,
    n: u64,
    expect: &str,
) -> (Arc<dyn Store>, String, i64) {
    let (store, url) = fresh_store_with_url().await;
    let mut proc = start(which, &url, grace);
    put_module(&store, "hostile", guests::HOSTILE).await;
    let mut j = job("hostile", json!({"op": "loop", "n": n}));
    j.limits = Limits {
        timeout_ms: Some(120_000),
        ..Default::default()
    };
    let id = store.enqueue(vec![j]).await.unwrap()[0].job.id;
    let claimed = in_state(&store, id, JobState::Running, Duration::from_secs(60)).await;
    assert_eq!(claimed.attempt, 1);
    // Stored `running` may still be a claim the process has not read yet (SIGTERM then
    // gives it back unstarted). A heartbeat extends the lease only of jobs it holds, and
    // a held job starts at once: after one, the job is running in the sandbox.
    eventually(Duration::from_secs(60), "a heartbeat", || async {
        let j = store.get("default", id).await.unwrap().unwrap();
        (j.lease_expires_at > claimed.lease_expires_at).then_some(())
    })
    .await;
    proc.terminate();
    let status = proc.exited(Duration::from_secs(120)).await;
    let log = proc.lines().join("\n");
    assert!(
        status.success(),
        "{which} exits 0 after SIGTERM: {status}\n{log}"
    );
    assert!(log.contains(expect), "no `{expect}` in the log:\n{log}");
    (store, url, id)
}

async fn a_job_shorter_than_the_grace_completes_before_exit(which: &str) {
    // The drain's log line says SIGTERM found the job running.
    let (store, _, id) =
        sigterm_while_running(which, "120s", LOOP, "waiting for running jobs").await;
    // Finished and reported before the process ended: nothing is left to do.
    let j = store.get("default", id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.attempt, 1);
    assert!(j.history.is_empty(), "{:?}", j.history);
    assert_eq!(
        j.result.as_deref(),
        Some(json!({ "done": LOOP }).to_string().as_bytes())
    );
}

async fn a_job_longer_than_the_grace_is_given_back_and_completed_elsewhere(which: &str) {
    let given_back = "grace period over; giving jobs back";
    // Long enough that it is still running when the grace ends, however fast the machine.
    let (store, url, id) = sigterm_while_running(which, "200ms", 5 * LOOP, given_back).await;
    // Given back as if never started: no failed attempt counted, no error.
    let j = store.get("default", id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempt, 0, "the interrupted attempt is not counted");
    assert!(j.error.is_none(), "{:?}", j.error);
    assert!(j.history.is_empty(), "{:?}", j.history);

    let _other = start("worker", &url, "30s");
    let j = finished(&store, id, Duration::from_secs(120)).await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.attempt, 1, "the other worker's run is the first attempt");
    assert!(j.history.is_empty(), "{:?}", j.history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sigterm_lets_a_running_job_finish_inside_the_grace() {
    a_job_shorter_than_the_grace_completes_before_exit("serve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_sigterm_lets_a_running_job_finish_inside_the_grace() {
    a_job_shorter_than_the_grace_completes_before_exit("worker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sigterm_gives_back_a_job_that_outlasts_the_grace() {
    a_job_longer_than_the_grace_is_given_back_and_completed_elsewhere("serve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_sigterm_gives_back_a_job_that_outlasts_the_grace() {
    a_job_longer_than_the_grace_is_given_back_and_completed_elsewhere("worker").await;
}
