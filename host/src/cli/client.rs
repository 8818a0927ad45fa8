//! Client commands: `wasmq module …` and `wasmq job …` talk to a server over HTTP.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

/// Where the server is and the key to use.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "WASMQ_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The API key (`wq_…`), from `wasmq key create`.
    #[arg(long, env = "WASMQ_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
}

/// `wasmq module …`.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: ModuleCommand,
}

#[derive(Debug, Subcommand)]
enum ModuleCommand {
    /// Upload FILE as module NAME (a new version if the bytes changed).
    Push {
        /// The module name.
        name: String,
        /// The .wasm file.
        file: PathBuf,
        /// Default fuel of its jobs.
        #[arg(long)]
        fuel: Option<u64>,
        /// Default wall-clock limit of its jobs, e.g. 10s.
        #[arg(long, value_parser = super::parse_duration)]
        timeout: Option<Duration>,
        /// Default memory limit of its jobs, e.g. 32MiB.
        #[arg(long, value_parser = super::parse_size)]
        memory: Option<u64>,
        /// Default output limit of its jobs, e.g. 256KiB.
        #[arg(long, value_parser = super::parse_size)]
        output: Option<u64>,
        /// Replace the module's allow-list: a host its jobs may send HTTP requests to
        /// (repeatable), e.g. `https://api.example.com`, `https://*.example.org:8443`.
        #[arg(long = "allow-host")]
        allow_host: Vec<String>,
    },
    /// List modules.
    List,
    /// Delete module NAME (every version).
    Delete {
        /// The module name.
        name: String,
    },
}

/// `wasmq job …`.
#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Enqueue a job of MODULE and print it (or, with --wait, its result).
    Enqueue {
        /// The module name.
        module: String,
        /// The input: JSON text, or `@path` to read it from a file.
        #[arg(long, default_value = "null")]
        input: String,
        /// The queue.
        #[arg(long)]
        queue: Option<String>,
        /// Priority (higher first).
        #[arg(long)]
        priority: Option<i16>,
        /// Attempts in total.
        #[arg(long)]
        max_attempts: Option<u32>,
        /// An idempotency key.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Debounce: while a job of this key has not started, update it instead of
        /// adding one (needs --coalesce-ms).
        #[arg(long)]
        coalesce_key: Option<String>,
        /// With --coalesce-key: run this many milliseconds after the key's latest enqueue.
        #[arg(long)]
        coalesce_ms: Option<u64>,
        /// With --coalesce-key: but at most this many milliseconds after the first.
        #[arg(long)]
        coalesce_max_ms: Option<u64>,
        /// A job this one waits for (repeat for several): it runs once all completed.
        #[arg(long = "depends-on", value_name = "ID")]
        depends_on: Vec<i64>,
        /// Wait until it finishes and print its result.
        #[arg(long)]
        wait: bool,
    },
    /// Print a job.
    Get {
        /// The job id.
        id: i64,
    },
    /// Wait until a job finishes and print its result (exit 1 unless it completed).
    Wait {
        /// The job id.
        id: i64,
    },
    /// Print a job's log.
    Log {
        /// The job id.
        id: i64,
    },
    /// Cancel a job.
    Cancel {
        /// The job id.
        id: i64,
    },
}

pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    pub(super) fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let Some(key) = args.key.clone() else {
            bail!("no API key: pass --key or set WASMQ_KEY (create one with `wasmq key create`)");
        };
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
            base: args.url.trim_end_matches('/').to_owned(),
            key,
        })
    }

    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// Sends, and turns a problem+json answer into an error naming its detail.
    pub(super) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the wasmq server at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<Value>(&text) {
            Ok(problem) => bail!(
                "{} ({status}): {}",
                problem["title"].as_str().unwrap_or("error"),
                problem["detail"].as_str().unwrap_or("")
            ),
            Err(_) => bail!("the server answered {status}: {text}"),
        }
    }

    pub(super) async fn json(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        Ok(self.send(request).await?.json().await?)
    }

    /// Long-polls job `id` until it finishes, showing progress on a terminal.
    async fn wait(&self, id: i64) -> anyhow::Result<Value> {
        let tty = std::io::stderr().is_terminal();
        loop {
            let job = self
                .json(self.request(reqwest::Method::GET, &format!("/v1/jobs/{id}?wait=5s")))
                .await?;
            let state = job["state"].as_str().unwrap_or("");
            if matches!(state, "completed" | "failed" | "cancelled") {
                if tty {
                    eprint!("\r\x1b[K");
                }
                return Ok(job);
            }
            if tty {
                let percent = job["progress"]["percent"].as_u64();
                let note = job["progress"]["note"].as_str().unwrap_or("");
                match percent {
                    Some(p) => eprint!("\r\x1b[Kjob {id}: {state} {p}% {note}"),
                    None => eprint!("\r\x1b[Kjob {id}: {state}"),
                }
                let _ = std::io::stderr().flush();
            }
        }
    }
}

