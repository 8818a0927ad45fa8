//! `wasmq worker`: run workers only, so more machines can join one database.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::queue::TenantStore;
use crate::queue::postgres::PgStore;
use crate::runtime::{INTERPRETED_FUEL, Limits, Runtime, RuntimeConfig};
use crate::worker::{ChildCaps, Shutdown, Worker, WorkerConfig};

/// Arguments of `wasmq worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// PostgreSQL URL shared by every node.
    #[arg(long, env = "WASMQ_DATABASE_URL")]
    pub database_url: String,
    #[command(flatten)]
    pub pool: PoolArgs,
}

/// The worker pool's and sandbox's settings, shared by `wasmq worker` and `wasmq serve`.
#[derive(Debug, Args)]
pub struct PoolArgs {
    /// Queues to serve with their concurrency, e.g. `--queue default=8 --queue mail=2`.
    #[arg(long = "queue", value_parser = parse_queue, default_value = "default=8")]
    pub queues: Vec<(String, usize)>,
    /// Serve only this tenant's jobs of those queues (default: every tenant's, fairly:
    /// each tenant's first jobs before anyone's second).
    #[arg(long, env = "WASMQ_TENANT", value_parser = parse_tenant)]
    pub tenant: Option<String>,
    /// Instance slots (attempts running at once across all queues).
    #[arg(long, env = "WASMQ_SLOTS", default_value_t = 16)]
    pub slots: u32,
    /// Where compiled modules are cached across restarts [default: the user's cache
    /// directory, `~/.cache/wasmq/artifacts`].
    #[arg(long, env = "WASMQ_ARTIFACT_DIR")]
    pub artifact_dir: Option<PathBuf>,
    /// Running jobs get this long to finish on SIGTERM/SIGINT before they are given back.
    #[arg(long, env = "WASMQ_GRACE", value_parser = super::parse_duration, default_value = "30s")]
    pub grace: Duration,
    /// How long a claimed job is held without a heartbeat; after a crash, its jobs run
    /// again once this has passed.
    #[arg(long, env = "WASMQ_LEASE", value_parser = super::parse_duration, default_value = "30s")]
    pub lease: Duration,
    /// Server-wide maximum fuel per attempt of compiled code, and the fuel of one whose
    /// module and job set none.
    #[arg(long, env = "WASMQ_MAX_FUEL", default_value_t = Limits::default_max().fuel)]
    pub max_fuel: u64,
    /// The same for a Python or JavaScript task (when larger): an interpreter spends far
    /// more fuel per line. A module names its own language, so any tenant may use this.
    #[arg(long, env = "WASMQ_MAX_FUEL_INTERPRETED", default_value_t = INTERPRETED_FUEL)]
    pub max_fuel_interpreted: u64,
    /// Server-wide maximum wall clock per attempt.
    #[arg(long, env = "WASMQ_MAX_TIMEOUT", value_parser = super::parse_duration, default_value = "30s")]
    pub max_timeout: Duration,
    /// Server-wide maximum linear memory per attempt.
    #[arg(long, env = "WASMQ_MAX_MEMORY", value_parser = super::parse_size, default_value = "64MiB")]
    pub max_memory: u64,
    /// Finished jobs (completed, failed, cancelled) are deleted this long after they
    /// finished, by the maintenance every node runs (at start, then every minute).
    #[arg(long, env = "WASMQ_RETENTION", value_parser = super::parse_duration, default_value = "7d")]
    pub retention: Duration,
    /// Default `max_running`: jobs of a tenant running at once over all nodes, for
    /// tenants without their own (`wasmq tenant set`). Give every node the same.
    #[arg(long, env = "WASMQ_TENANT_MAX_RUNNING")]
    pub tenant_max_running: Option<u64>,
    /// Default `max_unfinished_jobs`: jobs of a tenant not finished at once, for tenants
    /// without their own; enqueues over the API and child jobs count against it.
    #[arg(long, env = "WASMQ_TENANT_MAX_UNFINISHED_JOBS")]
    pub tenant_max_unfinished_jobs: Option<u64>,
    /// Database connections of this node.
    #[arg(long, env = "WASMQ_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,
    /// Longest a module may take to compile (wall clock, and CPU in the compile process).
    #[arg(long, env = "WASMQ_COMPILE_TIMEOUT", value_parser = super::parse_duration, default_value = "120s")]
    pub compile_timeout: Duration,
    /// Address space a compile process may use.
    #[arg(long, env = "WASMQ_COMPILE_MEMORY", value_parser = super::parse_size, default_value = "3GiB")]
    pub compile_memory: u64,
    /// Bytes of compiled modules kept in the artifact directory (least recently used go).
    #[arg(long, env = "WASMQ_ARTIFACT_DIR_MAX", value_parser = super::parse_size, default_value = "2GiB")]
    pub artifact_dir_max: u64,
    /// Bytes of compiled modules kept in memory (least recently used go).
    #[arg(long, env = "WASMQ_MODULE_CACHE_MAX", value_parser = super::parse_size, default_value = "1GiB")]
    pub module_cache_max: u64,
    /// Address ranges guests' outbound requests may never connect to, unless a
    /// module's allow-list names the address itself (repeatable, CIDR; comma-separated
    /// in the environment). Default: loopback, private, link-local (cloud metadata),
    /// shared and multicast ranges.
    #[arg(long = "outbound-deny", env = "WASMQ_OUTBOUND_DENY", value_delimiter = ',',
          default_values_t = crate::runtime::DEFAULT_DENY.iter().map(|s| s.to_string()))]
    pub outbound_deny: Vec<String>,
    /// Most outbound HTTP requests one attempt may make.
    #[arg(long, env = "WASMQ_OUTBOUND_MAX_REQUESTS", default_value_t = 100)]
    pub outbound_max_requests: u64,
    /// Most bytes of outbound responses one attempt may read.
    #[arg(long, env = "WASMQ_OUTBOUND_MAX_RESPONSE", value_parser = super::parse_size, default_value = "16MiB")]
    pub outbound_max_response: u64,
    /// Key that seals module secrets: 32 random bytes as 64 hex digits or base64
    /// (`openssl rand -hex 32`). Required once a module has secrets; every node needs
    /// the same one.
    #[arg(long, env = "WASMQ_SECRET_KEY", value_parser = parse_secret_key, hide_env_values = true)]
    pub secret_key: Option<crate::secrets::SecretKey>,
    /// Run until no job of the queues is running or due, then exit 0: for hosts that can
    /// only start a process from cron. Jobs due later than --burst-wait are left.
    #[arg(long)]
    pub burst: bool,
    /// With --burst, jobs due within this from now (delayed, or waiting for a retry) are
    /// waited for; the default, 0s, leaves every job not due yet for the next run.
    #[arg(long, env = "WASMQ_BURST_WAIT", value_parser = super::parse_duration, default_value = "0s")]
    pub burst_wait: Duration,
    /// Most child jobs one attempt may enqueue (past it, the guest's `enqueue` is refused).
    #[arg(long, env = "WASMQ_MAX_CHILDREN", default_value_t = ChildCaps::default().per_attempt)]
    pub max_children: usize,
    /// How deep child jobs may nest: a job this many parents down may not enqueue.
    #[arg(long, env = "WASMQ_MAX_CHILD_DEPTH", default_value_t = ChildCaps::default().depth)]
    pub max_child_depth: u16,
}

