//! `wasmq serve`: the HTTP API and a worker pool in one process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::api::{self, ApiConfig, AppState};
use crate::queue::Store;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::worker::{Shutdown, Worker};

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
    #[command(flatten)]
    pub pool: super::worker::PoolArgs,
    /// Largest module upload, e.g. 64MiB.
    #[arg(long, env = "WASMQ_MAX_MODULE", value_parser = super::parse_size, default_value = "64MiB")]
    pub max_module: u64,
    /// Run the API only, no workers (run `wasmq worker` elsewhere).
    #[arg(long)]
    pub no_workers: bool,
    /// A request's head must arrive within this; also how long an idle connection is kept.
    #[arg(long, env = "WASMQ_HEADER_TIMEOUT", value_parser = super::parse_duration, default_value = "15s")]
    pub header_timeout: Duration,
    /// A request's whole body must arrive within this (else 408).
    #[arg(long, env = "WASMQ_BODY_TIMEOUT", value_parser = super::parse_duration, default_value = "60s")]
    pub body_timeout: Duration,
    /// Long-polls one key may have waiting at once (more get 429).
    #[arg(long, env = "WASMQ_MAX_LONG_POLLS", default_value_t = 32)]
    pub max_long_polls: usize,
    #[command(flatten)]
    pub tenant_defaults: super::tenant::TenantDefaultArgs,
}

pub(super) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.pool.burst && args.no_workers {
        anyhow::bail!("--burst runs jobs until none is left: it needs workers (drop --no-workers)");
    }
    let tenant_defaults = args.tenant_defaults.quotas(
        args.pool.tenant_max_running,
        args.pool.tenant_max_unfinished_jobs,
    )?;
    let choice = super::StoreChoice::from_args(args.database_url.as_deref(), &args.data_dir);
    match &choice {
        super::StoreChoice::Sqlite(path) => tracing::info!(
            path = %path.display(),
            "no database URL given: using the embedded SQLite store at {} (one node; set WASMQ_DATABASE_URL for PostgreSQL)",
            path.display()
        ),
        super::StoreChoice::Postgres(_) => tracing::info!("using {}", choice.describe()),
    }
    let store: Arc<dyn Store> = choice.open(args.pool.db_connections).await?;
    store.set_default_max_running(tenant_defaults.max_running);
    let runtime = Runtime::new(RuntimeConfig {
        max_module_bytes: usize::try_from(args.max_module).unwrap_or(usize::MAX),
        ..args.pool.runtime_config()?
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
        let config = args.pool.worker_config();
        tracing::info!(worker = %config.id, queues = ?config.queues, "workers starting");
        let worker = Worker::new(store.clone(), runtime.clone(), config);
        Some(tokio::spawn(worker.run(shutdown.clone())))
    };

    let api_config = ApiConfig {
        header_read_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        max_long_polls_per_key: args.max_long_polls,
        secret_key: args.pool.secret_key.clone(),
        tenant_defaults,
        ..ApiConfig::default()
    };
    let state = AppState::new(store, runtime, api_config);
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