pub(super) fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Prints a finished job's result on stdout (or its error on stderr); exit 0 if it completed.
fn report(job: &Value) -> ExitCode {
    match job["state"].as_str() {
        Some("completed") => {
            if let Some(result) = job.get("result") {
                print_json(result);
            } else if let Some(b64) = job["result_base64"].as_str() {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_default();
                let _ = std::io::stdout().write_all(&bytes);
            }
            ExitCode::SUCCESS
        }
        state => {
            eprintln!(
                "job {} {}: {} {}",
                job["id"],
                state.unwrap_or("?"),
                job["error"]["kind"].as_str().unwrap_or(""),
                job["error"]["message"].as_str().unwrap_or("")
            );
            ExitCode::from(1)
        }
    }
}

/// `--input`: JSON text, or `@path` of a file holding it.
pub(super) fn read_input(input: String) -> anyhow::Result<Value> {
    let text = match input.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading input file {path}"))?
        }
        None => input,
    };
    serde_json::from_str(&text).context("--input must be JSON (or @file holding JSON)")
}

pub(super) async fn module(args: ModuleArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    match args.command {
        ModuleCommand::Push {
            name,
            file,
            fuel,
            timeout,
            memory,
            output,
            allow_host,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(v) = fuel {
                query.push(("fuel", v.to_string()));
            }
            if let Some(v) = timeout {
                query.push(("timeout_ms", v.as_millis().to_string()));
            }
            if let Some(v) = memory {
                query.push(("memory_bytes", v.to_string()));
            }
            if let Some(v) = output {
                query.push(("output_bytes", v.to_string()));
            }
            for host in allow_host {
                query.push(("allowed_host", host));
            }
            let request = client
                .request(reqwest::Method::PUT, &format!("/v1/modules/{name}"))
                .query(&query)
                .header("content-type", "application/wasm")
                .body(bytes);
            print_json(&client.json(request).await?);
        }
        ModuleCommand::List => {
            print_json(
                &client
                    .json(client.request(reqwest::Method::GET, "/v1/modules"))
                    .await?,
            );
        }
        ModuleCommand::Delete { name } => {
            client
                .send(client.request(reqwest::Method::DELETE, &format!("/v1/modules/{name}")))
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn job(args: JobArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    match args.command {
        JobCommand::Enqueue {
            module,
            input,
            queue,
            priority,
            max_attempts,
            idempotency_key,
            coalesce_key,
            coalesce_ms,
            coalesce_max_ms,
            depends_on,
            wait,
        } => {
            let input = read_input(input)?;
            let mut body = serde_json::json!({ "module": module, "input": input });
            for (k, v) in [
                ("queue", queue.map(Value::from)),
                ("priority", priority.map(Value::from)),
                ("max_attempts", max_attempts.map(Value::from)),
                ("idempotency_key", idempotency_key.map(Value::from)),
                ("coalesce_key", coalesce_key.map(Value::from)),
                ("coalesce_ms", coalesce_ms.map(Value::from)),
                ("coalesce_max_ms", coalesce_max_ms.map(Value::from)),
                (
                    "depends_on",
                    (!depends_on.is_empty()).then(|| Value::from(depends_on)),
                ),
            ] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            // With --wait, the enqueue itself waits (up to a minute) for the result.
            let path = if wait {
                "/v1/jobs?wait=60s"
            } else {
                "/v1/jobs"
            };
            let job = client
                .json(client.request(reqwest::Method::POST, path).json(&body))
                .await?;
            if !wait {
                print_json(&job);
                return Ok(ExitCode::SUCCESS);
            }
            if matches!(
                job["state"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                return Ok(report(&job));
            }
            let id = job["id"]
                .as_i64()
                .context("the server answered a job without an id")?;
            eprintln!("job {id} enqueued");
            Ok(report(&client.wait(id).await?))
        }
        JobCommand::Get { id } => {
            print_json(
                &client
                    .json(client.request(reqwest::Method::GET, &format!("/v1/jobs/{id}")))
                    .await?,
            );
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Wait { id } => Ok(report(&client.wait(id).await?)),
        JobCommand::Log { id } => {
            let text = client
                .send(client.request(reqwest::Method::GET, &format!("/v1/jobs/{id}/log")))
                .await?
                .text()
                .await?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Cancel { id } => {
            print_json(
                &client
                    .json(client.request(reqwest::Method::POST, &format!("/v1/jobs/{id}/cancel")))
                    .await?,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
