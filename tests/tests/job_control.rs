//! Job control over HTTP: `POST /v1/jobs?wait=` (a durable job, enqueued and awaited in
//! one call) and `POST /v1/jobs/{id}/retry` (a failed or cancelled job run again).

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmq_host::queue::Scope;
use wasmq_tests::guests;

use support::{Server, problem};

async fn enqueue_waiting(s: &Server, key: &str, wait: &str, body: Value) -> reqwest::Response {
    s.req(Method::POST, &format!("/v1/jobs?wait={wait}"), key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_can_wait_for_its_result() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    s.push(&s.admin, "hostile", guests::HOSTILE).await;

    let r = enqueue_waiting(
        &s,
        &s.admin,
        "20s",
        json!({"module": "echo", "input": {"n": 1}}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "finished within the wait");
    let job: Value = r.json().await.unwrap();
    assert_eq!(
        (job["state"].clone(), job["result"].clone()),
        (json!("completed"), json!({"n": 1}))
    );

    // Still running when the time is up: 202 and the job as it stands, which goes on.
    let spin = json!({"module": "hostile", "input": {"op": "spin"}, "limits": {"timeout_ms": 3000}, "max_attempts": 1});
    let r = enqueue_waiting(&s, &s.admin, "300ms", spin).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    assert!(
        matches!(job["state"].as_str(), Some("available" | "running")),
        "{job}"
    );
    let done = s.wait(&s.admin, job["id"].as_i64().unwrap()).await;
    assert_eq!(done["error"]["kind"], "timeout");

    // The answer carries a result, so waiting needs `jobs:read` too; a bad wait is named.
    let writer = s.key("default", &[Scope::JobsWrite]).await;
    let r = enqueue_waiting(&s, &writer, "1s", json!({"module": "echo"})).await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = enqueue_waiting(&s, &s.admin, "soon", json!({"module": "echo"})).await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    assert!(p["detail"].as_str().unwrap().contains("`wait`"));
    let listed = s.call(Method::GET, "/v1/jobs?module=echo", &s.admin).await;
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        1,
        "refused calls stored nothing"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_can_be_retried_and_only_a_finished_one() {
    let s = Server::start().await;
    s.push(&s.admin, "hostile", guests::HOSTILE).await;
    let fatal = json!({"module": "hostile", "input": {"op": "fatal"}});
    let r = enqueue_waiting(&s, &s.admin, "20s", fatal).await;
    let failed: Value = r.json().await.unwrap();
    assert_eq!(failed["state"], "failed", "{failed}");
    let id = failed["id"].as_i64().unwrap();

    let retry = |key: String| {
        let req = s.req(Method::POST, &format!("/v1/jobs/{id}/retry"), &key);
        async move { req.send().await.unwrap() }
    };
    let r = retry(s.admin.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["attempt"], 0, "a fresh attempt count: {again}");
    assert!(again["error"].is_null());
    let done = s.wait(&s.admin, id).await;
    assert_eq!(
        (done["state"].clone(), done["attempt"].clone()),
        (json!("failed"), json!(1))
    );
    assert_eq!(
        done["history"].as_array().unwrap().len(),
        2,
        "both runs' failures kept: {done}"
    );

    let reader = s.key("default", &[Scope::JobsRead]).await;
    problem(retry(reader).await, StatusCode::FORBIDDEN, "forbidden").await;
    let stranger = s.key("other", &[Scope::Admin]).await;
    problem(
        retry(stranger).await,
        StatusCode::NOT_FOUND,
        "job-not-found",
    )
    .await;
    let ok = enqueue_waiting(
        &s,
        &s.admin,
        "20s",
        json!({"module": "hostile", "input": {"op": "progress"}}),
    )
    .await;
    let completed: Value = ok.json().await.unwrap();
    let r = s
        .req(
            Method::POST,
            &format!("/v1/jobs/{}/retry", completed["id"]),
            &s.admin,
        )
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::CONFLICT, "not-retryable").await;
    assert!(p["detail"].as_str().unwrap().contains("completed"));
    s.stop().await;
}
