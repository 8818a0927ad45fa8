//! Dependencies over HTTP with real workers and guests: a dependent runs after its
//! dependency (across a retry of it), a failure cancels the chain below it, and a
//! dependency on a job that does not exist is refused with 422.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmq_host::queue::sqlite::SqliteStore;
use wasmq_tests::guests;

use support::{Server, problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_runs_after_its_dependency_on_postgres() {
    a_dependent_runs_after_its_dependency(Server::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_runs_after_its_dependency_on_sqlite() {
    let store = SqliteStore::open(&wasmq_tests::sqlite::fresh_path())
        .await
        .unwrap();
    a_dependent_runs_after_its_dependency(Server::start_on(Arc::new(store)).await).await;
}

fn time(job: &Value, field: &str) -> DateTime<Utc> {
    job[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} of {job}"))
        .parse()
        .unwrap()
}

fn id(job: &Value) -> i64 {
    job["id"].as_i64().expect("an id")
}

/// Polls job `id` until it is in `state`.
async fn until_state(s: &Server, id: i64, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = s
            .call(Method::GET, &format!("/v1/jobs/{id}"), &s.admin)
            .await;
        if job["state"] == state {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} never {state}: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_dependent_runs_after_its_dependency(s: Server) {
    s.push(&s.admin, "echo", guests::ECHO).await;
    s.push(&s.admin, "hostile", guests::HOSTILE).await;

    // A dependency that times out once and then succeeds: its dependent waits across
    // the retry and starts only after it completed.
    let (status, parent) = s
        .enqueue(
            &s.admin,
            json!({"module": "hostile", "input": {"op": "spin_first_attempt"},
                   "limits": {"timeout_ms": 1000}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{parent}");
    until_state(&s, id(&parent), "running").await;
    let (status, child) = s
        .enqueue(
            &s.admin,
            json!({"module": "echo", "input": {"after": id(&parent)},
                   "depends_on": [id(&parent)]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{child}");
    assert_eq!(child["state"], "waiting", "{child}");
    assert_eq!(child["depends_on"], json!([id(&parent)]));
    let queues = s.call(Method::GET, "/v1/queues", &s.admin).await;
    assert_eq!(queues["queues"][0]["jobs"]["waiting"], 1, "{queues}");
    let waiting = s
        .call(Method::GET, "/v1/jobs?state=waiting", &s.admin)
        .await;
    assert_eq!(waiting["jobs"][0]["id"], child["id"], "{waiting}");

    let child = s.wait(&s.admin, id(&child)).await;
    assert_eq!(child["state"], "completed", "{child}");
    assert_eq!(child["result"], json!({"after": id(&parent)}));
    let parent = s
        .call(Method::GET, &format!("/v1/jobs/{}", id(&parent)), &s.admin)
        .await;
    assert_eq!(parent["state"], "completed", "{parent}");
    assert_eq!(parent["attempt"], 2, "{parent}");
    assert_eq!(parent["dependents"], 1);
    assert!(time(&child, "started_at") >= time(&parent, "finished_at"));

    // A chain in one batch whose first job fails: the rest is cancelled, never run.
    let r = s
        .req(Method::POST, "/v1/jobs/batch", &s.admin)
        .json(&json!({"jobs": [
            {"module": "hostile", "input": {"op": "spin"}, "max_attempts": 1,
             "limits": {"timeout_ms": 200}},
            {"module": "echo", "input": 1, "depends_on_index": [0]},
            {"module": "echo", "input": 2, "depends_on_index": [1]},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let batch: Value = r.json().await.unwrap();
    let states: Vec<&str> = (0..3)
        .map(|i| batch["jobs"][i]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states[1..], ["waiting", "waiting"], "{batch}");
    for (i, kind) in [
        (0, "timeout"),
        (1, "dependency_failed"),
        (2, "dependency_failed"),
    ] {
        let job = s.wait(&s.admin, id(&batch["jobs"][i])).await;
        assert_eq!(job["error"]["kind"], kind, "{job}");
        if i > 0 {
            assert_eq!(job["state"], "cancelled");
            assert_eq!(job["attempt"], 0, "never run: {job}");
        }
    }
    s.stop().await;
}

/// A dependency on an unknown job or another tenant's is refused with 422 and nothing is
/// stored; `depends_on_index` outside a batch too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_on_an_unknown_job_is_refused() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let other = s.key("elsewhere", &[wasmq_host::queue::Scope::Admin]).await;
    s.push(&other, "echo", guests::ECHO).await;
    let (_, theirs) = s
        .enqueue(
            &other,
            json!({"module": "echo", "queue": "idle", "input": 1}),
        )
        .await;
    for body in [
        json!({"module": "echo", "input": 1, "depends_on": [id(&theirs) + 1_000_000]}),
        json!({"module": "echo", "input": 1, "depends_on": [id(&theirs)]}),
        json!({"module": "echo", "input": 1, "depends_on_index": [0]}),
        json!({"module": "echo", "input": 1, "depends_on": [0]}),
    ] {
        let r = s
            .req(Method::POST, "/v1/jobs", &s.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
        assert!(p["detail"].as_str().unwrap().contains("depend"), "{p}");
    }
    let mine = s.call(Method::GET, "/v1/jobs", &s.admin).await;
    assert_eq!(mine["jobs"], json!([]), "nothing stored: {mine}");
    s.stop().await;
}
