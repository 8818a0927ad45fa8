//! What an attempt comes to: a typed outcome, usage, and the captured log.

use serde::{Deserialize, Serialize};

/// Why an attempt failed. Limit violations have their own kinds; they are decided from
/// wasmtime's typed traps and the resource limiter, never by matching messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The fuel limit ran out.
    OutOfFuel,
    /// The wall-clock limit passed.
    Timeout,
    /// Linear memory would have grown past the memory limit.
    MemoryLimit,
    /// The result would have been larger than the output limit.
    OutputLimit,
    /// The guest trapped (panic, unreachable, stack overflow, …).
    Trap,
    /// The guest returned `task-error`; `fatal` ones are not retried.
    TaskError {
        /// `true` for `fatal`, `false` for `retry`.
        fatal: bool,
    },
    /// The attempt was cancelled from outside.
    Cancelled,
}

impl FailureKind {
    /// The stable name of SPEC.md (`out_of_fuel`, `timeout`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::OutOfFuel => "out_of_fuel",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::OutputLimit => "output_limit",
            FailureKind::Trap => "trap",
            FailureKind::TaskError { .. } => "task_error",
            FailureKind::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed attempt: its kind and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Why it failed.
    pub kind: FailureKind,
    /// What happened, with the trap's Wasm backtrace where there is one.
    pub message: String,
}

impl Failure {
    /// Whether another attempt may succeed: everything but `fatal` and cancellation.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self.kind,
            FailureKind::TaskError { fatal: true } | FailureKind::Cancelled
        )
    }
}

/// Success with the result bytes, or a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The task returned `Ok`; `result` is what it last set (empty if nothing).
    Success {
        /// The result bytes.
        result: Vec<u8>,
    },
    /// The attempt failed.
    Failure(Failure),
}

impl Outcome {
    /// The failure kind, if the attempt failed.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            Outcome::Success { .. } => None,
            Outcome::Failure(f) => Some(f.kind),
        }
    }
}

/// Resources an attempt used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Fuel consumed.
    pub fuel: u64,
    /// Largest linear memory the instance reached, in bytes.
    pub memory_peak_bytes: u64,
    /// Wall-clock time of instantiate + run, in milliseconds.
    pub duration_ms: u64,
    /// The same in microseconds, for finer reports.
    pub duration_us: u64,
    /// Outbound HTTP requests made (refused ones included).
    pub http_requests: u64,
    /// Bytes of response bodies read.
    pub http_bytes_in: u64,
    /// Bytes of request bodies sent.
    pub http_bytes_out: u64,
    /// Child jobs the attempt enqueued (kept only if it completed).
    pub children: u64,
}

/// The last progress the guest reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// 0–100.
    pub percent: u8,
    /// Optional note.
    pub note: Option<String>,
}

/// Everything an attempt produced.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    /// Success or failure.
    pub outcome: Outcome,
    /// Fuel, memory, time.
    pub usage: Usage,
    /// The captured log (`log` calls, stdout and stderr), at most the log limit.
    pub log: Vec<u8>,
    /// Log bytes dropped past the log limit.
    pub log_dropped: u64,
    /// Last reported progress.
    pub progress: Option<Progress>,
    /// The child jobs to store with the completion, in call order (empty unless it
    /// succeeded).
    pub children: Vec<super::Child>,
}

impl AttemptReport {
    /// A failure of the host itself (not the guest's doing), reported as a trap.
    pub(crate) fn host_failure(message: String) -> Self {
        Self::failed(Outcome::Failure(Failure {
            kind: FailureKind::Trap,
            message,
        }))
    }

    /// An attempt that ended with `outcome` before the guest ran.
    pub(crate) fn failed(outcome: Outcome) -> Self {
        Self {
            outcome,
            usage: Usage::default(),
            log: Vec::new(),
            log_dropped: 0,
            progress: None,
            children: Vec::new(),
        }
    }

    /// The log as text (invalid UTF-8 replaced).
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log).into_owned()
    }
}
