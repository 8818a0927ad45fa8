//! Schedules over HTTP on a real server, store and worker: a schedule's ticks become jobs
//! that name it, and every bad field is refused by name with nothing stored.

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmq_host::queue::Scope;
use wasmq_tests::guests;

use support::{Server, problem};

async fn put(s: &Server, key: &str, name: &str, body: Value) -> reqwest::Response {
    s.req(Method::PUT, &format!("/v1/schedules/{name}"), key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Polls schedule `name` until `done` holds, for up to 30 s.
async fn schedule_until(s: &Server, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = s
            .call(Method::GET, &format!("/v1/schedules/{name}"), &s.admin)
            .await;
        if done(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "schedule {name} never got there: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedules_ticks_become_jobs_that_name_it() {
    let s = Server::start().await;
    assert_eq!(
        s.push(&s.admin, "echo", guests::ECHO).await.0,
        StatusCode::CREATED
    );
    let body =
        json!({"cron": "* * * * * *", "module": "echo", "input": {"page": 7}, "priority": 2});
    let created = put(&s, &s.admin, "every-second", body.clone()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let view: Value = created.json().await.unwrap();
    assert_eq!(view["timezone"], "UTC");
    assert_eq!(view["catch_up"], "skip");
    assert_eq!(view["input"], json!({"page": 7}));
    assert!(view["next_run_at"].is_string(), "{view}");
    assert!(view["last_job"].is_null());
    let replaced = put(&s, &s.admin, "every-second", body).await;
    assert_eq!(replaced.status(), StatusCode::OK);

    let view = schedule_until(&s, "every-second", |v| {
        v["last_job"]["state"] == "completed"
    })
    .await;
    let id = view["last_job"]["id"].as_i64().unwrap();
    let job = s
        .call(Method::GET, &format!("/v1/jobs/{id}"), &s.admin)
        .await;
    assert_eq!(job["schedule"], "every-second");
    assert_eq!(job["result"], json!({"page": 7}));
    assert_eq!(job["priority"], 2);
    assert!(view["last_run_at"].is_string());

    let list = s.call(Method::GET, "/v1/schedules", &s.admin).await;
    assert_eq!(list["schedules"][0]["name"], "every-second");
    let deleted = s
        .req(Method::DELETE, "/v1/schedules/every-second", &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = s
        .req(Method::GET, "/v1/schedules/every-second", &s.admin)
        .send()
        .await
        .unwrap();
    problem(gone, StatusCode::NOT_FOUND, "schedule-not-found").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_are_refused_by_field_and_nothing_is_stored() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let ok = json!({"cron": "@hourly", "module": "echo"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    for (body, names) in [
        (with("cron", json!("61 * * * *")), "`cron`"),
        (with("cron", json!("* * *")), "`cron`"),
        (with("timezone", json!("Mars/Olympus")), "`timezone`"),
        (with("catch_up", json!("all")), "`catch_up`"),
        (with("queue", json!("Not A Queue")), "queue"),
        (with("max_attempts", json!(0)), "`max_attempts`"),
        (with("colour", json!("blue")), "colour"),
    ] {
        let r = put(&s, &s.admin, "s", body.clone()).await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(names), "{body}: {detail}");
    }
    let r = put(&s, &s.admin, "s", with("limits", json!({"fuel": u64::MAX}))).await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "limit-too-high").await;
    let r = put(&s, &s.admin, "Bad Name", ok.clone()).await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    let r = put(&s, &s.admin, "s", with("module", json!("nope"))).await;
    problem(r, StatusCode::NOT_FOUND, "module-not-found").await;
    let list = s.call(Method::GET, "/v1/schedules", &s.admin).await;
    assert_eq!(
        list["schedules"],
        json!([]),
        "nothing of a refused put is stored"
    );

    // Scopes and tenants, as for jobs.
    let reader = s.key("default", &[Scope::JobsRead]).await;
    let r = put(&s, &reader, "s", ok.clone()).await;
    problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(
        put(&s, &s.admin, "s", ok.clone()).await.status(),
        StatusCode::CREATED
    );
    let seen = s.call(Method::GET, "/v1/schedules/s", &reader).await;
    assert_eq!(seen["name"], "s");
    let stranger = s.key("other", &[Scope::Admin]).await;
    let r = s
        .req(Method::GET, "/v1/schedules/s", &stranger)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND, "schedule-not-found").await;
    let r = s
        .req(Method::DELETE, "/v1/schedules/s", &stranger)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND, "schedule-not-found").await;

    // A client cannot forge a schedule's job.
    let (status, p) = s
        .enqueue(
            &s.admin,
            json!({"module": "echo", "idempotency_key": "wasmq:schedule:s:1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_whose_module_is_deleted_keeps_its_row_and_says_why() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let body = json!({"cron": "* * * * * *", "module": "echo"});
    assert_eq!(
        put(&s, &s.admin, "orphan", body).await.status(),
        StatusCode::CREATED
    );
    let r = s
        .req(Method::DELETE, "/v1/modules/echo", &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let view = schedule_until(&s, "orphan", |v| v["last_error"].is_string()).await;
    let error = view["last_error"].as_str().unwrap();
    assert!(error.contains("`echo`"), "{error}");
    assert!(
        view["next_run_at"].is_string(),
        "it goes on ticking: {view}"
    );
    s.stop().await;
}
