//! `wasmq tenant set|show`: tenants' quotas over the HTTP API; and the server's default
//! quotas, which `wasmq serve` takes as flags.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::client::{Client, ClientArgs, print_json};
use crate::queue::Quotas;

/// The quotas of a tenant that sets none of its own (unset: not limited).
#[derive(Debug, Clone, Default, Args)]
pub struct TenantDefaultArgs {
    /// Default `max_module_bytes`: bytes of a tenant's stored modules, e.g. 1GiB.
    #[arg(long, env = "WASMQ_TENANT_MAX_MODULE_BYTES", value_parser = super::parse_size)]
    pub tenant_max_module_bytes: Option<u64>,
    /// Default `enqueue_rate`: jobs a tenant may enqueue per second, per API node.
    #[arg(long, env = "WASMQ_TENANT_ENQUEUE_RATE")]
    pub tenant_enqueue_rate: Option<f64>,
    /// Default `enqueue_burst`: jobs enqueued at once after a quiet spell.
    #[arg(long, env = "WASMQ_TENANT_ENQUEUE_BURST")]
    pub tenant_enqueue_burst: Option<u64>,
    /// Default `max_schedules`: schedules of a tenant.
    #[arg(long, env = "WASMQ_TENANT_MAX_SCHEDULES")]
    pub tenant_max_schedules: Option<u64>,
}

impl TenantDefaultArgs {
    /// The defaults, checked as a tenant's own quotas are; `max_running` and
    /// `max_unfinished_jobs` are the worker pool's flags (`wasmq worker` enforces them
    /// too: its claims, and the child jobs its tasks enqueue).
    pub fn quotas(
        &self,
        max_running: Option<u64>,
        max_unfinished_jobs: Option<u64>,
    ) -> anyhow::Result<Quotas> {
        let quotas = Quotas {
            max_unfinished_jobs,
            max_module_bytes: self.tenant_max_module_bytes,
            enqueue_rate: self.tenant_enqueue_rate,
            enqueue_burst: self.tenant_enqueue_burst,
            max_running,
            max_schedules: self.tenant_max_schedules,
        };
        quotas
            .check()
            .map_err(|e| anyhow::anyhow!("the default tenant quotas: {e}"))?;
        Ok(quotas)
    }
}

/// `wasmq tenant …`.
#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Set quotas of tenant NAME (needs an `operator` key). A quota not named keeps its
    /// value; `default` takes it back to the server's default. Prints what now applies.
    Set {
        /// The tenant.
        name: String,
        /// Jobs not finished at once.
        #[arg(long, value_parser = count)]
        max_unfinished_jobs: Option<Value>,
        /// Bytes of stored modules, e.g. 512MiB.
        #[arg(long, value_parser = bytes)]
        max_module_bytes: Option<Value>,
        /// Jobs enqueued per second, per API node.
        #[arg(long, value_parser = rate)]
        enqueue_rate: Option<Value>,
        /// Jobs enqueued at once after a quiet spell.
        #[arg(long, value_parser = count)]
        enqueue_burst: Option<Value>,
        /// Jobs running at once.
        #[arg(long, value_parser = count)]
        max_running: Option<Value>,
        /// Schedules.
        #[arg(long, value_parser = count)]
        max_schedules: Option<Value>,
    },
    /// Show tenant NAME's quotas and use (needs an `operator` key); without NAME, the
    /// key's own tenant.
    Show {
        /// The tenant.
        name: Option<String>,
    },
}

/// `default` as `null`, else what `parse` makes of the value.
fn or_default(s: &str, parse: impl Fn(&str) -> Result<Value, String>) -> Result<Value, String> {
    if s == "default" {
        Ok(Value::Null)
    } else {
        parse(s)
    }
}

fn count(s: &str) -> Result<Value, String> {
    or_default(s, |s| {
        s.parse::<u64>()
            .map(Value::from)
            .map_err(|_| format!("`{s}` is not a whole number (or `default`)"))
    })
}

fn bytes(s: &str) -> Result<Value, String> {
    or_default(s, |s| super::parse_size(s).map(Value::from))
}

fn rate(s: &str) -> Result<Value, String> {
    or_default(s, |s| {
        s.parse::<f64>()
            .map(Value::from)
            .map_err(|_| format!("`{s}` is not a number of jobs per second (or `default`)"))
    })
}

pub(super) async fn tenant(args: TenantArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let request = match args.command {
        TenantCommand::Show { name: None } => client.request(reqwest::Method::GET, "/v1/tenant"),
        TenantCommand::Show { name: Some(name) } => {
            client.request(reqwest::Method::GET, &format!("/v1/tenants/{name}"))
        }
        TenantCommand::Set {
            name,
            max_unfinished_jobs,
            max_module_bytes,
            enqueue_rate,
            enqueue_burst,
            max_running,
            max_schedules,
        } => {
            let fields = [
                ("max_unfinished_jobs", max_unfinished_jobs),
                ("max_module_bytes", max_module_bytes),
                ("enqueue_rate", enqueue_rate),
                ("enqueue_burst", enqueue_burst),
                ("max_running", max_running),
                ("max_schedules", max_schedules),
            ];
            let body: Map<String, Value> = fields
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                .collect();
            client
                .request(reqwest::Method::PUT, &format!("/v1/tenants/{name}"))
                .json(&body)
        }
    };
    print_json(&client.json(request).await?);
    Ok(ExitCode::SUCCESS)
}
