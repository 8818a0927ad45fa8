//! `wasmq queue …`: list queues, pause and resume them, over the HTTP API.

use std::process::ExitCode;

use clap::{Args, Subcommand};

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
    };
    print_json(&client.json(request).await?);
    Ok(ExitCode::SUCCESS)
}
