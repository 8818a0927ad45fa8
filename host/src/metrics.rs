//! Process-wide counters and histograms, rendered in the Prometheus text format.
//!
//! Hand-rolled rather than a metrics framework: a handful of series, one mutex, no
//! background task. The worker records attempts ([`attempt_finished`]); the API records
//! enqueues and HTTP requests and adds the queue depth (a cached store read) when it
//! renders `/metrics`, which only a key with the `metrics` scope may read.
//!
//! Tenants choose module and queue names, so a series is keyed by tenant *and* module
//! (two tenants' `resize` stay apart), and each metric holds at most [`MAX_SERIES`] label
//! sets: a new one past that is counted in the series whose every label is `other`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

/// Buckets of durations, in seconds.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of fuel (Wasm instructions).
pub const FUEL_BUCKETS: &[f64] = &[1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11];

/// Most label sets one metric keeps; later ones share the series labelled all `other`,
/// so no caller (a tenant naming modules, a client inventing methods) grows the registry
/// or a scrape without bound.
pub const MAX_SERIES: usize = 500;

/// The value every label of the overflow series has.
pub const OVERFLOW: &str = "other";

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    /// Label sets each metric holds (the overflow series not counted).
    series: HashMap<&'static str, usize>,
    /// Jobs finished per minute of the last hour, per tenant (at most [`MAX_SERIES`]
    /// tenants): the dashboard's charts.
    recent: HashMap<String, Recent>,
}

/// Minutes a [`Recent`] keeps.
pub const RECENT_MINUTES: usize = 60;

/// Jobs completed and failed in each of the last [`RECENT_MINUTES`] minutes: slot
/// `minute % 60` holds the minute it was last written for, so a stale slot reads zero.
struct Recent {
    slots: [(i64, u64, u64); RECENT_MINUTES],
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            slots: [(i64::MIN, 0, 0); RECENT_MINUTES],
        }
    }
}

impl Recent {
    fn add(&mut self, minute: i64, completed: u64, failed: u64) {
        let slot = &mut self.slots[minute.rem_euclid(RECENT_MINUTES as i64) as usize];
        if slot.0 != minute {
            *slot = (minute, 0, 0);
        }
        slot.1 += completed;
        slot.2 += failed;
    }

    fn last_hour(&self, now_minute: i64) -> Vec<(u64, u64)> {
        (now_minute - RECENT_MINUTES as i64 + 1..=now_minute)
            .map(|m| {
                let slot = self.slots[m.rem_euclid(RECENT_MINUTES as i64) as usize];
                if slot.0 == m {
                    (slot.1, slot.2)
                } else {
                    (0, 0)
                }
            })
            .collect()
    }
}

fn minute_now() -> i64 {
    chrono::Utc::now().timestamp().div_euclid(60)
}

/// Jobs of `tenant` that this process's workers completed and failed (for good) in each
/// minute of the last hour, oldest first.
pub fn last_hour(tenant: &str) -> Vec<(u64, u64)> {
    let registry = lock();
    match registry.recent.get(tenant) {
        Some(recent) => recent.last_hour(minute_now()),
        None => vec![(0, 0); RECENT_MINUTES],
    }
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
        "wasmq_jobs_enqueued_total" => {
            "Jobs enqueued (duplicates by idempotency key excluded), by tenant and module."
        }
        "wasmq_jobs_completed_total" => "Jobs completed, by tenant and module.",
        "wasmq_jobs_failed_total" => "Jobs failed for good, by tenant, module and error kind.",
        "wasmq_attempts_failed_total" => {
            "Attempts that failed and will be retried, by tenant, module and kind."
        }
        "wasmq_jobs_cancelled_total" => "Running jobs interrupted by a cancel.",
        "wasmq_attempt_duration_seconds" => "Wall clock of finished attempts.",
        "wasmq_attempt_fuel" => "Fuel used by finished attempts.",
        "wasmq_http_requests_total" => "HTTP requests answered, by route and status.",
        "wasmq_http_request_duration_seconds" => "HTTP request latency, by route.",
        "wasmq_jobs" => "Jobs stored, by queue and state, as of the last refresh.",
        "wasmq_module_loads_total" => {
            "Compiled modules loaded, by where from: memory (a cache hit), artifact or compile."
        }
        _ => "",
    }
}

