//! `wasmq queue …`: list queues, pause and resume them, limit their running jobs, over
//! the HTTP API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, print_json};

/// `wasmq queue …`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// List the queues with unfinished jobs or a pause: jobs per state, paused or not.
    List,
    /// Pause queue NAME: its jobs are accepted but not started (running ones finish).
    Pause {
        /// The queue name.
        name: String,
    },
    /// Resume queue NAME.
    Resume {
        /// The queue name.
        name: String,
    },
    /// Limit queue NAME to N of the tenant's jobs running at once over every node
    /// (`none`: no limit).
    Limit {
        /// The queue name.
        name: String,
        /// The most jobs running at once, or `none`.
        #[arg(value_parser = limit)]
        max_running: Value,
    },
}

/// A limit: a count, or `none` (JSON `null`).
fn limit(s: &str) -> Result<Value, String> {
    if s == "none" {
        return Ok(Value::Null);
    }
    let n: u64 = s
        .parse()
        .map_err(|_| format!("`{s}`: give a number of jobs, or `none`"))?;
    Ok(Value::from(n))
}

pub(super) async fn queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let request = match &args.command {
        QueueCommand::List => client.request(reqwest::Method::GET, "/v1/queues"),
        QueueCommand::Pause { name } => {
            client.request(reqwest::Method::POST, &format!("/v1/queues/{name}/pause"))
        }
        QueueCommand::Resume { name } => {
            client.request(reqwest::Method::POST, &format!("/v1/queues/{name}/resume"))
        }
        QueueCommand::Limit { name, max_running } => client
            .request(reqwest::Method::PUT, &format!("/v1/queues/{name}/limit"))
            .json(&json!({ "max_running": max_running })),
    };
    print_json(&client.json(request).await?);
    Ok(ExitCode::SUCCESS)
}