fn parse_tenant(s: &str) -> Result<String, String> {
    crate::queue::keys::validate_tenant(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

fn parse_secret_key(s: &str) -> Result<crate::secrets::SecretKey, String> {
    s.parse()
}

impl PoolArgs {
    /// The sandbox settings these flags ask for.
    pub fn runtime_config(&self) -> anyhow::Result<RuntimeConfig> {
        let deny = crate::runtime::DenyRanges::parse(&self.outbound_deny)
            .map_err(|e| anyhow::anyhow!("--outbound-deny: {e}"))?;
        Ok(RuntimeConfig {
            slots: self.slots,
            max_fuel_interpreted: self.max_fuel_interpreted,
            max_limits: Limits {
                fuel: self.max_fuel,
                timeout_ms: u64::try_from(self.max_timeout.as_millis()).unwrap_or(u64::MAX),
                memory_bytes: self.max_memory,
                ..Limits::default_max()
            },
            artifact_dir: self
                .artifact_dir
                .clone()
                .or_else(super::default_artifact_dir),
            compile_timeout: self.compile_timeout,
            compile_memory_bytes: self.compile_memory,
            artifact_dir_max_bytes: self.artifact_dir_max,
            cache_max_bytes: self.module_cache_max,
            outbound: crate::runtime::OutboundConfig {
                deny,
                max_requests: self.outbound_max_requests,
                max_response_bytes: self.outbound_max_response,
            },
            ..RuntimeConfig::default()
        })
    }

    /// The worker pool settings these flags ask for.
    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            queues: self.queues.clone(),
            tenant: self.tenant.clone(),
            grace: self.grace,
            lease: self.lease,
            retention: self.retention,
            secret_key: self.secret_key.clone(),
            burst: self.burst.then_some(self.burst_wait),
            children: ChildCaps {
                per_attempt: self.max_children,
                depth: self.max_child_depth,
                default_max_unfinished: self.tenant_max_unfinished_jobs,
                ..ChildCaps::default()
            },
            ..WorkerConfig::default()
        }
    }
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
    let store = PgStore::connect(&args.database_url, args.pool.db_connections)
        .await
        .context("connecting to PostgreSQL")?;
    store.set_default_max_running(args.pool.tenant_max_running);
    let runtime = Runtime::new(args.pool.runtime_config()?)?;
    let config = args.pool.worker_config();
    tracing::info!(worker = %config.id, queues = ?config.queues, "worker starting");
    let shutdown = Shutdown::new();
    tokio::spawn(super::signals::on_shutdown_signal(shutdown.clone()));
    Worker::new(Arc::new(store), runtime, config)
        .run(shutdown)
        .await;
    Ok(ExitCode::SUCCESS)
}
