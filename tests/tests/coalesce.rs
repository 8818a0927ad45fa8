//! Coalescing over HTTP: five saves of a page make one reindex, batches mark what
//! coalesced, and every bad coalescing field is refused by name with nothing stored.

mod support;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmq_host::queue::sqlite::SqliteStore;
use wasmq_host::queue::{JobFilter, Scope};
use wasmq_tests::guests;

use support::{Server, problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_saves_of_a_page_make_one_reindex_on_postgres() {
    five_saves_of_a_page_make_one_reindex(Server::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_saves_of_a_page_make_one_reindex_on_sqlite() {
    let store = SqliteStore::open(&wasmq_tests::sqlite::fresh_path())
        .await
        .unwrap();
    five_saves_of_a_page_make_one_reindex(Server::start_on(Arc::new(store)).await).await;
}

/// The Wagtail case: a page saved five times in a row is reindexed once, with the last
/// save's input, even with an idle worker (a coalescing job is never handed over).
async fn five_saves_of_a_page_make_one_reindex(s: Server) {
    s.push(&s.admin, "echo", guests::ECHO).await;
    let save = |rev: u32| {
        json!({
            "module": "echo",
            "input": {"page": 7, "rev": rev},
            "coalesce_key": "reindex:page:7",
            "coalesce_ms": 1500,
            "coalesce_max_ms": 30000,
        })
    };
    let (status, first) = s.enqueue(&s.admin, save(1)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["coalesced"], false);
    assert_eq!(first["state"], "scheduled", "it waits its window: {first}");
    for rev in 2..=5 {
        let (status, job) = s.enqueue(&s.admin, save(rev)).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        assert_eq!(job["coalesced"], true);
        assert_eq!(job["id"], first["id"]);
        assert_eq!(job["input"]["rev"], rev);
    }
    let done = s.wait(&s.admin, first["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["result"], json!({"page": 7, "rev": 5}));
    let all = s
        .store
        .list("default", &JobFilter::default())
        .await
        .unwrap();
    assert_eq!(all.jobs.len(), 1, "one reindex");

    // Without a key the answer is as it always was: no `coalesced`.
    let (status, plain) = s
        .enqueue(&s.admin, json!({"module": "echo", "input": 1}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(plain.get("coalesced").is_none(), "{plain}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_marks_the_items_that_coalesced() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let item = |input: u32, key: &str| {
        json!({"module": "echo", "queue": "idle", "input": input,
               "coalesce_key": key, "coalesce_ms": 60000})
    };
    let r = s
        .req(Method::POST, "/v1/jobs/batch", &s.admin)
        .json(&json!({"jobs": [
            item(1, "a"),
            {"module": "echo", "queue": "idle", "input": 2},
            item(3, "a"),
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    let jobs = body["jobs"].as_array().unwrap();
    assert!(jobs[0].get("coalesced").is_none(), "{body}");
    assert!(jobs[1].get("coalesced").is_none(), "{body}");
    assert_eq!(jobs[2]["coalesced"], true);
    assert_eq!(jobs[2]["id"], jobs[0]["id"]);
    let id = jobs[0]["id"].as_i64().unwrap();
    let job = s
        .call(Method::GET, &format!("/v1/jobs/{id}"), &s.admin)
        .await;
    assert_eq!(
        (&job["input"], &job["state"]),
        (&json!(3), &json!("scheduled"))
    );

    // A later single enqueue of the key joins the batch's job.
    let (status, again) = s.enqueue(&s.admin, item(4, "a")).await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &jobs[0]["id"]));

    // The OpenAPI document describes the fields and the answers.
    let doc: Value = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    for field in ["coalesce_key", "coalesce_ms", "coalesce_max_ms"] {
        assert!(
            schemas["EnqueueRequest"]["properties"][field].is_object(),
            "{field}"
        );
    }
    assert!(schemas["BatchItem"]["properties"]["coalesced"].is_object());
    assert!(schemas["EnqueueResponse"].to_string().contains("coalesced"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_coalescing_fields_are_refused_by_name_and_nothing_is_stored() {
    let s = Server::start().await;
    let key = s.key("picky", &[Scope::Admin]).await;
    s.push(&key, "echo", guests::ECHO).await;
    let with = |extra: Value| {
        let mut body = json!({"module": "echo", "input": 1});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let long = "k".repeat(256);
    let cases = [
        (json!({"coalesce_key": "k"}), "coalesce_ms"),
        (json!({"coalesce_ms": 100}), "coalesce_key"),
        (json!({"coalesce_max_ms": 100}), "coalesce_key"),
        (
            json!({"coalesce_key": "k", "coalesce_ms": 0}),
            "coalesce_ms",
        ),
        (
            json!({"coalesce_key": "k", "coalesce_ms": 86_400_001}),
            "coalesce_ms",
        ),
        (
            json!({"coalesce_key": "k", "coalesce_ms": 1000, "coalesce_max_ms": 999}),
            "coalesce_max_ms",
        ),
        (
            json!({"coalesce_key": "k", "coalesce_ms": 1000, "coalesce_max_ms": 604_800_001u64}),
            "coalesce_max_ms",
        ),
        (
            json!({"coalesce_key": "", "coalesce_ms": 1000}),
            "coalesce_key",
        ),
        (
            json!({"coalesce_key": long, "coalesce_ms": 1000}),
            "coalesce_key",
        ),
        (
            json!({"coalesce_key": "k", "coalesce_ms": 1000, "idempotency_key": "i"}),
            "idempotency_key",
        ),
        (
            json!({"coalesce_key": "k", "coalesce_ms": 1000, "delay_ms": 5}),
            "delay_ms",
        ),
        (
            json!({"coalesce_key": "k", "coalesce_ms": 1000, "run_at": "2030-01-01T00:00:00Z"}),
            "run_at",
        ),
    ];
    for (extra, field) in cases {
        let body = with(extra);
        let r = s
            .req(Method::POST, "/v1/jobs", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("`{field}`")), "{body}: {detail}");

        // The same item in a batch refuses the whole batch, naming the item.
        let batch = json!({"jobs": [{"module": "echo", "input": 0}, body]});
        let r = s
            .req(Method::POST, "/v1/jobs/batch", &key)
            .json(&batch)
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("jobs[1]") && detail.contains(field),
            "{detail}"
        );
    }
    let stored = s.store.list("picky", &JobFilter::default()).await.unwrap();
    assert!(
        stored.jobs.is_empty(),
        "nothing of a refused request is stored"
    );
    s.stop().await;
}
