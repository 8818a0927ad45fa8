//! Process-wide counters and histograms, rendered in the Prometheus text format.
//!
//! Hand-rolled rather than a metrics framework: a handful of series, one mutex, no
//! background task. The worker records attempts ([`attempt_finished`]); the API records
//! enqueues and HTTP requests and adds the queue depth (read from the store) when it
//! renders `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

/// Buckets of durations, in seconds.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of fuel (Wasm instructions).
pub const FUEL_BUCKETS: &[f64] = &[1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn help(name: &str) -> &'static str {
    match name {
        "wasmq_jobs_enqueued_total" => "Jobs enqueued (duplicates by idempotency key excluded).",
        "wasmq_jobs_completed_total" => "Jobs completed.",
        "wasmq_jobs_failed_total" => "Jobs failed for good, by error kind.",
        "wasmq_attempts_failed_total" => "Attempts that failed and will be retried, by kind.",
        "wasmq_jobs_cancelled_total" => "Running jobs interrupted by a cancel.",
        "wasmq_attempt_duration_seconds" => "Wall clock of finished attempts.",
        "wasmq_attempt_fuel" => "Fuel used by finished attempts.",
        "wasmq_http_requests_total" => "HTTP requests answered, by route and status.",
        "wasmq_http_request_duration_seconds" => "HTTP request latency, by route.",
        "wasmq_jobs" => "Jobs stored, by queue and state.",
        _ => "",
    }
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn lock() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Adds `by` to counter `name{labels}`.
pub fn inc(name: &'static str, labels: &[(&'static str, &str)], by: u64) {
    *lock().counters.entry((name, owned(labels))).or_default() += by;
}

/// Records `value` in histogram `name{labels}` with `bounds`.
pub fn observe(
    name: &'static str,
    labels: &[(&'static str, &str)],
    value: f64,
    bounds: &'static [f64],
) {
    let mut registry = lock();
    let h = registry
        .histograms
        .entry((name, owned(labels)))
        .or_insert_with(|| Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        });
    for (i, bound) in h.bounds.iter().enumerate() {
        if value <= *bound {
            h.counts[i] += 1;
        }
    }
    h.sum += value;
    h.count += 1;
}

/// Records a finished attempt of `module`: `outcome` is `completed`, `failed`, `retried`
/// or `cancelled`; `kind` the error kind for the last three.
pub fn attempt_finished(module: &str, outcome: &str, kind: Option<&str>, seconds: f64, fuel: u64) {
    match (outcome, kind) {
        ("completed", _) => inc("wasmq_jobs_completed_total", &[("module", module)], 1),
        ("failed", Some(kind)) => inc(
            "wasmq_jobs_failed_total",
            &[("module", module), ("kind", kind)],
            1,
        ),
        ("retried", Some(kind)) => inc(
            "wasmq_attempts_failed_total",
            &[("module", module), ("kind", kind)],
            1,
        ),
        ("cancelled", _) => inc("wasmq_jobs_cancelled_total", &[("module", module)], 1),
        _ => {}
    }
    observe(
        "wasmq_attempt_duration_seconds",
        &[("module", module)],
        seconds,
        SECONDS_BUCKETS,
    );
    observe(
        "wasmq_attempt_fuel",
        &[("module", module)],
        fuel as f64,
        FUEL_BUCKETS,
    );
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(&'static str, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn header(out: &mut String, last: &mut &'static str, name: &'static str, kind: &str) {
    if *last != name {
        let _ = writeln!(out, "# HELP {name} {}", help(name));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        *last = name;
    }
}

/// Everything recorded, plus the gauge `wasmq_jobs{queue,state}` from `depth`
/// (queue, state, count), in the Prometheus text exposition format.
pub fn render(depth: &[(String, String, u64)]) -> String {
    let registry = lock();
    let mut out = String::new();
    let mut last = "";
    for ((name, labels), value) in &registry.counters {
        header(&mut out, &mut last, name, "counter");
        let _ = writeln!(out, "{name}{} {value}", label_text(labels, None));
    }
    for ((name, labels), h) in &registry.histograms {
        header(&mut out, &mut last, name, "histogram");
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            let le = Some(("le", bound.to_string()));
            let _ = writeln!(out, "{name}_bucket{} {count}", label_text(labels, le));
        }
        let inf = Some(("le", "+Inf".to_owned()));
        let _ = writeln!(out, "{name}_bucket{} {}", label_text(labels, inf), h.count);
        let _ = writeln!(out, "{name}_sum{} {}", label_text(labels, None), h.sum);
        let _ = writeln!(out, "{name}_count{} {}", label_text(labels, None), h.count);
    }
    header(&mut out, &mut last, "wasmq_jobs", "gauge");
    for (queue, state, count) in depth {
        let labels = vec![("queue", queue.clone()), ("state", state.clone())];
        let _ = writeln!(out, "wasmq_jobs{} {count}", label_text(&labels, None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        inc("wasmq_jobs_enqueued_total", &[("module", "unit\"test")], 2);
        observe(
            "wasmq_attempt_fuel",
            &[("module", "unit")],
            5e3,
            FUEL_BUCKETS,
        );
        let text = render(&[("default".into(), "available".into(), 3)]);
        assert!(text.contains("wasmq_jobs_enqueued_total{module=\"unit\\\"test\"} 2"));
        assert!(text.contains("wasmq_attempt_fuel_bucket{module=\"unit\",le=\"10000\"} 1"));
        assert!(text.contains("wasmq_jobs{queue=\"default\",state=\"available\"} 3"));
        assert!(text.contains("# TYPE wasmq_attempt_fuel histogram"));
    }
}
