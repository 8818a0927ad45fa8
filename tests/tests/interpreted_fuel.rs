//! A Python or JavaScript module gets an interpreter's fuel at upload: with no limit set,
//! its task does seconds of work that the compiled default would stop, while a compiled
//! module keeps the server's default and an upload that names its fuel keeps that.
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

#[tokio::test]
async fn interpreted_modules_get_an_interpreters_fuel_at_upload() {
    let server = server().await;
    let key = server.admin.clone();

    let (status, rust) = server.push(&key, "echo", guests::ECHO).await;
    assert_eq!(status, StatusCode::CREATED, "{rust}");
    assert!(rust["limits"].get("fuel").is_none(), "{rust}");

    for (name, path) in [("py", guests::PY_HOSTILE), ("js", guests::JS_HOSTILE)] {
        let (status, module) = server.push(&key, name, path).await;
        assert_eq!(status, StatusCode::CREATED, "{module}");
        assert_eq!(module["limits"]["fuel"], INTERPRETED_FUEL, "{module}");

        let done = count(&server, name, json!({})).await;
        assert_eq!(done["state"], "completed", "{name}: {done}");
        assert!(
            done["usage"]["fuel"].as_u64().unwrap() > DEFAULT_FUEL,
            "{name}: {done}"
        );

        // The compiled default stops the same work.
        let stopped = count(&server, name, json!({"fuel": DEFAULT_FUEL})).await;
        assert_eq!(stopped["state"], "failed", "{name}: {stopped}");
        assert_eq!(stopped["error"]["kind"], "out_of_fuel", "{name}: {stopped}");
    }

    // An upload that names its fuel keeps it.
    let r = server
        .req(Method::PUT, "/v1/modules/py-small?fuel=5000000", &key)
        .body(wasmq_tests::guest_bytes(guests::PY_HOSTILE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let module: Value = r.json().await.unwrap();
    assert_eq!(module["limits"]["fuel"], 5_000_000, "{module}");
    server.stop().await;
}
