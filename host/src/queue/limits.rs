//! The per-job limit overrides as a job and a module store them.

use serde::{Deserialize, Serialize};

/// Resource limits of an attempt. `None` means "not set here": the worker takes the
/// module's default, then the server's maximum for the module's language. Stored as JSON
/// without the unset fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Wasm fuel (instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall clock of one attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Linear memory of the instance, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Bytes of result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// Bytes of log kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
}

impl Limits {
    /// These limits over `defaults`: each one set here wins, the rest are the defaults'.
    pub fn over(&self, defaults: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.or(defaults.fuel),
            timeout_ms: self.timeout_ms.or(defaults.timeout_ms),
            memory_bytes: self.memory_bytes.or(defaults.memory_bytes),
            output_bytes: self.output_bytes.or(defaults.output_bytes),
            log_bytes: self.log_bytes.or(defaults.log_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_limits_are_left_out_of_json() {
        let limits = Limits {
            fuel: Some(5),
            ..Limits::default()
        };
        assert_eq!(serde_json::to_string(&limits).unwrap(), r#"{"fuel":5}"#);
        assert_eq!(
            serde_json::from_str::<Limits>("{}").unwrap(),
            Limits::default()
        );
    }
}
