//! Helpers for tests that run workers against a real PostgreSQL.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmq_host::queue::postgres::PgStore;
use wasmq_host::queue::{
    Job, JobFilter, JobState, ModuleKind, NewJob, NewModule, Store, StoreError,
};
use wasmq_host::runtime::{Limits, Runtime, RuntimeConfig};
use wasmq_host::worker::{Shutdown, Worker, WorkerConfig};

/// A store on a fresh database.
pub async fn fresh_store() -> Arc<dyn Store> {
    fresh_store_with_url().await.0
}

/// A store on a fresh database, and the database's URL (for a second process).
pub async fn fresh_store_with_url() -> (Arc<dyn Store>, String) {
    let url = crate::pg::fresh_database().await;
    (store_at(&url).await, url)
}

/// A PostgreSQL store on the database at `url` (migrated on connect).
pub async fn store_at(url: &str) -> Arc<dyn Store> {
    let store = PgStore::connect(url, 16)
        .await
        .expect("connect to the test database");
    Arc::new(store)
}

/// Uploads a guest under `name` (tenant `default`) and returns its digest.
pub async fn put_module(store: &Arc<dyn Store>, name: &str, path: &str) -> String {
    put_module_for(store, "default", name, path).await
}

/// [`put_module`] for `tenant`.
pub async fn put_module_for(
    store: &Arc<dyn Store>,
    tenant: &str,
    name: &str,
    path: &str,
) -> String {
    let bytes = crate::guest_bytes(path);
    let digest = wasmq_host::runtime::digest(&bytes);
    let kind = if path.ends_with("wasi-command.wasm") {
        ModuleKind::Command
    } else {
        ModuleKind::Component
    };
    store
        .put_module(NewModule {
            tenant: tenant.into(),
            name: name.into(),
            kind,
            digest: digest.clone(),
            bytes,
            limits: Default::default(),
        })
        .await
        .expect("put module");
    digest
}

/// A job of `module` with JSON `input`.
pub fn job(module: &str, input: serde_json::Value) -> NewJob {
    NewJob::new(module, input.to_string().into_bytes())
}

/// A running worker pool and the means to stop it.
pub struct RunningWorker {
    /// Triggers a graceful shutdown.
    pub shutdown: Shutdown,
    /// The pool's task.
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    /// Graceful shutdown, waiting for the pool to stop.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("worker task");
    }
}

/// Starts a worker pool over `store` with `config` (and a runtime of `slots` slots
/// whose maximum fuel is unbounded, so tests can spin until a timeout or a cancel).
pub fn start_worker(store: Arc<dyn Store>, config: WorkerConfig, slots: u32) -> RunningWorker {
    let max_limits = Limits {
        fuel: u64::MAX,
        ..Limits::default_max()
    };
    let runtime = Runtime::new(RuntimeConfig {
        slots,
        max_limits,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    start_worker_on(store, config, runtime)
}

/// Starts a worker over `store` that runs its jobs on `runtime`.
pub fn start_worker_on(
    store: Arc<dyn Store>,
    config: WorkerConfig,
    runtime: Runtime,
) -> RunningWorker {
    let shutdown = Shutdown::new();
    let task = tokio::spawn(Worker::new(store, runtime, config).run(shutdown.clone()));
    RunningWorker { shutdown, task }
}

/// Polls `check` until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until job `id` is finished (completed, failed or cancelled) and returns it.
pub async fn finished(store: &Arc<dyn Store>, id: i64, within: Duration) -> Job {
    eventually(within, &format!("job {id} to finish"), || async {
        let j = store
            .get("default", id)
            .await
            .expect("get")
            .expect("job exists");
        j.state.is_finished().then_some(j)
    })
    .await
}

/// Waits until job `id` is in `state`.
pub async fn in_state(store: &Arc<dyn Store>, id: i64, state: JobState, within: Duration) -> Job {
    eventually(within, &format!("job {id} to be {state:?}"), || async {
        let j = store
            .get("default", id)
            .await
            .expect("get")
            .expect("job exists");
        (j.state == state).then_some(j)
    })
    .await
}

/// Every job of tenant `default`, newest first (every page of the listing).
pub async fn list_all(store: &dyn Store) -> Result<Vec<Job>, StoreError> {
    let mut jobs = Vec::new();
    let mut cursor = None;
    loop {
        let filter = JobFilter {
            limit: 1000,
            cursor,
            ..JobFilter::default()
        };
        let page = store.list("default", &filter).await?;
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(jobs),
        }
    }
}

/// Asserts that `j` completed with the result `expected`.
pub fn assert_completed_with(j: &Job, expected: &[u8]) {
    assert_eq!(
        j.state,
        JobState::Completed,
        "job {} is {:?}",
        j.id,
        j.state
    );
    assert_eq!(
        j.result.as_deref(),
        Some(expected),
        "job {}: the result is not its own",
        j.id
    );
}
