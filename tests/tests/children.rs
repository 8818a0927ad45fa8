//! Child jobs over HTTP with real workers and guests: a fan-out's children run and are
//! listed by parent; a failed attempt leaves none and its retry makes them once; the
//! caps and an unknown module are refused to the guest; a 0.1.0 component still runs.

mod support;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmq_host::queue::sqlite::SqliteStore;
use wasmq_tests::guests;

use support::Server;

fn id(job: &Value) -> i64 {
    job["id"].as_i64().expect("an id")
}

async fn sqlite_server() -> Server {
    let store = SqliteStore::open(&wasmq_tests::sqlite::fresh_path())
        .await
        .unwrap();
    Server::start_on(Arc::new(store)).await
}

/// Enqueues `body` and waits until it finished.
async fn run(s: &Server, body: Value) -> Value {
    let (status, job) = s.enqueue(&s.admin, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    s.wait(&s.admin, id(&job)).await
}

/// The ids `GET /v1/jobs?parent=` lists, ascending.
async fn children_of(s: &Server, parent: i64) -> Vec<i64> {
    let page = s
        .call(
            Method::GET,
            &format!("/v1/jobs?parent={parent}&limit=1000"),
            &s.admin,
        )
        .await;
    let mut ids: Vec<i64> = page["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(id)
        .collect();
    ids.sort_unstable();
    ids
}

fn ids_in(result: &Value, field: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = result[field]
        .as_array()
        .unwrap_or_else(|| panic!("`{field}` in {result}"))
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanout_runs_its_children_on_postgres() {
    a_fanout_runs_its_children(Server::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanout_runs_its_children_on_sqlite() {
    a_fanout_runs_its_children(sqlite_server().await).await;
}

/// `examples/fanout`: one reindex job per locale, each run with its own input, named by
/// the parent's result, listed by parent and pointing back at it; the parent's usage
/// counts them.
async fn a_fanout_runs_its_children(s: Server) {
    s.push(&s.admin, "fanout", guests::FANOUT).await;
    s.push(&s.admin, "reindex", guests::ECHO).await;
    let parent = run(
        &s,
        json!({"module": "fanout", "input": {"page": 7, "locales": ["en", "de", "fr"]}}),
    )
    .await;
    assert_eq!(parent["state"], "completed", "{parent}");
    let told = ids_in(&parent["result"], "children");
    assert_eq!(told.len(), 3);
    assert_eq!(children_of(&s, id(&parent)).await, told);
    assert_eq!(parent["usage"]["children"], 3, "{parent}");
    let mut locales = Vec::new();
    for child in told {
        let done = s.wait(&s.admin, child).await;
        assert_eq!(done["state"], "completed", "{done}");
        assert_eq!(done["parent_id"], id(&parent));
        assert_eq!(done["result"]["page"], 7);
        locales.push(done["result"]["locale"].as_str().unwrap().to_owned());
    }
    assert_eq!(locales, ["en", "de", "fr"]);
    s.stop().await;
}

/// An attempt that enqueues five children and then times out leaves none; the retry
/// that completes makes its five, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_leaves_no_children_and_its_retry_makes_them_once() {
    let s = Server::start().await;
    s.push(&s.admin, "hostile", guests::HOSTILE).await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let parent = run(
        &s,
        json!({"module": "hostile", "limits": {"timeout_ms": 1000},
               "input": {"op": "spawn", "n": 5, "then": "spin_first_attempt"}}),
    )
    .await;
    assert_eq!(parent["state"], "completed", "{parent}");
    assert_eq!(parent["attempt"], 2);
    assert_eq!(parent["history"][0]["kind"], "timeout", "{parent}");
    let made = children_of(&s, id(&parent)).await;
    assert_eq!(
        made.len(),
        5,
        "only the completed attempt's children: {made:?}"
    );
    for child in made {
        assert_eq!(s.wait(&s.admin, child).await["state"], "completed");
    }
    s.stop().await;
}

/// Past 1,000 children an attempt's `enqueue` is refused (the guest sees why and goes
/// on); an unknown module is refused at the call; chains stop 16 levels down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_and_unknown_modules_are_refused_to_the_guest() {
    let s = Server::start().await;
    s.push(&s.admin, "hostile", guests::HOSTILE).await;
    s.push(&s.admin, "echo", guests::ECHO).await;

    let wide = run(
        &s,
        json!({"module": "hostile", "input": {"op": "spawn", "n": 1001}}),
    )
    .await;
    assert_eq!(wide["state"], "completed", "{wide}");
    let refused = wide["result"]["refused"].as_str().unwrap_or_default();
    assert!(refused.contains("at most 1000 child jobs"), "{refused}");
    assert_eq!(ids_in(&wide["result"], "ids").len(), 1000);
    assert_eq!(children_of(&s, id(&wide)).await.len(), 1000);

    let unknown = run(
        &s,
        json!({"module": "hostile", "input": {"op": "spawn", "n": 1, "module": "nope"}}),
    )
    .await;
    assert_eq!(unknown["result"]["refused"], "no module `nope` is uploaded");
    assert!(children_of(&s, id(&unknown)).await.is_empty());

    // Each link enqueues the next; the job 16 parents down is refused.
    let mut link = run(&s, json!({"module": "hostile", "input": {"op": "chain"}})).await;
    for depth in 1..=16 {
        let next = link["result"]["child"]
            .as_i64()
            .unwrap_or_else(|| panic!("depth {} made a child: {link}", depth - 1));
        assert_eq!(children_of(&s, id(&link)).await, [next]);
        let parent = id(&link);
        link = s.wait(&s.admin, next).await;
        assert_eq!(link["parent_id"], parent, "{link}");
    }
    let refused = link["result"]["refused"].as_str().unwrap_or_default();
    assert!(refused.contains("at depth 16"), "{link}");
    s.stop().await;
}

/// A component built against `wasmq:task@0.1.0` runs beside 0.2.0 ones, its host calls
/// (log, job, result) answered as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_of_the_0_1_contract_still_runs() {
    let s = Server::start().await;
    let (status, module) = s.push(&s.admin, "legacy", guests::V1_TASK).await;
    assert_eq!(status, StatusCode::CREATED, "{module}");
    s.push(&s.admin, "echo", guests::ECHO).await;
    let old = run(&s, json!({"module": "legacy", "input": "abc"})).await;
    assert_eq!(old["state"], "completed", "{old}");
    assert_eq!(old["result"]["contract"], "0.1.0");
    assert_eq!(old["result"]["id"], id(&old).to_string());
    assert_eq!(old["result"]["input_bytes"], 5, "the JSON text \"abc\"");
    let log = s
        .req(Method::GET, &format!("/v1/jobs/{}/log", id(&old)), &s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("running on wasmq:task@0.1.0"), "{log}");
    let new = run(&s, json!({"module": "echo", "input": {"x": 1}})).await;
    assert_eq!(new["result"], json!({"x": 1}));
    s.stop().await;
}

/// Children count against the tenant's `max_unfinished_jobs` as enqueued jobs do: past
/// it `enqueue` is refused (the running parent is one of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_count_against_the_unfinished_jobs_quota() {
    let s = Server::start().await;
    s.push(&s.admin, "hostile", guests::HOSTILE).await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let operator = s
        .key("default", &[wasmq_host::queue::Scope::Operator])
        .await;
    let r = s
        .req(Method::PUT, "/v1/tenants/default", &operator)
        .json(&json!({"max_unfinished_jobs": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let parent = run(
        &s,
        json!({"module": "hostile", "input": {"op": "spawn", "n": 10}}),
    )
    .await;
    assert_eq!(parent["state"], "completed", "{parent}");
    let refused = parent["result"]["refused"].as_str().unwrap_or_default();
    assert!(refused.contains("quota of 5 unfinished jobs"), "{parent}");
    assert_eq!(ids_in(&parent["result"], "ids").len(), 4, "{parent}");
    assert_eq!(children_of(&s, id(&parent)).await.len(), 4);
    s.stop().await;
}
