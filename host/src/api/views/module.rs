//! A module version as the API shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Limits;
use crate::queue::{self, Module};

/// A module version as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModuleView {
    /// The name jobs are enqueued by.
    pub name: String,
    /// 1, 2, … per name.
    pub version: u32,
    /// SHA-256 of the bytes (hex); jobs pin it at enqueue.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// What it is.
    pub kind: ModuleKind,
    /// Default limits of its jobs (unset: the server's maximum, which for fuel depends on
    /// the task's language: a Python or JavaScript task's is higher).
    pub limits: Limits,
    /// When this version was stored.
    pub created_at: DateTime<Utc>,
    /// Where the module's jobs may send HTTP requests (per module name, every version);
    /// empty: no network. Set with `?allowed_host=` at upload or `PUT …/policy`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl ModuleView {
    /// The version `module` with its name's allow-list.
    pub fn with_hosts(module: Module, hosts: &[String]) -> Self {
        ModuleView {
            allowed_hosts: hosts.to_vec(),
            ..ModuleView::from(module)
        }
    }
}

impl From<Module> for ModuleView {
    fn from(m: Module) -> Self {
        ModuleView {
            name: m.name,
            version: m.version,
            digest: m.digest,
            size: m.size,
            kind: m.kind.into(),
            limits: m.limits.into(),
            created_at: m.created_at,
            allowed_hosts: Vec::new(),
        }
    }
}

/// A list of modules or of one module's versions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModuleList {
    /// Newest version first (versions), or by name (list).
    pub modules: Vec<ModuleView>,
}

/// What a module is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// A component of the `wasmq:task` world.
    Component,
    /// A WASI command module (core Wasm, `_start`).
    Command,
}

impl From<queue::ModuleKind> for ModuleKind {
    fn from(k: queue::ModuleKind) -> Self {
        match k {
            queue::ModuleKind::Component => ModuleKind::Component,
            queue::ModuleKind::Command => ModuleKind::Command,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::same_json;
    use super::*;

    #[test]
    fn kinds_serialise_as_the_store_type_did() {
        for kind in [queue::ModuleKind::Component, queue::ModuleKind::Command] {
            same_json::<_, ModuleKind>(kind);
        }
    }
}
