//! A Python or JavaScript task gets an interpreter's fuel: with no limit set it does
//! seconds of work that the compiled maximum would stop, and its module may ask for more
//! fuel at upload than a compiled one may.
//!
//! The components are tens of MiB: the API and the worker share the artifact directory
//! of the interpreted tests, so each is compiled once per build directory.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmq_host::runtime::{DEFAULT_FUEL, INTERPRETED_FUEL, RuntimeConfig};
use wasmq_tests::guests;
use wasmq_tests::harness::fresh_store;

use support::Server;

/// `count` steps: about 3.5e9 fuel in either interpreter, over the compiled default.
const STEPS: u64 = 3_000_000;

async fn server() -> Server {
    Server::start_with_runtime(
        fresh_store().await,
        RuntimeConfig {
            slots: 2,
            artifact_dir: Some(wasmq_tests::interpreter_artifact_dir()),
            compile_timeout: Duration::from_secs(600),
            ..RuntimeConfig::default()
        },
    )
    .await
}

async fn count(server: &Server, module: &str, limits: Value) -> Value {
    let (status, job) = server
        .enqueue(
            &server.admin,
            json!({"module": module, "input": {"attack": "count", "n": STEPS},
                   "limits": limits, "max_attempts": 1}),
        )
        .await;
    assert!(status.is_success(), "{status}: {job}");
    server
        .wait(&server.admin, job["id"].as_i64().unwrap())
        .await
}

async fn upload(server: &Server, name: &str, path: &str, query: &str) -> (StatusCode, Value) {
    let r = server
        .req(
            Method::PUT,
            &format!("/v1/modules/{name}{query}"),
            &server.admin,
        )
        .body(wasmq_tests::guest_bytes(path))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn interpreted_tasks_get_an_interpreters_fuel() {
    let server = server().await;
    for (name, path) in [("py", guests::PY_HOSTILE), ("js", guests::JS_HOSTILE)] {
        let (status, module) = upload(&server, name, path, "").await;
        assert_eq!(status, StatusCode::CREATED, "{module}");

        let done = count(&server, name, json!({})).await;
        assert_eq!(done["state"], "completed", "{name}: {done}");
        assert!(
            done["usage"]["fuel"].as_u64().unwrap() > DEFAULT_FUEL,
            "{name}: {done}"
        );

        // The compiled maximum stops the same work.
        let stopped = count(&server, name, json!({"fuel": DEFAULT_FUEL})).await;
        assert_eq!(stopped["state"], "failed", "{name}: {stopped}");
        assert_eq!(stopped["error"]["kind"], "out_of_fuel", "{name}: {stopped}");
    }

    // At upload, a module's fuel may go up to its language's maximum, and no further.
    let more = format!("?fuel={}", 5 * DEFAULT_FUEL);
    let (status, module) = upload(&server, "py-more", guests::PY_HOSTILE, &more).await;
    assert_eq!(status, StatusCode::CREATED, "{module}");
    assert_eq!(module["limits"]["fuel"], 5 * DEFAULT_FUEL, "{module}");
    let (status, problem) = upload(&server, "echo-more", guests::ECHO, &more).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("fuel"),
        "{problem}"
    );
    let over = format!("?fuel={}", INTERPRETED_FUEL + 1);
    let (status, problem) = upload(&server, "py-over", guests::PY_HOSTILE, &over).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    // A compiled task's job may ask for more at enqueue (its language is not read there)
    // but runs with at most the compiled maximum.
    let (status, module) = upload(&server, "rust", guests::HOSTILE, "").await;
    assert_eq!(status, StatusCode::CREATED, "{module}");
    let (status, job) = server
        .enqueue(
            &server.admin,
            json!({"module": "rust", "input": {"op": "spin"}, "max_attempts": 1,
                   "limits": {"fuel": 5 * DEFAULT_FUEL, "timeout_ms": 20_000}}),
        )
        .await;
    assert!(status.is_success(), "{status}: {job}");
    let spun = server
        .wait(&server.admin, job["id"].as_i64().unwrap())
        .await;
    assert_eq!(spun["error"]["kind"], "out_of_fuel", "{spun}");
    assert!(
        spun["usage"]["fuel"].as_u64().unwrap() <= DEFAULT_FUEL,
        "{spun}"
    );
    server.stop().await;
}