/// The note every help text ends with.
fn bound_note() -> String {
    format!(
        "At most {MAX_SERIES} label sets; later ones are counted with every label `{OVERFLOW}`."
    )
}

impl Registry {
    /// The key a label set the metric does not hold yet is recorded under: its own, or
    /// the overflow series once the metric holds [`MAX_SERIES`] label sets.
    fn new_key(
        &mut self,
        name: &'static str,
        labels: &[(&'static str, &str)],
    ) -> (&'static str, Labels) {
        let held = self.series.entry(name).or_default();
        if *held < MAX_SERIES {
            *held += 1;
            (name, owned(labels))
        } else {
            (
                name,
                labels
                    .iter()
                    .map(|(k, _)| (*k, OVERFLOW.to_owned()))
                    .collect(),
            )
        }
    }

    fn inc(&mut self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let exact = (name, owned(labels));
        if let Some(value) = self.counters.get_mut(&exact) {
            *value += by;
            return;
        }
        let key = self.new_key(name, labels);
        *self.counters.entry(key).or_default() += by;
    }

    fn observe(
        &mut self,
        name: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
        bounds: &'static [f64],
    ) {
        let exact = (name, owned(labels));
        let key = if self.histograms.contains_key(&exact) {
            exact
        } else {
            self.new_key(name, labels)
        };
        let h = self.histograms.entry(key).or_insert_with(|| Histogram {
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
    lock().inc(name, labels, by);
}

/// Records `value` in histogram `name{labels}` with `bounds`.
pub fn observe(
    name: &'static str,
    labels: &[(&'static str, &str)],
    value: f64,
    bounds: &'static [f64],
) {
    lock().observe(name, labels, value, bounds);
}

/// Records a finished attempt of `tenant`'s `module`: `outcome` is `completed`,
/// `failed`, `retried` or `cancelled`; `kind` the error kind for the last three.
pub fn attempt_finished(
    tenant: &str,
    module: &str,
    outcome: &str,
    kind: Option<&str>,
    seconds: f64,
    fuel: u64,
) {
    let who = [("tenant", tenant), ("module", module)];
    let mut registry = lock();
    let finished = match outcome {
        "completed" => Some((1, 0)),
        "failed" => Some((0, 1)),
        _ => None,
    };
    if let Some((completed, failed)) = finished
        && (registry.recent.len() < MAX_SERIES || registry.recent.contains_key(tenant))
    {
        registry
            .recent
            .entry(tenant.to_owned())
            .or_default()
            .add(minute_now(), completed, failed);
    }
    match (outcome, kind) {
        ("completed", _) => registry.inc("wasmq_jobs_completed_total", &who, 1),
        ("failed", Some(kind)) => registry.inc(
            "wasmq_jobs_failed_total",
            &[who[0], who[1], ("kind", kind)],
            1,
        ),
        ("retried", Some(kind)) => registry.inc(
            "wasmq_attempts_failed_total",
            &[who[0], who[1], ("kind", kind)],
            1,
        ),
        ("cancelled", _) => registry.inc("wasmq_jobs_cancelled_total", &who, 1),
        _ => {}
    }
    registry.observe(
        "wasmq_attempt_duration_seconds",
        &who,
        seconds,
        SECONDS_BUCKETS,
    );
    registry.observe("wasmq_attempt_fuel", &who, fuel as f64, FUEL_BUCKETS);
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
        let _ = writeln!(out, "# HELP {name} {} {}", help(name), bound_note());
        let _ = writeln!(out, "# TYPE {name} {kind}");
        *last = name;
    }
}

/// `depth` (queue, state, count) with at most [`MAX_SERIES`] rows: the counts of the
/// queues past the bound are summed per state under queue `other`.
fn bound_depth(depth: &[(String, String, u64)]) -> Vec<(String, String, u64)> {
    let mut rows: Vec<_> = depth.iter().take(MAX_SERIES).cloned().collect();
    let mut rest: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, state, count) in depth.iter().skip(MAX_SERIES) {
        *rest.entry(state.as_str()).or_default() += count;
    }
    rows.extend(
        rest.into_iter()
            .map(|(state, count)| (OVERFLOW.to_owned(), state.to_owned(), count)),
    );
    rows
}

impl Registry {
    fn render(&self, depth: &[(String, String, u64)]) -> String {
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in &self.counters {
            header(&mut out, &mut last, name, "counter");
            let _ = writeln!(out, "{name}{} {value}", label_text(labels, None));
        }
        for ((name, labels), h) in &self.histograms {
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
        for (queue, state, count) in bound_depth(depth) {
            let labels = vec![("queue", queue), ("state", state)];
            let _ = writeln!(out, "wasmq_jobs{} {count}", label_text(&labels, None));
        }
        out
    }
}

/// Everything recorded, plus the gauge `wasmq_jobs{queue,state}` from `depth`
/// (queue, state, count), in the Prometheus text exposition format.
pub fn render(depth: &[(String, String, u64)]) -> String {
    lock().render(depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_minutes_roll_over_and_forget_the_old() {
        let mut recent = Recent::default();
        recent.add(1_000, 2, 0);
        recent.add(1_000, 1, 1);
        recent.add(1_059, 0, 3);
        let hour = recent.last_hour(1_059);
        assert_eq!(hour.len(), RECENT_MINUTES);
        assert_eq!(hour[0], (3, 1), "minute 1000, oldest");
        assert_eq!(hour[59], (0, 3));
        // An hour later minute 1000's slot is reused, and minute 1059 is out of range.
        recent.add(1_060, 5, 0);
        let hour = recent.last_hour(1_120);
        assert!(hour[..59].iter().all(|m| *m == (0, 0)), "{hour:?}");
        assert_eq!(recent.last_hour(1_060)[59], (5, 0));
    }

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let mut registry = Registry::default();
        registry.inc("wasmq_jobs_enqueued_total", &[("module", "unit\"test")], 2);
        registry.observe(
            "wasmq_attempt_fuel",
            &[("module", "unit")],
            5e3,
            FUEL_BUCKETS,
        );
        let text = registry.render(&[("default".into(), "available".into(), 3)]);
        assert!(text.contains("wasmq_jobs_enqueued_total{module=\"unit\\\"test\"} 2"));
        assert!(text.contains("wasmq_attempt_fuel_bucket{module=\"unit\",le=\"10000\"} 1"));
        assert!(text.contains("wasmq_jobs{queue=\"default\",state=\"available\"} 3"));
        assert!(text.contains("# TYPE wasmq_attempt_fuel histogram"));
        assert!(text.contains(&format!("At most {MAX_SERIES} label sets")));
    }

    /// 2,000 module names make at most `MAX_SERIES` series plus the overflow one, and
    /// every count lands somewhere: nothing is lost, nothing grows past the bound.
    #[test]
    fn label_sets_are_bounded_and_overflow_into_other() {
        let mut registry = Registry::default();
        for i in 0..2_000 {
            let module = format!("m{i}");
            let who = [("tenant", "t"), ("module", module.as_str())];
            registry.inc("wasmq_jobs_enqueued_total", &who, 1);
            registry.observe("wasmq_attempt_fuel", &who, 1.0, FUEL_BUCKETS);
        }
        // A series held before the bound keeps counting under its own labels.
        registry.inc(
            "wasmq_jobs_enqueued_total",
            &[("tenant", "t"), ("module", "m0")],
            1,
        );
        let text = registry.render(&[]);
        let series = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(series("wasmq_jobs_enqueued_total{"), MAX_SERIES + 1);
        assert_eq!(series("wasmq_attempt_fuel_count{"), MAX_SERIES + 1);
        assert!(text.contains("wasmq_jobs_enqueued_total{tenant=\"t\",module=\"m0\"} 2"));
        let overflow = 2_000 - MAX_SERIES;
        assert!(
            text.contains(&format!(
                "wasmq_jobs_enqueued_total{{tenant=\"other\",module=\"other\"}} {overflow}"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "wasmq_attempt_fuel_count{{tenant=\"other\",module=\"other\"}} {overflow}"
        )));
    }

    #[test]
    fn queue_depth_rows_are_bounded() {
        let depth: Vec<_> = (0..MAX_SERIES + 10)
            .map(|i| (format!("q{i}"), "available".to_owned(), 2))
            .collect();
        let text = Registry::default().render(&depth);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("wasmq_jobs{"))
                .count(),
            MAX_SERIES + 1
        );
        assert!(text.contains("wasmq_jobs{queue=\"other\",state=\"available\"} 20"));
    }
}
