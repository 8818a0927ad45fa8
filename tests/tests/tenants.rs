//! Tenant quotas over HTTP, on both stores: only an operator sets them; over each one a
//! call is refused with a problem naming the quota and its value, and stores nothing;
//! `GET /v1/tenant` shows a key's quotas and use.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmq_host::api::ApiConfig;
use wasmq_host::queue::sqlite::SqliteStore;
use wasmq_host::queue::{Quotas, Scope, Store};
use wasmq_tests::guests;

use support::{Server, problem};

async fn set(s: &Server, key: &str, tenant: &str, body: Value) -> reqwest::Response {
    s.req(Method::PUT, &format!("/v1/tenants/{tenant}"), key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Sets quotas of `tenant` with a fresh operator key; the answer's body.
async fn operator_sets(s: &Server, tenant: &str, body: Value) -> Value {
    let operator = s.key("ops", &[Scope::Operator]).await;
    let r = set(s, &operator, tenant, body).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// A `quota-exceeded` problem with `status`, naming `quota` and its value `limit`.
async fn over_quota(r: reqwest::Response, status: StatusCode, quota: &str, limit: Value) -> Value {
    let p = problem(r, status, "quota-exceeded").await;
    assert_eq!((&p["quota"], &p["limit"]), (&json!(quota), &limit), "{p}");
    p
}

async fn batch(s: &Server, key: &str, n: usize) -> reqwest::Response {
    let jobs: Vec<Value> = (0..n)
        .map(|i| json!({"module": "echo", "input": i}))
        .collect();
    s.req(Method::POST, "/v1/jobs/batch", key)
        .json(&json!({ "jobs": jobs }))
        .send()
        .await
        .unwrap()
}

/// `POST /v1/jobs` of an echo job by the server's admin key: the raw answer.
async fn enqueue_echo(s: &Server) -> reqwest::Response {
    s.req(Method::POST, "/v1/jobs", &s.admin)
        .json(&json!({"module": "echo"}))
        .send()
        .await
        .unwrap()
}

async fn post(s: &Server, path: &str, key: &str) -> StatusCode {
    s.req(Method::POST, path, key)
        .send()
        .await
        .unwrap()
        .status()
}

/// An operator key sets a tenant's quotas field by field (`null`: back to the server's
/// default); the tenant's own `admin` key can neither set nor read another's, and sees
/// its own through `GET /v1/tenant`.
async fn only_an_operator_sets_quotas(s: Server) {
    let acme = s.key("acme", &[Scope::Admin]).await;
    let operator = s.key("ops", &[Scope::Operator]).await;

    let r = set(&s, &acme, "acme", json!({"max_unfinished_jobs": 1_000_000})).await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = s
        .req(Method::GET, "/v1/tenants/acme", &acme)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;

    let r = set(
        &s,
        &operator,
        "acme",
        json!({"max_unfinished_jobs": 5, "enqueue_rate": 2.5}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["tenant"], "acme");
    assert_eq!(view["quotas"]["max_unfinished_jobs"], 5);
    assert_eq!(view["quotas"]["enqueue_rate"], 2.5);
    assert_eq!(view["quotas"]["enqueue_burst"], 3, "one second of the rate");
    assert_eq!(view["quotas"]["max_schedules"], 7, "the server's default");
    assert_eq!(view["overrides"]["max_schedules"], Value::Null);

    // Left out: kept; null: the default again.
    let view = operator_sets(
        &s,
        "acme",
        json!({"enqueue_rate": null, "max_schedules": 2}),
    )
    .await;
    assert_eq!(view["quotas"]["max_unfinished_jobs"], 5);
    assert_eq!(view["quotas"]["enqueue_rate"], Value::Null);
    assert_eq!(view["quotas"]["max_schedules"], 2);

    let own = s.call(Method::GET, "/v1/tenant", &acme).await;
    assert_eq!(own["tenant"], "acme");
    assert_eq!(own["quotas"], view["quotas"]);
    assert_eq!(
        own["usage"],
        json!({"unfinished_jobs": 0, "running": 0, "module_bytes": 0, "schedules": 0})
    );
    let read = s.call(Method::GET, "/v1/tenants/acme", &operator).await;
    assert_eq!(read["quotas"], view["quotas"]);

    for body in [
        json!({"enqueue_rate": 0}),
        json!({"enqueue_burst": 0}),
        json!({"max_unfinished_jobs": -1}),
        json!({"max_jobs": 5}),
    ] {
        let r = set(&s, &operator, "acme", body.clone()).await;
        problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    }
    let r = set(&s, &operator, "Not%20A%20Tenant", json!({})).await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    let after = s.call(Method::GET, "/v1/tenants/acme", &operator).await;
    assert_eq!(
        after["quotas"], view["quotas"],
        "refused changes store nothing"
    );
    s.stop().await;
}

/// At `max_unfinished_jobs` an enqueue is refused (a batch stores none of its jobs)
/// unless it makes no job (a stored idempotency key, a coalesce key with a waiting job);
/// once jobs finish, enqueues pass again.
async fn unfinished_jobs_are_bounded(s: Server) {
    s.push(&s.admin, "echo", guests::ECHO).await;
    operator_sets(&s, "default", json!({"max_unfinished_jobs": 3})).await;
    // Held waiting, so they stay unfinished until the queue resumes.
    assert_eq!(
        post(&s, "/v1/queues/default/pause", &s.admin).await,
        StatusCode::OK
    );

    let r = s
        .req(Method::POST, "/v1/jobs/batch", &s.admin)
        .json(&json!({"jobs": [{"module": "echo", "idempotency_key": "once"}, {"module": "echo"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let once = r.json::<Value>().await.unwrap()["jobs"][0]["id"].clone();
    let p = over_quota(
        batch(&s, &s.admin, 2).await,
        StatusCode::TOO_MANY_REQUESTS,
        "max_unfinished_jobs",
        json!(3),
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("2 unfinished"),
        "{p}"
    );
    let listed = s.call(Method::GET, "/v1/jobs", &s.admin).await;
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        2,
        "nothing half-stored"
    );

    let debounced = json!({"module": "echo", "coalesce_key": "k", "coalesce_ms": 1});
    let (status, third) = s.enqueue(&s.admin, debounced.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the last place: {third}");
    let r = enqueue_echo(&s).await;
    assert!(r.headers().contains_key("retry-after"));
    over_quota(
        r,
        StatusCode::TOO_MANY_REQUESTS,
        "max_unfinished_jobs",
        json!(3),
    )
    .await;
    // At the quota, an enqueue that makes no job passes.
    let (status, again) = s
        .enqueue(
            &s.admin,
            json!({"module": "echo", "idempotency_key": "once"}),
        )
        .await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &once), "{again}");
    let (status, again) = s.enqueue(&s.admin, debounced).await;
    assert_eq!(
        (status, &again["coalesced"]),
        (StatusCode::OK, &json!(true)),
        "{again}"
    );
    assert_eq!(again["id"], third["id"]);
    let own = s.call(Method::GET, "/v1/tenant", &s.admin).await;
    assert_eq!(own["usage"]["unfinished_jobs"], 3, "{own}");

    assert_eq!(
        post(&s, "/v1/queues/default/resume", &s.admin).await,
        StatusCode::OK
    );
    s.wait(&s.admin, third["id"].as_i64().unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = s.enqueue(&s.admin, json!({"module": "echo"})).await;
        if status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(
            Instant::now() < deadline,
            "still refused after the jobs finished: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

/// Over `enqueue_rate` an enqueue answers 429 with `Retry-After`; after that wait it
/// passes. A batch larger than the burst can never pass: 413.
async fn enqueue_rate_is_a_token_bucket(s: Server) {
    s.push(&s.admin, "echo", guests::ECHO).await;
    operator_sets(
        &s,
        "default",
        json!({"enqueue_rate": 1, "enqueue_burst": 2}),
    )
    .await;
    assert_eq!(batch(&s, &s.admin, 2).await.status(), StatusCode::ACCEPTED);
    let r = enqueue_echo(&s).await;
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    over_quota(r, StatusCode::TOO_MANY_REQUESTS, "enqueue_rate", json!(1.0)).await;
    over_quota(
        batch(&s, &s.admin, 3).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "enqueue_burst",
        json!(2),
    )
    .await;
    // The wait the answer asked for is what is under test.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, body) = s.enqueue(&s.admin, json!({"module": "echo"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    s.stop().await;
}

/// `max_module_bytes` bounds the tenant's stored modules (the same bytes again cost
/// nothing); `max_schedules` bounds new schedules (replacing one is fine).
async fn module_bytes_and_schedules_are_bounded(s: Server) {
    let echo = wasmq_tests::guest_bytes(guests::ECHO).len() as u64;
    operator_sets(
        &s,
        "default",
        json!({"max_module_bytes": echo + 100, "max_schedules": 1}),
    )
    .await;
    assert_eq!(
        s.push(&s.admin, "echo", guests::ECHO).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.push(&s.admin, "echo-2", guests::ECHO).await.0,
        StatusCode::CREATED
    );
    let r = s
        .req(Method::PUT, "/v1/modules/wordcount", &s.admin)
        .body(wasmq_tests::guest_bytes(guests::WORDCOUNT))
        .send()
        .await
        .unwrap();
    over_quota(
        r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "max_module_bytes",
        json!(echo + 100),
    )
    .await;
    let r = s
        .req(Method::GET, "/v1/modules/wordcount", &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "nothing stored");

    let schedule = |name: &str| {
        s.req(Method::PUT, &format!("/v1/schedules/{name}"), &s.admin)
            .json(&json!({"cron": "@hourly", "module": "echo"}))
    };
    assert_eq!(
        schedule("a").send().await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(schedule("a").send().await.unwrap().status(), StatusCode::OK);
    over_quota(
        schedule("b").send().await.unwrap(),
        StatusCode::CONFLICT,
        "max_schedules",
        json!(1),
    )
    .await;

    let own = s.call(Method::GET, "/v1/tenant", &s.admin).await;
    assert_eq!(
        own["usage"],
        json!({"unfinished_jobs": 0, "running": 0, "module_bytes": echo, "schedules": 1}),
        "{own}"
    );
    s.stop().await;
}

/// `max_running` set over HTTP holds the server's own workers (2 slots, 4 claimed at
/// once) to one job of the tenant at a time; set back to the default (none), they run
/// two at once again.
async fn max_running_holds_the_servers_workers(s: Server) {
    s.push(&s.admin, "hostile", guests::HOSTILE).await;
    let tenant = operator_sets(&s, "default", json!({"max_running": 1})).await;
    assert_eq!(tenant["quotas"]["max_running"], 1, "{tenant}");
    assert!(!s.spinners_overlap(&s.admin, 3).await, "one at a time");
    operator_sets(&s, "default", json!({"max_running": null})).await;
    assert!(
        s.spinners_overlap(&s.admin, 3).await,
        "uncapped: two at once"
    );
    s.stop().await;
}

/// A server whose tenants default to 7 schedules.
fn config() -> ApiConfig {
    ApiConfig {
        tenant_defaults: Quotas {
            max_schedules: Some(7),
            ..Quotas::default()
        },
        ..ApiConfig::default()
    }
}

async fn postgres() -> Server {
    Server::start_with(wasmq_tests::harness::fresh_store().await, config()).await
}

async fn sqlite() -> Server {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&wasmq_tests::sqlite::fresh_path())
            .await
            .unwrap(),
    );
    Server::start_with(store, config()).await
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::postgres().await).await;
                }
            )*
        }
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::sqlite().await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    only_an_operator_sets_quotas,
    unfinished_jobs_are_bounded,
    enqueue_rate_is_a_token_bucket,
    module_bytes_and_schedules_are_bounded,
    max_running_holds_the_servers_workers,
);
