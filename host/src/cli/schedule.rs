//! `wasmq schedule …`: periodic jobs over the HTTP API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, ClientArgs, print_json, read_input};

/// `wasmq schedule …`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Create or replace schedule NAME: a job of MODULE at every tick of --cron.
    Set {
        /// The schedule name.
        name: String,
        /// The module each tick runs.
        module: String,
        /// Five fields, six with seconds first, or @hourly, @daily, …
        #[arg(long)]
        cron: String,
        /// The IANA time zone the expression is read in.
        #[arg(long = "tz", default_value = "UTC")]
        timezone: String,
        /// The jobs' input: JSON text, or `@path` to read it from a file.
        #[arg(long, default_value = "null")]
        input: String,
        /// The jobs' queue.
        #[arg(long)]
        queue: Option<String>,
        /// The jobs' priority (higher first).
        #[arg(long)]
        priority: Option<i16>,
        /// The jobs' attempts in total.
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Ticks missed while no node ran: skip, or one job for all of them.
        #[arg(long, value_parser = ["skip", "one"])]
        catch_up: Option<String>,
        /// Store it paused (it fires nothing until set again without --paused).
        #[arg(long)]
        paused: bool,
    },
    /// List schedules, with their next and last ticks.
    List,
    /// Print schedule NAME.
    Get {
        /// The schedule name.
        name: String,
    },
    /// Delete schedule NAME (the jobs it made stay).
    Delete {
        /// The schedule name.
        name: String,
    },
}

pub(super) async fn schedule(args: ScheduleArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let answer = match args.command {
        ScheduleCommand::Set {
            name,
            module,
            cron,
            timezone,
            input,
            queue,
            priority,
            max_attempts,
            catch_up,
            paused,
        } => {
            let mut body = json!({
                "cron": cron,
                "timezone": timezone,
                "module": module,
                "input": read_input(input)?,
                "paused": paused,
            });
            for (k, v) in [
                ("queue", queue.map(Value::from)),
                ("priority", priority.map(Value::from)),
                ("max_attempts", max_attempts.map(Value::from)),
                ("catch_up", catch_up.map(Value::from)),
            ] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let path = format!("/v1/schedules/{name}");
            let request = client.request(reqwest::Method::PUT, &path).json(&body);
            Some(client.json(request).await?)
        }
        ScheduleCommand::List => Some(
            client
                .json(client.request(reqwest::Method::GET, "/v1/schedules"))
                .await?,
        ),
        ScheduleCommand::Get { name } => {
            let path = format!("/v1/schedules/{name}");
            Some(
                client
                    .json(client.request(reqwest::Method::GET, &path))
                    .await?,
            )
        }
        ScheduleCommand::Delete { name } => {
            let path = format!("/v1/schedules/{name}");
            client
                .send(client.request(reqwest::Method::DELETE, &path))
                .await?;
            None
        }
    };
    if let Some(answer) = answer {
        print_json(&answer);
    }
    Ok(ExitCode::SUCCESS)
}
