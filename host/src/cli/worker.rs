//! `wasmq worker`: run workers only, so more machines can join one database.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::queue::postgres::PgStore;
use crate::runtime::{Limits, Runtime, RuntimeConfig};
use crate::worker::{Shutdown, Worker, WorkerConfig};

/// Arguments of `wasmq worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// PostgreSQL URL shared by every node.
    #[arg(long, env = "WASMQ_DATABASE_URL")]
    pub database_url: String,
    /// Queues to serve with their concurrency, e.g. `--queue default=8 --queue mail=2`.
    #[arg(long = "queue", value_parser = parse_queue, default_value = "default=8")]
    pub queues: Vec<(String, usize)>,
    /// Instance slots (attempts running at once across all queues).
    #[arg(long, env = "WASMQ_SLOTS", default_value_t = 16)]
    pub slots: u32,
    /// Where compiled modules are cached across restarts.
    #[arg(long, env = "WASMQ_ARTIFACT_DIR")]
    pub artifact_dir: Option<PathBuf>,
    /// Seconds running jobs get to finish on SIGTERM/SIGINT before they are given back.
    #[arg(long, env = "WASMQ_GRACE", value_parser = super::parse_duration, default_value = "30s")]
    pub grace: Duration,
    /// How long a claimed job is held without a heartbeat.
    #[arg(long, env = "WASMQ_LEASE", value_parser = super::parse_duration, default_value = "30s")]
    pub lease: Duration,
    /// Server-wide maximum fuel per attempt (jobs may ask for less).
    #[arg(long, env = "WASMQ_MAX_FUEL", default_value_t = Limits::default_max().fuel)]
    pub max_fuel: u64,
    /// Server-wide maximum wall clock per attempt.
    #[arg(long, env = "WASMQ_MAX_TIMEOUT", value_parser = super::parse_duration, default_value = "30s")]
    pub max_timeout: Duration,
    /// Server-wide maximum linear memory per attempt.
    #[arg(long, env = "WASMQ_MAX_MEMORY", value_parser = super::parse_size, default_value = "64MiB")]
    pub max_memory: u64,
    /// Database connections of this node.
    #[arg(long, env = "WASMQ_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,
}

pub(super) fn parse_queue(s: &str) -> Result<(String, usize), String> {
    let (name, n) = s.split_once('=').unwrap_or((s, "8"));
    let n: usize = n
        .parse()
        .map_err(|_| format!("`{s}`: concurrency must be a number (e.g. default=8)"))?;
    if name.is_empty() || n == 0 {
        return Err(format!(
            "`{s}`: give a queue name and a concurrency of at least 1"
        ));
    }
    Ok((name.to_owned(), n))
}

pub(super) async fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let store = PgStore::connect(&args.database_url, args.db_connections)
        .await
        .context("connecting to PostgreSQL")?;
    let max_limits = Limits {
        fuel: args.max_fuel,
        timeout_ms: args.max_timeout.as_millis() as u64,
        memory_bytes: args.max_memory,
        ..Limits::default_max()
    };
    let runtime = Runtime::new(RuntimeConfig {
        slots: args.slots,
        max_limits,
        artifact_dir: args.artifact_dir.clone(),
        ..RuntimeConfig::default()
    })?;
    let config = WorkerConfig {
        queues: args.queues.clone(),
        grace: args.grace,
        lease: args.lease,
        ..WorkerConfig::default()
    };
    tracing::info!(worker = %config.id, queues = ?config.queues, "worker starting");
    let shutdown = Shutdown::new();
    tokio::spawn(super::signals::on_shutdown_signal(shutdown.clone()));
    Worker::new(Arc::new(store), runtime, config)
        .run(shutdown)
        .await;
    Ok(ExitCode::SUCCESS)
}
