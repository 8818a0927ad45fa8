//! `wasmq bench`: the end-to-end workloads W1 (throughput) and W2 (latency) against the
//! configured store, every job in a fresh sandbox.
//!
//! - W1: enqueue `--jobs` (10,000) `echo` jobs in bulk (input `{"n": i}`), then start one
//!   worker pool with `--concurrency` (8) and time from its start until all are
//!   completed. Reports jobs/s, and the enqueue rate separately.
//! - W2: with the worker running and idle, enqueue `--latency-jobs` (500) jobs one at a
//!   time at `--rate` (50) jobs/s from a separate task; for each, the time from enqueue
//!   to completion (the job's `JobsFinished` event, or the enqueue's answer when the job
//!   was run before it was stored and comes back finished). Reports p50/p95/p99.
//! - W3: with the worker running, enqueue `--fan-in` (1,000) jobs and one that depends on
//!   them all in one batch, and time from the enqueue until all are completed: the
//!   dependent is released by the last of them.
//!
//! Jobs go to a queue of their own (`wasmq-bench-…`) in tenant `wasmq-bench`, so a bench
//! against a live database does not touch other work.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::store::StoreChoice;
use crate::queue::{
    Dependency, JobFilter, JobState, ModuleKind, NewJob, NewModule, Store, StoreEvent,
};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::worker::{Shutdown, Worker, WorkerConfig};

/// Arguments of `wasmq bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// PostgreSQL URL; without one the embedded store under `--data-dir` is used.
    #[arg(long, env = "WASMQ_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory of the embedded store.
    #[arg(long, env = "WASMQ_DATA_DIR", default_value = "./wasmq-data")]
    pub data_dir: PathBuf,
    /// The echo module: `examples/echo`, or a Python/JavaScript echo built by the tests.
    #[arg(long, default_value = "target/guests/wasm32-wasip2/guest/echo.wasm")]
    pub module: PathBuf,
    /// W1: jobs enqueued in bulk.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: usize,
    /// Worker concurrency.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// W2: jobs enqueued one at a time.
    #[arg(long, default_value_t = 500)]
    pub latency_jobs: usize,
    /// W2: jobs per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// W3: jobs a last one depends on (0: no W3).
    #[arg(long, default_value_t = 1_000)]
    pub fan_in: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The figures of one run.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Which store.
    pub store: String,
    /// W1 jobs.
    pub jobs: usize,
    /// W1 bulk enqueue rate, jobs/s.
    pub enqueue_jobs_per_sec: f64,
    /// W1 worker throughput, jobs/s.
    pub w1_jobs_per_sec: f64,
    /// W2 latency percentiles, ms.
    pub w2_p50_ms: f64,
    /// W2 p95, ms.
    pub w2_p95_ms: f64,
    /// W2 p99, ms.
    pub w2_p99_ms: f64,
    /// W3: from the enqueue of the fan-in until all its jobs completed, ms.
    pub w3_fan_in_ms: f64,
}

const TENANT: &str = "wasmq-bench";

