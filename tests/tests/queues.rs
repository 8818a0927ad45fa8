//! Queue control over HTTP, on both stores: `GET /v1/queues`,
//! `POST /v1/queues/{name}/pause|resume` and `PUT /v1/queues/{name}/limit`, per tenant,
//! scoped, names checked.

mod support;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmq_host::queue::Scope;
use wasmq_host::queue::Store;
use wasmq_host::queue::sqlite::SqliteStore;
use wasmq_tests::guests;

use support::{Server, problem};

async fn post(s: &Server, path: &str, key: &str) -> reqwest::Response {
    s.req(Method::POST, path, key).send().await.unwrap()
}

/// The queue `name` in `GET /v1/queues` of `key`'s tenant.
async fn listed(s: &Server, key: &str, name: &str) -> Option<Value> {
    let all = s.call(Method::GET, "/v1/queues", key).await;
    let queues = all["queues"].as_array().expect("a queue list").clone();
    queues.into_iter().find(|q| q["name"] == name)
}

/// A paused queue accepts jobs and starts none of the caller's tenant (another tenant's
/// job in a queue of the same name runs, even though it came later); it is listed
/// paused with its waiting job; resumed, the job runs.
async fn a_paused_queue_holds_its_tenants_jobs(s: Server) {
    let acme = s.key("acme", &[Scope::Admin]).await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    s.push(&acme, "echo", guests::ECHO).await;

    let r = post(&s, "/v1/queues/default/pause", &s.admin).await;
    assert_eq!(r.status(), StatusCode::OK);
    let paused: Value = r.json().await.unwrap();
    assert_eq!(
        (paused["name"].clone(), paused["paused"].clone()),
        (json!("default"), json!(true))
    );

    let (status, held) = s
        .enqueue(&s.admin, json!({"module": "echo", "input": 1}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(held["state"], "available", "accepted, not started: {held}");
    let (_, theirs) = s
        .enqueue(&acme, json!({"module": "echo", "input": 2}))
        .await;
    let theirs = s.wait(&acme, theirs["id"].as_i64().unwrap()).await;
    assert_eq!(theirs["state"], "completed", "another tenant's job runs");

    let id = held["id"].as_i64().unwrap();
    let job = s
        .call(Method::GET, &format!("/v1/jobs/{id}"), &s.admin)
        .await;
    assert_eq!(
        job["state"], "available",
        "the earlier job of the paused tenant waits"
    );
    let queue = listed(&s, &s.admin, "default").await.expect("listed");
    assert_eq!(queue["paused"], true);
    assert_eq!(
        queue["jobs"],
        json!({"waiting": 0, "scheduled": 0, "available": 1, "retryable": 0, "running": 0})
    );
    let other = listed(&s, &acme, "default").await;
    assert!(
        other.as_ref().is_none_or(|q| q["paused"] == false),
        "{other:?}"
    );

    let r = post(&s, "/v1/queues/default/resume", &s.admin).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["paused"], false);
    assert_eq!(s.wait(&s.admin, id).await["state"], "completed");
    s.stop().await;
}

/// Pausing needs `jobs:write`, listing `jobs:read`; a bad queue name is a 422 naming
/// the field, and nothing is stored.
async fn queue_control_is_scoped_and_checked(s: Server) {
    let reader = s.key("default", &[Scope::JobsRead]).await;
    let writer = s.key("default", &[Scope::JobsWrite]).await;
    problem(
        post(&s, "/v1/queues/mail/pause", &reader).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let r = s
        .req(Method::GET, "/v1/queues", &writer)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(
        post(&s, "/v1/queues/mail/pause", &writer).await.status(),
        StatusCode::OK
    );

    let r = post(&s, "/v1/queues/No%20Such!/pause", &writer).await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    assert!(p["detail"].as_str().unwrap().contains("`name`"), "{p}");
    let all = s.call(Method::GET, "/v1/queues", &reader).await;
    assert_eq!(
        all,
        json!({"queues": [{"name": "mail", "paused": true,
            "jobs": {"waiting": 0, "scheduled": 0, "available": 0, "retryable": 0, "running": 0}}]}),
        "only the valid pause is stored"
    );

    let doc: Value = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/queues",
        "/v1/queues/{name}/pause",
        "/v1/queues/{name}/resume",
        "/v1/queues/{name}/limit",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI"
        );
    }
    let view = &doc["components"]["schemas"]["QueueView"]["properties"];
    assert!(
        view["jobs"].is_object() && view["paused"].is_object(),
        "{view}"
    );
    s.stop().await;
}

async fn put_limit(s: &Server, name: &str, key: &str, body: Value) -> reqwest::Response {
    let path = format!("/v1/queues/{name}/limit");
    s.req(Method::PUT, &path, key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A queue limit of 1 holds the server's workers (2 slots) to one of the tenant's jobs of
/// the queue at a time; it is listed, checked, scoped, and removed with `null`.
async fn a_queue_limit_holds_the_servers_workers(s: Server) {
    s.push(&s.admin, "hostile", guests::HOSTILE).await;
    let r = put_limit(&s, "default", &s.admin, json!({"max_running": 1})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(
        (&view["name"], &view["max_running"]),
        (&json!("default"), &json!(1))
    );
    assert!(!s.spinners_overlap(&s.admin, 3).await, "one at a time");
    let shown = listed(&s, &s.admin, "default").await.unwrap();
    assert_eq!(shown["max_running"], 1, "{shown}");

    let reader = s.key("default", &[Scope::JobsRead]).await;
    let r = put_limit(&s, "default", &reader, json!({"max_running": 2})).await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = put_limit(&s, "No%20Such!", &s.admin, json!({"max_running": 2})).await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    let r = put_limit(&s, "default", &s.admin, json!({"max_running": -1})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        listed(&s, &s.admin, "default").await.unwrap()["max_running"],
        1
    );

    let r = put_limit(&s, "default", &s.admin, json!({"max_running": null})).await;
    let view: Value = r.json().await.unwrap();
    assert!(view.get("max_running").is_none(), "{view}");
    assert!(
        listed(&s, &s.admin, "default").await.is_none(),
        "nothing left to list"
    );
    s.stop().await;
}

async fn sqlite() -> Server {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&wasmq_tests::sqlite::fresh_path())
            .await
            .unwrap(),
    );
    Server::start_on(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_paused_queue_holds_its_tenants_jobs() {
    a_paused_queue_holds_its_tenants_jobs(Server::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_paused_queue_holds_its_tenants_jobs() {
    a_paused_queue_holds_its_tenants_jobs(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_queue_control_is_scoped_and_checked() {
    queue_control_is_scoped_and_checked(Server::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_queue_control_is_scoped_and_checked() {
    queue_control_is_scoped_and_checked(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_queue_limit_holds_the_servers_workers() {
    a_queue_limit_holds_the_servers_workers(Server::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_queue_limit_holds_the_servers_workers() {
    a_queue_limit_holds_the_servers_workers(sqlite().await).await;
}
