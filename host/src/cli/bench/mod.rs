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
//! - W3 fan-out: with the worker running, enqueue one `examples/fanout` job that enqueues
//!   `--fan-out` (10,000) echo jobs as its children, and time from the enqueue until it
//!   and all its children are completed.
//! - W4 (`--neighbour N`, instead of W1 to W3): another tenant holds N available jobs
//!   in the queue and the pool works through them, while this tenant enqueues
//!   `--latency-jobs` jobs one at a time at `--rate`; for each, the time from enqueue to
//!   its start (the store's `created_at` to `started_at`). Reports p50/p95/p99 and how
//!   many of the neighbour's jobs ran meanwhile. The neighbour's rest stays behind.
//! - `--modules N`: W1's jobs rotate over N distinct modules (echo, each with a custom
//!   section of its own, so N digests to compile, cache and evict); the report adds how
//!   the modules were loaded (memory, artifact, compile).
//! - `--backlog N`: before W1, N more jobs of a lower priority wait in the same queue, so
//!   every claim of W1 runs at that depth (W2 is skipped: the pool would be busy with
//!   them). They stay behind: run it against a throwaway database.
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
use graph::{fan_in, fan_out};

mod graph;
use crate::queue::{Dependency, ModuleKind, NewJob, NewModule, Store, StoreEvent};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::worker::{ChildCaps, Shutdown, Worker, WorkerConfig};

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
    /// Jobs of a lower priority queued before W1 in its queue (W1 at depth; no W2).
    #[arg(long, default_value_t = 0)]
    pub backlog: usize,
    /// W3: jobs a last one depends on (0: no W3).
    #[arg(long, default_value_t = 1_000)]
    pub fan_in: usize,
    /// W3: children one job enqueues (0: no fan-out).
    #[arg(long, default_value_t = 10_000)]
    pub fan_out: usize,
    /// The fan-out module: `examples/fanout`.
    #[arg(long, default_value = "target/guests/wasm32-wasip2/guest/fanout.wasm")]
    pub fan_out_module: PathBuf,
    /// W4: another tenant's jobs queued ahead (fairness under a noisy neighbour).
    #[arg(long, default_value_t = 0)]
    pub neighbour: usize,
    /// W1's jobs rotate over this many distinct modules (the module cache under churn).
    #[arg(long, default_value_t = 1)]
    pub modules: usize,
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
    /// Jobs queued behind W1's.
    pub backlog: usize,
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
    /// W3: ms until the fan-in's jobs and their dependent completed (0: not run).
    pub w3_fan_in_ms: f64,
    /// W3: ms until the fan-out's job and its children completed (0: not run).
    pub w3_fan_out_ms: f64,
}

