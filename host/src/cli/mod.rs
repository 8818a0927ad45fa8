//! The `wasmq` command line.

mod bench;
mod client;
pub mod config;
mod key;
mod parse;
mod queue;
mod run;
mod schedule;
mod serve;
mod signals;
mod store;
mod tenant;
mod worker;

pub use store::StoreChoice;

pub use parse::{parse_duration, parse_size};

use clap::{Parser, Subcommand};

/// wasmq: a durable job queue whose jobs are WebAssembly.
#[derive(Debug, Parser)]
#[command(name = "wasmq", version, about)]
pub struct Cli {
    /// Log format for the process's own logs.
    #[arg(long, global = true, env = "WASMQ_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one job locally in the sandbox, without a server, and report the outcome.
    Run(run::RunArgs),
    /// Run workers only (no API), against a shared PostgreSQL.
    Worker(worker::WorkerArgs),
    /// Measure end-to-end throughput (W1) and latency (W2) against the configured store.
    Bench(bench::BenchArgs),
    /// Run the HTTP API and workers in one process.
    Serve(serve::ServeArgs),
    /// Upload, list and delete modules on a server.
    Module(client::ModuleArgs),
    /// Enqueue, inspect, wait for and cancel jobs on a server.
    Job(client::JobArgs),
    /// Create, list and delete periodic jobs on a server.
    Schedule(schedule::ScheduleArgs),
    /// List queues, pause and resume them on a server.
    Queue(queue::QueueArgs),
    /// Show a tenant's quotas and use, and set them (an operator's key) on a server.
    Tenant(tenant::TenantArgs),
    /// Create and revoke API keys (talks to the store directly).
    Key(key::KeyArgs),
}

/// Sets up `tracing` (RUST_LOG filters; default `info`) to stderr. In `json`, each line
/// is one object with `timestamp`, `level`, `target`, `message` and the event's other
/// fields at the top level (flattened, as log shippers expect).
/// Where compiled modules are cached when no `--artifact-dir` is given: the user's cache
/// directory (`$XDG_CACHE_HOME/wasmq/artifacts`, else `~/.cache/wasmq/artifacts`), so a
/// large module is compiled once per machine, not once per process.
pub fn default_artifact_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
    Some(base.join("wasmq").join("artifacts"))
}

pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Runs the parsed command line; the process exit code is the result.
pub fn main(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Worker(args) => tokio_main(worker::run(args)),
        Command::Bench(args) => tokio_main(bench::run(args)),
        Command::Serve(args) => tokio_main(serve::run(args)),
        Command::Module(args) => tokio_main(client::module(args)),
        Command::Job(args) => tokio_main(client::job(args)),
        Command::Schedule(args) => tokio_main(schedule::schedule(args)),
        Command::Queue(args) => tokio_main(queue::queue(args)),
        Command::Tenant(args) => tokio_main(tenant::tenant(args)),
        Command::Key(args) => tokio_main(key::run(args)),
    }
}

fn tokio_main<F: std::future::Future<Output = anyhow::Result<std::process::ExitCode>>>(
    f: F,
) -> anyhow::Result<std::process::ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
