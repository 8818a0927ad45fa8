//! `wasmq serve`: the HTTP API and a worker pool in one process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::api::{self, ApiConfig, AppState};
use crate::queue::Store;
use crate::runtime::{Limits, Runtime, RuntimeConfig};
use crate::worker::{Shutdown, Worker, WorkerConfig};

/// Arguments of `wasmq serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// PostgreSQL URL, for production and for more than one node. Without one, the
    /// embedded SQLite store under `--data-dir` is used.
    #[arg(long, env = "WASMQ_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory of the embedded store (used when no database URL is given).
    #[arg(long, env = "WASMQ_DATA_DIR", default_value = "./wasmq-data")]
    pub data_dir: PathBuf,
    /// Address the API listens on.
    #[arg(long, env = "WASMQ_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Queues to serve with their concurrency, e.g. `--queue default=8 --queue mail=2`.
    #[arg(long = "queue", value_parser = super::worker::parse_queue, default_value = "default=8")]
    pub queues: Vec<(String, usize)>,
    /// Instance slots (attempts running at once across all queues).
    #[arg(long, env = "WASMQ_SLOTS", default_value_t = 16)]
    pub slots: u32,
    /// Where compiled modules are cached across restarts.
    #[arg(long, env = "WASMQ_ARTIFACT_DIR")]
    pub artifact_dir: Option<PathBuf>,
    /// Running jobs get this long to finish on SIGTERM/SIGINT before they are given back.
    #[arg(long, env = "WASMQ_GRACE", value_parser = super::parse_duration, default_value = "30s")]
    pub grace: Duration,
    /// How long a claimed job is held without a heartbeat; after a crash, running jobs
    /// are run again once this has passed.
    #[arg(long, env = "WASMQ_LEASE", value_parser = super::parse_duration, default_value = "30s")]
    pub lease: Duration,
    /// Database connections of this node.
    #[arg(long, env = "WASMQ_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,
    /// Server-wide maximum fuel per attempt (modules and jobs may ask for less).
    #[arg(long, env = "WASMQ_MAX_FUEL", default_value_t = Limits::default_max().fuel)]
    pub max_fuel: u64,
    /// Server-wide maximum wall clock per attempt.
    #[arg(long, env = "WASMQ_MAX_TIMEOUT", value_parser = super::parse_duration, default_value = "30s")]
    pub max_timeout: Duration,
    /// Server-wide maximum linear memory per attempt.
    #[arg(long, env = "WASMQ_MAX_MEMORY", value_parser = super::parse_size, default_value = "64MiB")]
    pub max_memory: u64,
    /// Largest module upload, e.g. 64MiB.
    #[arg(long, env = "WASMQ_MAX_MODULE", value_parser = super::parse_size, default_value = "64MiB")]
    pub max_module: u64,
    /// Run the API only, no workers (run `wasmq worker` elsewhere).
    #[arg(long)]
    pub no_workers: bool,
}

pub(super) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let choice = super::StoreChoice::from_args(args.database_url.as_deref(), &args.data_dir);
    match &choice {
        super::StoreChoice::Sqlite(path) => tracing::info!(
            path = %path.display(),
            "no database URL given: using the embedded SQLite store at {} (one node; set WASMQ_DATABASE_URL for PostgreSQL)",
            path.display()
        ),
        super::StoreChoice::Postgres(_) => tracing::info!("using {}", choice.describe()),
    }
    let store: Arc<dyn Store> = choice.open(args.db_connections).await?;
    let max_limits = Limits {
        fuel: args.max_fuel,
        timeout_ms: u64::try_from(args.max_timeout.as_millis()).unwrap_or(u64::MAX),
        memory_bytes: args.max_memory,
        ..Limits::default_max()
    };
    let runtime = Runtime::new(RuntimeConfig {
        slots: args.slots,
        max_limits,
        artifact_dir: args.artifact_dir.clone(),
        max_module_bytes: usize::try_from(args.max_module).unwrap_or(usize::MAX),
        ..RuntimeConfig::default()
    })?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "API listening");

    let shutdown = Shutdown::new();
    tokio::spawn(super::signals::on_shutdown_signal(shutdown.clone()));

    let workers = if args.no_workers {
        None
    } else {
        let config = WorkerConfig {
            queues: args.queues.clone(),
            grace: args.grace,
            lease: args.lease,
            ..WorkerConfig::default()
        };
        tracing::info!(worker = %config.id, queues = ?config.queues, "workers starting");
        let worker = Worker::new(store.clone(), runtime.clone(), config);
        Some(tokio::spawn(worker.run(shutdown.clone())))
    };

    let state = AppState::new(store, runtime, ApiConfig::default());
    let stop = shutdown.clone();
    api::serve(listener, state, async move { stop.wait().await })
        .await
        .context("serving the API")?;
    if let Some(workers) = workers {
        workers.await.context("the worker pool panicked")?;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
