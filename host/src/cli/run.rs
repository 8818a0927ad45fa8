//! `wasmq run FILE.wasm --input …`: one job, locally, with the server's limits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use clap::Args;

use crate::runtime::{AttemptReport, DryRun, JobInfo, Outcome, RunRequest, Runtime, RuntimeConfig};

/// Arguments of `wasmq run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The module: a wasmq:task component or a WASI command module.
    pub file: PathBuf,
    /// The job's input: JSON text, or `@path` to read it from a file.
    #[arg(long, default_value = "null")]
    pub input: String,
    /// Fuel limit (Wasm instructions) [default: 1e9; 2e10 for a Python or JavaScript
    /// component, as on a server].
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Memory limit, e.g. 64MiB.
    #[arg(long, value_parser = super::parse_size)]
    pub memory: Option<u64>,
    /// Wall-clock limit, e.g. 30s.
    #[arg(long, value_parser = super::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Output (result) limit, e.g. 1MiB.
    #[arg(long, value_parser = super::parse_size)]
    pub output: Option<u64>,
    /// Print one JSON object (outcome, result, usage, log) instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Where compiled modules are cached, so running the same file again does not compile
    /// it again [default: the user's cache directory, `~/.cache/wasmq/artifacts`].
    #[arg(long, env = "WASMQ_ARTIFACT_DIR")]
    pub artifact_dir: Option<PathBuf>,
    /// Compile afresh and keep nothing on disk.
    #[arg(long, conflicts_with = "artifact_dir")]
    pub no_cache: bool,
}

pub(super) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let input = match args.input.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("reading input file {path}"))?,
        None => args.input.clone().into_bytes(),
    };
    let mut config = RuntimeConfig::default();
    let mut max = config.max_limits;
    // The command line is the operator: let it raise the maxima it asks for.
    if let Some(f) = args.fuel {
        max.fuel = f;
        config.max_fuel_interpreted = f;
    }
    if let Some(m) = args.memory {
        max.memory_bytes = m;
    }
    if let Some(t) = args.timeout {
        max.timeout_ms = t.as_millis() as u64;
    }
    if let Some(o) = args.output {
        max.output_bytes = o;
    }
    let runtime = Runtime::new(RuntimeConfig {
        slots: 1,
        max_limits: max,
        max_fuel_interpreted: config.max_fuel_interpreted,
        artifact_dir: if args.no_cache {
            None
        } else {
            args.artifact_dir
                .clone()
                .or_else(super::default_artifact_dir)
        },
        ..RuntimeConfig::default()
    })?;
    let prepared = runtime.load_bytes_blocking(&bytes)?;
    let name = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let report = runtime.run_blocking(
        &prepared,
        RunRequest {
            input,
            // As a worker: the maxima of the module's language are its limits.
            limits: runtime.max_limits_for(prepared.language()),
            job: JobInfo {
                id: "local".into(),
                module: name,
                attempt: 1,
                max_attempts: 1,
            },
            // No store: the children a task asks for are listed, not enqueued.
            spawner: Some(std::sync::Arc::new(DryRun::new(
                crate::worker::ChildCaps::default().per_attempt,
            ))),
            ..RunRequest::default()
        },
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    } else {
        print_human(&report);
    }
    Ok(match report.outcome {
        Outcome::Success { .. } => ExitCode::SUCCESS,
        Outcome::Failure(_) => ExitCode::FAILURE,
    })
}

/// The report as JSON: a UTF-8 JSON result as `result`, anything else as `result_base64`.
pub fn report_json(report: &AttemptReport) -> serde_json::Value {
    let mut v = serde_json::json!({
        "usage": report.usage,
        "log": report.log_text(),
        "log_dropped": report.log_dropped,
        "progress": report.progress,
        "children": report.children.iter().map(child_json).collect::<Vec<_>>(),
    });
    match &report.outcome {
        Outcome::Success { result } => {
            v["outcome"] = "success".into();
            match serde_json::from_slice::<serde_json::Value>(result) {
                Ok(json) => v["result"] = json,
                Err(_) => {
                    v["result_base64"] = base64::engine::general_purpose::STANDARD
                        .encode(result)
                        .into()
                }
            }
        }
        Outcome::Failure(f) => {
            v["outcome"] = "failure".into();
            v["error"] = serde_json::json!({ "kind": f.kind.as_str(), "message": f.message, "retryable": f.is_retryable() });
        }
    }
    v
}

/// A child the task asked for, as `wasmq run --json` lists it.
fn child_json(child: &crate::runtime::Child) -> serde_json::Value {
    let r = &child.request;
    let mut v = serde_json::json!({
        "id": child.id, "module": r.module, "queue": r.queue, "priority": r.priority,
        "delay_ms": r.delay_ms, "idempotency_key": r.idempotency_key,
    });
    match serde_json::from_slice::<serde_json::Value>(&r.input) {
        Ok(json) => v["input"] = json,
        Err(_) => {
            v["input_base64"] = base64::engine::general_purpose::STANDARD
                .encode(&r.input)
                .into()
        }
    }
    v
}

fn print_human(report: &AttemptReport) {
    match &report.outcome {
        Outcome::Success { result } => {
            println!("{}", String::from_utf8_lossy(result));
            eprintln!("outcome: success ({} bytes of result)", result.len());
        }
        Outcome::Failure(f) => {
            eprintln!(
                "outcome: failed: {} ({})",
                f.kind,
                if f.is_retryable() {
                    "retryable"
                } else {
                    "not retryable"
                }
            );
            eprintln!("message: {}", f.message);
        }
    }
    let u = &report.usage;
    eprintln!(
        "usage: fuel {}, memory peak {:.1} MiB, {:.3} ms",
        u.fuel,
        u.memory_peak_bytes as f64 / (1 << 20) as f64,
        u.duration_us as f64 / 1000.0
    );
    if let Some(p) = &report.progress {
        eprintln!(
            "progress: {}%{}",
            p.percent,
            p.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    eprintln!(
        "log: {} bytes kept, {} dropped",
        report.log.len(),
        report.log_dropped
    );
    for line in report.log_text().lines() {
        eprintln!("  | {line}");
    }
    if !report.children.is_empty() {
        eprintln!(
            "children: {} (listed, not enqueued: `wasmq run` has no store)",
            report.children.len()
        );
        for child in &report.children {
            let input = String::from_utf8_lossy(&child.request.input);
            eprintln!("  #{} {} {input}", child.id, child.request.module);
        }
    }
}
