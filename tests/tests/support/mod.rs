//! The test server of the API tests: the real API on a loopback socket over a real store,
//! with a worker pool, and helpers to call it.
#![allow(dead_code)] // each test file uses its own part

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmq_host::api::{self, ApiConfig, AppState};
use wasmq_host::queue::{Scope, Store};
use wasmq_host::runtime::{Runtime, RuntimeConfig};
use wasmq_host::worker::{Shutdown, WorkerConfig};
use wasmq_tests::harness::{RunningWorker, fresh_store, start_worker, start_worker_on};

/// Largest module the test server accepts (the example guests are ≤ 512 KiB).
pub const MAX_MODULE: usize = 1 << 20;

pub struct Server {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    /// An all-scopes key of tenant `default`.
    pub admin: String,
    /// A handle on the server's state (shared with the running server).
    pub state: AppState,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    worker: RunningWorker,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_on(fresh_store().await).await
    }

    pub async fn start_on(store: Arc<dyn Store>) -> Server {
        Server::start_with(store, ApiConfig::default()).await
    }

    /// A server over `store` with API settings `config`.
    pub async fn start_with(store: Arc<dyn Store>, config: ApiConfig) -> Server {
        let runtime = Runtime::new(RuntimeConfig {
            slots: 2,
            max_module_bytes: MAX_MODULE,
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let worker = start_worker(store.clone(), worker_config(&config), 4);
        Server::serve(store, config, runtime, worker).await
    }

    /// A server whose API and worker both run on sandboxes of `runtime`'s settings.
    pub async fn start_with_runtime(store: Arc<dyn Store>, runtime: RuntimeConfig) -> Server {
        let config = ApiConfig::default();
        let worker = start_worker_on(
            store.clone(),
            worker_config(&config),
            Runtime::new(runtime.clone()).expect("worker runtime"),
        );
        let runtime = Runtime::new(runtime).expect("runtime");
        Server::serve(store, config, runtime, worker).await
    }

    async fn serve(
        store: Arc<dyn Store>,
        config: ApiConfig,
        runtime: Runtime,
        worker: RunningWorker,
    ) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let state = AppState::new(store.clone(), runtime, config);
        let stop = shutdown.clone();
        let task = tokio::spawn(api::serve(listener, state.clone(), async move {
            stop.wait().await
        }));
        let admin = store
            .create_key("default", Some("test admin"), &[Scope::Admin])
            .await
            .unwrap()
            .key;
        Server {
            base: format!("http://{addr}"),
            addr,
            store,
            http: reqwest::Client::new(),
            admin,
            state,
            shutdown,
            task,
            worker,
        }
    }

    pub async fn key(&self, tenant: &str, scopes: &[Scope]) -> String {
        self.store
            .create_key(tenant, None, scopes)
            .await
            .unwrap()
            .key
    }

    pub fn req(&self, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    /// Sends a bodiless request and returns its JSON answer.
    pub async fn call(&self, method: Method, path: &str, key: &str) -> Value {
        self.req(method, path, key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn push(&self, key: &str, name: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .req(Method::PUT, &format!("/v1/modules/{name}"), key)
            .body(wasmq_tests::guest_bytes(path))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    pub async fn enqueue(&self, key: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .req(Method::POST, "/v1/jobs", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    pub async fn wait(&self, key: &str, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job: Value = self
                .call(Method::GET, &format!("/v1/jobs/{id}?wait=10s"), key)
                .await;
            if matches!(
                job["state"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
        }
    }

    /// Enqueues `n` jobs of module `hostile` (pushed by `key`) that spin until their
    /// 200 ms timeout, one attempt each, waits for them, and tells whether any two of
    /// them were running (claimed and not yet finished) at the same time.
    pub async fn spinners_overlap(&self, key: &str, n: usize) -> bool {
        let spin = json!({"module": "hostile", "input": {"op": "spin"}, "max_attempts": 1,
                          "limits": {"timeout_ms": 200}});
        let r = self
            .req(Method::POST, "/v1/jobs/batch", key)
            .json(&json!({ "jobs": vec![spin; n] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let batch: Value = r.json().await.unwrap();
        let time = |job: &Value, field: &str| -> chrono::DateTime<chrono::Utc> {
            job[field].as_str().expect(field).parse().unwrap()
        };
        let mut spans = Vec::new();
        for job in batch["jobs"].as_array().unwrap() {
            let done = self.wait(key, job["id"].as_i64().unwrap()).await;
            assert_eq!(done["error"]["kind"], "timeout", "{done}");
            spans.push((time(&done, "started_at"), time(&done, "finished_at")));
        }
        spans.sort();
        spans.windows(2).any(|w| w[1].0 < w[0].1)
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap();
        self.worker.stop().await;
    }
}

fn worker_config(api: &ApiConfig) -> WorkerConfig {
    WorkerConfig {
        queues: vec![("default".into(), 4)],
        // The same process: the API seals secrets, the worker opens them.
        secret_key: api.secret_key.clone(),
        ..WorkerConfig::default()
    }
}

/// Asserts a problem+json answer with `status` and type slug `kind`.
pub async fn problem(response: reqwest::Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["type"],
        format!("https://wasmq.dev/problems/{kind}"),
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}
