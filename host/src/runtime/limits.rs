//! Resource limits of one attempt.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Maximum (and default) fuel of an attempt of compiled code (Rust, C, Go): SPEC's 1e9.
pub const DEFAULT_FUEL: u64 = 1_000_000_000;
/// Maximum (and default) fuel of a Python or JavaScript attempt. An interpreter runs many
/// Wasm instructions per line: this buys about 2 s of pure Python, 1 s of JavaScript.
pub const INTERPRETED_FUEL: u64 = 20_000_000_000;

/// The caps one attempt runs under. Each has a server-wide maximum, a module default
/// set at upload, and a per-job override that may not exceed the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wasm instructions, counted by wasmtime fuel. Violation: `out_of_fuel`.
    pub fuel: u64,
    /// Wall clock of one attempt, in milliseconds. Violation: `timeout`.
    pub timeout_ms: u64,
    /// Linear memory of the instance, in bytes. Violation: `memory_limit`.
    pub memory_bytes: u64,
    /// Bytes of the result. Violation: `output_limit`.
    pub output_bytes: u64,
    /// Bytes of log kept; the rest is dropped and counted.
    pub log_bytes: u64,
}

impl Limits {
    /// The defaults of SPEC.md: 1e9 fuel, 30 s, 64 MiB memory, 1 MiB output, 64 KiB log.
    pub const fn default_max() -> Self {
        Self {
            fuel: DEFAULT_FUEL,
            timeout_ms: 30_000,
            memory_bytes: 64 << 20,
            output_bytes: 1 << 20,
            log_bytes: 64 << 10,
        }
    }

    /// Each field the smaller of `self` and `max`.
    pub fn clamp_to(&self, max: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.min(max.fuel),
            timeout_ms: self.timeout_ms.min(max.timeout_ms),
            memory_bytes: self.memory_bytes.min(max.memory_bytes),
            output_bytes: self.output_bytes.min(max.output_bytes),
            log_bytes: self.log_bytes.min(max.log_bytes),
        }
    }

    /// The wall-clock limit as a [`Duration`].
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::default_max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_takes_the_smaller_of_each_field() {
        let max = Limits::default_max();
        let asked = Limits {
            fuel: u64::MAX,
            timeout_ms: 5,
            ..max
        };
        let got = asked.clamp_to(&max);
        assert_eq!(got.fuel, max.fuel);
        assert_eq!(got.timeout_ms, 5);
    }
}