const TENANT: &str = "wasmq-bench";
/// W4's other tenant.
const NEIGHBOUR: &str = "wasmq-bench-neighbour";

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
    let put = |tenant: &str, name: String, digest: String, bytes: Vec<u8>| {
        store.put_module(NewModule {
            tenant: tenant.into(),
            name,
            kind: ModuleKind::Component,
            digest,
            bytes,
            limits: Default::default(),
        })
    };
    put(NEIGHBOUR, "echo".into(), digest.clone(), bytes.clone()).await?;
    // (name, digest) of each module W1 rotates over; the first is the echo itself.
    let mut modules = Vec::with_capacity(args.modules.max(1));
    for k in 0..args.modules.max(1) {
        let variant = if k == 0 {
            bytes.clone()
        } else {
            with_custom_section(&bytes, k)
        };
        let d = crate::runtime::digest(&variant);
        let name = if k == 0 {
            "echo".to_owned()
        } else {
            format!("echo-{k}")
        };
        put(TENANT, name.clone(), d.clone(), variant).await?;
        modules.push((name, d));
    }
    let queue = format!("wasmq-bench-{:08x}", rand::random::<u32>());
    // Pinned to the uploaded version, as the HTTP API pins each job to the module version
    // it looked up.
    let new_job = |i: usize| {
        let (name, digest) = &modules[i % modules.len()];
        NewJob {
            tenant: TENANT.into(),
            queue: queue.clone(),
            digest: Some(digest.clone()),
            ..NewJob::new(name, format!("{{\"n\": {i}}}").into_bytes())
        }
    };

    if args.neighbour > 0 {
        let pool = WorkerConfig {
            queues: vec![(queue.clone(), args.concurrency)],
            ..WorkerConfig::default()
        };
        return neighbour(&args, &store, runtime, pool, &new_job).await;
    }
    for chunk in (0..args.backlog).collect::<Vec<_>>().chunks(5_000) {
        let behind = |i: &usize| NewJob {
            priority: -1,
            ..new_job(*i)
        };
        store.enqueue(chunk.iter().map(behind).collect()).await?;
    }

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
        children: ChildCaps {
            per_attempt: args.fan_out.max(ChildCaps::default().per_attempt),
            ..ChildCaps::default()
        },
        ..WorkerConfig::default()
    };
    let shutdown = Shutdown::new();
    let cache = runtime.clone();
    let runtime_for_fan_out = runtime.clone();
    let started = Instant::now();
    let worker = tokio::spawn(Worker::new(store.clone(), runtime, config).run(shutdown.clone()));
    wait_all(&store, &mut events, ids).await?;
    let w1_secs = started.elapsed().as_secs_f64();
    let loads = cache.cache_stats();

    // W2: the worker is idle now (unless a backlog keeps it busy); one job at a time.
    let latency_jobs = if args.backlog > 0 {
        0
    } else {
        args.latency_jobs
    };
    let mut latencies = Vec::with_capacity(latency_jobs);
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut tick = tokio::time::interval(gap);
    for i in 0..latency_jobs {
        tick.tick().await;
        let t = Instant::now();
        let job = store
            .enqueue(vec![new_job(args.jobs + i)])
            .await?
            .remove(0)
            .job;
        // A job run before it was stored comes back finished: it is done and durable.
        if !job.state.is_finished() {
            wait_all(&store, &mut events, HashSet::from([job.id])).await?;
        }
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // W3, unless a backlog keeps the pool busy.
    let w3_fan_in_ms = if args.fan_in == 0 || args.backlog > 0 {
        0.0
    } else {
        let first = args.jobs + args.latency_jobs;
        let mut batch: Vec<NewJob> = (first..first + args.fan_in).map(&new_job).collect();
        batch.push(NewJob {
            depends_on: (0..args.fan_in).map(Dependency::Earlier).collect(),
            ..new_job(first + args.fan_in)
        });
        fan_in(&store, &mut events, batch).await?
    };
    let w3_fan_out_ms = if args.fan_out == 0 || args.backlog > 0 {
        0.0
    } else {
        let module = std::fs::read(&args.fan_out_module).with_context(|| {
            format!(
                "reading {} (build it with `cargo build -p wasmq-tests`, pass \
                 --fan-out-module, or --fan-out 0)",
                args.fan_out_module.display()
            )
        })?;
        let (_, digest) = runtime_for_fan_out
            .validate(Arc::new(module.clone()))
            .await?;
        put(TENANT, "fanout".into(), digest.clone(), module).await?;
        let locales: Vec<String> = (0..args.fan_out).map(|i| format!("l{i}")).collect();
        let input = serde_json::json!({ "page": 1, "locales": locales, "module": "echo" });
        let job = NewJob {
            tenant: TENANT.into(),
            queue: queue.clone(),
            digest: Some(digest),
            ..NewJob::new("fanout", serde_json::to_vec(&input)?)
        };
        fan_out(&store, &mut events, job, args.fan_out).await?
    };
    shutdown.trigger();
    worker.await?;

    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| pct(&latencies, p);
    let report = BenchReport {
        store: choice.describe(),
        jobs: args.jobs,
        backlog: args.backlog,
        enqueue_jobs_per_sec: args.jobs as f64 / enqueue_secs,
        w1_jobs_per_sec: args.jobs as f64 / w1_secs,
        w2_p50_ms: pct(0.50),
        w2_p95_ms: pct(0.95),
        w2_p99_ms: pct(0.99),
        w3_fan_in_ms,
        w3_fan_out_ms,
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
        if args.modules > 1 {
            println!(
                "W1 modules:           {:>10} in rotation; loaded from memory {}, artifact {}, compile {} ({} kept in memory)",
                args.modules,
                loads.memory_hits,
                loads.artifact_loads,
                loads.compiles,
                cache.cached_modules()
            );
        }
        if args.backlog > 0 {
            println!(
                "W1 backlog:           {:>10} jobs queued behind (W2 skipped)",
                args.backlog
            );
        } else {
            println!(
                "W2 latency:           p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms ({} jobs at {}/s)",
                report.w2_p50_ms, report.w2_p95_ms, report.w2_p99_ms, latency_jobs, args.rate
            );
        }
        if report.w3_fan_in_ms > 0.0 {
            println!(
                "W3 fan-in:            {:.1} ms until {} jobs and their dependent completed",
                report.w3_fan_in_ms, args.fan_in
            );
        }
        if report.w3_fan_out_ms > 0.0 {
            println!(
                "W3 fan-out:           {:.1} ms until a job and its {} children completed",
                report.w3_fan_out_ms, args.fan_out
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits until every job in `ids` has finished, from `JobsFinished` events; if events
/// were missed, asks the store for the state of each job still awaited.
pub(super) async fn wait_all(
    store: &Arc<dyn Store>,
    events: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    mut ids: HashSet<i64>,
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
                let mut unfinished = HashSet::with_capacity(ids.len());
                for id in ids {
                    let state = store.job_state(TENANT, id).await?;
                    if state.is_some_and(|s| !s.is_finished()) {
                        unfinished.insert(id);
                    }
                }
                ids = unfinished;
            }
        }
    }
    Ok(())
}

/// W4: this tenant's jobs one at a time while [`NEIGHBOUR`]'s backlog is being worked
/// through; prints each one's enqueue→start percentiles.
async fn neighbour(
    args: &BenchArgs,
    store: &Arc<dyn Store>,
    runtime: Runtime,
    pool: WorkerConfig,
    new_job: &dyn Fn(usize) -> NewJob,
) -> anyhow::Result<ExitCode> {
    for chunk in (0..args.neighbour).collect::<Vec<_>>().chunks(5_000) {
        let theirs = |i: &usize| NewJob {
            tenant: NEIGHBOUR.into(),
            ..new_job(*i)
        };
        store.enqueue(chunk.iter().map(theirs).collect()).await?;
    }
    let mut events = store.subscribe();
    let shutdown = Shutdown::new();
    let worker = tokio::spawn(Worker::new(store.clone(), runtime, pool).run(shutdown.clone()));
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut tick = tokio::time::interval(gap);
    let mut waits = Vec::with_capacity(args.latency_jobs);
    let started = Instant::now();
    for i in 0..args.latency_jobs {
        tick.tick().await;
        let id = store.enqueue(vec![new_job(i)]).await?.remove(0).job.id;
        wait_all(store, &mut events, HashSet::from([id])).await?;
        let job = store
            .get(TENANT, id)
            .await?
            .context("a bench job vanished")?;
        let start = job.started_at.context("a finished job without a start")?;
        let micros = (start - job.created_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(0);
        waits.push(micros as f64 / 1e3);
    }
    let secs = started.elapsed().as_secs_f64();
    shutdown.trigger();
    worker.await?;
    let left: u64 = store
        .queues(NEIGHBOUR)
        .await?
        .iter()
        .map(|q| q.available + q.scheduled + q.retryable + q.running)
        .sum();
    let ran = args.neighbour as u64 - left.min(args.neighbour as u64);
    waits.sort_by(|a, b| a.total_cmp(b));
    let (p50, p95, p99) = (pct(&waits, 0.50), pct(&waits, 0.95), pct(&waits, 0.99));
    if args.json {
        let report = serde_json::json!({
            "neighbour_backlog": args.neighbour, "start_p50_ms": p50, "start_p95_ms": p95,
            "start_p99_ms": p99, "neighbour_jobs_per_sec": ran as f64 / secs,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "W4 start under a neighbour's {} jobs: p50 {p50:.2} ms, p95 {p95:.2} ms, p99 {p99:.2} ms ({} jobs at {}/s)",
            args.neighbour, args.latency_jobs, args.rate
        );
        println!("W4 neighbour meanwhile: {:>10.0} jobs/s", ran as f64 / secs);
    }
    Ok(ExitCode::SUCCESS)
}

/// The `p` quantile of sorted `values` (0 when empty).
fn pct(values: &[f64], p: f64) -> f64 {
    values
        .get(((values.len() as f64 * p) as usize).min(values.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

/// `component` with a custom section appended that makes its digest its own (`k`).
fn with_custom_section(component: &[u8], k: usize) -> Vec<u8> {
    let name = b"wasmq-bench";
    let payload = k.to_le_bytes();
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = component.to_vec();
    out.push(0); // a custom section
    out.push(section.len() as u8); // its size, one LEB128 byte (under 128)
    out.extend_from_slice(&section);
    out
}
