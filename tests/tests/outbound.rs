//! Outbound HTTP and module config, end to end: the real API on loopback, real workers,
//! the real `webhook` guest, and a small HTTP server on 127.0.0.1 that records what
//! reached it. Every case runs on PostgreSQL and on SQLite.
//!
//! The test server is reached only through an allow-list entry naming 127.0.0.1 itself;
//! `localhost` resolves to the same address, which the server's default deny ranges
//! refuse unless an entry names the address.

mod support;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use wasmq_host::api::ApiConfig;
use wasmq_host::queue::Store;
use wasmq_host::queue::sqlite::SqliteStore;
use wasmq_tests::guests;
use wasmq_tests::harness::fresh_store;
use wasmq_tests::upstream::Upstream;

use support::Server;

const SECRET: &str = "s3cr3t-t0ken-9f2c";

fn secret_key() -> wasmq_host::secrets::SecretKey {
    "6b1f0c5e9a3d47e28c0b5a9f1e7d3c2b4a6f8e0d1c3b5a7f9e1d3c5b7a9f0e2d"
        .parse()
        .unwrap()
}

async fn sqlite_store() -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(&wasmq_tests::sqlite::fresh_path())
            .await
            .unwrap(),
    )
}

/// Uploads the webhook guest as `name` with `allowed_host` query parameters.
async fn push_webhook(s: &Server, name: &str, hosts: &[&str]) -> (StatusCode, Value) {
    let query: Vec<(&str, &str)> = hosts.iter().map(|h| ("allowed_host", *h)).collect();
    let r = s
        .req(Method::PUT, &format!("/v1/modules/{name}"), &s.admin)
        .query(&query)
        .body(wasmq_tests::guest_bytes(guests::WEBHOOK))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// Enqueues a webhook job and waits for it to finish; returns the job and its log.
async fn post(s: &Server, module: &str, input: Value) -> (Value, String) {
    let (status, job) = s
        .enqueue(
            &s.admin,
            json!({"module": module, "input": input, "max_attempts": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_i64().unwrap();
    let done = s.wait(&s.admin, id).await;
    let log = s
        .req(Method::GET, &format!("/v1/jobs/{id}/log"), &s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (done, log)
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::fresh_store().await).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite_store().await).await;
                }
            )*
        }
    };
}

both_stores!(
    an_allowed_host_answers,
    a_module_without_an_allow_list_gets_no_network,
    refused_and_failed_requests_are_contained,
    the_policy_can_be_changed_and_bad_entries_are_refused,
    config_values_are_read_and_secrets_never_shown,
    secrets_need_a_server_key,
    a_network_job_is_stored_before_it_runs,
);

async fn an_allowed_host_answers(store: Arc<dyn Store>) {
    let up = Upstream::start().await;
    let s = Server::start_on(store).await;
    let allowed = format!("http://127.0.0.1:{}", up.port);
    let (status, module) = push_webhook(&s, "hook", &[&allowed]).await;
    assert_eq!(status, StatusCode::CREATED, "{module}");
    assert_eq!(module["allowed_hosts"], json!([allowed]));

    let (done, _) = post(&s, "hook", json!({"url": up.url("/ok"), "json": {"n": 1}})).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["result"], json!({"status": 200, "bytes": 5}));
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/ok");
    assert_eq!(seen[0].body, br#"{"n":1}"#);
    assert_eq!(done["usage"]["http_requests"], 1);
    assert_eq!(done["usage"]["http_bytes_out"], 7);
    assert_eq!(done["usage"]["http_bytes_in"], 5);

    // The listing and the versions show the allow-list too.
    let listed = s.call(Method::GET, "/v1/modules", &s.admin).await;
    assert_eq!(listed["modules"][0]["allowed_hosts"], json!([allowed]));
    let versions = s.call(Method::GET, "/v1/modules/hook", &s.admin).await;
    assert_eq!(versions["modules"][0]["allowed_hosts"], json!([allowed]));
    s.stop().await;
}