pub(super) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let choice = StoreChoice::from_args(args.database_url.as_deref(), &args.data_dir);
    let store = choice.open(16).await?;
    let bytes = std::fs::read(&args.module).with_context(|| {
        format!(
            "reading {} (build it with `cargo build -p wasmq-tests`, or pass --module)",
            args.module.display()
        )
    })?;
    let runtime = Runtime::new(RuntimeConfig {
        slots: args.concurrency.max(1) as u32,
        // A Python or JavaScript echo is tens of MiB: compile it once per machine.
        artifact_dir: super::default_artifact_dir(),
        ..RuntimeConfig::default()
    })?;
    let (kind, digest) = runtime.validate(Arc::new(bytes.clone())).await?;
    anyhow::ensure!(
        kind == crate::runtime::ModuleKind::Component,
        "the bench module must be an echo component (Rust, Python or JavaScript)"
    );
    store
        .put_module(NewModule {
            tenant: TENANT.into(),
            name: "echo".into(),
            kind: ModuleKind::Component,
            digest: digest.clone(),
            bytes,
            limits: Default::default(),
        })
        .await?;
    let queue = format!("wasmq-bench-{:08x}", rand::random::<u32>());
    // Pinned to the uploaded version, as the HTTP API pins each job to the module version
    // it looked up.
    let new_job = |i: usize| NewJob {
        tenant: TENANT.into(),
        queue: queue.clone(),
        digest: Some(digest.clone()),
        ..NewJob::new("echo", format!("{{\"n\": {i}}}").into_bytes())
    };

    // W1: bulk enqueue, then one pool drains it.
    let started = Instant::now();
    let mut ids = HashSet::with_capacity(args.jobs);
    for chunk in (0..args.jobs).collect::<Vec<_>>().chunks(5_000) {
        for e in store
            .enqueue(chunk.iter().map(|i| new_job(*i)).collect())
            .await?
        {
            ids.insert(e.job.id);
        }
    }
    let enqueue_secs = started.elapsed().as_secs_f64();
    let mut events = store.subscribe();
    let config = WorkerConfig {
        queues: vec![(queue.clone(), args.concurrency)],
        ..WorkerConfig::default()
    };
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let worker = tokio::spawn(Worker::new(store.clone(), runtime, config).run(shutdown.clone()));
    wait_all(&store, &mut events, ids, &queue).await?;
    let w1_secs = started.elapsed().as_secs_f64();

    // W2: the worker is idle now; one job at a time.
    let mut latencies = Vec::with_capacity(args.latency_jobs);
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut tick = tokio::time::interval(gap);
    for i in 0..args.latency_jobs {
        tick.tick().await;
        let t = Instant::now();
        let job = store
            .enqueue(vec![new_job(args.jobs + i)])
            .await?
            .remove(0)
            .job;
        // A job run before it was stored comes back finished: it is done and durable.
        if !job.state.is_finished() {
            wait_all(&store, &mut events, HashSet::from([job.id]), &queue).await?;
        }
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let w3_fan_in_ms = if args.fan_in == 0 {
        0.0
    } else {
        let first = args.jobs + args.latency_jobs;
        let mut batch: Vec<NewJob> = (first..first + args.fan_in).map(&new_job).collect();
        batch.push(NewJob {
            depends_on: (0..args.fan_in).map(Dependency::Earlier).collect(),
            ..new_job(first + args.fan_in)
        });
        fan_in(&store, &mut events, batch, &queue).await?
    };
    shutdown.trigger();
    worker.await?;

    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let report = BenchReport {
        store: choice.describe(),
        jobs: args.jobs,
        enqueue_jobs_per_sec: args.jobs as f64 / enqueue_secs,
        w1_jobs_per_sec: args.jobs as f64 / w1_secs,
        w2_p50_ms: pct(0.50),
        w2_p95_ms: pct(0.95),
        w2_p99_ms: pct(0.99),
        w3_fan_in_ms,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("store:                {}", report.store);
        println!(
            "W1 bulk enqueue:      {:>10.0} jobs/s ({} jobs)",
            report.enqueue_jobs_per_sec, report.jobs
        );
        println!(
            "W1 throughput:        {:>10.0} jobs/s (concurrency {})",
            report.w1_jobs_per_sec, args.concurrency
        );
        println!(
            "W2 latency:           p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms ({} jobs at {}/s)",
            report.w2_p50_ms, report.w2_p95_ms, report.w2_p99_ms, args.latency_jobs, args.rate
        );
        println!(
            "W3 fan-in:            {:.1} ms until {} jobs and their dependent completed",
            report.w3_fan_in_ms, args.fan_in
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// W3: enqueues `batch` (jobs, then one depending on them all) and waits until all are
/// finished: the time in ms. Fails unless the dependent completed.
async fn fan_in(
    store: &Arc<dyn Store>,
    events: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    batch: Vec<NewJob>,
    queue: &str,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let enqueued = store.enqueue(batch).await?;
    let last = enqueued.last().context("an empty fan-in")?.job.id;
    wait_all(
        store,
        events,
        enqueued.iter().map(|e| e.job.id).collect(),
        queue,
    )
    .await?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let state = store.job_state(TENANT, last).await?;
    anyhow::ensure!(
        state == Some(JobState::Completed),
        "the fan-in's dependent ended {state:?}"
    );
    Ok(ms)
}

/// Waits until every job in `ids` has finished, from `JobsFinished` events; if events
/// were missed, falls back to asking the store whether the queue still has work.
async fn wait_all(
    store: &Arc<dyn Store>,
    events: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    mut ids: HashSet<i64>,
    queue: &str,
) -> anyhow::Result<()> {
    use tokio::sync::broadcast::error::RecvError;
    while !ids.is_empty() {
        match tokio::time::timeout(Duration::from_millis(250), events.recv()).await {
            Ok(Ok(StoreEvent::JobsFinished { ids: done })) => {
                for id in done {
                    ids.remove(&id);
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Closed)) => anyhow::bail!("the store's event stream closed"),
            Ok(Err(RecvError::Lagged(_))) | Err(_) => {
                if !queue_has_work(store, queue).await? {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

async fn queue_has_work(store: &Arc<dyn Store>, queue: &str) -> anyhow::Result<bool> {
    for state in [
        JobState::Waiting,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Scheduled,
    ] {
        let filter = JobFilter {
            state: Some(state),
            queue: Some(queue.into()),
            limit: 1,
            ..Default::default()
        };
        if !store.list(TENANT, &filter).await?.jobs.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}