async fn a_module_without_an_allow_list_gets_no_network(store: Arc<dyn Store>) {
    let up = Upstream::start().await;
    let s = Server::start_on(store).await;
    let (status, module) = push_webhook(&s, "hook", &[]).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(module["allowed_hosts"], json!([]));
    let (done, log) = post(&s, "hook", json!({"url": up.url("/ok"), "json": 1})).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "task_error");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request denied"),
        "{done}"
    );
    let target = format!("http://127.0.0.1:{}", up.port);
    assert!(
        log.contains(&format!(
            "outbound request to {target} refused: not on the module's allow-list"
        )),
        "{log}"
    );
    assert!(up.seen().is_empty(), "nothing reached the server");
    s.stop().await;
}

async fn refused_and_failed_requests_are_contained(store: Arc<dyn Store>) {
    let up = Upstream::start().await;
    let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other.local_addr().unwrap().port();
    let s = Server::start_on(store).await;
    let allowed = format!("http://127.0.0.1:{}", up.port);
    let by_name = format!("http://localhost:{}", up.port);
    push_webhook(&s, "hook", &[&allowed, &by_name]).await;

    let denied = |done: &Value, log: &str, needle: &str| {
        assert_eq!(done["state"], "failed", "{done}");
        assert!(
            done["error"]["message"]
                .as_str()
                .unwrap()
                .contains("request denied"),
            "{done}"
        );
        assert!(log.contains(needle), "`{needle}` not in the log:\n{log}");
    };
    // A host not on the list: refused before any name lookup.
    let (done, log) = post(
        &s,
        "hook",
        json!({"url": "http://other.invalid/x", "json": 1}),
    )
    .await;
    denied(
        &done,
        &log,
        "request to http://other.invalid:80 refused: not on the module's allow-list",
    );
    // A private address reached through a name, even though the name is listed.
    let (done, log) = post(
        &s,
        "hook",
        json!({"url": format!("{by_name}/ok"), "json": 1}),
    )
    .await;
    denied(
        &done,
        &log,
        &format!(
            "request to http://localhost:{} refused: it resolves to",
            up.port
        ),
    );
    assert!(log.contains("in the server's denied range"), "{log}");
    // A port not listed.
    let (done, log) = post(
        &s,
        "hook",
        json!({"url": format!("http://127.0.0.1:{other_port}/ok"), "json": 1}),
    )
    .await;
    denied(
        &done,
        &log,
        &format!(
            "request to http://127.0.0.1:{other_port} refused: not on the module's allow-list"
        ),
    );
    // A redirect to a refused host: the first hop arrives, the second is refused.
    let before = up.seen().len();
    let to = "http://metadata.invalid/latest";
    let (done, log) = post(
        &s,
        "hook",
        json!({"url": up.url(&format!("/redirect?to={to}")), "json": 1}),
    )
    .await;
    denied(&done, &log, "request to http://metadata.invalid:80 refused");
    assert_eq!(up.seen().len(), before + 1);
    // A response over the attempt's cap (16 MiB by default).
    let (done, log) = post(
        &s,
        "hook",
        json!({"url": up.url("/big?n=17000000"), "json": 1}),
    )
    .await;
    assert_eq!(done["state"], "failed", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exceeds limit: 16777216 bytes"),
        "{done}"
    );
    assert!(
        log.contains("outbound response cut off: the attempt may read at most 16777216 bytes"),
        "{log}"
    );
    // A server that never answers: the attempt times out, the worker does not hang.
    let (status, job) = s
        .enqueue(
            &s.admin,
            json!({"module": "hook", "input": {"url": up.url("/hang"), "json": 1},
                   "max_attempts": 1, "limits": {"timeout_ms": 1500}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done = s.wait(&s.admin, job["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "timeout", "{done}");

    // Nothing else was affected: the same module still reaches its allowed host, and
    // other modules still run.
    let (done, _) = post(&s, "hook", json!({"url": up.url("/ok"), "json": 2})).await;
    assert_eq!(done["state"], "completed", "{done}");
    s.push(&s.admin, "echo", guests::ECHO).await;
    let (_, job) = s
        .enqueue(&s.admin, json!({"module": "echo", "input": 7}))
        .await;
    let done = s.wait(&s.admin, job["id"].as_i64().unwrap()).await;
    assert_eq!(done["result"], 7);
    drop(other);
    s.stop().await;
}

async fn the_policy_can_be_changed_and_bad_entries_are_refused(store: Arc<dyn Store>) {
    let up = Upstream::start().await;
    let s = Server::start_on(store).await;
    let allowed = format!("http://127.0.0.1:{}", up.port);

    // A bad entry at upload: 422 naming it, and no module stored.
    let (status, problem) = push_webhook(&s, "hook", &["ftp://files.example.com"]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("`ftp://files.example.com`"),
        "{problem}"
    );
    let r = s
        .req(Method::GET, "/v1/modules/hook", &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    push_webhook(&s, "hook", &[]).await;
    let policy = |hosts: Value| {
        s.req(Method::PUT, "/v1/modules/hook/policy", &s.admin)
            .json(&json!({"allowed_hosts": hosts}))
            .send()
    };
    // A bad entry later: 422, and the stored list is unchanged.
    let r = policy(json!([allowed, "https://bad host"])).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("`https://bad host`"),
        "{body}"
    );
    let versions = s.call(Method::GET, "/v1/modules/hook", &s.admin).await;
    assert_eq!(versions["modules"][0]["allowed_hosts"], json!([]));

    // Allowed from the next job on, canonical.
    let r = policy(json!([allowed.to_uppercase().replace("HTTP", "http")]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["allowed_hosts"],
        json!([allowed])
    );
    let (done, _) = post(&s, "hook", json!({"url": up.url("/ok"), "json": 1})).await;
    assert_eq!(done["state"], "completed", "{done}");
    // A new version keeps the policy.
    let (_, module) = s.push(&s.admin, "hook", guests::ECHO).await;
    assert_eq!(module["allowed_hosts"], json!([allowed]));
    push_webhook(&s, "hook", &[]).await;

    // Taken away again.
    let r = policy(json!([])).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (done, _) = post(&s, "hook", json!({"url": up.url("/ok"), "json": 1})).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(up.seen().len(), 1);

    // A key without `modules:write` may not change it; an unknown module is 404.
    let reader = s
        .key("default", &[wasmq_host::queue::Scope::JobsRead])
        .await;
    let r = s
        .req(Method::PUT, "/v1/modules/hook/policy", &reader)
        .json(&json!({"allowed_hosts": [allowed]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .req(Method::PUT, "/v1/modules/nope/policy", &s.admin)
        .json(&json!({"allowed_hosts": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Deleting the module forgets its policy: a new module of that name has no network.
    let r = s
        .req(Method::DELETE, "/v1/modules/hook", &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, module) = push_webhook(&s, "hook", &[]).await;
    assert_eq!(module["allowed_hosts"], json!([]));
    s.stop().await;
}

async fn config_values_are_read_and_secrets_never_shown(store: Arc<dyn Store>) {
    let up = Upstream::start().await;
    let config = ApiConfig {
        secret_key: Some(secret_key()),
        ..ApiConfig::default()
    };
    let s = Server::start_with(store.clone(), config).await;
    let allowed = format!("http://127.0.0.1:{}", up.port);
    push_webhook(&s, "hook", &[&allowed]).await;

    let r = s
        .req(Method::PUT, "/v1/modules/hook/config", &s.admin)
        .json(&json!({"values": {"agent": "wasmq-test/1"}, "secrets": {"token": SECRET}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.contains(SECRET), "{text}");
    let view: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        view,
        json!({"values": {"agent": "wasmq-test/1"}, "secrets": ["token"]})
    );
    let text = s
        .req(Method::GET, "/v1/modules/hook/config", &s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(SECRET) && text.contains("token"), "{text}");
    // Stored sealed, not in the clear.
    let stored = store.module_settings("default", "hook").await.unwrap();
    assert!(!stored.secrets["token"].contains(SECRET));

    let (done, log) = post(
        &s,
        "hook",
        json!({"url": up.url("/ok"), "json": {"hi": 1}, "debug": true}),
    )
    .await;
    assert_eq!(done["state"], "completed", "{done}");
    let seen = up.seen();
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(seen[0].header("user-agent"), Some("wasmq-test/1"));
    // The guest logged its headers: the secret is cut out, the plain value is not.
    assert!(!log.contains(SECRET), "{log}");
    assert!(
        log.contains("Bearer [redacted]") && log.contains("wasmq-test/1"),
        "{log}"
    );
    let job = s
        .req(Method::GET, &format!("/v1/jobs/{}", done["id"]), &s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!job.contains(SECRET));

    // Bad config is refused whole, naming the field.
    let r = s
        .req(Method::PUT, "/v1/modules/hook/config", &s.admin)
        .json(&json!({"values": {"token": "x"}, "secrets": {"token": "y"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("`token` is in both"));
    let still = s
        .call(Method::GET, "/v1/modules/hook/config", &s.admin)
        .await;
    assert_eq!(still["values"], json!({"agent": "wasmq-test/1"}));
    s.stop().await;
}

async fn secrets_need_a_server_key(store: Arc<dyn Store>) {
    let s = Server::start_on(store).await;
    push_webhook(&s, "hook", &[]).await;
    let r = s
        .req(Method::PUT, "/v1/modules/hook/config", &s.admin)
        .json(&json!({"values": {"a": "1"}, "secrets": {"token": SECRET}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("--secret-key"),
        "{body}"
    );
    let config = s
        .call(Method::GET, "/v1/modules/hook/config", &s.admin)
        .await;
    assert_eq!(
        config,
        json!({"values": {}, "secrets": []}),
        "nothing was stored"
    );
    // Values alone need no key.
    let r = s
        .req(Method::PUT, "/v1/modules/hook/config", &s.admin)
        .json(&json!({"values": {"a": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

/// A job that may reach the network is stored before its attempt starts: never run by an
/// idle worker ahead of its insert, so never answered with its outcome.
/// A job of a module without an allow-list, enqueued the same way, is handed off.
async fn a_network_job_is_stored_before_it_runs(store: Arc<dyn Store>) {
    let up = Upstream::start().await;
    let s = Server::start_on(store).await;
    let allowed = format!("http://127.0.0.1:{}", up.port);
    push_webhook(&s, "hook", &[&allowed]).await;
    s.push(&s.admin, "echo", guests::ECHO).await;

    // The control: an idle worker takes a lone echo job at its enqueue.
    let mut handed = false;
    for _ in 0..200 {
        let (_, job) = s
            .enqueue(&s.admin, json!({"module": "echo", "input": 1}))
            .await;
        if job["state"] != "available" {
            handed = true;
            break;
        }
        s.wait(&s.admin, job["id"].as_i64().unwrap()).await;
    }
    assert!(
        handed,
        "the hand-off never happened; the test would prove nothing"
    );

    for i in 0..10 {
        let (status, job) = s
            .enqueue(
                &s.admin,
                json!({"module": "hook", "input": {"url": up.url("/ok"), "json": i}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        // Stored before its guest starts: answered waiting, or running once stored for an
        // idle worker; never with an outcome, which only a run ahead of its insert has.
        let state = job["state"].as_str().unwrap();
        assert!(
            matches!(state, "available" | "running"),
            "stored before it ran: {job}"
        );
        let done = s.wait(&s.admin, job["id"].as_i64().unwrap()).await;
        assert_eq!(done["state"], "completed", "{done}");
    }
    assert_eq!(up.seen().len(), 10);
    s.stop().await;
}
